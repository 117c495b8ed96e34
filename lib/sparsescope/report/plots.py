"""Figures shared by the notebooks and the report, drawn at print size: a full-width figure is PRINT_WIDTH
inches wide and its smallest text 7 pt, so the PDF shows it 1:1. Magnitudes span decades, so |w| is always on
a log axis; numeric axes (blocks, sparsity) are in numeric order."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from ..analysis.statistics import Accumulator, cdf, log10_histogram
from ..pruning.runs import pick_run
from ..storage import binary_entropy
from .facts import column, matrix_roles, not_measured, role_label, role_order, rows_of, speed_interval

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


# ----------------------------------------------------------------------------------- distributions
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


# ---------------------------------------------------------------------------------- sparsification
def layer_sparsity_heatmap(per_tensor, title: str, target: float | None = None):
    """Share zeroed of each prunable matrix: block (numeric order, top to bottom) × role (q, k, v, o, gate,
    up, down); encoder above decoder, each panel as tall as its blocks. Given the run's target, the colours
    diverge from it (white = at target), so matrices pruned more or less than the target stand out."""
    df = per_tensor.assign(
        sparsity=100.0 * per_tensor["n_zero"] / per_tensor["n"],
        role=matrix_roles(per_tensor),
        block=pd.to_numeric(per_tensor["block"], errors="coerce"),
    )
    df = df.dropna(subset=["block"]).assign(block=lambda d: d["block"].astype(int))
    stacks = [s for s in ("encoder", "decoder", "shared") if s in set(df["stack"])] or sorted(
        set(df["stack"])
    )
    heights = [df[df["stack"] == s]["block"].nunique() for s in stacks]
    low, high = 0.0, 100.0
    if target is not None:  # the scale spans the deviations seen (5 points at least), not 0-100
        reach = max(5.0, float((df["sparsity"] - 100 * target).abs().max()))
        low, high = max(0.0, 100 * target - reach), min(100.0, 100 * target + reach)
    row_in = 0.11 if max(heights) > 32 else 0.17 if max(heights) > 12 else 0.24
    fig_h = sum(row_in * h + 0.75 for h in heights) + 0.5
    fig, axes = plt.subplots(
        len(stacks),
        1,
        figsize=(PRINT_WIDTH * 0.8, fig_h),
        squeeze=False,
        gridspec_kw={"height_ratios": [h + 2.5 for h in heights]},
    )
    for ax, stack in zip(axes[:, 0], stacks):
        part = df[df["stack"] == stack]
        grid = part.pivot_table(index="block", columns="role", values="sparsity", aggfunc="mean")
        grid = grid.sort_index()[role_order(grid.columns)]
        cells = grid.shape[0] * grid.shape[1]
        sns.heatmap(
            grid,
            ax=ax,
            vmin=low,
            vmax=high,
            cmap="RdBu_r" if target is not None else "magma_r",
            center=None if target is None else 100 * target,
            annot=cells <= 100 and grid.shape[1] <= 10,
            fmt=".0f",
            annot_kws={"fontsize": 7},
            cbar_kws={"label": "weights zeroed (%)" if len(stacks) == 1 else "zeroed (%)", "pad": 0.02},
        )
        crowded = grid.shape[1] > 7  # T5's eleven roles: labels upright would run together
        ax.set_xticklabels([role_label(c) for c in grid.columns], rotation=45 if crowded else 0,
                           ha="right" if crowded else "center")
        step = 1 if len(grid) <= 16 else 2 if len(grid) <= 32 else 4
        ax.set_yticks(np.arange(0, len(grid), step) + 0.5, [str(b) for b in grid.index[::step]], rotation=0)
        ax.set(title=f"{stack} blocks", xlabel="matrix within the block", ylabel="block index")
    fig.suptitle(title + ("" if target is None else f" (white = the target, {target:.0%})"), wrap=True)
    fig.tight_layout()
    return fig


def sparsity_size_figure(table, per_matrix, title: str):
    """Notebook 02: how evenly each method spreads its zeros over the matrices (runs near 50% and N:M), and
    checkpoint size relative to dense for every run."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(PRINT_WIDTH, 3.2), gridspec_kw={"width_ratios": [1.4, 1]}
    )
    probe = pick_run(table, None, 0.5)
    target = 0.5 if probe is None else probe["target_sparsity"]
    nm = per_matrix["nm"].fillna("").astype(str) if len(per_matrix) else pd.Series(dtype=str)
    shown = (
        per_matrix[(per_matrix["target_sparsity"] == target) | (nm != "")] if len(per_matrix) else per_matrix
    )
    if len(shown):
        sns.boxplot(data=shown, x="run", y="sparsity", ax=left, color="0.85", fliersize=0)
        sns.stripplot(data=shown, x="run", y="sparsity", ax=left, size=2.5, alpha=0.6)
        left.tick_params(axis="x", rotation=30)
        for label in left.get_xticklabels():
            label.set_horizontalalignment("right")
    left.set(
        xlabel="",
        ylabel="zeroed in one matrix (%)",
        ylim=(-2, 102),
        title=f"per-matrix sparsity, {target:.0%} and N:M",
    )
    for method, runs in table.groupby("method", sort=False):
        right.plot(
            100 * runs["achieved_sparsity"],
            100 * runs["saved_bytes"] / runs["dense_bytes"],
            marker(method),
            label=method,
            alpha=0.85,
        )
    right.axhline(100, color="0.6", lw=0.8, ls=":")
    right.set(
        xlabel="sparsity of the prunable weights (%)",
        ylabel="checkpoint (% of dense bytes)",
        title="size on disk",
        ylim=(0, 105),
    )
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ quality
METRIC_LABELS = {
    "perplexity": ("perplexity (log)", True),
    "nll": ("NLL (nats/token)", False),
    "mlm_loss": ("masked-LM loss (nats/token)", False),
    "mlm_top1": ("masked-LM top-1 accuracy", False),
    "span_loss": ("span-corruption loss (nats/token)", False),
    "token_loss": ("teacher-forced token loss (nats/token)", False),
    "wer": ("word error rate", False),
    "retrieval_top1": ("retrieval top-1 accuracy", False),
    "cosine_to_dense": ("cosine to dense embedding", False),
    "kl_from_dense": ("KL(dense ‖ pruned), nats (log)", True),
}


