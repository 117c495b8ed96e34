"""Model Selection: what the models are, where they come from, and what their size lets them tell."""

from __future__ import annotations

import pandas as pd

from ..facts import millions
from ..html import say, tidy
from .base import Parts, Section, caveat
from .literature import PUBLISHED, SEED_MODELS


class ModelSelection(Section):
    def model_selection(self) -> Parts:
        rows, ratios = [], []
        for m in self.models:
            s, info = m.dist.summary, m.dist.summary["model_info"]
            seed = SEED_MODELS.get(m.family)
            stand_in = info.get("profile") == "packaged" and seed
            if stand_in:
                ratios.append((m.name, seed[0], seed[1] / s["n_params"]))
            rows.append(
                {
                    "model": m.name,
                    "family": m.family,
                    "architecture": info.get("architecture", ""),
                    "parameters": millions(s["n_params"]),
                    "prunable": millions(s["n_prunable"]),
                    "layers": info.get("layers", ""),
                    "stored as": ", ".join(sorted(m.dist.tensors["dtype"].unique())),
                    "stands in for": f"{seed[0]} ({seed[1] / s['n_params']:.0f}× larger)"
                    if stand_in
                    else "—",
                }
            )
        sources = pd.DataFrame(
            [
                {
                    "model": m.name,
                    "source": m.dist.summary["model_info"].get("source", ""),
                    "why": m.dist.summary["model_info"].get("why", ""),
                }
                for m in self.models
            ]
        )
        words = say("models")
        return [
            ("md", tidy(words.body(ratios, self.published_scale(), [c for c in map(caveat, self.models) if c],
                                       self.setup()))),
            ("html", self.n.table(
                # the column only where some model stands in for a seed model (the packaged profile)
                pd.DataFrame(rows).set_index("model").drop(columns=[] if ratios else ["stands in for"]),
                words.models_caption())),
            ("html", self.n.table(sources.set_index("model"), words.sources_caption())),
        ]

    @staticmethod
    def published_scale() -> dict:
        """Smaller models prune worse: checked on the published numbers before it is said (`holds`)."""
        p = PUBLISHED.set_index(["model", "setting"])["perplexity"]
        scale = {"small": p["OPT-125M", "magnitude 50%"] / p["OPT-125M", "dense"],
                 "large": p["LLaMA-2-7B", "magnitude 50%"] / p["LLaMA-2-7B", "dense"],
                 "s_small": p["OPT-125M", "SparseGPT 50%"] / p["OPT-125M", "dense"],
                 "s_large": p["LLaMA-2-7B", "SparseGPT 50%"] / p["LLaMA-2-7B", "dense"]}
        return {**scale, "holds": scale["small"] > scale["large"] and scale["s_small"] > scale["s_large"]}
