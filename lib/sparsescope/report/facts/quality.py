"""Quality facts: each model's own metric and KL from dense, ranked only where the noise allows, and the
conclusions drawn from them (calibrated methods, scale, usable speech)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .format import num, plural, ratio
from .results import CALIBRATED, ModelResults, column


def wilson(count: float, total: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion: honest at small counts (26/64), unlike value ± 2 s.e."""
    if total <= 0:
        return (0.0, 1.0)
    p = count / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


ACCURACY = ("retrieval_top1", "mlm_top1")
LOWER_BETTER = ("perplexity", "nll", "mlm_loss", "span_loss", "token_loss", "wer", "kl_from_dense")
PRIMARY = ("perplexity", "mlm_loss", "span_loss", "token_loss", "retrieval_top1")
METRIC_WORDS = {
    "perplexity": "perplexity",
    "nll": "NLL",
    "mlm_loss": "masked-LM loss",
    "mlm_top1": "masked-LM top-1",
    "span_loss": "span loss",
    "token_loss": "teacher-forced token loss",
    "wer": "WER",
    "retrieval_top1": "retrieval top-1",
    "cosine_to_dense": "cosine to dense",
    "kl_from_dense": "KL from dense",
}


# the primary metric a model was scored by -> the objective as the report names it
OBJECTIVES = {
    "perplexity": "perplexity for causal LMs",
    "mlm_loss": "masked-LM loss for encoders with their masked-LM head (BERT, RoBERTa)",
    "retrieval_top1": "embedding fidelity and passage retrieval for a sentence encoder",
    "span_loss": "span-corruption loss (T5; text infilling for BART)",
    "token_loss": "teacher-forced token loss on synthesised speech for Whisper",
    "wer": "word error rate of Whisper's transcripts",
}
COUNTED_UNITS = {"mlm_top1": "masked tokens", "retrieval_top1": "passages", "wer": "words"}


def metrics_scored(qualities: list[pd.DataFrame]) -> set[str]:
    """Every metric some model's quality table holds, so the text names only the objectives that ran."""
    return {m for q in qualities if len(q) and "metric" in q for m in q["metric"].astype(str)}


def objectives_scored(metrics: set[str]) -> list[str]:
    return [words for metric, words in OBJECTIVES.items() if metric in metrics]


def counted_units(metrics: set[str]) -> list[str]:
    return [units for metric, units in COUNTED_UNITS.items() if metric in metrics]


SHORT_METRIC = {"perplexity": "perplexity", "mlm_loss": "MLM loss", "span_loss": "span loss",
                "token_loss": "token loss", "retrieval_top1": "retrieval"}


def counts(row) -> tuple[int, int] | None:
    """(count, total) of an accuracy-like row: the recorded columns, or for retrieval the value times the
    passages scored (n_tokens holds the passage count there)."""
    c, t = row.get("count"), row.get("total")
    try:
        c, t = float(c), float(t)
        if math.isfinite(c) and math.isfinite(t) and t > 0:
            return int(round(c)), int(round(t))
    except (TypeError, ValueError):
        pass
    if row.get("metric") == "retrieval_top1":
        n = float(row.get("n_tokens", 0) or 0)
        if n > 0:
            return int(round(float(row["value"]) * n)), int(n)
    return None


def interval(row) -> tuple[float, float] | None:
    """A quality row's 95% interval: the recorded bootstrap interval, else Wilson's from counts."""
    try:
        lo, hi = float(row.get("ci_lo")), float(row.get("ci_hi"))
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    except (TypeError, ValueError):
        pass
    if row.get("metric") in ACCURACY:
        found = counts(row)
        if found:
            return wilson(*found)
    return None


TIE = 0.10  # without intervals, values within 10% of each other are not ranked


def separated(a: dict, b: dict) -> bool:
    """Whether two quality rows differ beyond their noise: intervals that do not overlap; without
    intervals, a gap of more than TIE relative to the smaller value."""
    ia, ib = interval(a), interval(b)
    if ia and ib:
        return ia[1] < ib[0] or ib[1] < ia[0]
    lo, hi = sorted([abs(float(a["value"])), abs(float(b["value"]))])
    return hi > lo * (1 + TIE)


