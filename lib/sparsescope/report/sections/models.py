"""Model Selection: what the models are, where they come from, and what their size lets them tell."""

from __future__ import annotations

import pandas as pd

from ..facts import millions, ratio
from ..html import render
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
        facts = {
            "ratios": ratios,
            "scale": self.scale_context(),
            "scale_holds": self.scale_context().startswith("Smaller models are known"),
            "caveats": [c for c in map(caveat, self.models) if c],
            "setup": self.setup(),
        }
        return [
            ("md", render("context", **facts)),
            ("html", self.n.table(
                # the column only where some model stands in for a seed model (the packaged profile)
                pd.DataFrame(rows).set_index("model").drop(columns=[] if ratios else ["stands in for"]),
                "The models.")),
            ("html", self.n.table(sources.set_index("model"), "Where each model comes from.")),
        ]

    def scale_context(self) -> str:
        """Smaller models prune worse: checked on the published numbers before it is said."""
        p = PUBLISHED.set_index(["model", "setting"])["perplexity"]
        small = p["OPT-125M", "magnitude 50%"] / p["OPT-125M", "dense"]
        large = p["LLaMA-2-7B", "magnitude 50%"] / p["LLaMA-2-7B", "dense"]
        s_small = p["OPT-125M", "SparseGPT 50%"] / p["OPT-125M", "dense"]
        s_large = p["LLaMA-2-7B", "SparseGPT 50%"] / p["LLaMA-2-7B", "dense"]
        if small > large and s_small > s_large:
            return (
                "Smaller models are known to prune worse: magnitude pruning at 50% costs OPT-125M "
                f"{ratio(small)} its "
                f"dense perplexity but LLaMA-2-7B {ratio(large)}; SparseGPT {ratio(s_small)} against "
                f"{ratio(s_large)} (published WikiText-2 results; sources under Quality)."
            )
        return (
            "The published results do not show smaller models pruning worse for both methods, so no size "
            "effect "
            "is assumed here."
        )
