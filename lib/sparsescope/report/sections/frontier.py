"""Trade-offs: quality kept against bytes and latency, every run of every kind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import facts as F
from ..html import say, tidy
from .base import Parts, Section


class Frontier(Section):
    def frontier(self) -> Parts:
        from ..plots import KIND_WORDS, frontier_figure

        frame = self.frontier_rows()
        if not len(frame):
            return []
        have_latency = frame[(frame["method"] != "dense") & frame["latency"].notna()]
        panel = bool((have_latency.groupby("model").size() >= 2).any())
        scored = set(frame[frame["kept"].notna()]["kind"])
        words = say("frontier")
        lead = words.lead(n_latency=len(have_latency), n_runs=int((frame["method"] != "dense").sum()),
                          structured=bool((frame["kind"] == "structured").any()), latency_panel=panel)
        caption = words.caption(panel, [KIND_WORDS[k] for k in KIND_WORDS if k != "dense" and k in scored])
        return [("md", tidy(lead)), ("html", self.n.figure(frontier_figure(frame), caption, words.alt()))]

    def frontier_rows(self) -> pd.DataFrame:
        """Per model, dense at 1× and every run: bytes, latency where measured, and quality kept, all
        relative to dense."""
        rows = []
        points = self.quality_points()
        for m in self.models:
            if not len(m.pruning):
                continue
            mine = points[points["model"] == m.name]
            rows.append({"model": m.name, "method": "dense", "kind": "dense", "bytes": 1.0, "latency": 1.0,
                         "kept": 1.0})
            dk = F.rows_of(m.runtime, "dense-kernels")
            for run in m.pruning.itertuples():
                kind = getattr(run, "kind", "") or ("nm" if run.nm else "unstructured")
                hit = mine[
                    (mine["method"] == run.method)
                    & (mine["nm"] == run.nm)
                    & np.isclose(mine["sparsity"], float(run.target_sparsity))
                ]
                latency = math.nan
                if kind == "structured" and len(F.rows_of(m.runtime, "structured-prefill")):
                    sp = F.rows_of(m.runtime, "structured-prefill")
                    sp = sp[sp["run"] == Path(run.checkpoint).parent.name] if "run" in sp else sp.iloc[:0]
                    if len(sp):
                        latency = float(sp.iloc[0]["sparse_ms"]) / float(sp.iloc[0]["dense_ms"])
                elif (run.method == "global_magnitude" and len(dk)
                      and np.isclose(float(run.target_sparsity), 0.5)):
                    latency = float(dk.iloc[0]["sparse_ms"]) / float(dk.iloc[0]["dense_ms"])
                rows.append({
                    "model": m.name,
                    "method": run.method,
                    "kind": kind,
                    "bytes": float(run.saved_bytes) / float(run.dense_bytes),
                    "latency": latency,
                    "kept": float(hit["kept"].iloc[0]) if len(hit) else math.nan,
                })
        return pd.DataFrame(rows)
