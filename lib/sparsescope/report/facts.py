"""The report's facts: numbers computed from saved results, and the conditions a sentence checks before it
draws a conclusion. Functions take tables and return plain values or one sentence, so every wording rule can
be tested on synthetic data; the templates (templates/*.md.j2) only arrange what these return."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.distribution import Distribution, load_distribution
from ..artifacts import results_path
from ..errors import SparsescopeError
from ..evaluation.runtime import crossovers as kernel_crossovers
from ..pruning.runs import run_label
from ..sources.anatomy import ROLES

TEXT_COLUMNS = (
    "method",
    "nm",
    "kind",
    "structure",
    "metric",
    "shape_or_model",
    "device",
    "run",
    "checkpoint",
    "calibration_note",
    "index_coding",
    "interleaved",
    "crossover_sparsity",
    "name",
    "stack",
    "component",
)
CALIBRATED = ("wanda", "sparsegpt")
MAGNITUDE = ("global_magnitude", "layer_magnitude")


# ------------------------------------------------------------------------------------------- loading
def read_table(path: Path) -> pd.DataFrame:
    """A results CSV, empty when absent; text columns blank instead of NaN (nm = "" for unstructured)."""
    if not Path(path).exists():
        return pd.DataFrame()
    table = pd.read_csv(path)
    for col in TEXT_COLUMNS:
        if col in table and col != "crossover_sparsity":
            table[col] = table[col].fillna("").astype(str)
    return table


def column(table: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, NaN where blank or absent (older results lack the newer columns)."""
    if name not in table:
        return pd.Series(np.nan, index=table.index, dtype=float)
    return pd.to_numeric(table[name], errors="coerce")


def _json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class ModelResults:
    """Everything saved for one model; a stage that did not run leaves its tables empty."""

    name: str
    dist: Distribution
    pruning: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_matrix: pd.DataFrame = field(default_factory=pd.DataFrame)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)
    runtime: pd.DataFrame = field(default_factory=pd.DataFrame)
    crossovers: pd.DataFrame = field(default_factory=pd.DataFrame)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    transcripts: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)   # default-grid runs that could not apply
    bench_params: dict = field(default_factory=dict)
    prune_params: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.dist.summary["family"]


def load_model(results_dir: str | os.PathLike, model: str) -> ModelResults:
    folder = results_path(results_dir, model, "distribution")
    if not (folder / "summary.json").exists():
        raise SparsescopeError(
            f"no distribution results for {model!r} in {folder}: run `make report` "
            f"(or notebook 01 with out_dir={folder}) first"
        )
    prune_dir = results_path(results_dir, model, "pruning")
    bench = results_path(results_dir, model, "benchmarks")
    pruning = read_table(prune_dir / "pruning.csv")
    runtime = read_table(bench / "runtime.csv")
    return ModelResults(
        name=model,
        dist=load_distribution(folder),
        pruning=pruning,
        per_matrix=per_matrix_table(pruning, prune_dir),
        sizes=read_table(bench / "size.csv"),
        runtime=runtime,
        crossovers=crossovers_of(runtime, read_table(bench / "crossovers.csv")),
        quality=read_table(bench / "quality.csv"),
        transcripts=read_table(bench / "transcripts.csv"),
        skipped=read_table(prune_dir / "skipped.csv"),
        bench_params=_json(bench / "manifest.json").get("parameters", {}),
        prune_params=_json(prune_dir / "manifest.json").get("parameters", {}),
    )


def skipped_sentence(models: list[ModelResults]) -> str:
    """One sentence naming the default-grid runs left out of a model, and why (empty when none was)."""
    said = []
    for m in models:
        for reason, rows in m.skipped.groupby("reason", sort=False) if len(m.skipped) else []:
            runs = " and ".join(run_label(r.method, float(r.target_sparsity), "") for r in rows.itertuples())
            why = reason.removeprefix("ffn: ").removeprefix("heads: ").rstrip(".")
            said.append(f"{runs} of {m.name} ({why})")
    if not said:
        return ""
    return ("The default grid left out what cannot apply to a model: " + "; ".join(said) + ".")


def crossovers_of(runtime: pd.DataFrame, saved: pd.DataFrame) -> pd.DataFrame:
    """Crossovers recomputed from the kernel rows, so results measured before the rule asked for an interval
    above 1.0 are read by today's rule; the saved crossovers.csv only where no kernel rows exist."""
    kernel = runtime[runtime["kind"].astype(str).str.startswith("kernel-")] if "kind" in runtime else runtime
    return pd.DataFrame(kernel_crossovers(kernel.to_dict("records"))) if len(kernel) else saved


