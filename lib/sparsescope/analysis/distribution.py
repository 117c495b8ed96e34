"""Notebook 01's work: analyse one model's weight magnitudes, save the results, load them back."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import manifest, write_json
from ..sources.registry import describe
from ..sources.weights import tensor_aliases, weight_files
from .statistics import Accumulator, WeightStats, analyze_folder


def analyze_model(model: str, out_dir: str | os.PathLike, progress: bool = True) -> "Distribution":
    """Stream the model's checkpoint once; write summary.json, histograms.npz, tensors.csv, manifest.json."""
    started = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = describe(model)
    folder = Path(info["folder"])
    stats: WeightStats = analyze_folder(folder, info["family"], progress=progress)
    stats.save(out_dir)
    summary = {
        "model": model, "family": info["family"], "n_params": stats.groups["all"].n,
        "n_prunable": stats.groups["prunable"].n, "model_info": info, **stats.summary(),
        "stacks": stats.group_summaries("prunable_stack:"),
        "components": stats.group_summaries("component:"),
    }
    write_json(summary, out_dir / "summary.json")
    excluded = {"buffers (not weights)": stats.buffers,
                "aliases (stored once, counted once)": tensor_aliases(folder)}
    write_json({**manifest(info, weight_files(folder), {"model": model}, time.time() - started),
                "excluded": excluded}, out_dir / "manifest.json")
    return load_distribution(out_dir)


@dataclass
class Distribution:
    """What analyze_model saved, with exact group histograms rebuilt as Accumulators."""
    out_dir: Path
    summary: dict
    groups: dict[str, Accumulator]
    tensors: pd.DataFrame

    @property
    def name(self) -> str:
        return self.summary["model"]

    def blocks(self) -> dict[str, list[tuple[int, Accumulator]]]:
        """Prunable weights per block, grouped by stack, in depth order."""
        out: dict[str, list[tuple[int, Accumulator]]] = {}
        for g, acc in self.groups.items():
            if g.startswith("block:"):
                _, stack, block = g.split(":")
                out.setdefault(stack, []).append((int(block), acc))
        encoder_first = sorted(out.items(), key=lambda kv: kv[0] != "encoder")
        return {stack: sorted(items, key=lambda x: x[0]) for stack, items in encoder_first}


def load_distribution(out_dir: str | os.PathLike) -> Distribution:
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text())
    with np.load(out_dir / "histograms.npz") as z:
        # files saved before the below-threshold counts were leave them unknown (summary() then says so)
        labels = [str(k) for k in z["below_thresholds"]] if "below" in z.files else None
        below = z["below"] if labels else [None] * len(z["groups"])
        groups = {str(g): Accumulator(hist=c, n=int(n), n_zero=int(nz),
                                      below=None if b is None else dict(zip(labels, map(int, b))))
                  for g, c, n, nz, b in zip(z["groups"], z["counts"], z["n"], z["n_zero"], below)}
    return Distribution(out_dir, summary, groups, pd.read_csv(out_dir / "tensors.csv"))
