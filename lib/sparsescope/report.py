"""The report's words and tables, computed from saved results: every number in the prose comes from data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .distribution import Distribution, load_distribution
from .errors import SparsescopeError


def result_slug(model: str) -> str:
    """Folder name for a model's results: registry names stay, paths and hub ids lose their slashes."""
    return model.strip("/").replace("/", "--").replace(" ", "_")


def load_results(results_dir: str | os.PathLike, models: list[str]) -> list[Distribution]:
    out = []
    for model in models:
        folder = Path(results_dir) / result_slug(model) / "distribution"
        if not (folder / "summary.json").exists():
            raise SparsescopeError(f"no distribution results for {model!r} in {folder}: run `make report` "
                                   f"(or notebook 01 with out_dir={folder}) first")
        out.append(load_distribution(folder))
    return out


def pct(x: float) -> str:
    """A share as a percentage with enough digits to be non-zero when it is."""
    v = 100.0 * x
    if v == 0:
        return "0%"
    if v >= 10:
        return f"{v:.1f}%"
    return f"{v:.2g}%" if v < 1 else f"{v:.2f}%"


def millions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def model_selection_table(dists: list[Distribution]) -> pd.DataFrame:
    rows = []
    for d in dists:
        info = d.summary["model_info"]
        rows.append({"model": d.name, "family": d.summary["family"], "architecture": info["architecture"],
                     "parameters": millions(d.summary["n_params"]),
                     "prunable": millions(d.summary["n_prunable"]), "layers": info["layers"],
                     "stored dtype": ", ".join(sorted(d.tensors["dtype"].unique())),
                     "source": info["source"], "why": info["why"]})
    return pd.DataFrame(rows).set_index("model")


def model_selection_text(dists: list[Distribution]) -> str:
    families = sorted({d.summary["family"] for d in dists})
    total = sum(d.summary["n_params"] for d in dists)
    lines = [f"This report covers {len(dists)} model(s) from {len(families)} famil{'y' if len(families) == 1 else 'ies'} "
             f"({', '.join(families)}), {millions(total)} weights in all. "
             "A weight is *prunable* when it is the 2-D matrix of a linear (or GPT-2 Conv1D) layer inside a "
             "transformer block; embeddings, norms, biases, convolutions and output heads are not."]
    for d in dists:
        note = d.summary["model_info"].get("note")
        if note:
            lines.append(f"**Caveat for {d.name}:** {note}.")
    return "\n\n".join(lines)


def histogram_text(d: Distribution) -> str:
    a, p = d.summary["all"], d.summary["prunable"]
    text = (f"**{d.name}** ({d.summary['family']}): {pct(a['frac_below']['1e-2'])} of its {millions(a['n'])} weights "
            f"lie below 1e-2 and {pct(a['frac_below']['1e-3'])} below 1e-3; the median |w| is "
            f"{a['quantiles']['0.5']:.3g} and the 99th percentile {a['quantiles']['0.99']:.3g}. Among the prunable "
            f"weights {pct(p['frac_below']['1e-2'])} lie below 1e-2 (median {p['quantiles']['0.5']:.3g}). "
            f"Exact zeros: {a['n_zero']:,} ({pct(a['frac_zero'])}). The excess kurtosis of the prunable weights is "
            f"{p['excess_kurtosis']:.1f} (0 for a Gaussian), and {pct(p['outlier_frac'])} of them lie beyond six "
            "standard deviations of their own matrix.")
    return text


def cdf_text(dists: list[Distribution]) -> str:
    ranked = sorted(dists, key=lambda d: d.summary["prunable"]["frac_below"]["1e-2"], reverse=True)
    parts = [f"{d.name} {pct(d.summary['prunable']['frac_below']['1e-2'])}" for d in ranked]
    text = ("Share of prunable weights below 1e-2, highest first: " + ", ".join(parts) + ". ")
    if len(ranked) > 1:
        hi, lo = ranked[0], ranked[-1]
        text += (f"At 50% sparsity a global magnitude threshold would sit at |w| ≈ "
                 f"{hi.summary['prunable']['quantiles']['0.5']:.3g} for {hi.name} but "
                 f"{lo.summary['prunable']['quantiles']['0.5']:.3g} for {lo.name}: magnitude scales differ between "
                 "families, which is why one threshold cannot be shared across models.")
    return text