def per_matrix_table(pruning: pd.DataFrame, prune_dir: Path) -> pd.DataFrame:
    """Per-matrix sparsity of every sparse run (structured runs are smaller models: left out). A run folder
    is looked up beside pruning.csv when the recorded checkpoint path has moved (results copied)."""
    frames = []
    for row in pruning.itertuples():
        if getattr(row, "kind", "") == "structured":
            continue
        folder = Path(row.checkpoint).parent
        path = folder / "sparsity_by_tensor.csv"
        if not path.exists():
            path = Path(prune_dir) / folder.name / "sparsity_by_tensor.csv"
        if not path.exists():
            continue
        df = read_table(path)
        frames.append(
            df.assign(
                method=row.method,
                target_sparsity=row.target_sparsity,
                nm=row.nm,
                run=run_label(row.method, row.target_sparsity, row.nm),
                sparsity=df["n_zero"] / df["n"],
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ------------------------------------------------------------------------------------ formatting
def pct(x: float, digits: int | None = None) -> str:
    """A share as a percentage with enough digits to be non-zero when it is."""
    v = 100.0 * float(x)
    if digits is not None:
        return f"{v:.{digits}f}%"
    if v == 0:
        return "0%"
    if 99.95 <= v < 100:  # 99.995%, never a rounded 100% for a matrix that keeps a few weights
        d = 2
        while f"{v:.{d}f}".startswith("100") and d < 8:
            d += 1
        return f"{v:.{d}f}%"
    if v >= 10:
        return f"{v:.1f}%"
    return f"{v:.2g}%" if v < 1 else f"{v:.2f}%"


def num(v: float) -> str:
    """A number as people read it: no 1.057e+05, thousands separated, three significant digits."""
    v = float(v)
    if not math.isfinite(v):
        return "—"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.1f} M"
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a == 0:
        return "0"
    if a < 1e-4:
        return f"{v:.1e}"
    if a < 1e-3:
        return f"{v:.2g}"
    return f"{v:.3g}"


def millions(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def fixed1(x: float) -> str:
    """One decimal, with no '-0.0' for a value that rounds to zero."""
    return f"{round(float(x), 1) or 0.0:.1f}"


def shared_values(pairs: list[tuple[str, str]], n_models: int) -> list[tuple[str, str]]:
    """(who, value as printed) with the models that print the same value named together, or as 'every
    model' when all of them do: one finding is not repeated once per model."""
    groups: dict[str, list[str]] = {}
    for who, value in pairs:
        groups.setdefault(value, []).append(who)
    if len(groups) == 1 and len(pairs) == n_models > 1:
        return [("every model", pairs[0][1])]
    return [(join(names), value) for value, names in groups.items()]


def span(lo: float, hi: float, fmt=None) -> str:
    """'lo–hi' as printed, or one number when both ends print the same (no '2.1–2.1')."""
    fmt = fmt or num
    a, b = fmt(lo), fmt(hi)
    return a if a == b else f"{a}–{b}"


def ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×" if x < 1000 else f"{num(x)}×"


# ------------------------------------------------------------------------------------------ noise
def speed_interval(row) -> tuple[float, float] | None:
    lo, hi = (
        (row.get(k) for k in ("speedup_lo", "speedup_hi"))
        if isinstance(row, dict)
        else (getattr(row, "speedup_lo", None), getattr(row, "speedup_hi", None))
    )
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def speed_words(speedup: float, interval: tuple[float, float] | None) -> str:
    """A latency ratio as a reader may take it: an interval that holds 1.0 is no measurable change; without
    a recorded interval the ratio is printed but not called an effect."""
    if interval is None:
        return f"{speedup:.2f}× dense speed (no interval recorded, so not called a change)"
    lo, hi = interval
    band = f"95% interval {lo:.2f}–{hi:.2f}×"
    if lo <= 1.0 <= hi:
        return f"no measurable change ({speedup:.2f}×, {band})"
    if lo > 1.0:
        return f"{speedup:.2f}× faster ({band})"
    return f"{1 / speedup:.2f}× slower ({speedup:.2f}×, {band})"


def speed_cell(speedup: float, interval: tuple[float, float] | None) -> str:
    """The same verdict, short enough for a table cell."""
    if interval is None:
        return f"{speedup:.2f}× (no interval)"
    lo, hi = interval
    verdict = "no change" if lo <= 1.0 <= hi else "faster" if lo > 1 else "slower"
    return f"{speedup:.2f}× [{lo:.2f}–{hi:.2f}] {verdict}"


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
    r = ranking(rows, lower_better)
    rule = (
        ""
        if r["intervals"] or not say_rule
        else f" (no interval recorded: gaps under {TIE:.0%} are not ranked)"
    )
    if len(r["leaders"]) == 1:
        head = f"{fmt(r['best'])} is best, clear of the others{rule}"
    else:
        head = f"{join([fmt(x) for x in r['leaders']])} are not separable{rule}"
    tail = f"; behind: {join([fmt(x) for x in r['rest']])}" if r["rest"] else ""
    return head + tail


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


# ------------------------------------------------------------------------------ matrix roles
# roles come from the model's anatomy (sources/anatomy.py), stored with every tensor's row
ROLE_LABELS = {
    "up": "up/fc1",
    "down": "down/fc2",
    "gate_up": "gate+up",
    "cross q": "x-q",
    "cross k": "x-k",
    "cross v": "x-v",
    "cross qkv": "x-qkv",
    "cross o": "x-o",
}


def matrix_roles(frame: pd.DataFrame) -> pd.Series:
    """The role of each prunable matrix row (q, k, v, o, gate, up, down; 'cross …'), as the anatomy named it
    when the row was written; results written before roles were recorded show the tensor's name."""
    if "role" not in frame:
        return frame["name"]
    return frame["role"].where(frame["role"].fillna("").astype(str) != "", frame["name"])


def role_order(roles) -> list[str]:
    known = [r for r in ROLES if r in set(roles)]
    return known + sorted(set(roles) - set(ROLES))


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def role_table(results: ModelResults, method: str = "global_magnitude") -> pd.DataFrame:
    """Per matrix role: its share of the prunable weights, share below 1e-2, RMS |w|, median excess kurtosis,
    and the share `method` zeroes at each of its targets."""
    t = results.dist.tensors
    t = t[t["prunable"].astype(str).str.lower() == "true"].assign(role=matrix_roles)
    t = t.assign(sq=t["n"] * (t["std"] ** 2 + t["mean"] ** 2), below=t["n"] * t["frac_below_1e-2"])
    g = t.groupby("role")
    out = pd.DataFrame(
        {
            "matrices": g.size(),
            "weights": g["n"].sum() / t["n"].sum(),
            "below 1e-2": g["below"].sum() / g["n"].sum(),
            "rms": np.sqrt(g["sq"].sum() / g["n"].sum()),
            "kurtosis": g["excess_kurtosis"].median(),
        }
    )
    pm = results.per_matrix
    if len(pm):
        runs = pm[(pm["method"] == method) & (pm["nm"] == "")].assign(role=matrix_roles)
        for target, rows in runs.groupby("target_sparsity"):
            s = rows.groupby("role")
            out[f"zeroed at {target:.0%}"] = s["n_zero"].sum() / s["n"].sum()
    return out.loc[role_order(out.index)]


# ---------------------------------------------------------------------------------- layer collapse
COLLAPSED = 0.99


def layer_collapse(per_matrix: pd.DataFrame, method: str = "global_magnitude") -> pd.DataFrame:
    """Per target of `method`: the most-pruned matrix (share zeroed, weights left) and how many matrices are
    at least 99% zero — the matrices a global threshold all but removes."""
    if not len(per_matrix):
        return pd.DataFrame()
    runs = per_matrix[(per_matrix["method"] == method) & (per_matrix["nm"] == "")]
    rows = []
    for target, g in runs.groupby("target_sparsity"):
        top = g.loc[g["sparsity"].idxmax()]
        rows.append(
            {
                "target": float(target),
                "matrix": top["name"],
                "zeroed": float(top["sparsity"]),
                "kept": int(top["n"] - top["n_zero"]),
                "n": int(top["n"]),
                "collapsed": int((g["sparsity"] >= COLLAPSED).sum()),
                "matrices": len(g),
                "least": float(g["sparsity"].min()),
            }
        )
    return pd.DataFrame(rows)


def worst_collapse(found: list[tuple]) -> tuple:
    """The (model, layer-collapse table) pair whose matrix is zeroed most at any target; more matrices
    collapsed break a tie."""
    return max(found, key=lambda nc: (nc[1]["zeroed"].max(), nc[1]["collapsed"].max()))


def most_pruned(found: list[tuple[str, pd.DataFrame]]) -> tuple[str, pd.Series]:
    """(model, layer-collapse row) of the matrix zeroed most at any target of any model."""
    name, c = worst_collapse(found)
    return name, c.loc[c["zeroed"].idxmax()]


def near_collapse(found: list[tuple[str, pd.DataFrame]], near: float = 0.9) -> bool:
    return any(c["zeroed"].max() >= near or int(c["collapsed"].max()) > 0 for _, c in found)


def collapse_overview(found: list[tuple[str, pd.DataFrame]]) -> str:
    """Where no matrix comes near collapse, that in one sentence with the most-pruned matrix, instead of
    calling a matrix at 50.1% 'the extreme case'; otherwise the worst model's collapse sentence."""
    if near_collapse(found):
        return "The extreme case: " + collapse_sentence(*worst_collapse(found))
    name, r = most_pruned(found)
    return (
        f"No matrix comes near collapse at these targets: the most-pruned, `{r['matrix']}` of {name} at "
        f"{r['target']:.0%}, is {pct(r['zeroed'])} zero, and no matrix of any model is at least "
        f"{COLLAPSED:.0%} zero."
    )


def collapse_lead(found: list[tuple[str, pd.DataFrame]]) -> str:
    """Challenges' answer on layer collapse, over every model: collapse is claimed only where some matrix
    is (nearly) emptied; where none comes near, the short form (the full one stands under Layer collapse)."""
    name, c = worst_collapse(found)
    if c["zeroed"].max() >= COLLAPSED:
        return "Global magnitude can all but remove whole matrices: " + collapse_sentence(name, c)
    if near_collapse(found):
        return "Global magnitude leaves every matrix partly intact here: " + collapse_sentence(name, c)
    name, r = most_pruned(found)
    return (f"Global magnitude leaves every matrix partly intact here: the most-pruned matrix is "
            f"{pct(r['zeroed'])} zero ({name}; see Layer collapse).")


def collapse_sentence(model: str, collapse: pd.DataFrame) -> str:
    if not len(collapse):
        return f"No global-magnitude run of {model} was found, so layer collapse was not measured."
    first, last = collapse.iloc[0], collapse.iloc[-1]
    text = (
        f"{pct(first['zeroed'])} of `{first['matrix']}` is zeroed by global magnitude at "
        f"{first['target']:.0%} in {model}"
    )
    if last["target"] != first["target"]:
        if last["matrix"] == first["matrix"]:
            text += f"; at {last['target']:.0%} only {last['kept']:,} of its {last['n']:,} weights survive"
        else:
            text += (
                f"; at {last['target']:.0%} the most-pruned matrix, `{last['matrix']}`, keeps "
                f"{last['kept']:,} "
                f"of {last['n']:,}"
            )
    text += (
        f", and {last['collapsed']} of {last['matrices']} matrices are at least {COLLAPSED:.0%} zero "
        f"at {last['target']:.0%}."
    )
    if collapse["collapsed"].max() == 0 and collapse["zeroed"].max() < 0.9:
        text += " No matrix comes near collapse at these targets."
    return text


# ------------------------------------------------------------------------------- size baselines
def _dims(shape) -> list[int]:
    return [int(x) for x in str(shape).split("x") if x.strip()]


def size_baselines(tensors: pd.DataFrame) -> dict[str, int]:
    """Bytes of the same model cast, computed from its tensors' shapes (no file written): fp16 for every
    tensor; int8 for tensors of 2 or more dimensions with one fp16 scale per row (first dimension), 1-D
    tensors in fp16; 4-bit in groups of 128 weights with one fp16 scale per group, 1-D tensors in fp16."""
    fp16 = int8 = q4 = 0
    for shape, n in zip(tensors["shape"], tensors["n"]):
        dims, n = _dims(shape), int(n)
        fp16 += 2 * n
        if len(dims) >= 2:
            int8 += n + 2 * dims[0]
            q4 += math.ceil(n / 2) + 2 * math.ceil(n / 128)
        else:
            int8 += 2 * n
            q4 += 2 * n
    return {"fp16": fp16, "int8": int8, "4-bit": q4}


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype as tensors.csv writes it ('float32', 'bfloat16', 'int64', ...)."""
    import torch
    kind = getattr(torch, str(dtype).removeprefix("torch."), None)
    return torch.empty(0, dtype=kind).element_size() if isinstance(kind, torch.dtype) else 4


def beside_weights(tensors: pd.DataFrame, dense_bytes: float, buffers: list[str], model: str,
                   share: float = 0.01) -> str:
    """One sentence when the dense file holds more than `share` of its bytes besides the weights counted
    (e.g. GPT-2's causal-mask buffers), since the casts are computed on those weights alone."""
    stored = sum(int(n) * itemsize(d) for n, d in zip(tensors["n"], tensors["dtype"]))
    extra = dense_bytes - stored
    if extra <= share * dense_bytes:
        return ""
    what = ("the file's own overhead" if not buffers else
            f"1 buffer that is not a weight, {buffers[0]}, and the file's own overhead" if len(buffers) == 1
            else f"{len(buffers)} buffers that are not weights, such as {buffers[0]}, and the file's own "
            "overhead")
    return (f"{model}'s dense file holds {megabytes(extra)} ({pct(extra / dense_bytes)}) besides its "
            f"weights: {what}; the casts count the weights only.")


BASELINE_WORDS = {
    "fp16": "fp16: every tensor in 16 bits",
    "int8": "int8: one byte per weight of every matrix, one fp16 scale per row; 1-D tensors fp16",
    "4-bit": "4-bit: groups of 128 weights with one fp16 scale each; 1-D tensors fp16",
}


# ------------------------------------------------------------------------------------ runtime
def rows_of(runtime: pd.DataFrame, kind: str) -> pd.DataFrame:
    return runtime[runtime["kind"] == kind] if len(runtime) and "kind" in runtime else pd.DataFrame()


def not_measured(runtime: pd.DataFrame, pruning: pd.DataFrame | None = None) -> list[str]:
    """What the runtime table lacks, one line each, so a figure of what exists says what does not."""
    kinds = set(runtime["kind"]) if len(runtime) and "kind" in runtime else set()
    lines = []
    if "dense-kernels" not in kinds:
        lines.append("whole model with dense kernels (needs a global_magnitude run near 50%)")
    if "kernel-csr" not in kinds:
        lines.append("CSR kernel sweep")
    if "sparse-kernels-e2e" not in kinds:
        lines.append("whole model with CSR layers (needs a layer_magnitude run above the CSR crossover)")
    if "kernel-2:4" not in kinds:
        lines.append("2:4 sparse tensor cores (needs a CUDA GPU)")
    structured = (
        pruning is not None and len(pruning) and "kind" in pruning and (pruning["kind"] == "structured").any()
    )
    if structured and not kinds & {"structured-prefill", "structured-decode"}:
        lines.append("structured runs' latency")
    return lines


def e2e_words(runtime: pd.DataFrame, kind: str, unit: str = "tokens") -> list[str]:
    """Each end-to-end row as words: batch, tokens per batch, sequence length, verdict (`unit`: what a
    sequence is made of, e.g. log-mel frames for a speech model)."""
    out = []
    for _, r in rows_of(runtime, kind).iterrows():
        batch = column(pd.DataFrame([r]), "batch").iloc[0]
        seqlen = column(pd.DataFrame([r]), "seqlen").iloc[0]
        shape = f"batch {int(batch)}" if math.isfinite(batch) else "one batch"
        if kind.endswith("-decode"):  # per new token with the KV cache, after a prompt of seqlen tokens
            shape = f"decode, {int(r['tokens'])} new tokens after a {int(seqlen)}-token prompt"
        else:
            shape += f" × {int(seqlen)} {unit}" if math.isfinite(seqlen) else f" ({int(r['tokens'])} {unit})"
        run = str(r.get("run", "") or "")
        label = f"{run}, {shape}" if run and run != "nan" else shape  # which smaller model, when several
        out.append(f"{label}: {speed_words(float(r['speedup']), speed_interval(dict(r)))}")
    return out


def all_hold_one(rows: pd.DataFrame) -> bool | None:
    """True when every row's interval holds 1.0; None when some row has no interval."""
    if not len(rows):
        return None
    spans = [speed_interval(dict(r)) for _, r in rows.iterrows()]
    if any(s is None for s in spans):
        return None
    return all(lo <= 1.0 <= hi for lo, hi in spans)


def bsr_sentence(runtime: pd.DataFrame) -> str:
    bsr = rows_of(runtime, "kernel-bsr")
    if not len(bsr):
        return ""
    best = bsr.loc[pd.to_numeric(bsr["speedup"]).idxmax()]
    where = (f"{best['shape_or_model']}, {float(best['sparsity']):.0%}, "
             f"{plural(int(best['tokens']), 'token')} per batch")
    span = speed_interval(dict(best))
    faster = (span[0] > 1) if span else float(best["speedup"]) > 1
    if faster and span is None:
        return (
            f"BSR (16×16 blocks) reached at best {num(best['speedup'])}× dense ({where}), "
            "without a recorded interval: a single timing, not called a win."
        )
    if faster:
        return (
            f"BSR (16×16 blocks) beat dense at best {num(best['speedup'])}× ({where}, "
            f"{speed_words(float(best['speedup']), span)}), "
            "even on unstructured masks."
        )
    return (
        f"BSR (16×16 blocks) reached at best {float(best['speedup']):.2f}× dense ({where}): on these "
        "unstructured masks few 16×16 blocks are empty, so the block format did not pay off."
    )


def crossovers_measured(crossovers: pd.DataFrame) -> bool:
    """Whether every CSR crossover was decided by intervals (results before intervals: by medians)."""
    csr = crossovers[crossovers["kind"] == "kernel-csr"] if len(crossovers) else crossovers
    return bool(len(csr)) and "rule" in csr and bool((csr["rule"] == "interval").all())


def crossovers_timed_once(crossovers: pd.DataFrame) -> bool:
    """Whether the CSR sweep was timed once per point: no interval, so no crossover is claimed."""
    csr = crossovers[crossovers["kind"] == "kernel-csr"] if len(crossovers) else crossovers
    return bool(len(csr)) and "rule" in csr and bool((csr["rule"] == "one repeat").any())


def crossover_words(crossovers: pd.DataFrame, runtime: pd.DataFrame) -> list[str]:
    """Per tokens per batch, the measured sparsity from which CSR wins (crossovers() decides), as a span over
    the matrix shapes."""
    csr = crossovers[crossovers["kind"] == "kernel-csr"] if len(crossovers) else pd.DataFrame()
    if not len(csr):
        return []
    top = float(pd.to_numeric(rows_of(runtime, "kernel-csr")["sparsity"]).max()) if len(runtime) else 1.0
    out = []
    for n in sorted(csr["tokens"].unique()):
        group = csr[csr["tokens"] == n]
        tokens = plural(int(n), "token")
        if crossovers_timed_once(group):
            out.append(f"{tokens} per batch: timed once per point, so no interval and no crossover claimed")
            continue
        at = pd.to_numeric(group["crossover_sparsity"], errors="coerce")
        found, never = at.dropna(), int(at.isna().sum())
        # an interval above 1.0 makes a win measurable; rows without one are read by their medians
        wins = "measurably faster" if crossovers_measured(group) else "faster (medians, no interval)"
        if len(found):
            span_ = f"{found.min():.0%}" + (
                f"–{found.max():.0%}" if round(found.min(), 2) != round(found.max(), 2) else ""
            )
            tail = f"; never up to {top:.0%} for {plural(never, 'shape')}" if never else ""
            out.append(f"{tokens} per batch: CSR {wins} at {span_} sparsity and every measured sparsity "
                       f"above{tail}")
        else:
            out.append(f"{tokens} per batch: CSR never {wins.split(' (')[0]} up to {top:.0%}")
    return out


# ------------------------------------------------------------------------- conditional conclusions
def threshold_sentence(medians: dict[str, float], factor: float = 2.0) -> str:
    """Whether one magnitude threshold could be shared across models: only when their median |w| differ by
    at least `factor` does the data say it cannot."""
    if len(medians) < 2:
        return ""
    hi, lo = max(medians, key=medians.get), min(medians, key=medians.get)
    spread = medians[hi] / medians[lo]
    head = (
        f"At 50% sparsity a magnitude threshold sits at the median |w|: {num(medians[hi])} for {hi} but "
        f"{num(medians[lo])} for {lo}, a factor {spread:.1f}"
    ) if num(medians[hi]) != num(medians[lo]) else (  # alike as printed: no pair to set against each other
        f"At 50% sparsity a magnitude threshold sits at the median |w|: {num(medians[hi])} for every model"
    )
    if spread >= factor:
        return (
            head + ", so a threshold is a property of each model and cannot be carried from one to another."
        )
    if num(medians[hi]) == num(medians[lo]):
        return head + ", so on these models scale alone does not rule out a shared threshold."
    return (
        head + f", within {factor:.0f}× of each other, so on these models scale alone does not rule out a "
        "shared threshold."
    )


def histogram_sentence(model: str, acc) -> str:
    """Where a model's |w| histogram peaks and how many decades its middle 98% spans, from exact counts."""
    from ..analysis.statistics import log10_histogram

    h = log10_histogram(acc)
    k = int(np.argmax(h["counts"]))
    peak = math.sqrt(h["edges"][k] * h["edges"][k + 1])
    q = acc.quantiles((0.01, 0.99))
    lo, hi = q["0.01"], q["0.99"]
    middle = (
        f"the middle 98% of its weights lie between {num(lo)} and {num(hi)}, "
        f"{math.log10(hi / lo):.1f} decades" if lo > 0 else f"over 1% of its weights are exactly 0, the rest "
        f"below {num(hi)} for 99%"
    )
    zeros = acc.n_zero / max(acc.n, 1)
    return (
        f"{model}: the most populated log-spaced bin of |w| is around {num(peak)}, holding "
        f"{pct(h['counts'][k] / max(acc.n, 1))} of its {num(acc.n)} weights; {middle}; "
        + (f"{pct(zeros)} are exactly 0." if zeros else "none is exactly 0.")
    )


def cdf_sentence(model: str, summary: dict) -> str:
    """The magnitudes one-shot global thresholds would cut at, read off a group's saved summary (its exact
    quantiles and shares below 1e-3 and 1e-2, counted on the raw floats when the model was read)."""
    q, below = summary["quantiles"], summary["frac_below"]
    return (
        f"{model}: a 50% magnitude threshold on its prunable weights sits at |w| = {num(q['0.5'])} and a 90% "
        f"one at {num(q['0.9'])}; {pct(below['1e-3'])} of them are below 1e-3 and {pct(below['1e-2'])} below "
        "1e-2."
    )


def depth_sentence(
    stack: str, model: str, blocks: list[int], medians: list[float], min_blocks: int = 8
) -> str:
    """Median |w| against depth, with a trend named only when there are enough blocks to test one (Spearman,
    p < 0.05 over at least `min_blocks`)."""
    from scipy.stats import spearmanr

    lo, hi = int(np.argmin(medians)), int(np.argmax(medians))
    spread = (
        f"the median |w| ranges from {num(medians[lo])} (block {blocks[lo]}) to {num(medians[hi])} "
        f"(block {blocks[hi]})"
    ) if num(medians[lo]) != num(medians[hi]) else f"the median |w| is {num(medians[lo])} in every block"
    if len(blocks) < min_blocks:
        return (
            f"{model} {stack}: {spread}; over {plural(len(blocks), 'block')} no depth trend is claimed "
            f"(fewer than {min_blocks})."
        )
    rho, p = spearmanr(blocks, medians)
    if p < 0.05 and abs(rho) >= 0.5:
        way = "grows" if rho > 0 else "shrinks"
        return f"{model} {stack}: {spread}; it {way} with depth (Spearman ρ = {rho:.2f}, p = {p:.2g})."
    return (
        f"{model} {stack}: {spread}; no monotone depth trend (Spearman ρ = {rho:.2f}, p = {p:.2g}, "
        f"{len(blocks)} blocks)."
    )


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
    if not len(kl) or not np.isclose(kl["target_sparsity"].min(), 0.5):
        return ""
    holds = lowest_target_is_best(kl)
    if holds:
        return ", the lowest target measured and where every method's KL from dense is smallest"
    if holds is None:
        return ", the only unstructured target measured"
    return ", the lowest target measured (though not every method's KL is smallest there)"


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
    if not cases:
        return ""
    names = " or ".join(ran)
    who = f"A calibrated method ({names})" if len(ran) > 1 else ran[0]
    models = "the one model ranked" if cases == 1 else f"all {cases} models ranked"
    if alone == cases:
        return f"{who} leads on KL clear of the others in {models}."
    if alone == 0 and tied == 0:
        where = "the one model ranked" if cases == 1 else f"any of the {cases} models ranked"
        if len(ran) == 1:
            return f"{ran[0]} does not lead on KL in {where}; another method does."
        return f"No calibrated method ({names}) leads on KL in {where}; another method does."
    parts = [f"clear of the others in {alone} of {cases} models" if alone else ""]
    parts.append(f"tied with another method (intervals overlap) in {tied} of {cases}" if tied else "")
    return f"{who} leads on KL " + " and ".join(p for p in parts if p) + "."


def scale_sentence(results: list[ModelResults], published: pd.DataFrame) -> str:
    """SparseGPT at 50% on a causal LM here against OPT-125M in the paper, as perplexity ratios to dense."""
    ref = published[(published["model"] == "OPT-125M") & (published["setting"] == "SparseGPT 50%")]
    dense_ref = published[(published["model"] == "OPT-125M") & (published["setting"] == "dense")]
    for m in results:
        if primary_metric(m.quality) != "perplexity" or not len(ref):
            continue
        rows = quality_rows(m.quality, "perplexity", 0.5, "")
        ours = [r for r in rows if r["method"] == "sparsegpt"]
        dense = dense_value(m.quality, "perplexity")
        if not ours or not dense:
            continue
        mine = float(ours[0]["value"]) / dense
        theirs = float(ref["perplexity"].iloc[0]) / float(dense_ref["perplexity"].iloc[0])
        span = interval(ours[0])  # the pruned perplexity's interval over the dense value
        lo, hi = (span[0] / dense, span[1] / dense) if span else (mine / (1 + TIE), mine * (1 + TIE))
        how = "more than" if lo > theirs else "less than" if hi < theirs else "about as much as"
        shown = f" [{ratio(lo)}, {ratio(hi)}]" if span else ""
        origin = model_note(m)
        return (
            f"{ratio(mine)}{shown} dense perplexity for {m.name} under SparseGPT at 50%, against "
            f"{ratio(theirs)} for OPT-125M in the SparseGPT paper: this model loses {how} the paper's "
            "smallest model (different corpus and context length; compare the ratios, not the perplexities"
            + (f"; and {origin}" if origin else "") + ")."
        )
    return ""


def model_note(m: ModelResults) -> str:
    """What about a model's own weights qualifies any comparison of it (the registry's note), short."""
    info = m.dist.summary.get("model_info", {}) if getattr(m, "dist", None) is not None else {}
    return "its weights went through 4-bit (Q4_1) quantisation" if "Q4_1" in (
        info.get("note", "") + info.get("source", "")) else ""


def casting_sentence(
    model: str, baselines: dict[str, int], dense_bytes: float, half_bytes: float | None
) -> str:
    """Whether 50% sparsity in the compressed format beats casting the dense model, in bytes."""
    said = casting_sentences([(model, baselines, dense_bytes, half_bytes)])
    return said[0] if said else ""


def casting_sentences(cases: list[tuple[str, dict[str, int], float, float | None]]) -> list[str]:
    """casting_sentence for many models at once: models with the same verdict (the same casts smaller than
    their 50% checkpoint) share one sentence, so three models do not repeat one finding three times."""
    groups: dict[tuple[str, ...], list] = {}
    for model, base, dense, half in cases:
        if half is not None:
            groups.setdefault(tuple(k for k in ("fp16", "int8", "4-bit") if base[k] < half), []).append(
                (model, base, dense, half))
    out = []
    for beaten, rows in sorted(groups.items(), key=lambda kv: -len(kv[1])):  # the commonest verdict first
        shares = [half / dense for _, _, dense, half in rows]
        if len(rows) == 1:
            head = f"{pct(shares[0])} of the dense bytes for {rows[0][0]} at 50% sparsity"
        elif pct(min(shares)) == pct(max(shares)):
            head = f"{pct(shares[0])} of the dense bytes at 50% sparsity for {join([r[0] for r in rows])}"
        else:
            each = ", ".join(f"{model} {pct(share)}" for (model, *_), share in zip(rows, shares))
            head = f"{span(min(shares), max(shares), pct)} of the dense bytes at 50% sparsity ({each})"
        if not beaten:
            out.append(head + ", smaller than any of the casts computed (fp16, int8, 4-bit).")
            continue
        best = beaten[-1]
        takes = span(min(b[best] / d for _, b, d, _ in rows), max(b[best] / d for _, b, d, _ in rows), pct)
        out.append(
            head + f"; casting alone is smaller{' for each' if len(rows) > 1 else ''} ({join(list(beaten))}; "
            f"{best} would take {takes}), so at this sparsity the zeros buy less than lower precision."
        )
    return out


def usable_sentence(model: str, quality: pd.DataFrame, target: float = 0.5, factor: float = 2.0) -> str:
    """For a speech model: does any pruned run keep WER within `factor` × dense? Said plainly either way."""
    dense = dense_value(quality, "wer")
    if dense is None:
        return ""
    rows = [r for r in quality_rows(quality, "wer", target) if r["target_sparsity"] == target]
    if not rows:
        return ""
    limit = factor * max(dense, 0.01)
    usable = [r for r in rows if float(r["value"]) <= limit]
    best = min(rows, key=lambda r: float(r["value"]))
    head = (f"{num(best['value'])} WER at best for {model} at {target:.0%} ({best['method']}) against "
            f"{num(dense)} dense")
    if not usable:
        # 'not usable' only where the whole interval lies above the limit; otherwise too few words to tell
        open_ = [r for r in rows if (interval(r) or (float(r["value"]),) * 2)[0] <= limit]
        if open_:
            names = join([f"{r['method']}{' ' + r['nm'] if r['nm'] else ''}" for r in open_])
            words = plural((counts(best) or (0, 0))[1], "word")
            return (f"{head}: no method is within {factor:.0f}× dense WER ({num(limit)}), but the interval "
                    f"of {names} reaches below it: {words} scored cannot tell whether it stays usable.")
        return (f"{head}: no method keeps {model} usable at {target:.0%} (usable: WER at most {factor:.0f}× "
                "dense, which no run's interval reaches).")
    names = join([f"{r['method']}{' ' + r['nm'] if r['nm'] else ''}" for r in usable])
    return (
        f"{head}: {names} keep{'s' if len(usable) == 1 else ''} {model} usable (WER at most {factor:.0f}× "
        "dense)."
    )


def iterative_runs(pruning: pd.DataFrame) -> pd.DataFrame:
    """Runs that pruned in steps (an `iterations` or `steps` column above 1, or a method named iterative)."""
    if not len(pruning):
        return pruning
    steps = column(pruning, "iterations").fillna(column(pruning, "steps")).fillna(1)
    return pruning[(steps > 1) | pruning["method"].str.contains("iterative")]