def _errorbars(rows) -> np.ndarray | None:
    lo, hi = column(rows, "ci_lo"), column(rows, "ci_hi")
    if lo.isna().all():
        return None
    v = rows["value"].astype(float)
    return np.vstack([(v - lo).clip(lower=0).fillna(0), (hi - v).clip(lower=0).fillna(0)])


def quality_figure(quality, title: str):
    """Notebook 03: one panel per metric, value against sparsity, a line per method, N:M runs hollow, dense
    dashed; error bars where the table has intervals."""
    metrics = [m for m in METRIC_LABELS if m in set(quality["metric"]) and m != "nll"]
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(PRINT_WIDTH, 2.5 * nrows + 0.4), squeeze=False)
    nm = quality["nm"].fillna("").astype(str)
    for ax, metric in zip(axes.flat, metrics):
        rows = quality[quality["metric"] == metric]
        dense = rows[rows["method"] == "dense"]["value"]
        for i, (method, runs) in enumerate(rows[rows["method"] != "dense"].groupby("method", sort=False)):
            colour = PALETTE[i % len(PALETTE)]
            un = runs[nm[runs.index] == ""].sort_values("target_sparsity")
            if len(un):
                ax.errorbar(
                    100 * un["target_sparsity"],
                    un["value"],
                    yerr=_errorbars(un),
                    fmt=marker(method) + "-",
                    color=colour,
                    label=method,
                    capsize=2,
                )
            semi = runs[nm[runs.index] != ""]
            if len(semi):
                ax.errorbar(
                    100 * semi["target_sparsity"],
                    semi["value"],
                    yerr=_errorbars(semi),
                    fmt=marker(method),
                    color=colour,
                    mfc="none",
                    ms=7,
                    label=f"{method} {semi['nm'].iloc[0]}",
                    capsize=2,
                )
        if len(dense) and metric != "kl_from_dense":
            ax.axhline(float(dense.iloc[0]), color="0.4", ls="--", lw=1, label="dense")
        label, log = METRIC_LABELS[metric]
        if log:
            ax.set_yscale("log")
        ax.set(xlabel="sparsity (%)", ylabel=label, title=metric)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12 if nrows == 1 else 0.07, 1, 1))
    return fig


