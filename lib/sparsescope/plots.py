"""Figures shared by the notebooks and the report: magnitudes span decades, so |w| is always on a log axis."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .statistics import Accumulator, cdf, log10_histogram

sns.set_theme(style="whitegrid", context="notebook")
DECADE_MARKS = (1e-3, 1e-2, 1e-1)


def plot_log10_histogram(ax, acc: Accumulator, label: str, **kw) -> None:
    """Share of weights per log10 bin, as a step line; exact zeros are stated in the legend."""
    h = log10_histogram(acc)
    share = 100.0 * h["counts"] / max(acc.n, 1)
    keep = np.flatnonzero(h["counts"])
    if keep.size == 0:
        return
    lo, hi = keep[0], keep[-1] + 1
    zeros = f", {100.0 * acc.n_zero / max(acc.n, 1):.2g}% exactly 0" if acc.n_zero else ""
    ax.stairs(share[lo:hi], h["edges"][lo:hi + 1], label=f"{label}{zeros}", **kw)


def plot_cdf(ax, acc: Accumulator, label: str, **kw) -> None:
    x, f = cdf(acc)
    ax.plot(x, 100.0 * f, label=label, **kw)


def _cdf_xlim(ax, accs) -> None:
    """Start the x axis where the first 0.1% of weights has been passed, not at the smallest subnormal."""
    starts = []
    for acc in accs:
        x, f = cdf(acc)
        if len(x):
            starts.append(x[min(np.searchsorted(f, 1e-3), len(x) - 1)])
    if starts:
        ax.set_xlim(left=min(starts) / 3)


def _log_axes(ax, ylabel: str, title: str, log_y: bool = False) -> None:
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("|w|, weight magnitude (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for x in DECADE_MARKS:
        ax.axvline(x, color="0.6", lw=0.8, ls=":")


def histogram_figure(groups: dict[str, Accumulator], title: str):
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, acc in groups.items():
        plot_log10_histogram(ax, acc, label)
    _log_axes(ax, "weights per bin (% of group, log scale)", title, log_y=True)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def cdf_figure(groups: dict[str, Accumulator], title: str):
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, acc in groups.items():
        plot_cdf(ax, acc, label)
    _log_axes(ax, "weights with |w| below x (%)", title)
    _cdf_xlim(ax, groups.values())
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def block_cdf_figure(blocks: dict[str, list[tuple[int, Accumulator]]], title: str):
    """One panel per stack; each block's CDF coloured by its depth."""
    fig, axes = plt.subplots(1, len(blocks), figsize=(6.5 * len(blocks), 4.2), squeeze=False)
    for ax, (stack, items) in zip(axes[0], blocks.items()):
        cmap = plt.get_cmap("viridis")
        depth = max(len(items) - 1, 1)
        for i, (block, acc) in enumerate(items):
            plot_cdf(ax, acc, str(block), color=cmap(i / depth), lw=1.2)
        _log_axes(ax, "prunable weights with |w| below x (%)", f"{stack} blocks")
        _cdf_xlim(ax, [acc for _, acc in items])
        ax.set_ylim(0, 100)
        norm = matplotlib.colors.Normalize(vmin=items[0][0], vmax=items[-1][0])
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="block index (depth)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
