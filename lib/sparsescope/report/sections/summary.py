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
        """Table 1: per model a dense row, then every run at 50% and N:M. A sparse run's dense-kernel speed is
        one measurement per model (zeros cost the same whichever method chose them): said on its first row."""
        rows, wer = [], "wer" in self.metrics
        for m in self.models:
            metric = F.primary_metric(m.quality) if len(m.quality) else None
            dense = F.dense_value(m.quality, metric) if metric else None
            model = f"{m.name} ({F.METRIC_WORDS.get(metric, 'no metric')})"
            dense_rows = m.quality[m.quality["method"] == "dense"] if len(m.quality) else m.quality
            rows.append({"model": model, "run": "dense",
                         "quality vs dense": self.quality_cell(m, dense_rows, metric, dense, reference=True),
                         "KL (nats)": "0 (reference)" if len(dense_rows) else "not measured",
                         "bytes vs dense": "100%", "speed, batch 1": "1.00× (reference)",
                         **({"WER": self.wer_cell(m, dense_rows)} if wer else {})})
            said_speed = False
            for run in runs_at(m).itertuples():
                q = (
                    m.quality[
                        (m.quality["method"] == run.method)
                        & (m.quality["nm"] == run.nm)
                        & np.isclose(m.quality["target_sparsity"].astype(float), float(run.target_sparsity))
                    ]
                    if len(m.quality)
                    else m.quality
                )
                speed = self.speed_of(m, run)
                if getattr(run, "kind", "") != "structured" and speed != "not measured":
                    speed, said_speed = (speed if not said_speed else "as above †"), True
                rows.append({
                    "model": model,
                    "run": F.run_label(run.method, run.target_sparsity, run.nm),
                    "quality vs dense": self.quality_cell(m, q, metric, dense),
                    "KL (nats)": self.quality_cell(m, q, "kl_from_dense", None),
                    "bytes vs dense": pct(run.saved_bytes / run.dense_bytes),
                    "speed, batch 1": speed,
                    **({"WER": self.wer_cell(m, q)} if wer else {}),
                })
        timed = [F.rows_of(m.runtime, "dense-kernels") for m in self.models]
        seqlens = {int(x) for t in timed if len(t) for x in F.column(t, "seqlen").dropna()}
        if len(seqlens) == 1:  # a latency names its tokens per batch
            header = f"speed, batch 1 × {seqlens.pop()} tokens"
            rows = [{header if k == "speed, batch 1" else k: v for k, v in r.items()} for r in rows]
        return pd.DataFrame(rows).set_index(["model", "run"]) if rows else pd.DataFrame()

    def wer_cell(self, m, q: pd.DataFrame) -> str:
        """WER where the model is scored by it; '—' for a model that transcribes nothing."""
        scored = len(m.quality) and "metric" in m.quality and (m.quality["metric"] == "wer").any()
        return self.quality_cell(m, q, "wer", None) if scored else "—"

    @staticmethod
    def quality_cell(m, q: pd.DataFrame, metric: str | None, dense: float | None,
                     reference: bool = False) -> str:
        """One run's value of `metric` as Table 1 prints it: with its interval (a count with its Wilson
        interval), then its ratio or difference to dense; a perplexity above the vocabulary is collapse."""
        found = q[q["metric"] == metric] if metric and len(q) else q.iloc[0:0]
        if not len(found):
            return "not measured"
        r = dict(found.iloc[0])
        text = F.value_text(r)
        counted = F.counts(r)
        if counted and r.get("metric") in F.ACCURACY:
            text += " [" + F.span(*F.wilson(*counted), F.pct) + "]"
        if reference:
            return text
        if F.collapsed(r, m.vocab_size):
            return f"{text} (collapsed: above |V| = {m.vocab_size:,})"
        return f"{text} ({F.relative_words(metric, float(r['value']), dense)})" if dense is not None else text

    def headlines(self) -> list[str]:
        """Up to 6 findings, each leading with its number, each only where its condition holds, ranked by the
        reader's questions: how good (KL, what a speech model transcribes), how fast, how small, the rest."""
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
            out.append((0, words.kl(
                F.span(best["value"].min(), best["value"].max()),
                [(method, ms, len(ms) == len(best) > 1) for method, ms in leading.items()],
                F.span(gm["value"].min(), gm["value"].max()) if len(gm) else "",
                F.calibrated_sentence(*F.calibrated_count(self.models), self.calibrated_ran()))))
        collapses = [(m, F.layer_collapse(m.per_matrix)) for m in self.models]
        collapses = [(m, c) for m, c in collapses if len(c)]
        if collapses:  # the model that empties a matrix the most, at whichever target
            m, c = F.worst_collapse(collapses)
            if F.near_collapse([(m.name, c)]):
                out.append((6, F.collapse_sentence(m.name, c, strong=True)))
        # one per verdict, the commonest first
        out += [(5, s) for s in F.casting_sentences(self.casting_cases(), strong=True)]
        verdicts = []
        for m in self.models:
            rows = F.rows_of(m.runtime, "dense-kernels")
            if len(rows):
                verdicts.append((m.name, F.all_hold_one(rows)))
        if verdicts:
            held = [name for name, v in verdicts if v]
            unknown = [name for name, v in verdicts if v is None]
            if unknown:
                out.append((4, words.speed_unknown(len(unknown), len(verdicts))))
            else:  # older runtime.csv files have no batch column
                batches = sorted({int(b) for m in self.models for b in
                                  F.column(F.rows_of(m.runtime, "dense-kernels"), "batch").dropna()})
                out.append((4, words.speed_held(len(held), len(verdicts), [str(b) for b in batches])))
        structured = self.structured_speed()
        if structured:  # the positive answer to "how do I get faster?"
            out.append((3, say("findings").structured(structured, strong=True)))
        scale = F.scale_sentence(self.models, PUBLISHED, strong=True)
        if scale:
            out.append((7, scale))
        for m in self.models:
            usable = F.usable_sentence(m.name, m.quality, strong=True) if len(m.quality) else ""
            if usable:
                out.append((1, usable))
                break
        for m in self.models:  # a teacher-forced loss that hides what the model transcribes
            hidden = F.hidden_by_loss(m.quality) if len(m.quality) else None
            if hidden:
                out.append((2, words.hidden_by_loss(m.name, *hidden)))
                break
        return [text for _, text in sorted(out, key=lambda found: found[0])][:6]

    def summary(self) -> Parts:
        table = self.summary_table()
        shown = F.counted_units(self.metrics & set(F.PRIMARY))  # the table holds the primary metrics only
        words = say("summary")
        shares = [0.5 * m.dist.summary["n_prunable"] / m.dist.summary["n_params"] for m in self.models]
        prunable = F.span(min(shares), max(shares), F.pct) if shares else ""
        parts = [("md", words.findings(self.headlines(), prunable, "retrieval_top1" in self.metrics))]
        if len(table):
            nm = sorted({x for m in self.models if len(m.pruning) and "nm" in m.pruning
                         for x in m.pruning["nm"].fillna("").astype(str) if x})
            parts.append(("html", self.n.table(table, words.table_caption(nm), wide=True,
                                               note=words.table_note(shown, self.q4_note(), self.samples()))))
        return parts
