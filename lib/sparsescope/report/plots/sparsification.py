"""Where the zeros went (notebook 02 and the report): per-matrix sparsity heatmaps and per-method spread."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ...pruning.runs import pick_run
from ..facts import matrix_roles, role_label, role_order
from .common import PRINT_WIDTH, marker


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
