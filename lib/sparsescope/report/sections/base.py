"""What every section shares: the loaded models, figure and table numbering, and the facts more than one
section states (quality kept, 50% checkpoint bytes, the calibrated methods that ran, the setup)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import ModelResults, join
from ..html import Numbering
from .literature import PUBLISHED

CORPORA = {
    "sotu": "State of the Union addresses 2001–2021 (the evaluation split; calibration uses 1790–2000)",
    "wikitext2": "WikiText-2 raw, test split",
}

Parts = list[tuple[str, str]]


def load_results(results_dir: str | os.PathLike, models: list[str]) -> list[ModelResults]:
    """Each model's results, named as a reader knows it: a local folder by its own name (not its whole path)
    unless two folders share a name; registry names and hub ids as given."""
    loaded = [F.load_model(results_dir, m) for m in models]
    folders = [Path(m).name if os.path.isdir(m) else m for m in models]
    if len(set(folders)) == len(folders):
        for m, name in zip(loaded, folders):
            m.name = name
    return loaded


def bullets(lines: list[str]) -> tuple[str, str]:
    """A Markdown list, one item per line."""
    return ("md", "\n".join(f"- {line}" for line in lines))


def after_colon(sentence: str) -> str:
    """A sentence set after a colon: 'A …' / 'No …' in lower case; a name keeps its capital."""
    return sentence[0].lower() + sentence[1:] if sentence.startswith(("A ", "No ")) else sentence


def caveat(m: ModelResults) -> str:
    """The short form of a model's caveat, for every caption and table where its weights or scores appear."""
    info = m.dist.summary["model_info"]
    if "Q4_1" in info.get("note", "") + info.get("source", ""):
        return f"{m.name}'s weights were de-quantised from 4-bit Q4_1, so its |w| sit on a 4-bit grid"
    return info.get("note", "")


def runs_at(m: ModelResults, target: float = 0.5) -> pd.DataFrame:
    """The runs the summary compares: unstructured at `target`, every N:M run, structured at `target`."""
    p = m.pruning
    if not len(p):
        return p
    kind = p["kind"] if "kind" in p else pd.Series("", index=p.index)
    near = np.isclose(p["target_sparsity"].astype(float), target)
    return p[(near & (p["nm"] == "")) | (p["nm"] != "") | (near & (kind == "structured"))]


TEXT_LOSSES = {"perplexity", "mlm_loss", "span_loss"}  # the objectives scored over n_tokens of text
UNIFORM = 0.01  # a heatmap whose every matrix is within 1 point of the target is left out (one sentence)