def global_against_layerwise(results: list[ModelResults], target: float = 0.5) -> list[tuple]:
    """Per model with both runs at `target`: (model, metric words, global magnitude's value, layer-wise
    magnitude's, verdict) on the model's own metric, the verdict "better", "worse" or "tied" for layer-wise
    (which holds every matrix at the target, so it cannot collapse a layer), decided by `separated`."""
    out = []
    for m in results:
        metric = primary_metric(m.quality) if len(m.quality) else None
        if metric is None:
            continue
        rows = {r["method"]: r for r in quality_rows(m.quality, metric, target, "")}
        if not {"global_magnitude", "layer_magnitude"} <= set(rows):
            continue
        g, lw = rows["global_magnitude"], rows["layer_magnitude"]
        lower = float(lw["value"]) < float(g["value"])
        verdict = ("tied" if not separated(g, lw) else
                   "better" if lower == (metric in LOWER_BETTER) else "worse")
        out.append((m.name, SHORT_METRIC.get(metric, metric), num(g["value"]), num(lw["value"]), verdict))
    return out


def ranking(rows: list[dict], lower_better: bool) -> dict:
    """Rows of one metric at one setting: the leaders (not separable from the best) and the rest."""
    ordered = sorted(rows, key=lambda r: float(r["value"]), reverse=not lower_better)
    best = ordered[0]
    leaders = [r for r in ordered if r is best or not separated(best, r)]
    rest = [r for r in ordered if r not in leaders]
    with_interval = all(interval(r) for r in ordered)
    return {"best": best, "leaders": leaders, "rest": rest, "intervals": with_interval}


def ranking_words(rows: list[dict], lower_better: bool, fmt=None, say_rule: bool = True) -> str:
    """Best first where the data separate them; tied leaders named together. Without intervals, the
    TIE rule applies and is said unless `say_rule` is False (the caller says it once)."""
    fmt = fmt or (lambda r: f"{r['method']} {value_text(r)}")
    if len(rows) == 1:
        return fmt(rows[0])
    from ..html import say

    r = ranking(rows, lower_better)
    tie = TIE if not r["intervals"] and say_rule else None
    return say("findings").ranked([fmt(x) for x in r["leaders"]], [fmt(x) for x in r["rest"]], tie)


def collapsed(row: dict, vocab: int | None) -> bool:
    """A perplexity above the vocabulary size is worse than a uniform guess over every token: the model has
    collapsed, and the number is not one to rank or compare."""
    return bool(vocab) and row.get("metric") == "perplexity" and float(row["value"]) > vocab


def value_text(row: dict) -> str:
    """An accuracy as its count (26/64); any other value with its interval in brackets and, where the
    table records them, the count behind it (WER: errors / reference words)."""
    found = counts(row)
    if found and row.get("metric") in ACCURACY:
        return f"{found[0]}/{found[1]}"
    text = num(row["value"])
    span = interval(row)
    if span and num(span[0]) != num(span[1]):  # no "0 [0–0]"
        text += f" [{num(span[0])}–{num(span[1])}]"
    if found:
        text += f" ({found[0]}/{found[1]})"
    return text


# ----------------------------------------------------------------------------------- quality
def primary_metric(quality: pd.DataFrame) -> str | None:
    present = set(quality["metric"]) if len(quality) else set()
    return next((m for m in PRIMARY if m in present), None)


def kept(metric: str, value: float, dense: float) -> float:
    """Quality kept relative to dense, 1 = dense and lower = worse, on one scale for every metric:
    perplexity dense/pruned; a loss in nats exp(dense − pruned) (the perplexity ratio it implies); an
    accuracy pruned/dense."""
    if metric == "perplexity":
        return dense / value
    if metric in ("nll", "mlm_loss", "span_loss", "token_loss"):
        return math.exp(dense - value)
    return value / dense if dense else float("nan")


