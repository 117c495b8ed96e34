"""The report's words, tables and figures, section by section, computed from saved results. Numbers and the
conditions behind every conclusion come from facts.py; prose comes from the Markdown templates in
templates/; each section returns its parts in order, ("md", text) or ("html", figure or table)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import facts as F
from .facts import ModelResults, join, megabytes, millions, num, pct, plural, ratio
from .html import Numbering, pack, render, toc

# Published one-shot WikiText-2 perplexities, shown for scale with their sources. They were measured on
# WikiText-2 (test) with a 2048-token context and 128 × 2048-token C4 calibration windows, not on this
# suite's corpus and windows: compare ratios to dense, never perplexities.
SPARSEGPT, WANDA, WANDA_LLAMA = "[1]", "[2]", "[3]"
SOURCES = {
    SPARSEGPT: "SparseGPT paper (Frantar & Alistarh, ICML 2023, arXiv:2301.00774), OPT results on WikiText-2",
    WANDA: "Wanda paper (Sun et al., ICLR 2024, arXiv:2306.11695), OPT-125M results",
    WANDA_LLAMA: "Wanda paper (Sun et al., ICLR 2024), LLaMA-2 results, as listed in the README of "
    "github.com/locuslab/wanda",
}
PUBLISHED = pd.DataFrame(
    [
        ("OPT-125M", "dense", 0.0, "", 27.66, SPARSEGPT),
        ("OPT-125M", "magnitude 50%", 0.5, "", 193.4, SPARSEGPT),
        ("OPT-125M", "SparseGPT 50%", 0.5, "", 36.7, SPARSEGPT),
        ("OPT-125M", "Wanda 50%", 0.5, "", 39.3, WANDA),
        ("OPT-125M", "magnitude 2:4", 0.5, "2:4", 341.5, SPARSEGPT),
        ("OPT-125M", "SparseGPT 2:4", 0.5, "2:4", 60.7, SPARSEGPT),
        ("OPT-125M", "Wanda 2:4", 0.5, "2:4", 81.6, WANDA),
        ("LLaMA-2-7B", "dense", 0.0, "", 5.12, WANDA_LLAMA),
        ("LLaMA-2-7B", "magnitude 50%", 0.5, "", 14.89, WANDA_LLAMA),
        ("LLaMA-2-7B", "SparseGPT 50%", 0.5, "", 6.51, WANDA_LLAMA),
        ("LLaMA-2-7B", "Wanda 50%", 0.5, "", 6.42, WANDA_LLAMA),
        ("LLaMA-2-7B", "magnitude 2:4", 0.5, "2:4", 54.59, WANDA_LLAMA),
        ("LLaMA-2-7B", "SparseGPT 2:4", 0.5, "2:4", 10.17, WANDA_LLAMA),
        ("LLaMA-2-7B", "Wanda 2:4", 0.5, "2:4", 11.02, WANDA_LLAMA),
    ],
    columns=["model", "setting", "sparsity", "nm", "perplexity", "source"],
)
PUBLISHED_SETTING = "WikiText-2 test set, 2048-token context, calibration on 128 × 2048-token C4 windows"

# One-shot against iterative pruning in the literature, for the question this suite does not measure.
LITERATURE = pd.DataFrame(
    [
        (
            "iterative: prune, retrain, repeat",
            "AlexNet, VGG-16 (ImageNet)",
            "9× (AlexNet) and 13× (VGG-16) fewer parameters without loss of accuracy",
            "Han et al., NeurIPS 2015, arXiv:1506.02626 (abstract)",
        ),
        (
            "gradual pruning with fine-tuning (oBERT), compounded with quantisation",
            "BERT-base",
            "10× smaller model with < 1% accuracy drop",
            "Kurtic et al., EMNLP 2022, arXiv:2203.07259 (abstract)",
        ),
        (
            "one-shot, no retraining (SparseGPT)",
            "OPT-175B, BLOOM-176B",
            "60% unstructured sparsity with negligible increase in perplexity",
            "Frantar & Alistarh, ICML 2023, arXiv:2301.00774 (abstract)",
        ),
    ],
    columns=["how", "models", "reported", "source"],
)

# The seed study's models, whose place the packaged stand-ins take (parameter counts of their model cards).
SEED_MODELS = {
    "encoder-only": ("bert-large-uncased", 336e6),
    "decoder-only": ("gpt2-xl", 1.558e9),
    "encoder-decoder": ("t5-v1_1-xl", 2.85e9),
}
CORPORA = {
    "sotu": "State of the Union addresses 2001–2021 (the evaluation split; calibration uses 1790–2000)",
    "wikitext2": "WikiText-2 raw, test split",
}
METHOD_WORDS = {
    "global_magnitude": "**Global magnitude** (the seed's method): one threshold on |w| over all prunable "
                        "weights of the model; the matrices with many small weights lose more.",
    "layer_magnitude": "**Layer-wise magnitude**: the same fraction of the smallest |w| is zeroed in every "
                       "matrix.",
    "nm_magnitude": "**N:M magnitude**: in every group of M consecutive input weights of a row only the N "
                    "largest survive — the pattern sparse tensor cores execute (2:4).",
    "wanda": "**Wanda**: each weight is scored by |w| times the norm of its input feature over calibration "
             "text; the lowest scores of each output row are zeroed; no weight is updated.",
    "sparsegpt": "**SparseGPT**: the mask is chosen column block by column block by the "
                 "optimal-brain-surgeon saliency, and the surviving weights are updated to reconstruct each "
                 "layer's output on the calibration inputs.",
    "ffn_magnitude": "**FFN magnitude** (structured): whole MLP neurons with the smallest weight norms are "
                     "removed; the model gets smaller, not sparser.",
    "ffn_activation": "**FFN activation** (structured): whole MLP neurons with the smallest activations on "
                      "calibration text are removed.",
    "heads": "**Heads** (structured): whole attention heads are removed.",
}
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

Parts = list[tuple[str, str]]


def show(parts: Parts) -> None:
    """Display a section's parts in a notebook, each lead-in kept with the figure or table it introduces."""
    from IPython.display import HTML, Markdown, display

    for kind, body in pack(parts):
        display(Markdown(body) if kind == "md" else HTML(body))