def quality_overview_figure(points: pd.DataFrame, published: pd.DataFrame | None = None):
    """Every model and method on shared axes: KL from dense (left) and quality kept relative to dense
    (right), both log, against sparsity; colour = model, marker = method, hollow = N:M. Published results
    (another corpus and context length) as grey stars with their labels."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(PRINT_WIDTH, 3.6))
    models = list(dict.fromkeys(points["model"]))
    for i, model in enumerate(models):
        colour = PALETTE[i % len(PALETTE)]
        mine = points[points["model"] == model]
        for method, runs in mine.groupby("method", sort=False):
            for semi, part in runs.groupby(runs["nm"] != ""):
                part = part.sort_values("sparsity")
                style = dict(
                    color=colour,
                    marker=marker(method),
                    mfc="none" if semi else colour,
                    ls="none" if semi else "-",
                    lw=0.8,
                    ms=6 if semi else 4.5,
                    alpha=0.9,
                )
                left.plot(100 * part["sparsity"], part["kl"], **style)
                right.plot(100 * part["sparsity"], part["kept"], **style)
    published_handles = []
    for (_, p), shape in zip(published.iterrows() if published is not None else [], "*PX"):
        right.plot(100 * p["sparsity"], p["kept"], shape, color="0.35", ms=8, mfc="none", mew=1.2)
        published_handles.append(
            Line2D([], [], color="0.35", marker=shape, ls="none", ms=7, mfc="none", label=p["label"])
        )
    left.set_yscale("log")
    right.set_yscale("log")
    right.axhline(1.0, color="0.4", ls="--", lw=0.8)
    left.set(
        xlabel="sparsity of the prunable weights (%)",
        ylabel="KL(dense ‖ pruned), nats/token (log)",
        title="how far the output distribution moves",
    )
    right.set(
        xlabel="sparsity of the prunable weights (%)",
        ylabel="quality kept vs dense (1× = dense, log)",
        title="the model's own metric, relative to dense",
    )
    for ax in (left, right):
        ax.set_xlim(left=max(0, 100 * points["sparsity"].min() - 5) if len(points) else 0)
    model_handles = [
        Line2D([], [], color=PALETTE[i % len(PALETTE)], lw=2, label=m) for i, m in enumerate(models)
    ]
    methods = list(dict.fromkeys(points["method"]))
    method_handles = [Line2D([], [], color="0.3", marker=marker(m), ls="none", label=m) for m in methods]
    method_handles.append(
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", label="N:M (hollow)")
    )
    handles = model_handles + method_handles + published_handles
    fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0))
    rows = math.ceil(len(handles) / 4)
    fig.tight_layout(rect=(0, 0.05 * rows + 0.02, 1, 1))
    _ratio_axis(right)
    _ratio_axis(left, suffix="")
    return fig


# --------------------------------------------------------------------------------------------- size
def size_figure(sizes, title: str):
    """Notebook 03: bits per prunable weight spent on positions (the index) against the mask's entropy, and
    the whole checkpoint against dense."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(PRINT_WIDTH, 3.0))
    _index_panel(left, {"": sizes})
    _checkpoint_panel(right, {"": (sizes, {}, None)})
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _index_panel(ax, sizes_by_model: dict[str, pd.DataFrame]) -> None:
    s = np.linspace(0.3, 0.995, 200)
    ax.plot(100 * s, binary_entropy(s), color="0.3", lw=1, label="H(s): i.i.d. mask of that density")
    ax.axhline(1.0, color="0.6", lw=0.8, ls="--", label="bitmask (1 bit)")
    ax.plot([50], [math.log2(6) / 4], "_", color="0.2", ms=14, mew=2, label="2:4 bound, log2 C(4,2)/4")
    seen = set()
    for i, (model, sizes) in enumerate(sizes_by_model.items()):
        bits = column(sizes, "index_bits_per_weight")
        if bits.isna().all():  # older size.csv: no index column, nothing honest to plot here
            continue
        for method, runs in sizes.assign(bits=bits).groupby("method", sort=False):
            runs = runs[runs["bits"].notna()]  # structured runs have no index: no point, no legend entry
            if not len(runs):
                continue
            label = method if method not in seen else None
            seen.add(method)
            ax.plot(
                100 * runs["achieved_sparsity"],
                runs["bits"],
                marker(method),
                ls="none",
                color=PALETTE[i % len(PALETTE)] if model else "0.2",
                mfc="none",
                label=label,
            )
    ax.set(
        xlabel="sparsity of the prunable weights (%)",
        ylabel="index bits per prunable weight",
        title="positions of the kept weights vs their bound",
        ylim=(0, 1.15),
    )
    ax.legend(fontsize=6.5, loc="lower left")


