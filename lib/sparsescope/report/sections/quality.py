"""Quality: every model scored with its own objective and KL from dense, with published results for scale."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import ModelResults, num
from ..html import say, tidy
from .base import Parts, Section, caveat
from .literature import PUBLISHED, PUBLISHED_SETTING, SOURCES, SPARSEGPT, WANDA


class Quality(Section):
    def quality(self) -> Parts:
        from ..plots import quality_overview_figure

        points, words = self.quality_points(), say("quality")
        parts = [("md", tidy(words.intro(self.setup(), PUBLISHED_SETTING, F.objectives_scored(self.metrics),
                                             F.join(F.counted_units(self.metrics)),
                                             "retrieval_top1" in self.metrics)))]
        if len(points):
            papers = [(SPARSEGPT, SOURCES[SPARSEGPT]), (WANDA, SOURCES[WANDA])]
            figure = quality_overview_figure(points, self.published_points())
            caption = words.figure_caption(PUBLISHED_SETTING, papers, self.q4_note())
            parts.append(("html", self.n.figure(figure, caption, words.figure_alt())))
        for m in self.models:
            parts += self.model_quality(m)
        dense_ppl = PUBLISHED[PUBLISHED["setting"] == "dense"].set_index("model")["perplexity"]
        pub = PUBLISHED.assign(**{"× dense": [f"{p / dense_ppl[m]:.2f}×"
                                              for m, p in zip(PUBLISHED["model"], PUBLISHED["perplexity"])]})
        pub = pub.assign(perplexity=pub["perplexity"].map(num))[
            ["model", "setting", "perplexity", "× dense", "source"]
        ]
        parts.append(("html", self.n.table(pub.set_index(["model", "setting"]), words.published_caption(),
                                           note=words.published_note(SOURCES, PUBLISHED_SETTING))))
        return parts

    def model_quality(self, m: ModelResults) -> Parts:
        q, words = m.quality, say("quality")
        if not len(q):
            return [("md", words.none_found(m.name))]
        metric = F.primary_metric(q)
        dense = F.dense_value(q, metric) if metric else None
        rankings, intervals = [], True
        settings = q[(q["method"] != "dense")][["target_sparsity", "nm"]].drop_duplicates()
        half = settings[np.isclose(settings["target_sparsity"].astype(float), 0.5) | (settings["nm"] != "")]
        for target, nm in half.itertuples(index=False):  # 50% and N:M in words; every target in the table
            for met in ("kl_from_dense", metric):
                rows = F.quality_rows(q, met, float(target), nm)
                gone = [r for r in rows if F.collapsed(r, m.vocab_size)]
                rows = [r for r in rows if r not in gone]
                if rows or gone:
                    intervals &= all(F.interval(r) for r in rows)
                    rankings.append(words.ranking(
                        nm or f"{float(target):.0%}", F.METRIC_WORDS.get(met, met),
                        F.ranking_words(rows, met in F.LOWER_BETTER, say_rule=False) if rows else "",
                        [f"{r['method']} {F.num(r['value'])}" for r in gone], m.vocab_size))
        units = {"retrieval_top1": "passages", "token_loss": "clips' tokens"}
        facts = {
            "model": m.name,
            "family": m.family,
            "metric": F.METRIC_WORDS.get(metric, metric),
            "dense": num(dense) if dense is not None else "—",
            "n_scored": int(q["n_tokens"].iloc[0]) if "n_tokens" in q else None,
            "unit": units.get(metric, "tokens"),
            "rankings": rankings,
            "caveat": caveat(m),
            "usable": F.usable_sentence(m.name, q),
            "speech": "wer" in set(q["metric"]),
            "rule": "" if intervals else words.no_intervals(F.TIE),
            "nm": bool((half["nm"] != "").any()),
        }
        parts = [("md", tidy(words.model(facts)))]
        scored = set(q["metric"])
        caption = words.table_caption(m.name, bool(scored & set(F.ACCURACY)), "wer" in scored)
        parts.append(("html", self.n.table(self.quality_table(q), caption, wide=True, note=caveat(m))))
        if len(m.transcripts):
            parts.append(("html", self.n.table(self.transcript_table(m.transcripts),
                                               words.transcripts_caption(m.name))))
        return parts

    @staticmethod
    def quality_table(q: pd.DataFrame) -> pd.DataFrame:
        q = q.assign(run=[F.run_label(*k) for k in zip(q["method"], q["target_sparsity"], q["nm"])])
        cells = [F.value_text(dict(r)) for _, r in q.iterrows()]
        table = q.assign(cell=cells).pivot_table(
            index="run", columns="metric", values="cell", aggfunc="first", sort=False
        )
        order = [
            c
            for c in (
                "perplexity",  # continuous metrics first, then the counts (issue 11)
                "mlm_loss",
                "span_loss",
                "token_loss",
                "cosine_to_dense",
                "kl_from_dense",
                "wer",
                "retrieval_top1",
                "mlm_top1",
            )
            if c in table
        ]
        table = table[order].rename(columns=F.METRIC_WORDS)
        return table.fillna("—")

    @staticmethod
    def transcript_table(t: pd.DataFrame) -> pd.DataFrame:
        text = next((c for c in ("hypothesis", "transcript", "text") if c in t), None)
        if text is None:
            return pd.DataFrame()
        clip = next((c for c in ("clip", "clip_id", "index") if c in t), None)
        keep = t
        if clip:
            first = sorted(t[clip].unique())[:2]
            keep = t[t[clip].isin(first)]
        if "target_sparsity" in keep:
            keep = keep[(F.column(keep, "target_sparsity").fillna(0) <= 0.5)]
        label = [
            F.run_label(*k) if "method" in keep else ""
            for k in zip(
                keep.get("method", ""),
                F.column(keep, "target_sparsity").fillna(0),
                keep.get("nm", pd.Series("", index=keep.index)).fillna(""),
            )
        ]
        if clip and "reference" in keep:  # each clip's reference once, then what every run heard
            rows = []
            for c, group in keep.assign(run=label).groupby(clip, sort=True):
                rows.append({"clip": c, "run": "reference (what was spoken)",
                             "text": str(group["reference"].iloc[0])[:160]})
                rows += [{"clip": c, "run": r, "text": str(h)[:160]}
                         for r, h in zip(group["run"], group[text])]
            return pd.DataFrame(rows).set_index(["clip", "run"])
        cols = {"run": label}
        if clip:
            cols["clip"] = keep[clip].values
        if "reference" in keep:
            cols["reference"] = keep["reference"].values
        cols["transcribed"] = keep[text].astype(str).str.slice(0, 160).values
        return pd.DataFrame(cols).set_index("run")
