"""What every figure shares: print size and theme (PRINT_WIDTH, PRINT_RC), the palette and method markers,
and the ratio-axis helpers (log ticks labelled 0.5×, 1×, 2×) and the "not measured" note."""

from __future__ import annotations

import math

import seaborn as sns
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

PRINT_WIDTH = 7.2  # inches: A4 less 12 mm margins each side, so the PDF prints figures at their own size
PRINT_RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7.5,
    "figure.titlesize": 9,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.5,
    "axes.titlepad": 4,
    "savefig.bbox": "tight",
}
sns.set_theme(style="whitegrid", rc=PRINT_RC)
DECADE_MARKS = (1e-3, 1e-2, 1e-1)
METHOD_MARKERS = {
    "global_magnitude": "o",
    "layer_magnitude": "s",
    "nm_magnitude": "D",
    "wanda": "^",
    "sparsegpt": "v",
    "ffn_magnitude": "P",
    "ffn_activation": "X",
    "heads": "p",
    "dense": "*",
}
PALETTE = sns.color_palette("tab10")


def marker(method: str) -> str:
    return METHOD_MARKERS.get(method, "h")


def times(value, _pos=None) -> str:
    """Tick label of a ratio axis: 0.5×, 1×, 2×, 100×; powers of ten below 0.01."""
    if value <= 0:
        return ""
    if value >= 1e5:
        return f"$10^{{{round(math.log10(value))}}}$×"
    if value >= 1000:
        return f"{value:,.0f}×"
    if value >= 0.01:
        return f"{value:.3g}×"
    return f"$10^{{{round(math.log10(value))}}}$×"


def log_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Ticks for a log axis from lo to hi: 1-2-5 steps while they stay few, else whole decades, else every
    n-th decade — never more than `most`, never fewer than two where the range allows."""
    if not (lo > 0 and hi > lo):
        return []
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [k * 10.0 ** e for e in range(first, last + 1) for k in subs if lo <= k * 10.0 ** e <= hi]
        if 2 <= len(ticks) <= most:
            return ticks
    exps = [e for e in range(first, last + 1) if lo <= 10.0 ** e <= hi]
    if len(exps) < 2:  # less than a decade without two 1-2-5 marks: plain numbers
        return [v for v in MaxNLocator(4).tick_values(lo, hi) if lo <= v <= hi and v > 0]
    step = math.ceil(len(exps) / most)
    return [10.0 ** e for e in exps if e % step == 0]  # aligned on 10^0, so 1× is always a tick


def _ratio_axis(ax, axis: str = "y", suffix: str = "×") -> None:
    """Readable log ticks (see log_ticks) labelled 0.5×, 1×, 2× (or plain with suffix ''); call once the
    data are drawn, since it reads the limits."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    ticks = log_ticks(lo, hi)
    if not ticks:
        return
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: times(v).replace("×", suffix)))
    target.set_minor_formatter(NullFormatter())
    target.set_minor_locator(NullLocator())
    if axis == "y":
        ax.set_ylim(lo, hi)
    else:
        ax.set_xlim(lo, hi)


def _note(fig, lines: list[str]) -> None:
    """What a figure could not show, written under it so a reader of the figure alone sees it."""
    if lines:
        fig.text(
            0.01,
            0.0,
            "Not measured: " + "; ".join(lines) + ".",
            fontsize=7,
            ha="left",
            va="top",
            wrap=True,
            color="0.25",
        )
