"""Title, contents and Summary: the findings a reader takes away, each only where its condition holds."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import pct
from ..html import TEMPLATES, say, toc
from .base import Parts, Section, runs_at
from .literature import PUBLISHED

# The Contents: each section's template in reading order, with the deepest heading level it lists there.
# The headings themselves are written once, in the templates.
CONTENTS = (("summary", 2), ("models", 2), ("structure", 3), ("sparsification", 3), ("size", 3),
            ("runtime", 3), ("quality", 3), ("frontier", 3), ("challenges", 2))
HEADING = re.compile(r"^(?:{%[^%]*%})?(#{2,3}) ([^{}\n]+?)\s*$", re.M)  # a literal heading, maybe after a tag


def headings() -> list[tuple[int, str]]:
    """(level, title) of every heading the Contents lists, read from the templates in reading order."""
    found = []
    for name, depth in CONTENTS:
        source = (TEMPLATES / f"{name}.md.j2").read_text()
        found += [(len(marks), title) for marks, title in HEADING.findall(source) if len(marks) <= depth]
    return found


SECTIONS = headings()


class Summary(Section):
    def title(self) -> Parts:
        methods = {x for m in self.models if len(m.pruning) for x in m.pruning["method"]}
        devices = sorted(
            {d for m in self.models if len(m.runtime) and "device" in m.runtime for d in m.runtime["device"]}
        )
        return [("md", say("summary").title(
            len(self.models), [(m.name, m.family) for m in self.models],
            sum(m.dist.summary["n_params"] for m in self.models), len(methods),
            [d.replace(" (", ", ").replace(")", "") for d in devices]))]  # 'cpu, 2 threads' inside brackets

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
                    if F.collapsed(r, m.vocab_size):
                        cell = f"{F.value_text(r)} (collapsed: above |V| = {m.vocab_size:,})"
                if len(q) and len(q[q["metric"] == "kl_from_dense"]):  # no quality.csv: an empty frame
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
        out, words = [], say("summary")
        kl = F.kl_by_target(self.models)
        half = kl[np.isclose(kl["target_sparsity"].astype(float), 0.5)] if len(kl) else kl
        if len(half):
            best = half.loc[half.groupby("model")["value"].idxmin()]
            gm = half[half["method"] == "global_magnitude"]
            # the leader of each model, or its leaders where their intervals overlap (a tie, not a best)
            leading: dict[str, list[str]] = {}
            for m in self.models:
                names = F.kl_leaders(m)
                if names:
                    leading.setdefault(names[0] if len(names) == 1 else " and ".join(names) + ", tied,", []
                                       ).append(m.name)
            out.append(words.kl(
                F.span(best["value"].min(), best["value"].max()),
                [(method, ms, len(ms) == len(best) > 1) for method, ms in leading.items()],
                F.span(gm["value"].min(), gm["value"].max()) if len(gm) else "",
                F.calibrated_sentence(*F.calibrated_count(self.models), self.calibrated_ran())))
        collapses = [(m, F.layer_collapse(m.per_matrix)) for m in self.models]
        collapses = [(m, c) for m, c in collapses if len(c)]
        if collapses:  # the model that empties a matrix the most, at whichever target
            m, c = F.worst_collapse(collapses)
            if F.near_collapse([(m.name, c)]):
                out.append(F.collapse_sentence(m.name, c, strong=True))
        out += F.casting_sentences(self.casting_cases(), strong=True)  # one per verdict, the commonest first
        verdicts = []
        for m in self.models:
            rows = F.rows_of(m.runtime, "dense-kernels")
            if len(rows):
                verdicts.append((m.name, F.all_hold_one(rows)))
        if verdicts:
            held = [name for name, v in verdicts if v]
            unknown = [name for name, v in verdicts if v is None]
            if unknown:
                out.append(words.speed_unknown(len(unknown), len(verdicts)))
            else:  # older runtime.csv files have no batch column
                batches = sorted({int(b) for m in self.models for b in
                                  F.column(F.rows_of(m.runtime, "dense-kernels"), "batch").dropna()})
                out.append(words.speed_held(len(held), len(verdicts), [str(b) for b in batches]))
        scale = F.scale_sentence(self.models, PUBLISHED, strong=True)
        if scale:
            out.append(scale)
        for m in self.models:
            usable = F.usable_sentence(m.name, m.quality, strong=True) if len(m.quality) else ""
            if usable:
                out.append(usable)
                break
        return out[:6]

    def summary(self) -> Parts:
        table = self.summary_table()
        shown = F.counted_units(self.metrics & set(F.PRIMARY))  # the table holds the primary metrics only
        words = say("summary")
        parts = [("md", words.findings(self.headlines()))]
        if len(table):
            parts.append(("html", self.n.table(table, words.table_caption(), wide=True,
                                               note=words.table_note(shown, self.q4_note()))))
        return parts
