"""Figures shared by the notebooks and the report: magnitudes span decades, so |w| is always on a log axis."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..analysis.statistics import Accumulator, cdf, log10_histogram
from ..pruning.runs import pick_run
from ..sources.weights import name_in_block
from ..storage import binary_entropy

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


def matrix_label(name: str) -> str:
    """A prunable matrix's name inside its block, e.g. 'self_attn.q_proj'."""
    return name_in_block(name).removesuffix(".weight")


def layer_sparsity_heatmap(per_tensor, title: str):
    """Sparsity of each prunable matrix, block x matrix, one panel per stack."""
    df = per_tensor.assign(sparsity=100.0 * per_tensor["n_zero"] / per_tensor["n"],
                           matrix=per_tensor["name"].map(matrix_label))
    stacks = [s for s in ("encoder", "decoder", "shared") if s in set(df["stack"])]
    width = max(6.0, 0.9 * df["matrix"].nunique())
    height = 0.22 * df["block"].nunique() + 2.8
    fig, axes = plt.subplots(1, len(stacks), figsize=(width * len(stacks), height),
                             squeeze=False)
    for ax, stack in zip(axes[0], stacks):
        grid = df[df["stack"] == stack].pivot_table(index="block", columns="matrix", values="sparsity",
                                                    sort=False)
        sns.heatmap(grid, ax=ax, vmin=0, vmax=100, cmap="magma_r", cbar_kws={"label": "weights zeroed (%)"},
                    annot=grid.shape[0] * grid.shape[1] <= 120, fmt=".0f")
        ax.set_title(f"{stack} blocks")
        ax.set_xlabel("matrix within the block")
        ax.set_ylabel("block index (depth)")
    fig.suptitle(title, wrap=True)
    fig.tight_layout()
    return fig


