"""Numbers as the report prints them: shares, magnitudes, sizes, ranges and lists of names."""

from __future__ import annotations

import math


def pct(x: float, digits: int | None = None) -> str:
    """A share as a percentage with enough digits to be non-zero when it is."""
    v = 100.0 * float(x)
    if digits is not None:
        return f"{v:.{digits}f}%"
    if v == 0:
        return "0%"
    if 99.95 <= v < 100:  # 99.995%, never a rounded 100% for a matrix that keeps a few weights
        d = 2
        while f"{v:.{d}f}".startswith("100") and d < 8:
            d += 1
        return f"{v:.{d}f}%"
    if v >= 10:
        return f"{v:.1f}%"
    return f"{v:.2g}%" if v < 1 else f"{v:.2f}%"


def num(v: float) -> str:
    """A number as people read it: no 1.057e+05, thousands separated, three significant digits."""
    v = float(v)
    if not math.isfinite(v):
        return "—"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.1f} M"
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a == 0:
        return "0"
    if a < 1e-4:
        return f"{v:.1e}"
    if a < 1e-3:
        return f"{v:.2g}"
    return f"{v:.3g}"


def millions(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def fixed1(x: float) -> str:
    """One decimal, with no '-0.0' for a value that rounds to zero."""
    return f"{round(float(x), 1) or 0.0:.1f}"


def shared_values(pairs: list[tuple[str, str]], n_models: int) -> list[tuple[str, str]]:
    """(who, value as printed) with the models that print the same value named together, or as 'every
    model' when all of them do: one finding is not repeated once per model."""
    groups: dict[str, list[str]] = {}
    for who, value in pairs:
        groups.setdefault(value, []).append(who)
    if len(groups) == 1 and len(pairs) == n_models > 1:
        return [("every model", pairs[0][1])]
    return [(join(names), value) for value, names in groups.items()]


def span(lo: float, hi: float, fmt=None) -> str:
    """'lo–hi' as printed, or one number when both ends print the same (no '2.1–2.1')."""
    fmt = fmt or num
    a, b = fmt(lo), fmt(hi)
    return a if a == b else f"{a}–{b}"


def ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×" if x < 1000 else f"{num(x)}×"