def load_results(results_dir: str | os.PathLike, models: list[str]) -> list[ModelResults]:
    """Each model's results, named as a reader knows it: a local folder by its own name (not its whole path)
    unless two folders share a name; registry names and hub ids as given."""
    loaded = [F.load_model(results_dir, m) for m in models]
    folders = [Path(m).name if os.path.isdir(m) else m for m in models]
    if len(set(folders)) == len(folders):
        for m, name in zip(loaded, folders):
            m.name = name
    return loaded


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


class Report:
    """The report of some models' results: each section method returns its parts in reading order."""

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

    # ---------------------------------------------------------------------------------- summary
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

    # -------------------------------------------------------------------------------- models
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

    # ---------------------------------------------------------------------------- structure
    def structure(self) -> Parts:
        """The seed's three views of |w|: Histograms, CDFs, CDFs by Layer, each with a paragraph per model."""
        from .plots import cdf_figure, depth_figure, layer_cdf_figure, model_panels

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

        def figure(fig, caption: str, alt: str) -> tuple[str, str]:
            return ("html", self.n.figure(fig, caption, alt))

        def bullets(lines: list[str]) -> tuple[str, str]:
            return ("md", "\n".join(f"- {line}" for line in lines))

        parts = [
            ("md", "All statistics are exact counts over every stored weight, read tensor by tensor; |w| is "
                   "on log axes because magnitudes span many decades.\n\n### Histograms\n\nHow |w| "
                   "spreads in the attention and the MLP matrices of each model, and over all its weights:"),
            figure(model_panels(groups, "histogram", titles),
                   "Share of weights per log-spaced |w| bin (log axis), per model: attention and MLP "
                   "matrices and all weights. Dotted lines mark 1e-3, 1e-2, 1e-1." + noted,
                   f"Histograms of weight magnitudes for {names}, attention and MLP matrices apart."),
            bullets([F.histogram_sentence(m.name, m.dist.groups["all"]) for m in self.models]),
            ("html", self.n.table(
                self.statistics_table(),
                "Magnitude statistics of all and of the prunable weights. Outliers: |w − μ| > 6σ, with μ "
                "and σ of the weight's own tensor.", wide=True, note="; ".join(notes))),
            ("md", "### CDFs\n\nThe share of weights below each magnitude, which is where a one-shot "
                   "magnitude threshold falls for a given sparsity:"),
            figure(model_panels(groups, "cdf", titles),
                   "Cumulative share of weights with |w| below x, per model: attention and MLP matrices "
                   "and all weights; the dotted line marks 50%." + noted,
                   f"Cumulative distributions of weight magnitudes for {names}, attention and MLP apart."),
        ]
        findings = self.component_findings()
        cdf_lines = [" ".join([F.cdf_sentence(m.name, m.dist.summary["prunable"])] + findings.get(m.name, []))
                     for m in self.models]
        parts.append(("md", render("structure", models=cdf_lines,
                                   threshold=F.threshold_sentence(self.medians()))))
        if len(self.models) > 1:
            label = {m.name: f"{m.name} ({m.family})" for m in self.models}
            styles = {label[m.name]: {"color": f"C{i}"} for i, m in enumerate(self.models)}
            every = {label[m.name]: m.dist.groups["prunable"] for m in self.models}
            parts.append(figure(
                cdf_figure(every, "prunable weights, every model", styles),
                "Cumulative distribution of the prunable |w| of every model on one axis: where a 50% "
                "magnitude threshold falls is where each curve crosses the dotted 50% line." + self.q4_note(),
                "Cumulative distributions of prunable weight magnitudes, one curve per model."))
        parts.append(("md", "### CDFs by Layer\n\nThe prunable weights' CDF of every block, coloured by "
                            "depth, then each block's median and quantile bands (a trend is named only where "
                            "enough blocks test it):"))
        parts.append(figure(
            layer_cdf_figure(blocks),
            "Cumulative share of each block's prunable weights with |w| below x; colour runs from the "
            "first block (dark) to the last (light); encoder and decoder stacks in separate panels."
            + self.q4_note(),
            f"Per-block cumulative distributions of prunable weight magnitudes for {names}, by depth."))
        parts.append(figure(
            depth_figure(blocks),
            "Median |w| of each block's prunable weights against depth, with the 25–75% (dark) and "
            "10–90% (light) bands; encoder and decoder blocks as separate lines." + self.q4_note(),
            "Median weight magnitude per block against block index for each model, with quantile bands."))
        lines = []
        for m in self.models:
            said = [F.depth_sentence(stack, m.name, [b for b, _ in items],
                                     [acc.quantiles((0.5,))["0.5"] for _, acc in items])
                    for stack, items in blocks[m.name].items()]
            lines.append(" ".join(said) or f"{m.name}: no block structure was found in its names.")
        parts.append(bullets(lines))
        return parts

    def q4_note(self) -> str:
        """' <caveat>.' for every model whose weights went through 4-bit quantisation, else ''."""
        return "".join(f" {c}." for c in map(caveat, self.models) if "Q4_1" in c)

    def medians(self) -> dict[str, float]:
        return {m.name: m.dist.summary["prunable"]["quantiles"]["0.5"] for m in self.models}

    def component_findings(self) -> dict[str, list[str]]:
        """Attention against MLP, per model, only where both exist; the direction is computed."""
        out = {}
        for m in self.models:
            att, mlp = m.dist.groups.get("component:attention"), m.dist.groups.get("component:mlp")
            if not att or not mlp or not att.n or not mlp.n:
                continue
            a, b = att.quantiles((0.5,))["0.5"], mlp.quantiles((0.5,))["0.5"]
            hi, lo = ("attention", "MLP") if a > b else ("MLP", "attention")
            if max(a, b) / min(a, b) < 1.005:  # equal at the printed precision: no direction to claim
                out[m.name] = [f"Median |w| is {num(a)} in attention and {num(b)} in MLP matrices — the same "
                               "scale, so a single global threshold takes from both alike."]
                continue
            out[m.name] = [
                f"Median |w| is {num(a)} in attention, {num(b)} in MLP matrices — {hi} weights are "
                f"{max(a, b) / min(a, b):.2f}× larger, so a single global threshold takes more from {lo}."
            ]
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

    # ------------------------------------------------------------------------------ sparsification
    @staticmethod
    def held_by_construction(methods: list[str]) -> str:
        """The methods that ran and keep every matrix at the target, named only when they ran."""
        names = {"layer_magnitude": "Layer-wise magnitude", "nm_magnitude": "N:M", "wanda": "Wanda",
                 "sparsegpt": "SparseGPT"}
        held = [names[x] for x in methods if x in names]
        if not held:
            return ""
        verb = "holds" if len(held) == 1 else "hold"
        return f" {F.join(held)} {verb} every matrix at the target by construction."

    def sparsification(self) -> Parts:
        methods = sorted(
            {x for m in self.models if len(m.pruning) for x in m.pruning["method"]},
            key=lambda x: list(METHOD_WORDS).index(x) if x in METHOD_WORDS else 99,
        )
        parts = [("md", render("sparsification", methods=[METHOD_WORDS.get(x, f"**{x}**") for x in methods],
                               skipped=F.skipped_sentence(self.models)))]
        collapse_rows, found = [], []
        for m in self.models:
            c = F.layer_collapse(m.per_matrix)
            if len(c):
                found.append((m, c))
            for r in c.itertuples():
                collapse_rows.append(
                    {
                        "model": m.name,
                        "target": f"{r.target:.0%}",
                        "most-pruned matrix": r.matrix,
                        "zeroed": pct(r.zeroed),
                        "weights left": f"{r.kept:,} of {r.n:,}",
                        f"matrices ≥ {F.COLLAPSED:.0%} zero": f"{r.collapsed} of {r.matrices}",
                        "least-pruned matrix, zeroed": pct(r.least),
                    }
                )
        parts.append(
            (
                "md",
                "### Layer collapse\n\nGlobal magnitude applies one threshold to the whole model, so a "
                "matrix of small weights can lose almost all of them — layer collapse. "
                + self.worst_collapse(found)
                + self.held_by_construction(methods),
            )
        )
        if collapse_rows:
            parts.append(
                (
                    "html",
                    self.n.table(
                        pd.DataFrame(collapse_rows).set_index(["model", "target"]),
                        "Global magnitude: the most-pruned matrix at each target and how many "
                        "matrices are all but removed.",
                        breakable_columns=("most-pruned matrix",),
                    ),
                )
            )
        from .plots import layer_sparsity_heatmap

        for m in self.models:
            pm = m.per_matrix
            if not len(pm):
                continue
            gm = pm[(pm["method"] == "global_magnitude") & (pm["nm"] == "")]
            if not len(gm):
                continue
            target = gm["target_sparsity"].iloc[(gm["target_sparsity"] - 0.5).abs().argsort().iloc[0]]
            one = gm[gm["target_sparsity"] == target]
            zeroed = one["n_zero"] / one["n"]
            off = float((zeroed - target).abs().max())
            if off < UNIFORM:  # a page of one colour tells nothing a sentence does not
                parts.append(("md", f"Global magnitude at {target:.0%} zeroes each of {m.name}'s "
                              f"{len(one)} prunable matrices to within {100 * off:.1f} percentage points of "
                              f"the target ({F.span(float(zeroed.min()), float(zeroed.max()), pct)}): no "
                              "matrix stands out, so its heatmap, one colour, is left out."))
                continue
            roles = [F.role_label(r) for r in F.role_order(set(F.matrix_roles(one)))]
            cross = " (x- = cross-attention)" if any(r.startswith("x-") for r in roles) else ""
            parts.append(
                (
                    "html",
                    self.n.figure(
                        layer_sparsity_heatmap(one, f"{m.name}: global magnitude at {target:.0%}", target),
                        f"Share of each prunable matrix of {m.name} zeroed by global magnitude at "
                        f"{target:.0%}, white at the target, red above, blue below: blocks in depth order, "
                        f"matrices in the order {', '.join(roles)}{cross}.",
                        f"Heatmap of per-matrix sparsity of {m.name} under global magnitude pruning at "
                        f"{target:.0%}, block by "
                        "matrix role.",
                    ),
                )
            )
        frames = []
        for m in self.models:
            t = F.role_table(m)
            if len(t):
                t = t.assign(model=m.name, role=[F.role_label(r) for r in t.index]).set_index(
                    ["model", "role"]
                )
                frames.append(t)
        if frames:
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
            parts.append(
                (
                    "md",
                    "### Attention and MLP matrices\n\n"
                    + render("roles", findings=self.role_findings(table)),
                )
            )
            parts.append(
                (
                    "html",
                    self.n.table(
                        shown,
                        "Per matrix role: share of the prunable weights, magnitude, and "
                        "the share global magnitude (GM) zeroes.",
                        wide=True,
                        note=self.q4_note().strip(),
                    ),
                )
            )
        parts += self.run_costs()
        return parts

    @staticmethod
    def worst_collapse(found: list) -> str:
        """The most extreme case in words; the table beside it holds every model and target."""
        if not found:
            return "No global-magnitude run was found, so it was not measured."
        others = " The table gives every model and target." if len(found) > 1 or len(found[0][1]) > 1 else ""
        return F.collapse_overview([(m.name, c) for m, c in found]) + others

    def role_findings(self, table: pd.DataFrame) -> list[str]:
        out = []
        zero_cols = [c for c in table if c.startswith("zeroed at")]
        if not zero_cols:
            return out
        col = zero_cols[0]
        at = col.removeprefix("zeroed at ")
        alike: dict[str, list[str]] = {}  # models whose every role loses the same share, said once
        for model in dict.fromkeys(table.index.get_level_values("model")):  # the report's model order
            t = table.xs(model, level="model")[col].dropna()
            if len(t) < 2:
                continue
            hi, lo = t.idxmax(), t.idxmin()
            if pct(t[hi]) == pct(t[lo]):
                alike.setdefault(pct(t[hi]), []).append(model)
                continue
            out.append(f"{model}: global magnitude at {at} zeroes {pct(t[hi])} of the weights of the {hi} "
                       f"matrices but {pct(t[lo])} of the {lo} matrices.")
        out += [f"{join(models)}: global magnitude at {at} zeroes {share} of the weights of every role alike."
                for share, models in alike.items()]
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
            frames.append(
                pd.DataFrame(
                    {
                        "run": [F.run_label(*k) for k in zip(p["method"], p["target_sparsity"], p["nm"])],
                        "model": m.name,
                        "cell": cells,
                    }
                )
            )
        if not frames:
            return []
        table = pd.concat(frames).pivot_table(
            index="run", columns="model", values="cell", aggfunc="first", sort=False
        )
        return [
            (
                "html",
                self.n.table(
                    table.fillna("—"),
                    "Cost of every pruning run on this machine: wall time, peak resident memory and in "
                    "brackets its anonymous part, what the run allocated itself (resident memory also counts "
                    "the pages of a memory-mapped checkpoint, which the kernel can drop at any time).",
                ),
            )
        ]

    # -------------------------------------------------------------------------------- benchmarks
    def size(self) -> Parts:
        from .plots import size_overview_figure

        data, rows, sentences, index_ratios = {}, {}, [], []
        for m in self.models:
            if not len(m.sizes) or not len(m.pruning):
                continue
            base = F.size_baselines(m.dist.tensors)
            dense = float(m.pruning["dense_bytes"].iloc[0])
            data[m.name] = (m.sizes, base, dense)
            dtype = ", ".join(sorted(m.dist.tensors["dtype"].unique()))
            col = {"dense file": dense, **{f"{k} cast (computed)": v for k, v in base.items()}}
            s = m.sizes
            for _, r in s.sort_values("achieved_sparsity").iterrows():
                if (
                    r["nm"] == ""
                    and r["method"] == "global_magnitude"
                    or r["nm"] != ""
                    and r["method"] == "nm_magnitude"
                ):
                    label = r["nm"] if r["nm"] else f"{float(r['target_sparsity']):.0%}"
                    col[f"compressed, {label} sparse"] = float(r["saved_bytes"])
            # one row per kind of file; the dense file's dtype in its own row, not in the row's name
            rows[m.name] = {"dense stored as": dtype, **{k: f"{megabytes(v)} ({pct(v / dense)})"
                                                          for k, v in col.items()}}
            excluded = F._json(m.dist.out_dir / "manifest.json").get("excluded", {})
            buffers = excluded.get("buffers (not weights)", [])
            sentences.append(F.beside_weights(m.dist.tensors, dense, buffers, m.name))
            ratios = F.column(s, "index_ratio")
            if ratios.notna().any():
                index_ratios.append((m.name, F.span(ratios.min(), ratios.max(), "{:.3f}".format) + "×"))
        if not data:
            return [("md", "No size results were found.")]
        parts = [
            ("md", render("size", sentences=F.casting_sentences(self.casting_cases()) + sentences,
                          index_ratios=F.shared_values(index_ratios, len(self.models)),
                          baselines=F.BASELINE_WORDS))
        ]
        parts.append(
            (
                "html",
                self.n.figure(
                    size_overview_figure(data),
                    "Left: bits per prunable weight spent on the positions of the kept weights, against "
                    "H(s), the entropy of an i.i.d. random mask of that density (the bound for such a mask, "
                    "not for these masks), and the 2:4 bound"
                    + (" (older results without the index column are left out)" if any(
                        F.column(s, "index_bits_per_weight").isna().all() for s, _, _ in data.values())
                       else "")
                    + ". Right: each compressed checkpoint as a share of its own dense file (whose dtype "
                    "Table " + str(self.n.tables + 1) + " gives), beside the same model cast to fp16, int8 "
                    "and 4-bit (computed from the parameter counts, not files written). Colour: model; "
                    "marker: method.",
                    "Scatter plots: index bits per weight against sparsity with the entropy bound; "
                    "checkpoint size as percent "
                    "of dense against sparsity for every model, with horizontal lines for fp16, int8 and "
                    "4-bit casts.",
                ),
            )
        )
        table = pd.DataFrame(rows).fillna("—")
        parts.append(
            (
                "html",
                self.n.table(
                    table,
                    "Bytes on disk: the dense file, the same model cast (computed), and "
                    "the compressed sparse checkpoints (global magnitude; N:M magnitude).",
                    note="Casts: " + "; ".join(F.BASELINE_WORDS.values()) + ".",
                ),
            )
        )
        return parts

    def runtime(self) -> Parts:
        from .plots import runtime_figure

        parts = [
            (
                "md",
                "### Runtime\n\nEvery ratio is measured in one process, dense and sparse side by side after "
                "a "
                "warm-up; the prose calls a change only where its 95% interval excludes 1.0×.",
            )
        ]
        settings = []
        for m in self.models:
            rt = m.runtime
            if not len(rt):
                parts.append(("md", f"#### {m.name}\n\nNo runtime results were found."))
                continue
            # a speech model's whole-model input is log-mel frames (Whisper: 3000 for 30 s), not tokens
            scored = set(m.quality["metric"]) if "metric" in m.quality else set()
            unit = "log-mel frames" if {"wer", "token_loss"} & scored else "tokens"
            e2e = F.e2e_words(rt, "dense-kernels", unit)
            csr_e2e = F.e2e_words(rt, "sparse-kernels-e2e", unit)
            structured = (F.e2e_words(rt, "structured-prefill", unit)
                          + F.e2e_words(rt, "structured-decode", unit))
            gpu = F.rows_of(rt, "kernel-2:4")
            facts = {
                "model": m.name,
                "dense_kernels": e2e,
                "csr_e2e": csr_e2e,
                "structured": structured,
                "crossovers": F.crossover_words(m.crossovers, rt),
                "crossovers_measured": F.crossovers_measured(m.crossovers),
                "bsr": F.bsr_sentence(rt),
                "gpu": (
                    f"{gpu['speedup'].astype(float).min():.2f}–{gpu['speedup'].astype(float).max():.2f}× "
                    f"over dense on {gpu['device'].iloc[0]}"
                )
                if len(gpu)
                else "",
                "missing": F.not_measured(rt, m.pruning),
                "device": rt["device"].iloc[0] if "device" in rt else "?",
                "repeats": int(F.column(rt, "repeats").max())
                if F.column(rt, "repeats").notna().any()
                else None,
                "interleaved": bool("interleaved" in rt and (rt["interleaved"] != "").any()),
                "unit": unit,
            }
            settings.append((m, rt, facts))
        # the measuring setup, said once when every model shares it, else under each model
        shared = len({(f["device"], f["repeats"], f["interleaved"]) for _, _, f in settings}) == 1
        if shared and settings:
            parts[0] = ("md", parts[0][1] + "\n\n" + render("runtime_setting", **settings[0][2]))
        for m, rt, facts in settings:
            parts.append(("md", render("runtime", **facts, setting_said=shared)))
            parts.append(
                (
                    "html",
                    self.n.figure(
                        runtime_figure(rt, f"{m.name}: speedup over dense on {facts['device']}", m.pruning,
                                       facts["unit"]),
                        f"{m.name}: CSR (solid) and BSR (dashed) kernels against dense per matrix shape, one "
                        "panel per tokens "
                        "per batch, and the whole model; one y-range for all panels; bars are 95% intervals "
                        "where recorded. "
                        "What was not measured is listed under the panels.",
                        f"Speedup over dense against sparsity for the matrix shapes of {m.name}, per tokens "
                        "per batch, and "
                        "whole-model speedups.",
                    ),
                )
            )
        return parts

    def quality(self) -> Parts:
        from .plots import quality_overview_figure

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

    def frontier(self) -> Parts:
        from .plots import KIND_WORDS, frontier_figure

        rows = []
        points = self.quality_points()
        for m in self.models:
            if not len(m.pruning):
                continue
            mine = points[points["model"] == m.name]
            rows.append(
                {
                    "model": m.name,
                    "method": "dense",
                    "kind": "dense",
                    "bytes": 1.0,
                    "latency": 1.0,
                    "kept": 1.0,
                }
            )
            dk = F.rows_of(m.runtime, "dense-kernels")
            for run in m.pruning.itertuples():
                kind = getattr(run, "kind", "") or ("nm" if run.nm else "unstructured")
                hit = mine[
                    (mine["method"] == run.method)
                    & (mine["nm"] == run.nm)
                    & np.isclose(mine["sparsity"], float(run.target_sparsity))
                ]
                latency = math.nan
                if kind == "structured" and len(F.rows_of(m.runtime, "structured-prefill")):
                    sp = F.rows_of(m.runtime, "structured-prefill")
                    sp = sp[sp["run"] == Path(run.checkpoint).parent.name] if "run" in sp else sp.iloc[:0]
                    if len(sp):
                        latency = float(sp.iloc[0]["sparse_ms"]) / float(sp.iloc[0]["dense_ms"])
                elif (
                    run.method == "global_magnitude"
                    and len(dk)
                    and np.isclose(float(run.target_sparsity), 0.5)
                ):
                    latency = float(dk.iloc[0]["sparse_ms"]) / float(dk.iloc[0]["dense_ms"])
                rows.append(
                    {
                        "model": m.name,
                        "method": run.method,
                        "kind": kind,
                        "bytes": float(run.saved_bytes) / float(run.dense_bytes),
                        "latency": latency,
                        "kept": float(hit["kept"].iloc[0]) if len(hit) else math.nan,
                    }
                )
        if not rows:
            return []
        frame = pd.DataFrame(rows)
        have_latency = frame[(frame["method"] != "dense") & frame["latency"].notna()]
        per_model = have_latency.groupby("model").size()
        return [
            (
                "md",
                "### Trade-offs\n\n"
                + render(
                    "frontier",
                    n_latency=len(have_latency),
                    n_runs=int((frame["method"] != "dense").sum()),
                    structured=bool((frame["kind"] == "structured").any()),
                    latency_panel=bool((per_model >= 2).any()),
                ),
            ),
            (
                "html",
                self.n.figure(
                    frontier_figure(frame),
                    "Quality kept against bytes on disk"
                    + (" (left) and batch-1 latency (right), all relative to dense, for every run with the "
                       "measurement" if (per_model >= 2).any() else ", both relative to dense")
                    + "; dense is the star at 1×, 1×. Colour: "
                    + join([KIND_WORDS[k] for k in KIND_WORDS
                            if k != "dense" and k in set(frame[frame["kept"].notna()]["kind"])])
                    + ".",
                    "Per model, quality relative to dense plotted against relative size and relative latency "
                    "for each "
                    "pruning run.",
                ),
            ),
        ]

    # --------------------------------------------------------------------------------- challenges
    def challenges(self) -> Parts:
        kl = F.kl_by_target(self.models)
        half = kl[np.isclose(kl["target_sparsity"].astype(float), 0.5)] if len(kl) else kl
        moves = []
        for model, g in half.groupby("model", sort=False) if len(half) else []:
            lo, hi = g.loc[g["value"].idxmin()], g.loc[g["value"].idxmax()]
            moves.append(
                f"{model} {num(lo['value'])} for every unstructured method"
                if num(lo["value"]) == num(hi["value"]) else
                f"{model} {num(lo['value'])} ({lo['method']}) to {num(hi['value'])} ({hi['method']})"
            )
        collapses = [(m, F.layer_collapse(m.per_matrix)) for m in self.models if len(m.per_matrix)]
        collapses = [(m, c) for m, c in collapses if len(c)]
        named = [(m.name, c) for m, c in collapses]
        collapse = F.collapse_lead(named) if named else ""
        iterative = pd.concat(
            [F.iterative_runs(m.pruning) for m in self.models if len(m.pruning)] or [pd.DataFrame()]
        )
        alone, tied, cases = F.calibrated_count(self.models)
        dk = pd.concat([F.rows_of(m.runtime, "dense-kernels") for m in self.models] or [pd.DataFrame()])
        held = F.all_hold_one(dk) if len(dk) else None
        csr_rt = pd.concat([F.rows_of(m.runtime, "kernel-csr") for m in self.models] or [pd.DataFrame()])
        cross = pd.concat([m.crossovers for m in self.models if len(m.crossovers)] or [pd.DataFrame()])
        found = (
            pd.to_numeric(
                cross[cross["kind"] == "kernel-csr"]["crossover_sparsity"], errors="coerce"
            ).dropna()
            if len(cross)
            else pd.Series(dtype=float)
        )
        half_csr = csr_rt[np.isclose(csr_rt["sparsity"].astype(float), 0.5)] if len(csr_rt) else csr_rt
        half_share, cast_share, beaten = [], [], 0
        for m in self.models:
            half_bytes = self._half_bytes(m)
            if half_bytes is None:
                continue
            dense_bytes = float(m.pruning["dense_bytes"].iloc[0])
            casts = F.size_baselines(m.dist.tensors)
            half_share.append(half_bytes / dense_bytes)
            cast_share.append(casts["4-bit"] / dense_bytes)
            beaten += casts["4-bit"] < half_bytes
        resaved = []
        for m in self.models:
            s = m.sizes
            if len(s) and "dense_save_bytes" in s:
                for _, r in s[F.column(s, "dense_save_bytes").notna()].iterrows():
                    resaved.append(float(r["dense_save_bytes"]) / float(r["dense_bytes"]))

        def share_range(xs: list[float]) -> str:
            same = round(min(xs), 3) == round(max(xs), 3)
            return pct(min(xs)) if same else f"{pct(min(xs))}–{pct(max(xs))}"

        facts = {
            "moves": moves,
            "collapse": collapse,
            "iterative": len(iterative),
            "calibrated": after_colon(F.calibrated_sentence(alone, tied, cases, self.calibrated_ran())),
            "resaved": share_range(resaved) if resaved else "",
            "half_share": share_range(half_share) if half_share else "",
            "cast_share": share_range(cast_share) if cast_share else "",
            "beaten": int(beaten),
            "sized": len(half_share),
            "dense_held": held,
            "dk_range": (
                F.span(dk["speedup"].astype(float).min(), dk["speedup"].astype(float).max(), "{:.2f}".format)
                + "×"
                if len(dk)
                else ""
            ),
            # the rows whose interval excludes 1.0, not every row's point estimate
            "dk_outside": ", ".join(
                f"{r.shape_or_model} {float(r.speedup):.2f}× "
                f"[{float(r.speedup_lo):.2f}, {float(r.speedup_hi):.2f}]"
                for r in dk.itertuples() if {"speedup_lo", "speedup_hi"} <= set(dk.columns)
                and (float(r.speedup_lo) > 1.0 or float(r.speedup_hi) < 1.0)) if len(dk) else "",
            "crossover": (F.span(found.min(), found.max(), "{:.0%}".format) if len(found) else ""),
            "crossover_measured": F.crossovers_measured(cross) if len(cross) else True,
            "timed_once": F.crossovers_timed_once(cross) if len(cross) else False,
            # the device the kernel sweep ran on (device_name: "cpu (N threads)" or the GPU's model)
            "kernel_device": "" if not len(csr_rt) or "device" not in csr_rt else "CPU " if csr_rt[
                "device"].astype(str).str.startswith("cpu").all() else "GPU ",
            "half_csr": (
                F.span(half_csr["speedup"].astype(float).min(), half_csr["speedup"].astype(float).max())
                + "×"
                if len(half_csr)
                else ""
            ),
            "half_clause": F.half_sparsity_clause(kl),
            "gpu": any(len(F.rows_of(m.runtime, "kernel-2:4")) for m in self.models),
        }
        parts = [("md", render("challenges", **facts))]
        if not len(iterative):
            parts.append(
                (
                    "html",
                    self.n.table(
                        LITERATURE.set_index("how"),
                        "One-shot against iterative pruning in the "
                        "literature (not measured here; figures as the papers report them).",
                    ),
                )
            )
        return parts