class Section:
    """The state and shared facts of a report; each section is a mixin on it (text.Report)."""

    def __init__(self, results_dir: str | os.PathLike, models: list[str]):
        self.models = load_results(results_dir, models)
        self.n = Numbering()
        self.metrics = F.metrics_scored([m.quality for m in self.models])

    # ------------------------------------------------------------------------------ shared facts
    def quality_points(self) -> pd.DataFrame:
        """One row per pruned run with its KL from dense and its quality kept relative to dense."""
        rows = []
        for m in self.models:
            q = m.quality
            metric = F.primary_metric(q) if len(q) else None
            if metric is None:
                continue
            dense = F.dense_value(q, metric)
            for _, r in q[(q["metric"] == metric) & (q["method"] != "dense")].iterrows():
                same = q[
                    (q["method"] == r["method"])
                    & (q["nm"] == r["nm"])
                    & np.isclose(q["target_sparsity"].astype(float), float(r["target_sparsity"]))
                ]
                kl = same[same["metric"] == "kl_from_dense"]["value"]
                rows.append(
                    {
                        "model": m.name,
                        "method": r["method"],
                        "nm": r["nm"],
                        "sparsity": float(r["target_sparsity"]),
                        "metric": metric,
                        "kl": float(kl.iloc[0]) if len(kl) else math.nan,
                        "kept": F.kept(metric, float(r["value"]), dense),
                    }
                )
        return pd.DataFrame(rows, columns=["model", "method", "nm", "sparsity", "metric", "kl", "kept"])

    def published_points(self) -> pd.DataFrame:
        dense = PUBLISHED[PUBLISHED["setting"] == "dense"].set_index("model")["perplexity"]
        out = PUBLISHED[
            (PUBLISHED["setting"] != "dense") & (PUBLISHED["model"] == "OPT-125M") & (PUBLISHED["nm"] == "")
        ]
        return out.assign(
            kept=[dense[m] / p for m, p in zip(out["model"], out["perplexity"])],
            label=[
                f"{m} {s}, published {src}" for m, s, src in zip(out["model"], out["setting"], out["source"])
            ],
        )

    def speed_of(self, m: ModelResults, run) -> str:
        """The summary's speed cell of one run: its own latency for a structured run; for a sparse run the
        dense-kernel measurement (zeros cost the same in dense kernels, whichever method chose them)."""
        rt = m.runtime
        if getattr(run, "kind", "") == "structured":
            rows = F.rows_of(rt, "structured-prefill")
            rows = (
                rows[rows["run"] == Path(run.checkpoint).parent.name] if len(rows) and "run" in rows else rows
            )
        else:
            rows = F.rows_of(rt, "dense-kernels")
        if not len(rows):
            return "not measured"
        batch = F.column(rows, "batch")
        r = rows.loc[batch.idxmin()] if batch.notna().any() else rows.iloc[0]
        cell = F.speed_cell(float(r["speedup"]), F.speed_interval(dict(r)))
        return cell + ("" if getattr(run, "kind", "") == "structured" else " †")

    def structured_speed(self) -> dict | None:
        """What the structured runs (a smaller model, not a sparser one) buy end to end at batch 1 and cost in
        quality: the speedups of the timings that can be read (not disturbed), how many are measurably
        faster, and each run's own metric against dense. None when no structured run was timed."""
        speeds, faster, timed, costs, batches = [], 0, 0, [], set()
        for m in self.models:
            rows = F.rows_of(m.runtime, "structured-prefill")
            if not len(rows) or "run" not in rows:
                continue
            metric = F.primary_metric(m.quality) if len(m.quality) else None
            dense = F.dense_value(m.quality, metric) if metric else None
            for run, group in rows.groupby("run", sort=True):
                for r in group.to_dict("records"):
                    span = F.speed_interval(r)
                    timed += 1
                    batches |= {int(r["batch"])} if math.isfinite(float(r.get("batch", "nan"))) else set()
                    if span is not None and not F.disturbed(span):
                        speeds.append(float(r["speedup"]))
                        faster += span[0] > 1.0
                made = m.pruning[[Path(str(c)).parent.name == run for c in m.pruning["checkpoint"]]] if len(
                    m.pruning) and "checkpoint" in m.pruning else m.pruning
                if metric and dense is not None and len(made):
                    p = made.iloc[0]
                    found = [q for q in F.quality_rows(m.quality, metric, float(p["target_sparsity"]), "")
                             if q["method"] == p["method"]]
                    if found:
                        costs.append(f"{m.name} {F.run_label(p['method'], p['target_sparsity'], '')}: "
                                     f"{F.SHORT_METRIC.get(metric, metric)} {F.num(found[0]['value'])} "
                                     f"({F.relative_words(metric, float(found[0]['value']), dense)})")
        if not timed:
            return None
        return {"span": F.span(min(speeds), max(speeds), "{:.2f}".format) if speeds else "", "faster": faster,
                "readable": len(speeds), "timed": timed, "costs": costs,
                "batches": [str(b) for b in sorted(batches)]}

    def calibrated_ran(self) -> tuple[str, ...]:
        """Wanda / SparseGPT as named in prose, those of them these results hold."""
        ran = {x for m in self.models if len(m.pruning) for x in m.pruning["method"]}
        named = (("wanda", "Wanda"), ("sparsegpt", "SparseGPT"))
        return tuple(name for key, name in named if key in ran) or ("Wanda", "SparseGPT")

    def casting_cases(self) -> list[tuple[str, dict[str, int], float, float | None]]:
        """(model, its computed casts, dense file bytes, 50% checkpoint bytes) for every model with sizes."""
        return [(m.name, F.size_baselines(m.dist.tensors), float(m.pruning["dense_bytes"].iloc[0]),
                 self._half_bytes(m)) for m in self.models if len(m.pruning) and len(m.sizes)]

    def _half_bytes(self, m: ModelResults) -> float | None:
        p = m.pruning
        if not len(p):
            return None
        rows = p[(p["nm"] == "") & np.isclose(p["target_sparsity"].astype(float), 0.5)]
        if "kind" in rows:
            rows = rows[rows["kind"] != "structured"]
        return float(rows["saved_bytes"].min()) if len(rows) else None

    def setup(self) -> dict:
        corpora = sorted({m.bench_params.get("corpus", "") for m in self.models} - {""})
        budget = {}
        for m in self.models:
            budget = m.bench_params.get("budget", {}) or budget
        calibration, counts = [], set()
        for m in self.models:
            p = m.pruning
            cal = p[p["method"].isin(F.CALIBRATED)] if len(p) else p
            if not len(cal):
                continue
            n, seqlen = F.column(cal, "n_samples").dropna(), F.column(cal, "seqlen").dropna()
            if len(n) and len(seqlen):
                calibration.append(f"{m.name} {int(n.iloc[0])} × {int(seqlen.iloc[0])} tokens")
                counts.add(int(n.iloc[0]))
            else:
                runs = m.prune_params.get("runs", [])
                seq = {r.get("seqlen") for r in runs if r.get("method") in F.CALIBRATED} - {None}
                calibration.append(
                    f"{m.name} {'/'.join(map(str, seq)) or '?'}-token windows, count scaled to the "
                    "model (not recorded in these results)"
                )
        return {
            "corpus": join([CORPORA.get(c, c) for c in corpora]) or "not recorded",
            "n_tokens": budget.get("n_tokens") if TEXT_LOSSES & self.metrics else None,
            "window": budget.get("window"),
            # only the budgets of objectives that ran: a text-only study names no speech clips
            "n_passages": budget.get("n_passages") if "retrieval_top1" in self.metrics else None,
            "n_clips": budget.get("n_clips") if {"token_loss", "wer"} & self.metrics else None,
            "calibration": calibration,
            "calibration_differs": len(counts) > 1,
            "calibrated": " and ".join(self.calibrated_ran()),
        }

    def samples(self) -> list[str]:
        """The sample behind the intervals, as counts: windows, passages, clips and words, timing repeats."""
        s, out = self.setup(), []
        if s["n_tokens"] and s["window"]:
            out.append(f"bootstrap over up to {s['n_tokens'] // s['window']} windows of {s['window']} tokens")
        if s["n_passages"]:
            out.append(f"{s['n_passages']} passages")
        if s["n_clips"]:
            words = {int(t) for m in self.models if "wer" in F.column(m.quality, "metric").astype(str).values
                     for t in F.column(m.quality[m.quality["metric"] == "wer"], "total").dropna()}
            said = f" ({F.join(sorted(map(str, words)))} words)" if words else ""
            out.append(f"{s['n_clips']} clips{said}")
        repeats = {int(r) for m in self.models for r in F.column(m.runtime, "repeats").dropna()}
        if repeats:
            out.append("speed over " + "/".join(map(str, sorted(repeats))) + " interleaved repeats")
        return out

    def q4_note(self) -> str:
        """' <caveat>.' for every model whose weights went through 4-bit quantisation, else ''."""
        return "".join(f" {c}." for c in map(caveat, self.models) if "Q4_1" in c)

    def medians(self) -> dict[str, float]:
        return {m.name: m.dist.summary["prunable"]["quantiles"]["0.5"] for m in self.models}
