"""Sparsity Structure: the seed's three views of |w| (Histograms, CDFs, CDFs by Layer)."""

from __future__ import annotations

import pandas as pd

from .. import facts as F
from ..facts import join, num, pct
from ..html import say as template
from ..html import tidy
from .base import Parts, Section, bullets, caveat


class Structure(Section):
    def structure(self) -> Parts:
        """The seed's three views of |w|: Histograms, CDFs, CDFs by Layer, each with a paragraph per model."""
        from ..plots import cdf_figure, depth_figure, layer_cdf_figure, model_panels

        groups, titles = {}, {}
        for m in self.models:
            g = {
                "attention": m.dist.groups.get("component:attention"),
                "MLP": m.dist.groups.get("component:mlp"),
                "all weights": m.dist.groups["all"],
            }
            groups[m.name] = {k: v for k, v in g.items() if v is not None and v.n}
            q4 = " — de-quantised Q4_1" if "Q4_1" in caveat(m) else ""
            titles[m.name] = f"{m.name} ({m.family}){q4}"
        notes = [c for c in map(caveat, self.models) if c]
        noted = " " + "; ".join(notes) + "." if notes else ""
        names = join([m.name for m in self.models])
        blocks = {m.name: m.dist.blocks() for m in self.models}

        say = template("structure")

        def figure(fig, caption: str, alt: str) -> tuple[str, str]:
            return ("html", self.n.figure(fig, caption, alt))

        parts = [
            ("md", say.histograms()),
            figure(model_panels(groups, "histogram", titles), say.histogram_caption(noted),
                   say.histogram_alt(names)),
            bullets([F.histogram_sentence(m.name, m.dist.groups["all"]) for m in self.models]),
            ("html", self.n.table(self.statistics_table(), say.statistics_caption(), wide=True,
                                  note="; ".join(notes))),
            ("md", say.cdfs()),
            figure(model_panels(groups, "cdf", titles), say.cdf_caption(noted), say.cdf_alt(names)),
        ]
        findings = self.component_findings()
        cdf_lines = [" ".join([F.cdf_sentence(m.name, m.dist.summary["prunable"])] + findings.get(m.name, []))
                     for m in self.models]
        parts.append(("md", tidy(say.cdf_findings(cdf_lines, F.threshold_sentence(self.medians())))))
        if len(self.models) > 1:
            label = {m.name: f"{m.name} ({m.family})" for m in self.models}
            styles = {label[m.name]: {"color": f"C{i}"} for i, m in enumerate(self.models)}
            every = {label[m.name]: m.dist.groups["prunable"] for m in self.models}
            parts.append(figure(cdf_figure(every, "prunable weights, every model", styles),
                                say.every_cdf_caption(self.q4_note()), say.every_cdf_alt()))
        parts += [("md", say.by_layer()),
                  figure(layer_cdf_figure(blocks), say.layer_cdf_caption(self.q4_note()),
                         say.layer_cdf_alt(names)),
                  figure(depth_figure(blocks), say.depth_caption(self.q4_note()), say.depth_alt())]
        lines = []
        for m in self.models:
            said = [F.depth_sentence(stack, m.name, [b for b, _ in items],
                                     [acc.quantiles((0.5,))["0.5"] for _, acc in items])
                    for stack, items in blocks[m.name].items()]
            lines.append(" ".join(said) or say.no_blocks(m.name))
        parts.append(bullets(lines))
        return parts

    def component_findings(self) -> dict[str, list[str]]:
        """Attention against MLP, per model, only where both exist; the direction is computed."""
        out = {}
        for m in self.models:
            att, mlp = m.dist.groups.get("component:attention"), m.dist.groups.get("component:mlp")
            if not att or not mlp or not att.n or not mlp.n:
                continue
            a, b = att.quantiles((0.5,))["0.5"], mlp.quantiles((0.5,))["0.5"]
            larger = max(a, b) / min(a, b)  # under 1.005: equal as printed, no direction to claim
            out[m.name] = [template("structure").components(a, b, larger, larger < 1.005)]
        return out

    def statistics_table(self) -> pd.DataFrame:
        cols = {}
        for m in self.models:
            for group in ("all", "prunable"):
                s = m.dist.summary[group]
                key = f"{m.name}{' †' if 'Q4_1' in caveat(m) else ''} · {group}"
                cols[key] = {
                    "weights": f"{s['n']:,}",
                    "exact zeros": f"{s['n_zero']:,}",
                    **{f"|w| < {k}": pct(v) for k, v in s["frac_below"].items()},
                    "median |w|": num(s["quantiles"]["0.5"]),
                    "p99 |w|": num(s["quantiles"]["0.99"]),
                    "excess kurtosis": F.fixed1(s["excess_kurtosis"]),
                    "|w − μ| > 6σ": pct(s["outlier_frac"]),
                }
        return pd.DataFrame(cols)
