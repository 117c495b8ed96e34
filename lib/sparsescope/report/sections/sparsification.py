"""Sparsification: the methods, layer collapse under one global threshold, and the matrix roles; the words are
in templates/sparsification.md.j2."""

from __future__ import annotations

import pandas as pd

from .. import facts as F
from ..facts import join, num, pct
from ..html import say, tidy
from .base import UNIFORM, Parts, Section

# the order the methods are described in (their words: the template's `method` macro)
METHODS = ("global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt", "ffn_magnitude",
           "ffn_activation", "heads")
HELD = {"layer_magnitude": "Layer-wise magnitude", "nm_magnitude": "N:M", "wanda": "Wanda",
        "sparsegpt": "SparseGPT"}


class Sparsification(Section):
    @staticmethod
    def held_by_construction(methods: list[str]) -> str:
        """The methods that ran and keep every matrix at the target, named only when they ran."""
        held = [HELD[x] for x in methods if x in HELD]
        return say("sparsification").held(held) if held else ""

    def sparsification(self) -> Parts:
        words = say("sparsification")
        methods = sorted({x for m in self.models if len(m.pruning) for x in m.pruning["method"]},
                         key=lambda x: METHODS.index(x) if x in METHODS else 99)
        described = [words.method(x) for x in methods]
        parts = [("md", tidy(words.intro(described, F.skipped_sentence(self.models))))]
        found = [(m, c) for m in self.models for c in [F.layer_collapse(m.per_matrix)] if len(c)]
        worst, held = self.worst_collapse(found), self.held_by_construction(methods)
        against = F.global_against_layerwise(self.models)
        groups = [(v, [a for a in against if a[4] == v]) for v in ("worse", "better", "tied")]
        parts.append(("md", words.layer_collapse(worst, held, [g for g in groups if g[1]], len(against))))
        if found:
            parts.append(("html", self.n.table(self.collapse_table(found), words.collapse_caption(),
                                               breakable_columns=("most-pruned matrix",))))
        for m in self.models:
            parts += self.heatmap(m)
        parts += self.roles()
        parts += self.run_costs()
        return parts

    @staticmethod
    def collapse_table(found: list) -> pd.DataFrame:
        rows = [{"model": m.name,
                 "target": f"{r.target:.0%}",
                 "most-pruned matrix": r.matrix,
                 "zeroed": pct(r.zeroed),
                 "weights left": f"{r.kept:,} of {r.n:,}",
                 f"matrices ≥ {F.COLLAPSED:.0%} zero": f"{r.collapsed} of {r.matrices}",
                 "least-pruned matrix, zeroed": pct(r.least)}
                for m, c in found for r in c.itertuples()]
        return pd.DataFrame(rows).set_index(["model", "target"])

    def heatmap(self, m) -> Parts:
        """Global magnitude near 50% per matrix of one model; a sentence instead where every matrix is at the
        target."""
        from ..plots import layer_sparsity_heatmap

        words, pm = say("sparsification"), m.per_matrix
        gm = pm[(pm["method"] == "global_magnitude") & (pm["nm"] == "")] if len(pm) else pm
        if not len(gm):
            return []
        target = gm["target_sparsity"].iloc[(gm["target_sparsity"] - 0.5).abs().argsort().iloc[0]]
        one = gm[gm["target_sparsity"] == target]
        zeroed = one["n_zero"] / one["n"]
        off = float((zeroed - target).abs().max())
        if off < UNIFORM:  # a page of one colour tells nothing a sentence does not
            spread = F.span(float(zeroed.min()), float(zeroed.max()), pct)
            return [("md", words.uniform(m.name, target, len(one), off, spread))]
        roles = [F.role_label(r) for r in F.role_order(set(F.matrix_roles(one)))]
        cross = any(r.startswith("x-") for r in roles)
        fig = layer_sparsity_heatmap(one, words.heatmap_title(m.name, target), target)
        return [("html", self.n.figure(fig, words.heatmap_caption(m.name, target, roles, cross),
                                       words.heatmap_alt(m.name, target)))]

    def roles(self) -> Parts:
        """Per matrix role, what a global threshold takes; the role table of every model."""
        frames = []
        for m in self.models:
            t = F.role_table(m)
            if len(t):
                frames.append(t.assign(model=m.name, role=[F.role_label(r) for r in t.index]
                                       ).set_index(["model", "role"]))
        if not frames:
            return []
        table = pd.concat(frames)
        shown = pd.DataFrame(
            {
                "matrices": table["matrices"].astype(int),
                "share of prunable": table["weights"].map(pct),
                "|w| < 1e-2": table["below 1e-2"].map(pct),
                "RMS |w|": table["rms"].map(num),
                "median kurtosis": table["kurtosis"].map(F.fixed1),
            },
            index=table.index,
        )
        for col in [c for c in table if c.startswith("zeroed at")]:
            shown[f"GM {col}"] = table[col].map(lambda v: pct(v) if pd.notna(v) else "—")
        words = say("sparsification")
        return [("md", tidy(words.roles(self.role_findings(table)))),
                ("html", self.n.table(shown, words.roles_caption(), wide=True, note=self.q4_note().strip()))]

    @staticmethod
    def worst_collapse(found: list) -> str:
        """The most extreme case in words; the table beside it holds every model and target."""
        words = say("sparsification")
        if not found:
            return words.no_collapse_run()
        others = words.every_target() if len(found) > 1 or len(found[0][1]) > 1 else ""
        return F.collapse_overview([(m.name, c) for m, c in found]) + others

    def role_findings(self, table: pd.DataFrame) -> list[str]:
        out = []
        zero_cols = [c for c in table if c.startswith("zeroed at")]
        if not zero_cols:
            return out
        col = zero_cols[0]
        at = col.removeprefix("zeroed at ")
        words = say("sparsification")
        alike: dict[str, list[str]] = {}  # models whose every role loses the same share, said once
        for model in dict.fromkeys(table.index.get_level_values("model")):  # the report's model order
            t = table.xs(model, level="model")[col].dropna()
            if len(t) < 2:
                continue
            hi, lo = t.idxmax(), t.idxmin()
            if pct(t[hi]) == pct(t[lo]):
                alike.setdefault(pct(t[hi]), []).append(model)
                continue
            out.append(words.role_finding(model, at, hi, pct(t[hi]), lo, pct(t[lo])))
        out += [words.roles_alike(join(models), at, share) for share, models in alike.items()]
        return out

    def run_costs(self) -> Parts:
        frames = []
        for m in self.models:
            p = m.pruning
            if not len(p):
                continue
            rss, anon = F.column(p, "peak_rss_bytes") / 2**30, F.column(p, "peak_anon_bytes") / 2**30
            # anonymous memory apart: a memory-mapped checkpoint (a pickle is mapped whole) counts in RSS
            cells = [f"{s:.0f} s, {r:.2f} GB" + (f" ({a:.2f} GB anon.)" if a == a else "")
                     for s, r, a in zip(p["seconds"], rss, anon)]
            frames.append(pd.DataFrame({
                "run": [F.run_label(*k) for k in zip(p["method"], p["target_sparsity"], p["nm"])],
                "model": m.name,
                "cell": cells,
            }))
        if not frames:
            return []
        table = pd.concat(frames).pivot_table(index="run", columns="model", values="cell", aggfunc="first",
                                              sort=False)
        return [("html", self.n.table(table.fillna("—"), say("sparsification").costs_caption()))]
