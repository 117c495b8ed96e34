"""Title, contents and Summary: the findings a reader takes away, each only where its condition holds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import join, millions, pct, plural
from ..html import render, toc
from .base import Parts, Section, runs_at
from .literature import PUBLISHED

SECTIONS = [
    (2, "Summary"),
    (2, "Model Selection"),
    (2, "Sparsity Structure"),
    (3, "Histograms"),
    (3, "CDFs"),
    (3, "CDFs by Layer"),
    (2, "Sparsification"),
    (3, "Layer collapse"),
    (3, "Attention and MLP matrices"),
    (2, "Benchmarks"),
    (3, "Size"),
    (3, "Runtime"),
    (3, "Quality"),
    (3, "Trade-offs"),
    (2, "Challenges of Sparsification"),
]


class Summary(Section):
    def title(self) -> Parts:
        total = sum(m.dist.summary["n_params"] for m in self.models)
        methods = sorted({x for m in self.models if len(m.pruning) for x in m.pruning["method"]})
        devices = sorted(
            {d for m in self.models if len(m.runtime) and "device" in m.runtime for d in m.runtime["device"]}
        )
        text = (
            f"# Weight sparsity in transformers\n\n{plural(len(self.models), 'model')}: "
            f"{'; '.join(f'{m.name}, {m.family}' for m in self.models)}. {millions(total)} weights in all, "
            f"pruned one-shot by {plural(len(methods), 'method')} and measured for size, quality and speed "
            f"({join(devices).replace(' (', ', ').replace(')', '') if devices else 'speed not measured'}). "
            "Every number below comes "
            "from the run "
            "that wrote this report; published figures are marked as such with their source."
        )
        return [("md", text)]

    def contents(self) -> Parts:
        return [("html", toc(SECTIONS[1:]))]

    def summary_table(self) -> pd.DataFrame:
        rows = []
        for m in self.models:
            metric = F.primary_metric(m.quality) if len(m.quality) else None
            dense = F.dense_value(m.quality, metric) if metric else None
            for run in runs_at(m).itertuples():
                label = F.run_label(run.method, run.target_sparsity, run.nm)
                q = (
                    m.quality[
                        (m.quality["method"] == run.method)
                        & (m.quality["nm"] == run.nm)
                        & np.isclose(m.quality["target_sparsity"].astype(float), float(run.target_sparsity))
                    ]
                    if len(m.quality)
                    else m.quality
                )
                cell = kl = "not measured"
                if metric and len(q[q["metric"] == metric]):
                    r = dict(q[q["metric"] == metric].iloc[0])
                    cell = f"{F.value_text(r)} ({F.relative_words(metric, float(r['value']), dense)})"
                if len(q[q["metric"] == "kl_from_dense"]):
                    kl = F.value_text(dict(q[q["metric"] == "kl_from_dense"].iloc[0]))
                rows.append(
                    {
                        "model": f"{m.name} ({F.METRIC_WORDS.get(metric, 'no metric')})",
                        "run": label,
                        "quality vs dense": cell,
                        "KL (nats)": kl,
                        "bytes vs dense": pct(run.saved_bytes / run.dense_bytes),
                        "speed, batch 1": self.speed_of(m, run),
                    }
                )
        timed = [F.rows_of(m.runtime, "dense-kernels") for m in self.models]
        seqlens = {int(x) for t in timed if len(t) for x in F.column(t, "seqlen").dropna()}
        if len(seqlens) == 1:  # a latency names its tokens per batch
            header = f"speed, batch 1 × {seqlens.pop()} tokens"
            rows = [{header if k == "speed, batch 1" else k: v for k, v in r.items()} for r in rows]
        return pd.DataFrame(rows).set_index(["model", "run"]) if rows else pd.DataFrame()

    def headlines(self) -> list[str]:
        """4–6 findings, each leading with its number, each only where its condition holds."""
        out = []
        kl = F.kl_by_target(self.models)
        half = kl[np.isclose(kl["target_sparsity"].astype(float), 0.5)] if len(kl) else kl
        if len(half):
            best = half.loc[half.groupby("model")["value"].idxmin()]
            gm = half[half["method"] == "global_magnitude"]
            alone, tied, cases = F.calibrated_count(self.models)
            lead = (f"**{F.span(best['value'].min(), best['value'].max())} nats** of KL from dense at 50% "
                    "with the ")
            # the leader of each model, or its leaders where their intervals overlap (a tie, not a best)
            leading = {}
            for m in self.models:
                names = F.kl_leaders(m)
                if names:
                    leading.setdefault(names[0] if len(names) == 1 else " and ".join(names) + ", tied,", []
                                       ).append(m.name)
            who = [f"{method} for {f'all {len(ms)} models' if len(ms) == len(best) > 1 else join(ms)}"
                   for method, ms in leading.items()]
            lead += f"best method per model ({'; '.join(who)})"
            if len(gm):
                lead += f", against {F.span(gm['value'].min(), gm['value'].max())} for global magnitude"
            lead += ". " + F.calibrated_sentence(alone, tied, cases, self.calibrated_ran())
            out.append(lead)
        collapses = [(m, F.layer_collapse(m.per_matrix)) for m in self.models]
        collapses = [(m, c) for m, c in collapses if len(c)]
        if collapses:  # the model that empties a matrix the most, at whichever target
            m, c = F.worst_collapse(collapses)
            if F.near_collapse([(m.name, c)]):
                out.append("**" + F.collapse_sentence(m.name, c).replace(" of `", "** of `", 1))
        for sentence in F.casting_sentences(self.casting_cases()):  # one per verdict, the commonest first
            out.append("**" + sentence.replace(" of the dense", "** of the dense", 1))
        verdicts = []
        for m in self.models:
            rows = F.rows_of(m.runtime, "dense-kernels")
            if len(rows):
                verdicts.append((m.name, F.all_hold_one(rows)))
        if verdicts:
            held = [name for name, v in verdicts if v]
            unknown = [name for name, v in verdicts if v is None]
            if unknown:
                out.append(
                    f"**{len(unknown)} of {len(verdicts)} models** have dense-kernel timings without an "
                    "interval, so no speed change is claimed for them; zeros in dense kernels cost as much "
                    "as "
                    "any weight."
                )
            else:
                batches = sorted({int(b) for m in self.models for b in
                                  F.column(F.rows_of(m.runtime, "dense-kernels"), "batch").dropna()})
                at = (f"at batch {batches[0]}" if len(batches) == 1 else
                      f"at every batch size measured, {join([str(b) for b in batches])}," if batches else
                      "at the batch sizes measured")  # older runtime.csv files have no batch column
                out.append(
                    f"**{len(held)} of {len(verdicts)} models** show no measurable change in speed with "
                    f"dense kernels {at} (95% interval holding 1.0×): no speed-up from the zeros was "
                    "detected."
                )
        scale = F.scale_sentence(self.models, PUBLISHED)
        if scale:
            out.append("**" + scale.replace(" dense perplexity", "** dense perplexity", 1))
        for m in self.models:
            usable = F.usable_sentence(m.name, m.quality) if len(m.quality) else ""
            if usable:
                out.append("**" + usable.replace(" WER", " WER**", 1))
                break
        return out[:6]

    def summary(self) -> Parts:
        table = self.summary_table()
        shown = F.counted_units(self.metrics & set(F.PRIMARY))  # the table holds the primary metrics only
        parts = [("md", "## Summary\n\n" + render("summary", headlines=self.headlines()))]
        if len(table):
            parts.append(
                (
                    "html",
                    self.n.table(
                        table,
                        "Every model and method at 50% sparsity and N:M (2:4): the model's own quality "
                        "metric with its ratio or difference to dense, KL from dense, checkpoint bytes, and "
                        "batch-1 latency with its 95% interval.",
                        wide=True,
                        note="Intervals in brackets"
                        + (f"; counts k/n are {F.join(shown)} scored. " if shown else ". ")
                        + "† measured on the global-magnitude 50% checkpoint with dense kernels: zeros "
                        "cost the same whichever method chose them. “no change”: the interval holds "
                        "1.0×." + self.q4_note(),
                    ),
                )
            )
        return parts
