"""Quality against sparsity (notebook 03 and the report): per-metric panels and the all-model overview."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..facts import column
from .common import PALETTE, PRINT_WIDTH, _ratio_axis, marker


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
    if len(points) and (points["nm"].fillna("").astype(str) != "").any():  # an entry only for what is drawn
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
