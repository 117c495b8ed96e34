"""Runtime facts: latency ratios read with their intervals, what was not measured, CSR crossovers."""

from __future__ import annotations

import math

import pandas as pd

from .results import column


def speed_interval(row) -> tuple[float, float] | None:
    lo, hi = (
        (row.get(k) for k in ("speedup_lo", "speedup_hi"))
        if isinstance(row, dict)
        else (getattr(row, "speedup_lo", None), getattr(row, "speedup_hi", None))
    )
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


DISTURBED = 3.0  # a 95% interval wider than this factor (hi / lo): a disturbed timing, no evidence either way


def disturbed(interval: tuple[float, float] | None) -> bool:
    """Whether a timing's interval is too wide to support any claim (it spans more than DISTURBED×)."""
    return interval is not None and not (interval[0] > 0 and interval[1] / interval[0] <= DISTURBED)


def speed_words(speedup: float, interval: tuple[float, float] | None) -> str:
    """A latency ratio as a reader may take it: an interval that holds 1.0 is no measurable change; without
    a recorded interval the ratio is printed but not called an effect."""
    from ..html import say

    return say("runtime").speed(speedup, interval, disturbed(interval))


def speed_cell(speedup: float, interval: tuple[float, float] | None) -> str:
    """The same verdict, short enough for a table cell."""
    if interval is None:
        return f"{speedup:.2f}× (no interval)"
    lo, hi = interval
    verdict = ("disturbed" if disturbed(interval) else "no change" if lo <= 1.0 <= hi else
               "faster" if lo > 1 else "slower")
    return f"{speedup:.2f}× [{lo:.2f}–{hi:.2f}] {verdict}"


def rows_of(runtime: pd.DataFrame, kind: str) -> pd.DataFrame:
    return runtime[runtime["kind"] == kind] if len(runtime) and "kind" in runtime else pd.DataFrame()


def not_measured(runtime: pd.DataFrame, pruning: pd.DataFrame | None = None) -> list[str]:
    """What the runtime table lacks, one line each, so a figure of what exists says what does not."""
    kinds = set(runtime["kind"]) if len(runtime) and "kind" in runtime else set()
    lines = []
    if "dense-kernels" not in kinds:
        lines.append("whole model with dense kernels (needs a global_magnitude run near 50%)")
    if "kernel-csr" not in kinds:
        lines.append("CSR kernel sweep")
    if "sparse-kernels-e2e" not in kinds:
        lines.append("whole model with CSR layers (needs a layer_magnitude run above the CSR crossover)")
    if "kernel-2:4" not in kinds:
        lines.append("2:4 sparse tensor cores (needs a CUDA GPU)")
    structured = (
        pruning is not None and len(pruning) and "kind" in pruning and (pruning["kind"] == "structured").any()
    )
    if structured and not kinds & {"structured-prefill", "structured-decode"}:
        lines.append("structured runs' latency")
    return lines


def e2e_words(runtime: pd.DataFrame, kind: str, unit: str = "tokens") -> list[str]:
    """Each end-to-end row as words: batch, tokens per batch, sequence length, verdict (`unit`: what a
    sequence is made of, e.g. log-mel frames for a speech model)."""
    from ..html import say

    out = []
    for _, r in rows_of(runtime, kind).iterrows():
        batch = column(pd.DataFrame([r]), "batch").iloc[0]
        seqlen = column(pd.DataFrame([r]), "seqlen").iloc[0]
        run = str(r.get("run", "") or "")  # which smaller model, when several
        out.append(say("runtime").e2e(
            run if run != "nan" else "", kind.endswith("-decode"),  # decode: per new token with the KV cache
            int(batch) if math.isfinite(batch) else None, int(seqlen) if math.isfinite(seqlen) else None,
            int(r["tokens"]), unit, float(r["speedup"]), span := speed_interval(dict(r)), disturbed(span)))
    return out


def all_hold_one(rows: pd.DataFrame) -> bool | None:
    """True when every row's interval holds 1.0; None when some row has no interval to read (none recorded,
    or one too wide: disturbed)."""
    if not len(rows):
        return None
    spans = [speed_interval(dict(r)) for _, r in rows.iterrows()]
    if any(s is None or disturbed(s) for s in spans):
        return None
    return all(lo <= 1.0 <= hi for lo, hi in spans)


def bsr_sentence(runtime: pd.DataFrame) -> str:
    """What the BSR kernel rows support. Never the best of point estimates: among the rows whose interval is
    narrow enough to read, the surest case (highest lower bound) decides; disturbed rows are set aside."""
    from ..html import say

    bsr = rows_of(runtime, "kernel-bsr")
    if not len(bsr):
        return ""
    rows = [dict(r) for _, r in bsr.iterrows()]
    spans = [speed_interval(r) for r in rows]
    readable = [(r, s) for r, s in zip(rows, spans) if s is not None and not disturbed(s)]
    set_aside = sum(disturbed(s) for s in spans)
    if readable:
        best, span = max(readable, key=lambda rs: rs[1][0])
    else:  # no interval to read: the point estimates only, never called a win
        best, span = max(rows, key=lambda r: float(r["speedup"])), None
    return say("runtime").bsr(float(best["speedup"]), best["shape_or_model"], float(best["sparsity"]),
                              int(best["tokens"]), span, any(s is not None for s in spans), set_aside,
                              len(rows), DISTURBED)


def csr_rules(crossovers: pd.DataFrame) -> pd.Series | None:
    """The rule that decided each CSR crossover ("interval", "one repeat", or by medians); None when no CSR
    row records one."""
    csr = crossovers[crossovers["kind"] == "kernel-csr"] if len(crossovers) else crossovers
    return csr["rule"] if len(csr) and "rule" in csr else None


def crossovers_measured(crossovers: pd.DataFrame) -> bool:
    """Whether every CSR crossover was decided by intervals (results before intervals: by medians)."""
    rules = csr_rules(crossovers)
    return rules is not None and bool((rules == "interval").all())


def crossovers_timed_once(crossovers: pd.DataFrame) -> bool:
    """Whether the CSR sweep was timed once per point: no interval, so no crossover is claimed."""
    rules = csr_rules(crossovers)
    return rules is not None and bool((rules == "one repeat").any())


def crossover_words(crossovers: pd.DataFrame, runtime: pd.DataFrame) -> list[str]:
    """Per tokens per batch, the measured sparsity from which CSR wins (crossovers() decides), as a span over
    the matrix shapes."""
    from ..html import say

    csr = crossovers[crossovers["kind"] == "kernel-csr"] if len(crossovers) else pd.DataFrame()
    if not len(csr):
        return []
    top = float(pd.to_numeric(rows_of(runtime, "kernel-csr")["sparsity"]).max()) if len(runtime) else 1.0
    out = []
    for n in sorted(csr["tokens"].unique()):
        group = csr[csr["tokens"] == n]
        at = pd.to_numeric(group["crossover_sparsity"], errors="coerce")
        found = at.dropna()
        lo = hi = None
        if len(found):
            lo = found.min()
            hi = found.max() if round(found.min(), 2) != round(found.max(), 2) else None
        # an interval above 1.0 makes a win measurable; rows without one are read by their medians
        out.append(say("runtime").crossover(int(n), crossovers_timed_once(group), crossovers_measured(group),
                                                lo, hi, int(at.isna().sum()), top))
    return out
