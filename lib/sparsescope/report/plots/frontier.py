"""The frontier (the report): quality kept against bytes on disk and batch-1 latency, relative to dense."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from .common import PALETTE, PRINT_WIDTH, _ratio_axis, marker


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