def relative_words(metric: str, value: float, dense: float) -> str:
    if metric == "perplexity":
        return f"{ratio(value / dense)} dense"
    if metric in ("nll", "mlm_loss", "span_loss", "token_loss"):
        return f"{value - dense:+.2f} nats"
    return f"{value / dense:.2f}× dense" if dense else "—"


def dense_value(quality: pd.DataFrame, metric: str) -> float | None:
    rows = quality[(quality["method"] == "dense") & (quality["metric"] == metric)]
    return float(rows["value"].iloc[0]) if len(rows) else None


def quality_rows(quality: pd.DataFrame, metric: str, target: float | None = None, nm: str | None = None):
    rows = quality[(quality["metric"] == metric) & (quality["method"] != "dense")]
    if nm is not None:
        rows = rows[rows["nm"] == nm]
    if target is not None:
        rows = rows[np.isclose(rows["target_sparsity"].astype(float), target)]
    return [dict(r) for _, r in rows.iterrows()]


def kl_by_target(results: list[ModelResults]) -> pd.DataFrame:
    frames = [
        m.quality[
            (m.quality["metric"] == "kl_from_dense")
            & (m.quality["method"] != "dense")
            & (m.quality["nm"] == "")
        ].assign(model=m.name)
        for m in results
        if len(m.quality)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def lowest_target_is_best(kl: pd.DataFrame) -> bool | None:
    """Whether, for every model and method with several targets, KL from dense is smallest at the lowest
    target measured (None: no method has several targets)."""
    verdicts = []
    for _, g in kl.groupby(["model", "method"]):
        if g["target_sparsity"].nunique() > 1:
            verdicts.append(float(g.loc[g["target_sparsity"].idxmin(), "value"]) <= float(g["value"].min()))
    return all(verdicts) if verdicts else None


def half_sparsity_clause(kl: pd.DataFrame) -> str:
    """The clause that calls 50% 'where one-shot quality holds best', only when the data say so."""
    from ..html import say

    if not len(kl) or not np.isclose(kl["target_sparsity"].min(), 0.5):
        return ""
    return say("findings").half_clause(lowest_target_is_best(kl))


def kl_leaders(m: ModelResults, target: float = 0.5, least: int = 1) -> list[str]:
    """The methods leading on KL from dense at `target` (more than one where their intervals overlap); none
    where fewer than `least` methods were scored."""
    rows = quality_rows(m.quality, "kl_from_dense", target, "") if len(m.quality) else []
    if len(rows) < max(least, 1):
        return []
    return [r["method"] for r in ranking(rows, lower_better=True)["leaders"]]


def calibrated_count(results: list[ModelResults], target: float = 0.5) -> tuple[int, int, int]:
    """(cases where a calibrated method leads alone, cases where it leads tied with magnitude, cases) over
    models at `target`, ranked on KL from dense with the noise rule of `ranking`."""
    alone = tied = cases = 0
    for m in results:
        leaders = set(kl_leaders(m, target, least=2))  # a lead needs someone to lead
        if not leaders:
            continue
        cases += 1
        if leaders <= set(CALIBRATED):
            alone += 1
        elif leaders & set(CALIBRATED):
            tied += 1
    return alone, tied, cases


def calibrated_sentence(alone: int, tied: int, cases: int,
                        ran: tuple[str, ...] = ("Wanda", "SparseGPT")) -> str:
    """Whether a calibrated method leads on KL at 50%, in words that read right for any count (never
    "0 of 1"); `ran` names the calibrated methods these results hold."""
    from ..html import say

    return say("findings").calibrated(alone, tied, cases, list(ran)) if cases else ""


def scale_sentence(results: list[ModelResults], published: pd.DataFrame, strong: bool = False) -> str:
    """SparseGPT at 50% on a causal LM here against OPT-125M in the paper, as perplexity ratios to dense."""
    from ..html import say

    ref = published[(published["model"] == "OPT-125M") & (published["setting"] == "SparseGPT 50%")]
    dense_ref = published[(published["model"] == "OPT-125M") & (published["setting"] == "dense")]
    for m in results:
        if primary_metric(m.quality) != "perplexity" or not len(ref):
            continue
        rows = quality_rows(m.quality, "perplexity", 0.5, "")
        vocab = getattr(m, "vocab_size", None)
        ours = [r for r in rows if r["method"] == "sparsegpt" and not collapsed(r, vocab)]
        dense = dense_value(m.quality, "perplexity")
        if not ours or not dense:
            continue
        mine = float(ours[0]["value"]) / dense
        theirs = float(ref["perplexity"].iloc[0]) / float(dense_ref["perplexity"].iloc[0])
        span = interval(ours[0])  # the pruned perplexity's interval over the dense value
        lo, hi = (span[0] / dense, span[1] / dense) if span else (mine / (1 + TIE), mine * (1 + TIE))
        how = "more than" if lo > theirs else "less than" if hi < theirs else "about as much as"
        shown = f" [{ratio(lo)}, {ratio(hi)}]" if span else ""
        return say("findings").scale(ratio(mine), shown, m.name, ratio(theirs), how, model_note(m), strong)
    return ""


def hidden_by_loss(quality: pd.DataFrame, target: float = 0.5) -> tuple[dict, dict] | None:
    """A speech model's pair of runs at `target` whose teacher-forced token losses cannot be separated but
    whose WERs can: (better, worse) by WER, the pair furthest apart; None when the loss tells them apart."""
    if "metric" not in quality or not {"token_loss", "wer"} <= set(quality["metric"]):
        return None
    loss = {r["method"]: r for r in quality_rows(quality, "token_loss", target, "")}
    wer = {r["method"]: r for r in quality_rows(quality, "wer", target, "")}
    pairs = [(wer[a], wer[b]) for a in wer for b in wer if a in loss and b in loss and
             float(wer[a]["value"]) < float(wer[b]["value"]) and separated(wer[a], wer[b]) and
             not separated(loss[a], loss[b])]
    return max(pairs, key=lambda p: float(p[1]["value"]) - float(p[0]["value"])) if pairs else None


def model_note(m: ModelResults) -> str:
    """What about a model's own weights qualifies any comparison of it (the registry's note), short."""
    info = m.dist.summary.get("model_info", {}) if getattr(m, "dist", None) is not None else {}
    told = info.get("note", "") + info.get("source", "")
    notes = ["it is the instruction-tuned (Instruct) model, not a base model like the papers'"
             if "Instruct" in told else "",
             "its weights went through 4-bit (Q4_1) quantisation" if "Q4_1" in told else ""]
    return " and ".join(n for n in notes if n)



def usable_sentence(model: str, quality: pd.DataFrame, target: float = 0.5, factor: float = 2.0,
                    strong: bool = False) -> str:
    """For a speech model: does any pruned run keep WER within `factor` × dense? Said plainly either way:
    'not usable' only where every run's whole interval lies above the limit; otherwise, where an interval
    reaches below it, too few words to tell."""
    from ..html import say

    dense = dense_value(quality, "wer")
    if dense is None:
        return ""
    rows = [r for r in quality_rows(quality, "wer", target) if r["target_sparsity"] == target]
    if not rows:
        return ""
    limit = factor * max(dense, 0.01)
    best = min(rows, key=lambda r: float(r["value"]))

    def names(runs):
        return [f"{r['method']}{' ' + r['nm'] if r['nm'] else ''}" for r in runs]

    usable = [r for r in rows if float(r["value"]) <= limit]
    reach = [r for r in rows if (interval(r) or (float(r["value"]),) * 2)[0] <= limit]
    return say("findings").usable(
        num(best["value"]), best["method"], num(dense), model, target, f"{factor:.0f}", num(limit),
        names(usable), names(reach), plural((counts(best) or (0, 0))[1], "word"), strong)


def iterative_runs(pruning: pd.DataFrame) -> pd.DataFrame:
    """Runs that pruned in steps (an `iterations` or `steps` column above 1, or a method named iterative)."""
    if not len(pruning):
        return pruning
    steps = column(pruning, "iterations").fillna(column(pruning, "steps")).fillna(1)
    return pruning[(steps > 1) | pruning["method"].str.contains("iterative")]