def sparsity_size_figure(table, per_matrix, title: str):
    """Left: how evenly each method spreads its zeros over the prunable matrices (one box per run near
    50% and per N:M run). Right: checkpoint size relative to dense for every run."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.3, 1]})
    probe = pick_run(table, None, 0.5)
    target = 0.5 if probe is None else probe["target_sparsity"]
    shown = per_matrix[(per_matrix["target_sparsity"] == target) | (per_matrix["nm"].fillna("") != "")]
    sns.boxplot(data=shown, x="run", y="sparsity", ax=left, color="0.85", fliersize=0)
    sns.stripplot(data=shown, x="run", y="sparsity", ax=left, size=3, alpha=0.6)
    left.set(xlabel="", ylabel="weights zeroed in one matrix (%)", ylim=(-2, 102),
             title=f"per-matrix sparsity at {target:.0%} and N:M")
    left.tick_params(axis="x", rotation=35)
    for label in left.get_xticklabels():
        label.set_horizontalalignment("right")
    markers = iter("osD^vP*X")
    for method, runs in table.groupby("method", sort=False):
        share = 100 * runs["saved_bytes"] / runs["dense_bytes"]
        right.plot(100 * runs["achieved_sparsity"], share, next(markers),
                   label=method, alpha=0.8)
    right.axhline(100, color="0.6", lw=0.8, ls=":")
    right.set(xlabel="achieved sparsity of the prunable weights (%)", ylabel="checkpoint size (% of dense)",
              title="size on disk of the compressed checkpoint", ylim=(0, 105))
    right.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


METRIC_LABELS = {
    "perplexity": ("perplexity (log scale)", True), "mlm_loss": ("masked-LM loss (nats/token)", False),
    "mlm_top1": ("masked-LM top-1 accuracy", False),
    "span_loss": ("span-corruption loss (nats/token)", False),
    "token_loss": ("transcript token loss (nats/token)", False), "wer": ("word error rate", False),
    "retrieval_top1": ("retrieval top-1 accuracy", False),
    "cosine_to_dense": ("cosine to dense embedding", False),
    "kl_from_dense": ("KL(dense ‖ pruned), nats (log scale)", True),
}


def quality_figure(quality, title: str):
    """One panel per metric: value vs sparsity, a line per method; N:M runs as squares; dense dashed."""
    metrics = [m for m in METRIC_LABELS if m in set(quality["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), squeeze=False)
    nm = quality["nm"].fillna("").astype(str)
    for ax, metric in zip(axes[0], metrics):
        rows = quality[quality["metric"] == metric]
        dense = rows[rows["method"] == "dense"]["value"]
        unstructured = rows[(rows["method"] != "dense") & (nm[rows.index] == "")]
        for method, runs in unstructured.groupby("method", sort=False):
            runs = runs.sort_values("target_sparsity")
            line = ax.plot(100 * runs["target_sparsity"], runs["value"], "o-", label=method)[0]
            structured = rows[(rows["method"] == method) & (nm[rows.index] != "")]
            ax.plot(100 * structured["target_sparsity"], structured["value"], "s", color=line.get_color(),
                    markersize=8, markerfacecolor="none", label=f"{method} N:M" if len(structured) else None)
        structured = rows[(rows["method"] == "nm_magnitude")]
        ax.plot(100 * structured["target_sparsity"], structured["value"], "s", color="0.3", markersize=8,
                markerfacecolor="none", label="nm_magnitude N:M" if len(structured) else None)
        if len(dense) and metric != "kl_from_dense":
            ax.axhline(float(dense.iloc[0]), color="0.4", ls="--", lw=1, label="dense")
        label, log = METRIC_LABELS[metric]
        if log:
            ax.set_yscale("log")
        ax.set(xlabel="sparsity of the prunable weights (%)", ylabel=label, title=metric)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def size_figure(sizes, title: str):
    """Bits per prunable weight of the compressed checkpoints against the entropy bound, and file size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    s = np.linspace(0.3, 0.99, 200)
    h = binary_entropy(s)
    value_bits = float(np.median((sizes["bound_bits_per_weight"] - binary_entropy(sizes["achieved_sparsity"]))
                                 / (1 - sizes["achieved_sparsity"])))
    left.plot(100 * s, h + (1 - s) * value_bits, color="0.3", lw=1,
              label=f"entropy bound ({value_bits:.0f}-bit values)")
    left.plot(100 * s, 1 + (1 - s) * value_bits, color="0.6", lw=1, ls="--", label="bitmask + values")
    left.axhline(value_bits, color="0.6", lw=0.8, ls=":", label="dense")
    markers = iter("osD^vP*X")
    for method, runs in sizes.groupby("method", sort=False):
        marker = next(markers)
        left.plot(100 * runs["achieved_sparsity"], runs["bits_per_weight"], marker, label=method, alpha=0.8)
        right.plot(100 * runs["achieved_sparsity"], 100 * runs["saved_over_dense"], marker, label=method,
                   alpha=0.8)
    left.set(xlabel="sparsity of the prunable weights (%)", ylabel="bits per prunable weight",
             title="compressed matrices vs the entropy bound")
    right.axhline(100, color="0.6", lw=0.8, ls=":")
    right.set(xlabel="sparsity of the prunable weights (%)", ylabel="whole checkpoint (% of dense bytes)",
              title="size on disk", ylim=(0, 105))
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def runtime_figure(runtime, title: str):
    """CSR speedup over dense per matrix shape against sparsity, one panel per tokens-per-batch; and the
    end-to-end ratios (dense kernels on the pruned model; CSR layers above the crossover)."""
    kernels = runtime[runtime["kind"] == "kernel-csr"]
    token_counts = sorted(kernels["tokens"].unique())
    panels = len(token_counts) + 1
    cols = min(3, panels)
    rows_n = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.8 * rows_n), squeeze=False)
    flat = list(axes.flat)
    for ax, n in zip(flat, token_counts):
        for shape, rows in kernels[kernels["tokens"] == n].groupby("shape_or_model"):
            ax.plot(100 * rows["sparsity"], rows["speedup"], "o-", label=shape, ms=4)
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set(xlabel="sparsity (%)", ylabel="CSR speedup over dense (×, log)",
               title=f"{n} token(s) per batch")
    for ax in flat[panels:]:
        ax.set_visible(False)
    flat[0].legend(fontsize="x-small", title="matrix (out×in)")
    ax = flat[len(token_counts)]
    e2e = runtime[runtime["kind"].isin(["dense-kernels", "sparse-kernels-e2e"])]
    labels = [f"{k}\n{s:.0%}, batch {int(b)}" for k, s, b in zip(e2e["kind"], e2e["sparsity"], e2e["batch"])]
    colours = ["0.6" if k == "dense-kernels" else "tab:green" for k in e2e["kind"]]
    ax.bar(range(len(e2e)), e2e["speedup"], color=colours)
    ax.set_xticks(range(len(e2e)), labels, rotation=30, ha="right", fontsize="x-small")
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set(ylabel="end-to-end speedup over dense (×)", title="whole model")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