def layer_text(d: Distribution) -> str:
    parts = []
    for stack, items in d.blocks().items():
        medians = np.array([median(acc) for _, acc in items])
        depth = np.arange(len(medians))
        if len(medians) > 2:
            rho = float(pd.Series(depth).corr(pd.Series(medians), method="spearman"))
            trend = ("grows with depth" if rho > 0.5 else "shrinks with depth" if rho < -0.5 else
                     "has no monotone trend with depth") + f" (Spearman ρ = {rho:.2f} over {len(items)} blocks)"
        else:
            trend = f"cannot show a depth trend over only {len(items)} block(s)"
        lo, hi = int(np.argmin(medians)), int(np.argmax(medians))
        parts.append(f"In the {stack} of {d.name} the median prunable |w| {trend}: it ranges from {medians[lo]:.3g} (block {items[lo][0]}) to "
                     f"{medians[hi]:.3g} (block {items[hi][0]}), a factor {medians[hi] / medians[lo]:.2f}.")
    return " ".join(parts)


def median(acc) -> float:
    return acc.quantiles((0.5,))["0.5"]


def statistics_table(dists: list[Distribution]) -> pd.DataFrame:
    rows = []
    for d in dists:
        for group in ("all", "prunable"):
            s = d.summary[group]
            rows.append({"model": d.name, "weights": group, "count": f"{s['n']:,}", "exact zeros": f"{s['n_zero']:,}",
                         **{f"< {k}": pct(v) for k, v in s["frac_below"].items()},
                         "median |w|": f"{s['quantiles']['0.5']:.3g}", "p99 |w|": f"{s['quantiles']['0.99']:.3g}",
                         "excess kurtosis": f"{s['excess_kurtosis']:.1f}", "> 6σ": pct(s["outlier_frac"])})
    return pd.DataFrame(rows).set_index(["model", "weights"])


# -------------------------------------------------------------------------------- sparsification
METHOD_WORDS = {
    "global_magnitude": "**Global magnitude** (the seed's method): one threshold on |w| over all prunable weights of "
                        "the model; the matrices with many small weights lose more.",
    "layer_magnitude": "**Layer-wise magnitude**: the same fraction of the smallest |w| is zeroed in every matrix.",
    "nm_magnitude": "**N:M magnitude**: in every group of M consecutive input weights of a row, only the N largest "
                    "survive — the pattern sparse tensor cores execute (2:4).",
    "wanda": "**Wanda**: each weight is scored by |w| times the norm of its input feature over calibration text, "
             "and the lowest scores of each output row are zeroed; no weight is updated.",
    "sparsegpt": "**SparseGPT**: the mask is chosen column block by column block by the optimal-brain-surgeon "
                 "saliency, and the surviving weights are updated to reconstruct each layer's output on the "
                 "calibration inputs.",
}


def load_pruning(results_dir: str | os.PathLike, model: str):
    from .pruning import per_matrix_sparsity
    folder = Path(results_dir) / result_slug(model) / "pruning"
    if not (folder / "pruning.csv").exists():
        raise SparsescopeError(f"no pruning results for {model!r} in {folder}: run `make report` "
                               f"(or notebook 02 with out_dir={folder}) first")
    table = pd.read_csv(folder / "pruning.csv", keep_default_na=False)
    return folder, table, per_matrix_sparsity(table)


def methods_text(methods) -> str:
    return "\n".join(f"- {METHOD_WORDS[m]}" for m in METHOD_WORDS if m in set(methods))


def pruning_text(model: str, table: pd.DataFrame, per_matrix: pd.DataFrame, dist: Distribution) -> str:
    parts = []
    glob = per_matrix[(per_matrix["method"] == "global_magnitude") & (per_matrix["nm"] == "")]
    if len(glob):
        target = glob["target_sparsity"].iloc[(glob["target_sparsity"] - 0.5).abs().argsort().iloc[0]]
        g = glob[glob["target_sparsity"] == target]
        lo, hi = g.loc[g["sparsity"].idxmin()], g.loc[g["sparsity"].idxmax()]
        parts.append(f"Global magnitude pruning of {model} at {target:.0%} zeroes from {lo['sparsity']:.1f}% "
                     f"({lo['name']}) to {hi['sparsity']:.1f}% ({hi['name']}) of individual matrices; the layer-wise "
                     "methods hold each matrix at the target by construction.")
    unstructured = table[table["nm"] == ""]
    if len(unstructured):
        row = unstructured.iloc[(unstructured["target_sparsity"] - 0.5).abs().argsort().iloc[0]]
        share = dist.summary["n_prunable"] / dist.summary["n_params"]
        parts.append(f"At {row['achieved_sparsity']:.0%} sparsity the compressed checkpoint takes "
                     f"{100 * row['saved_bytes'] / row['dense_bytes']:.1f}% of the dense file "
                     f"({row['saved_bytes'] / 1e6:.1f} MB vs {row['dense_bytes'] / 1e6:.1f} MB); prunable matrices "
                     f"are {share:.0%} of {model}'s weights, the rest is stored as it was.")
        top = unstructured.loc[unstructured["target_sparsity"].idxmax()]
        parts.append(f"At {top['achieved_sparsity']:.0%} it takes {100 * top['saved_bytes'] / top['dense_bytes']:.1f}%.")
    slowest = table.loc[table["seconds"].idxmax()]
    parts.append(f"The slowest run was {slowest['method']} ({slowest['seconds']:.0f} s); the largest peak memory of "
                 f"any run was {table['peak_rss_bytes'].max() / 2 ** 30:.2f} GB.")
    return " ".join(parts)


