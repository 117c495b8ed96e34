"""Size on disk (notebook 03 and the report): index bits against their bound, checkpoints against dense."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ...storage import binary_entropy
from ..facts import column
from .common import PALETTE, PRINT_WIDTH, marker


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
