"""Runtime (notebook 03 and the report): the CSR/BSR kernel sweep per tokens-per-batch and the whole model."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..facts import column, not_measured, rows_of, speed_interval
from .common import PALETTE, PRINT_WIDTH, _note, _ratio_axis


def _spread(rows: pd.DataFrame) -> np.ndarray | None:
    lo, hi = column(rows, "speedup_lo"), column(rows, "speedup_hi")
    if lo.isna().all():
        return None
    s = rows["speedup"].astype(float)
    return np.vstack([(s - lo).clip(lower=0).fillna(0), (hi - s).clip(lower=0).fillna(0)])


def speed_range(runtimes: list[pd.DataFrame]) -> tuple[float, float] | None:
    """One log y-range for every model's runtime figure: every speedup and interval end, with a margin."""
    values = pd.concat([pd.to_numeric(column(rt, c), errors="coerce") for rt in runtimes if len(rt)
                        for c in ("speedup", "speedup_lo", "speedup_hi")] or [pd.Series(dtype=float)])
    values = values[values > 0]
    return (float(values.min()) / 1.25, float(values.max()) * 1.25) if len(values) else None


def runtime_figure(runtime, title: str, pruning=None, unit: str = "tokens", ylim=None):
    """Speedup over dense (log, one y-range for every panel, and with `ylim` (speed_range) for every model):
    the CSR (solid) and BSR (dashed) kernel sweep, one panel per tokens-per-batch, and the whole model end
    to end. Panels exist only for what was measured; what was not is written under the figure. Any subset of
    rows gives a figure."""
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
        _kernel_panel(ax, csr, bsr, n, colours)
    if len(whole):
        ax = flat[len(token_counts)]
        _whole_model_panel(ax, whole, unit)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        if ylim:
            ax.set_ylim(*ylim)
    if nrows == 1:
        axes[0][0].set_ylabel("speedup over dense (×, log)")
    else:  # one label for the stacked rows, not one per row overlapping in the margin
        fig.supylabel("speedup over dense (×, log)", fontsize=plt.rcParams["axes.labelsize"])
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


def _kernel_panel(ax, csr: pd.DataFrame, bsr: pd.DataFrame, n: int, colours: dict) -> None:
    """One panel of the kernel sweep: speedup against sparsity at `n` tokens per batch, a line per matrix
    shape, CSR solid and BSR dashed (fainter), with the timing interval as error bars."""
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