def size_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for model, t in tables.items():
        for r in t.itertuples():
            rows.append({"model": model, "method": r.method, "target": r.nm or f"{r.target_sparsity:.0%}",
                         "achieved": f"{100 * r.achieved_sparsity:.2f}%", "dense MB": f"{r.dense_bytes / 1e6:.1f}",
                         "saved MB": f"{r.saved_bytes / 1e6:.1f}", "saved / dense": f"{r.saved_bytes / r.dense_bytes:.3f}",
                         "seconds": f"{r.seconds:.1f}", "peak RSS GB": f"{r.peak_rss_bytes / 2 ** 30:.2f}"})
    return pd.DataFrame(rows).set_index(["model", "method", "target"])


# ------------------------------------------------------------------------------------ quality
PRIMARY_METRIC = {"perplexity": "lower", "mlm_loss": "lower", "span_loss": "lower", "token_loss": "lower",
                  "retrieval_top1": "higher"}
# Published one-shot results on WikiText-2 (SparseGPT and Wanda papers), printed beside ours for scale.
PUBLISHED_WIKITEXT2 = pd.DataFrame(
    [("OPT-125M", "dense", 27.66), ("OPT-125M", "magnitude 50%", 193.4), ("OPT-125M", "SparseGPT 50%", 36.7),
     ("OPT-125M", "Wanda 50%", 39.3), ("OPT-125M", "magnitude 2:4", 341.5), ("OPT-125M", "SparseGPT 2:4", 60.7),
     ("OPT-125M", "Wanda 2:4", 81.6), ("LLaMA-2-7B", "dense", 5.12), ("LLaMA-2-7B", "magnitude 50%", 14.89),
     ("LLaMA-2-7B", "SparseGPT 50%", 6.51), ("LLaMA-2-7B", "Wanda 50%", 6.42)],
    columns=["model", "setting", "WikiText-2 perplexity (published)"]).set_index(["model", "setting"])


def load_quality(results_dir: str | os.PathLike, model: str) -> tuple[Path, pd.DataFrame]:
    folder = Path(results_dir) / result_slug(model) / "benchmarks"
    if not (folder / "quality.csv").exists():
        raise SparsescopeError(f"no quality results for {model!r} in {folder}: run `make report` "
                               f"(or notebook 03 with out_dir={folder}) first")
    return folder, pd.read_csv(folder / "quality.csv", keep_default_na=False)


def run_name(method: str, target: float, nm: str) -> str:
    return "dense" if method == "dense" else f"{method} {nm}" if nm else f"{method} {target:.0%}"


def quality_table(quality: pd.DataFrame) -> pd.DataFrame:
    q = quality.assign(run=[run_name(m, t, n) for m, t, n in zip(quality["method"], quality["target_sparsity"], quality["nm"])])
    table = q.pivot_table(index="run", columns="metric", values="value", sort=False)
    return table.map(lambda v: f"{v:.4g}")


def quality_text(model: str, quality: pd.DataFrame) -> str:
    metric = next(m for m in PRIMARY_METRIC if m in set(quality["metric"]))
    better = PRIMARY_METRIC[metric]
    rows = quality[quality["metric"] == metric]
    dense = float(rows[rows["method"] == "dense"]["value"].iloc[0])
    n_tokens = int(rows["n_tokens"].iloc[0])
    parts = [f"Dense {model}: {metric} {dense:.4g} ({n_tokens:,} scored positions of held-out text)."]
    pruned = rows[rows["method"] != "dense"]
    for (target, nm), group in pruned.groupby(["target_sparsity", "nm"], sort=True):
        ranked = group.sort_values("value", ascending=(better == "lower"))
        items = ", ".join(f"{r.method} {r.value:.4g}" for r in ranked.itertuples())
        parts.append(f"At {nm or f'{target:.0%}'}: {items} (best first).")
    kl = quality[(quality["metric"] == "kl_from_dense") & (quality["method"] != "dense")]
    if len(kl):
        low = kl.loc[kl["value"].idxmin()]
        parts.append(f"The output distribution moves least under {run_name(low['method'], low['target_sparsity'], low['nm'])} "
                     f"(KL {low['value']:.3g} nats from dense).")
    return " ".join(parts)