def _checkpoint_panel(ax, models: dict[str, tuple[pd.DataFrame, dict, float | None]]) -> None:
    for i, (model, (sizes, baselines, dense_bytes)) in enumerate(models.items()):
        colour = PALETTE[i % len(PALETTE)] if model else "0.2"
        for method, runs in sizes.groupby("method", sort=False):
            ax.plot(
                100 * runs["achieved_sparsity"],
                100 * runs["saved_over_dense"],
                marker(method),
                ls="none",
                color=colour,
                label=model if model and method == sizes["method"].iloc[0] else None,
            )
        for name, style in (("fp16", ":"), ("int8", "--"), ("4-bit", "-.")):
            if name in baselines and dense_bytes:
                ax.axhline(100 * baselines[name] / dense_bytes, color=colour, ls=style, lw=0.8)
    ax.axhline(100, color="0.6", lw=0.8)
    ax.set(
        xlabel="sparsity of the prunable weights (%)",
        ylabel="whole checkpoint (% of dense bytes)",
        title="compressed checkpoints and casts",
        ylim=(0, 105),
    )


def size_overview_figure(models: dict[str, tuple[pd.DataFrame, dict, float]]):
    """One figure for every model: index bits against the bound (left), and each checkpoint as a share of
    its dense file beside the same model cast to fp16 (dotted), int8 (dashed) and 4-bit (dash-dot)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(PRINT_WIDTH, 3.3))
    _index_panel(left, {m: s for m, (s, _, _) in models.items()})
    _checkpoint_panel(right, models)
    handles, labels = right.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.4", ls=s, lw=0.8, label=n)
        for n, s in (("fp16 cast", ":"), ("int8 cast", "--"), ("4-bit cast", "-."))
    ]
    right.legend(handles=handles, fontsize=6.5, loc="lower left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ runtime
def _spread(rows: pd.DataFrame) -> np.ndarray | None:
    lo, hi = column(rows, "speedup_lo"), column(rows, "speedup_hi")
    if lo.isna().all():
        return None
    s = rows["speedup"].astype(float)
    return np.vstack([(s - lo).clip(lower=0).fillna(0), (hi - s).clip(lower=0).fillna(0)])


def runtime_figure(runtime, title: str, pruning=None, unit: str = "tokens"):
    """Speedup over dense (log, one y-range for every panel): the CSR (solid) and BSR (dashed) kernel sweep,
    one panel per tokens-per-batch, and the whole model end to end. Panels exist only for what was measured;
    what was not is written under the figure. Any subset of rows gives a figure."""
    runtime = runtime if len(runtime) else pd.DataFrame(columns=["kind"])
    csr, bsr = rows_of(runtime, "kernel-csr"), rows_of(runtime, "kernel-bsr")
    token_counts = sorted(set(pd.to_numeric(csr["tokens"]).astype(int)) if len(csr) else set())
    whole_kinds = [
        "dense-kernels",
        "dense-kernels-decode",
        "sparse-kernels-e2e",
        "structured-prefill",
        "structured-decode",
        "kernel-2:4",
    ]
    whole = pd.concat(
        [rows_of(runtime, k) for k in whole_kinds if len(rows_of(runtime, k))] or [pd.DataFrame()]
    )
    panels = len(token_counts) + (1 if len(whole) else 0)
    cols = max(1, min(3, panels))
    nrows = max(1, math.ceil(panels / cols))
    fig, axes = plt.subplots(
        nrows, cols, figsize=(PRINT_WIDTH, 2.4 * nrows + 0.7), squeeze=False, sharey=True
    )
    flat = list(axes.flat)
    shapes = sorted(set(csr["shape_or_model"]) | set(bsr["shape_or_model"])) if len(csr) or len(bsr) else []
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(shapes)}
    for ax, n in zip(flat, token_counts):
        for kernels, style in ((csr, "o-"), (bsr, "s--")):
            at = kernels[pd.to_numeric(kernels["tokens"]).astype(int) == n] if len(kernels) else kernels
            for shape, rows in at.groupby("shape_or_model"):
                rows = rows.sort_values("sparsity")
                ax.errorbar(
                    100 * rows["sparsity"].astype(float),
                    rows["speedup"].astype(float),
                    yerr=_spread(rows),
                    fmt=style,
                    color=colours[shape],
                    ms=3,
                    lw=1,
                    capsize=1.5,
                    alpha=1 if style == "o-" else 0.55,
                )
        ax.set(xlabel="sparsity (%)", title=f"{n} token{'s' if n != 1 else ''} per batch")
    if len(whole):
        ax = flat[len(token_counts)]
        _whole_model_panel(ax, whole, unit)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    for row in axes:
        row[0].set_ylabel("speedup over dense (×, log)")
    if panels == 0:
        flat[0].set_visible(True)
        flat[0].text(0.5, 0.5, "no runtime rows", ha="center", va="center", transform=flat[0].transAxes)
        flat[0].set_axis_off()
    handles = [Line2D([], [], color=colours[s], lw=1.5, label=s) for s in shapes]
    if len(csr) or len(bsr):
        handles += [
            Line2D([], [], color="0.3", marker="o", label="CSR"),
            Line2D([], [], color="0.3", marker="s", ls="--", alpha=0.55, label="BSR 16×16"),
        ]
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(6, len(handles)),
            title="matrix (out×in), format",
            bbox_to_anchor=(0.5, 0.0),
        )
    fig.suptitle(title)
    missing = not_measured(runtime, pruning)
    legend_rows = math.ceil(len(handles) / 6) if handles else 0
    bottom = (0.09 * legend_rows + 0.05) / max(nrows, 1) + (0.05 if missing else 0)
    fig.tight_layout(rect=(0, min(bottom, 0.4), 1, 1))
    for ax in flat[:panels]:
        _ratio_axis(ax)
    _note(fig, missing)
    return fig


def _whole_model_panel(ax, whole: pd.DataFrame, unit: str = "tokens") -> None:
    labels = []
    for i, (_, r) in enumerate(whole.iterrows()):
        batch = column(pd.DataFrame([r]), "batch").iloc[0]
        where = f"b{int(batch)}" if math.isfinite(batch) else f"{int(r['tokens'])} tok"
        name = {
            "dense-kernels": "dense kernels",
            "dense-kernels-decode": "dense kernels, decode",
            "sparse-kernels-e2e": "CSR layers",
            "structured-prefill": "smaller",
            "structured-decode": "smaller, decode",
            "kernel-2:4": "2:4",
        }.get(r["kind"], r["kind"])
        if r["kind"].startswith("structured"):
            name += f" {r.get('method', '')}"
        labels.append(f"{name} {float(r['sparsity']):.0%} {where}")
        span = speed_interval(dict(r))
        err = (
            None
            if span is None
            else [[max(float(r["speedup"]) - span[0], 0)], [max(span[1] - float(r["speedup"]), 0)]]
        )
        colour = "0.55" if r["kind"].startswith("dense-kernels") else "0.1"  # no colour a shape uses
        ax.errorbar([i], [float(r["speedup"])], yerr=err, fmt="o", color=colour, capsize=2)
    ax.set_xticks(range(len(labels)), labels, rotation=90, ha="center", fontsize=7)  # upright: no overlap
    ax.set_xlim(-0.6, len(labels) - 0.4)
    prefill = whole[~whole["kind"].astype(str).str.endswith("-decode")]
    seqlen = sorted({int(x) for x in column(prefill, "seqlen").dropna()})
    tokens = f" of {'/'.join(map(str, seqlen))} {unit}" if seqlen else ""
    decode = "; decode: per new token" if len(prefill) < len(whole) else ""
    ax.set_title("whole model")  # the key below the labels: a long title runs into the next panel's
    ax.set_xlabel(f"b = batch{tokens}{decode}", fontsize=7)


# ----------------------------------------------------------------------------------------- frontier
KIND_WORDS = {"unstructured": "unstructured", "nm": "N:M", "structured": "structured", "dense": "dense"}


def frontier_figure(points: pd.DataFrame):
    """Per model: quality kept against bytes on disk and, where at least two runs have a latency, against
    batch-1 latency; both relative to dense (the star at 1×, 1×). Colour: unstructured, N:M, structured."""
    models = list(dict.fromkeys(points["model"]))
    timed = points[(points["method"] != "dense") & points["latency"].notna()].groupby("model").size()
    with_latency = [m for m in models if timed.get(m, 0) >= 2]
    if with_latency:
        fig, axes = plt.subplots(
            len(models), 2, figsize=(PRINT_WIDTH, 2.3 * len(models) + 0.5), squeeze=False
        )
        pairs = [(row[0], row[1] if m in with_latency else None) for row, m in zip(axes, models)]
        for row, m in zip(axes, models):
            if m not in with_latency:
                row[1].set_visible(False)
    else:
        cols = min(3, len(models))
        nrows = math.ceil(len(models) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(PRINT_WIDTH, 2.5 * nrows + 0.5), squeeze=False)
        pairs = [(ax, None) for ax in axes.flat[: len(models)]]
        for ax in list(axes.flat)[len(models) :]:
            ax.set_visible(False)
    kinds = {"unstructured": PALETTE[0], "nm": PALETTE[1], "structured": PALETTE[2], "dense": "0.2"}
    for (left, right), model in zip(pairs, models):
        mine = points[points["model"] == model]
        for _, p in mine.iterrows():
            colour, size = kinds.get(p["kind"], "0.5"), 8 if p["kind"] == "dense" else 5
            if pd.notna(p["kept"]):
                left.plot(p["bytes"], p["kept"], marker(p["method"]), color=colour, ms=size)
                if right is not None and pd.notna(p["latency"]):
                    right.plot(p["latency"], p["kept"], marker(p["method"]), color=colour, ms=size)
        for ax, what in ((left, "bytes on disk"), (right, "batch-1 latency")):
            if ax is None:
                continue
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set(
                xlabel=f"{what} (× dense, log)",
                ylabel="quality kept (× dense, log)",
                title=f"{model}: {'size' if ax is left else 'latency'}",
            )
            _ratio_axis(ax)
            _ratio_axis(ax, "x")
    handles = [
        Line2D([], [], color=c, marker=marker("dense") if k == "dense" else "o", ls="none",
               label=KIND_WORDS[k])
        for k, c in kinds.items()
        if k in set(points[points["kept"].notna()]["kind"])  # a kind none of whose runs is drawn: no entry
    ]
    handles += [
        Line2D([], [], color="0.3", marker=marker(m), ls="none", label=m)
        for m in dict.fromkeys(points["method"])
        if m != "dense"
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, bbox_to_anchor=(0.5, 0))
    rows = axes.shape[0]
    fig.tight_layout(rect=(0, (0.05 * math.ceil(len(handles) / 5) + 0.02) * 3 / (rows + 2), 1, 1))
    for ax in fig.axes:
        if ax.get_visible() and ax.get_xscale() == "log":
            _ratio_axis(ax)
            _ratio_axis(ax, "x")
    return fig
