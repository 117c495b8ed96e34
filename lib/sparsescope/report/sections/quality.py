"""Quality: every model scored with its own objective and KL from dense, with published results for scale."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import ModelResults, num
from ..html import render
from .base import Parts, Section, caveat
from .literature import PUBLISHED, PUBLISHED_SETTING, SOURCES, SPARSEGPT, WANDA


class Quality(Section):
    def quality(self) -> Parts:
        from ..plots import quality_overview_figure

        points = self.quality_points()
        parts = [
            (
                "md",
                "### Quality\n\n"
                + render("quality_intro", setup=self.setup(), published_setting=PUBLISHED_SETTING,
                         objectives=F.objectives_scored(self.metrics),
                         units=F.join(F.counted_units(self.metrics)),
                         encoder="retrieval_top1" in self.metrics),
            )
        ]
        if len(points):
            parts.append(
                (
                    "html",
                    self.n.figure(
                        quality_overview_figure(points, self.published_points()),
                        "Every model and method against sparsity, on shared log y-axes: KL from dense (left) "
                        "and the model's own metric as "
                        "quality kept relative to dense (right; perplexity: dense/pruned; a loss in nats: "
                        "exp(dense − "
                        "pruned); an accuracy: pruned/dense). Hollow: N:M. Grey open markers: published "
                        "OPT-125M results, "
                        f"not measured here ({PUBLISHED_SETTING}; {SPARSEGPT} {SOURCES[SPARSEGPT]}; {WANDA} "
                        f"{SOURCES[WANDA]})."
                        + "".join(f" {c}." for c in map(caveat, self.models) if "Q4_1" in c),
                        "Two scatter panels against sparsity: KL divergence from the dense model, and "
                        "quality relative to "
                        "dense, for every model and pruning method, with published reference points.",
                    ),
                )
            )
        for m in self.models:
            parts += self.model_quality(m)
        dense_ppl = PUBLISHED[PUBLISHED["setting"] == "dense"].set_index("model")["perplexity"]
        pub = PUBLISHED.assign(**{"× dense": [f"{p / dense_ppl[m]:.2f}×"
                                              for m, p in zip(PUBLISHED["model"], PUBLISHED["perplexity"])]})
        pub = pub.assign(perplexity=pub["perplexity"].map(num))[
            ["model", "setting", "perplexity", "× dense", "source"]
        ]
        parts.append(
            (
                "html",
                self.n.table(
                    pub.set_index(["model", "setting"]),
                    "Published one-shot results, for scale only: WikiText-2 perplexity.",
                    note=" ".join(f"{k} {v}." for k, v in SOURCES.items())
                    + f" Measured on a different corpus and context length from this suite's "
                    f"({PUBLISHED_SETTING}); compare the ratios to dense, not the "
                    "perplexities.",
                ),
            )
        )
        return parts

    def model_quality(self, m: ModelResults) -> Parts:
        q = m.quality
        if not len(q):
            return [("md", f"#### {m.name}\n\nNo quality results were found.")]
        metric = F.primary_metric(q)
        dense = F.dense_value(q, metric) if metric else None
        rankings, intervals = [], True
        settings = q[(q["method"] != "dense")][["target_sparsity", "nm"]].drop_duplicates()
        half = settings[np.isclose(settings["target_sparsity"].astype(float), 0.5) | (settings["nm"] != "")]
        for target, nm in half.itertuples(index=False):  # 50% and N:M in words; every target in the table
            setting = nm or f"{float(target):.0%}"
            for met in ("kl_from_dense", metric):
                rows = F.quality_rows(q, met, float(target), nm)
                if rows:
                    intervals &= all(F.interval(r) for r in rows)
                    rankings.append(
                        f"{setting}, {F.METRIC_WORDS.get(met, met)}: "
                        f"{F.ranking_words(rows, met in F.LOWER_BETTER, say_rule=False)}"
                    )
        n_scored = int(q["n_tokens"].iloc[0]) if "n_tokens" in q else None
        facts = {
            "model": m.name,
            "family": m.family,
            "metric": F.METRIC_WORDS.get(metric, metric),
            "dense": num(dense) if dense is not None else "—",
            "n_scored": n_scored,
            "unit": "passages"
            if metric == "retrieval_top1"
            else "clips' tokens"
            if metric == "token_loss"
            else "tokens",
            "rankings": rankings,
            "caveat": caveat(m),
            "usable": F.usable_sentence(m.name, q),
            "speech": "wer" in set(q["metric"]),
            "rule": ""
            if intervals
            else f"These results carry no interval for the continuous metrics, so "
            f"values within {F.TIE:.0%} of each other are not ranked.",
        }
        parts = [("md", render("quality_model", **facts))]
        parts.append(
            (
                "html",
                self.n.table(
                    self.quality_table(q),
                    f"{m.name}: quality of every run (95% intervals in brackets where recorded"
                    + ("; accuracies as counts k/n" if set(q["metric"]) & set(F.ACCURACY) else "")
                    + ("; WER as word errors / words" if "wer" in set(q["metric"]) else "") + ").",
                    wide=True,
                    note=caveat(m),
                ),
            )
        )
        if len(m.transcripts):
            parts.append(
                (
                    "html",
                    self.n.table(
                        self.transcript_table(m.transcripts),
                        f"{m.name}: what the pruned models transcribe (first clips).",
                    ),
                )
            )
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
