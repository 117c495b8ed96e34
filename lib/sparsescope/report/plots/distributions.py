"""Magnitude distributions (notebook 01 and the report): log-binned histograms, CDFs, per-model panels,
per-layer CDFs coloured by depth, and per-block quantiles against depth."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ...analysis.statistics import Accumulator, cdf, log10_histogram
from .common import DECADE_MARKS, PALETTE, PRINT_WIDTH


def plot_log10_histogram(ax, acc: Accumulator, label: str, **kw) -> None:
    """Share of weights per log10 bin, as a step line; exact zeros are stated in the legend."""
    h = log10_histogram(acc)
    share = 100.0 * h["counts"] / max(acc.n, 1)
    keep = np.flatnonzero(h["counts"])
    if keep.size == 0:
        return
    lo, hi = keep[0], keep[-1] + 1
    zeros = f", {100.0 * acc.n_zero / max(acc.n, 1):.2g}% exactly 0" if acc.n_zero else ""
    ax.stairs(share[lo:hi], h["edges"][lo : hi + 1], label=f"{label}{zeros}", **kw)


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
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH, 2.8))
    for label, acc in groups.items():
        plot_log10_histogram(ax, acc, label)
    _log_axes(ax, "weights per bin (% of group, log)", title, log_y=True)
    ax.legend()
    fig.tight_layout()
    return fig


def cdf_figure(groups: dict[str, Accumulator], title: str, styles: dict[str, dict] | None = None):
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH, 3.0))
    for label, acc in groups.items():
        plot_cdf(ax, acc, label, **(styles or {}).get(label, {}))
    _log_axes(ax, "weights with |w| below x (%)", title)
    _cdf_xlim(ax, groups.values())
    ax.set_ylim(0, 100)
    ax.axhline(50, color="0.4", lw=0.8, ls=":", zorder=0)  # where a 50% magnitude threshold sits
    ax.legend(ncol=2 if len(groups) > 4 else 1)
    fig.tight_layout()
    return fig


def model_panels(models: dict[str, dict[str, Accumulator]], draw: str, titles: dict[str, str] | None = None):
    """One panel per model (two to a row), its groups (e.g. attention, MLP, all weights) overlaid: the
    log-binned histogram when `draw` is "histogram", the cumulative share below x when it is "cdf"."""
    n = len(models)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PRINT_WIDTH, 2.6 * rows + 0.3), squeeze=False)
    for ax, (model, groups) in zip(axes.flat, models.items()):
        for i, (label, acc) in enumerate(groups.items()):
            plot = plot_log10_histogram if draw == "histogram" else plot_cdf
            plot(ax, acc, label, color=PALETTE[i % len(PALETTE)])
        title = (titles or {}).get(model, model)
        if draw == "histogram":
            _log_axes(ax, "weights per bin (%, log)", title, log_y=True)
        else:
            _log_axes(ax, "|w| below x (%)", title)
            _cdf_xlim(ax, groups.values())
            ax.set_ylim(0, 100)
            ax.axhline(50, color="0.4", lw=0.8, ls=":", zorder=0)
        ax.legend(loc="upper left", fontsize=6.5)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def layer_cdf_figure(models: dict[str, dict[str, list[tuple[int, Accumulator]]]]):
    """The seed's CDFs by layer: one panel per model and stack, one CDF of prunable |w| per block, coloured
    from the first block (dark) to the last (light) with a colour bar, so depth reads off the colour."""
    panels = [(f"{model}, {stack}" if len(stacks) > 1 else model, items)
              for model, stacks in models.items() for stack, items in stacks.items()]
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PRINT_WIDTH, 2.6 * rows + 0.3), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (title, items) in zip(axes.flat, panels):
        blocks = [b for b, _ in items]
        norm = plt.Normalize(min(blocks), max(blocks) if max(blocks) > min(blocks) else min(blocks) + 1)
        for block, acc in items:
            plot_cdf(ax, acc, f"block {block}", color=cmap(norm(block)), lw=0.9)
        _log_axes(ax, "prunable |w| below x (%)", title)
        _cdf_xlim(ax, [acc for _, acc in items])
        ax.set_ylim(0, 100)
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.set_label("block index (depth)")
        bar.locator = MaxNLocator(integer=True, nbins=6)
        bar.update_ticks()
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def depth_figure(models: dict[str, dict[str, list[tuple[int, Accumulator]]]], title: str | None = None):
    """Median |w| of each block's prunable weights against depth, with 25–75% and 10–90% bands: one panel
    per model, encoder and decoder as separate lines. Replaces per-block CDFs, which overlap into one."""
    n = len(models)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PRINT_WIDTH, 2.5 * rows + 0.3), squeeze=False)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    for ax, (model, stacks) in zip(axes.flat, models.items()):
        for i, (stack, items) in enumerate(stacks.items()):
            blocks = np.array([b for b, _ in items])
            q = np.array([list(acc.quantiles(qs).values()) for _, acc in items])
            colour = PALETTE[i]
            ax.fill_between(blocks, q[:, 0], q[:, 4], color=colour, alpha=0.12, lw=0)
            ax.fill_between(blocks, q[:, 1], q[:, 3], color=colour, alpha=0.25, lw=0)
            ax.plot(blocks, q[:, 2], "o-", color=colour, label=f"{stack}: median", ms=3)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        ax.set(xlabel="block index (depth)", ylabel="prunable |w| (log)", title=model)
        ax.legend(loc="lower right", fontsize=6.5)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def block_quantile_figure(blocks: dict[str, list[tuple[int, Accumulator]]], title: str):
    """Notebook 01's per-model view: `depth_figure` of one model."""
    return depth_figure({"prunable weights by block": blocks}, title)


block_cdf_figure = block_quantile_figure  # its former name, for executed copies of notebook 01 still around
