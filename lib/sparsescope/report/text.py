"""The report's words and tables, computed from saved results: every number in the prose comes from data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.distribution import Distribution, load_distribution
from ..artifacts import results_path
from ..errors import SparsescopeError
from ..pruning.runs import per_matrix_sparsity, pick_run, run_label


def load_results(results_dir: str | os.PathLike, models: list[str]) -> list[Distribution]:
    out = []
    for model in models:
        folder = results_path(results_dir, model, "distribution")
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
                     "stored dtype": ", ".join(sorted(d.tensors["dtype"].unique()))})
    return pd.DataFrame(rows).set_index("model")


def model_sources_table(dists: list[Distribution]) -> pd.DataFrame:
    return pd.DataFrame([{"model": d.name, "source": d.summary["model_info"]["source"],
                          "why": d.summary["model_info"]["why"]} for d in dists]).set_index("model")


def model_selection_text(dists: list[Distribution]) -> str:
    families = sorted({d.summary["family"] for d in dists})
    total = sum(d.summary["n_params"] for d in dists)
    lines = [f"This report covers {len(dists)} model(s) from {len(families)} "
             f"famil{'y' if len(families) == 1 else 'ies'} "
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
    text = (f"**{d.name}** ({d.summary['family']}): {pct(a['frac_below']['1e-2'])} of its {millions(a['n'])} "
            "weights "
            f"lie below 1e-2 and {pct(a['frac_below']['1e-3'])} below 1e-3; the median |w| is "
            f"{a['quantiles']['0.5']:.3g} and the 99th percentile {a['quantiles']['0.99']:.3g}. Among the "
            "prunable "
            f"weights {pct(p['frac_below']['1e-2'])} lie below 1e-2 (median {p['quantiles']['0.5']:.3g}). "
            f"Exact zeros: {a['n_zero']:,} ({pct(a['frac_zero'])}). The excess kurtosis of the prunable "
            "weights is "
            f"{p['excess_kurtosis']:.1f} (0 for a Gaussian), and {pct(p['outlier_frac'])} of them lie beyond "
            "six "
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
                 f"{lo.summary['prunable']['quantiles']['0.5']:.3g} for {lo.name}: magnitude scales differ "
                 "between "
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
                     "has no monotone trend with depth")
            trend += f" (Spearman ρ = {rho:.2f} over {len(items)} blocks)"
        else:
            trend = f"cannot show a depth trend over only {len(items)} block(s)"
        lo, hi = int(np.argmin(medians)), int(np.argmax(medians))
        parts.append(f"In the {stack} of {d.name} the median prunable |w| {trend}: it ranges from "
                     f"{medians[lo]:.3g} (block {items[lo][0]}) to "
                     f"{medians[hi]:.3g} (block {items[hi][0]}), a factor {medians[hi] / medians[lo]:.2f}.")
    return " ".join(parts)


def median(acc) -> float:
    return acc.quantiles((0.5,))["0.5"]


def statistics_table(dists: list[Distribution]) -> pd.DataFrame:
    rows = []
    for d in dists:
        for group in ("all", "prunable"):
            s = d.summary[group]
            rows.append({"model": d.name, "weights": group, "count": f"{s['n']:,}",
                         "exact zeros": f"{s['n_zero']:,}",
                         **{f"< {k}": pct(v) for k, v in s["frac_below"].items()},
                         "median |w|": f"{s['quantiles']['0.5']:.3g}",
                         "p99 |w|": f"{s['quantiles']['0.99']:.3g}",
                         "excess kurtosis": f"{s['excess_kurtosis']:.1f}", "> 6σ": pct(s["outlier_frac"])})
    return pd.DataFrame(rows).set_index(["model", "weights"])


# -------------------------------------------------------------------------------- sparsification
METHOD_WORDS = {
    "global_magnitude": "**Global magnitude** (the seed's method): one threshold on |w| over all prunable "
                        "weights of "
                        "the model; the matrices with many small weights lose more.",
    "layer_magnitude": "**Layer-wise magnitude**: the same fraction of the smallest |w| is zeroed in every "
                       "matrix.",
    "nm_magnitude": "**N:M magnitude**: in every group of M consecutive input weights of a row, only the N "
                    "largest "
                    "survive — the pattern sparse tensor cores execute (2:4).",
    "wanda": "**Wanda**: each weight is scored by |w| times the norm of its input feature over calibration "
             "text, "
             "and the lowest scores of each output row are zeroed; no weight is updated.",
    "sparsegpt": "**SparseGPT**: the mask is chosen column block by column block by the "
                 "optimal-brain-surgeon "
                 "saliency, and the surviving weights are updated to reconstruct each layer's output on the "
                 "calibration inputs.",
}


def load_pruning(results_dir: str | os.PathLike, model: str):
    folder = results_path(results_dir, model, "pruning")
    if not (folder / "pruning.csv").exists():
        raise SparsescopeError(f"no pruning results for {model!r} in {folder}: run `make report` "
                               f"(or notebook 02 with out_dir={folder}) first")
    table = pd.read_csv(folder / "pruning.csv", keep_default_na=False)
    return folder, table, per_matrix_sparsity(table)


def methods_text(methods) -> str:
    return "\n".join(f"- {METHOD_WORDS[m]}" for m in METHOD_WORDS if m in set(methods))


def pruning_text(model: str, table: pd.DataFrame, per_matrix: pd.DataFrame, dist: Distribution) -> str:
    parts = []
    probe = pick_run(table, "global_magnitude", 0.5)
    if probe is not None:
        target = probe["target_sparsity"]
        g = per_matrix[(per_matrix["method"] == "global_magnitude") & (per_matrix["nm"] == "")
                       & (per_matrix["target_sparsity"] == target)]
        lo, hi = g.loc[g["sparsity"].idxmin()], g.loc[g["sparsity"].idxmax()]
        parts.append(f"Global magnitude pruning of {model} at {target:.0%} zeroes from {lo['sparsity']:.1f}% "
                     f"({lo['name']}) to {hi['sparsity']:.1f}% ({hi['name']}) of individual matrices; the "
                     "layer-wise "
                     "methods hold each matrix at the target by construction.")
    row = pick_run(table, None, 0.5)
    if row is not None:
        share = dist.summary["n_prunable"] / dist.summary["n_params"]
        parts.append(f"At {row['achieved_sparsity']:.0%} sparsity the compressed checkpoint takes "
                     f"{100 * row['saved_bytes'] / row['dense_bytes']:.1f}% of the dense file "
                     f"({row['saved_bytes'] / 1e6:.1f} MB vs {row['dense_bytes'] / 1e6:.1f} MB); prunable "
                     "matrices "
                     f"are {share:.0%} of {model}'s weights, the rest is stored as it was.")
        top = pick_run(table, None, None)
        parts.append(f"At {top['achieved_sparsity']:.0%} it takes "
                     f"{100 * top['saved_bytes'] / top['dense_bytes']:.1f}%.")
    slowest = table.loc[table["seconds"].idxmax()]
    parts.append(f"The slowest run was {slowest['method']} ({slowest['seconds']:.0f} s); the largest peak "
                 "memory of "
                 f"any run was {table['peak_rss_bytes'].max() / 2 ** 30:.2f} GB.")
    return " ".join(parts)


def size_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for model, t in tables.items():
        for r in t.itertuples():
            rows.append({"model": model, "method": r.method, "target": r.nm or f"{r.target_sparsity:.0%}",
                         "achieved": f"{100 * r.achieved_sparsity:.2f}%",
                         "dense MB": f"{r.dense_bytes / 1e6:.1f}", "saved MB": f"{r.saved_bytes / 1e6:.1f}",
                         "saved / dense": f"{r.saved_bytes / r.dense_bytes:.3f}",
                         "seconds": f"{r.seconds:.1f}", "peak RSS GB": f"{r.peak_rss_bytes / 2 ** 30:.2f}"})
    return pd.DataFrame(rows).set_index(["model", "method", "target"])


# ------------------------------------------------------------------------------------ quality
PRIMARY_METRIC = {"perplexity": "lower", "mlm_loss": "lower", "span_loss": "lower", "token_loss": "lower",
                  "retrieval_top1": "higher"}
# Published one-shot results on WikiText-2 (SparseGPT and Wanda papers), printed beside ours for scale.
PUBLISHED_WIKITEXT2 = pd.DataFrame(
    [("OPT-125M", "dense", 27.66), ("OPT-125M", "magnitude 50%", 193.4),
     ("OPT-125M", "SparseGPT 50%", 36.7), ("OPT-125M", "Wanda 50%", 39.3),
     ("OPT-125M", "magnitude 2:4", 341.5), ("OPT-125M", "SparseGPT 2:4", 60.7),
     ("OPT-125M", "Wanda 2:4", 81.6), ("LLaMA-2-7B", "dense", 5.12), ("LLaMA-2-7B", "magnitude 50%", 14.89),
     ("LLaMA-2-7B", "SparseGPT 50%", 6.51), ("LLaMA-2-7B", "Wanda 50%", 6.42)],
    columns=["model", "setting", "WikiText-2 perplexity (published)"]).set_index(["model", "setting"])


def load_quality(results_dir: str | os.PathLike, model: str) -> tuple[Path, pd.DataFrame]:
    folder = results_path(results_dir, model, "benchmarks")
    if not (folder / "quality.csv").exists():
        raise SparsescopeError(f"no quality results for {model!r} in {folder}: run `make report` "
                               f"(or notebook 03 with out_dir={folder}) first")
    return folder, pd.read_csv(folder / "quality.csv", keep_default_na=False)


def quality_table(quality: pd.DataFrame) -> pd.DataFrame:
    labels = [run_label(*key) for key in zip(quality["method"], quality["target_sparsity"], quality["nm"])]
    q = quality.assign(run=labels)
    table = q.pivot_table(index="run", columns="metric", values="value", sort=False)
    return table.map(lambda v: f"{v:.4g}")


def quality_text(model: str, quality: pd.DataFrame) -> str:
    metric = next(m for m in PRIMARY_METRIC if m in set(quality["metric"]))
    better = PRIMARY_METRIC[metric]
    rows = quality[quality["metric"] == metric]
    dense = float(rows[rows["method"] == "dense"]["value"].iloc[0])
    n_tokens = int(rows["n_tokens"].iloc[0])
    unit = "passages" if metric == "retrieval_top1" else "scored tokens"
    parts = [f"Dense {model}: {metric} {dense:.4g} ({n_tokens:,} {unit} of held-out text)."]
    pruned = rows[rows["method"] != "dense"]
    for (target, nm), group in pruned.groupby(["target_sparsity", "nm"], sort=True):
        ranked = group.sort_values("value", ascending=(better == "lower"))
        items = ", ".join(f"{r.method} {r.value:.4g}" for r in ranked.itertuples())
        parts.append(f"At {nm or f'{target:.0%}'}: {items} (best first).")
    kl = quality[(quality["metric"] == "kl_from_dense") & (quality["method"] != "dense")]
    if len(kl):
        low = kl.loc[kl["value"].idxmin()]
        parts.append("The output distribution moves least under "
                     f"{run_label(low['method'], low['target_sparsity'], low['nm'])} "
                     f"(KL {low['value']:.3g} nats from dense).")
    return " ".join(parts)


# ----------------------------------------------------------------------------- size and runtime
def load_benchmark(results_dir: str | os.PathLike, model: str, name: str) -> pd.DataFrame:
    path = results_path(results_dir, model, "benchmarks") / f"{name}.csv"
    if not path.exists():
        raise SparsescopeError(f"no {name} results for {model!r} at {path}: run `make report` first")
    return pd.read_csv(path, keep_default_na=False)


def size_text(model: str, sizes: pd.DataFrame) -> str:
    un = sizes[sizes["nm"] == ""].sort_values("achieved_sparsity")
    parts = []
    for target in sorted(un["target_sparsity"].unique()):
        r = un[un["target_sparsity"] == target].iloc[0]
        parts.append(f"at {r['achieved_sparsity']:.0%} the pruned matrices of {model} cost "
                     f"{r['bits_per_weight']:.2f} bits "
                     f"per weight against an entropy bound of {r['bound_bits_per_weight']:.2f} "
                     f"({r['ratio_to_bound']:.3f}×), and the whole checkpoint is "
                     f"{r['saved_over_dense']:.1%} "
                     "of the dense file")
    worst = sizes.loc[sizes["ratio_to_bound"].idxmax()]
    return ("; ".join(parts) + f". Over all {len(sizes)} runs the code is at most "
                               f"{worst['ratio_to_bound']:.3f}× the "
            "entropy bound; what remains of the file is the part that is not pruned (embeddings, norms, "
            "heads).")


def runtime_text(model: str, runtime: pd.DataFrame, crossovers: pd.DataFrame) -> str:
    parts = []
    dense_kernels = runtime[runtime["kind"] == "dense-kernels"]
    for r in dense_kernels.itertuples():
        parts.append(f"With dense kernels the {r.sparsity:.0%}-sparse {model} runs a batch of "
                     f"{int(float(r.batch))} at "
                     f"{r.speedup:.2f}× the dense model's speed ({r.sparse_ms:.1f} ms vs {r.dense_ms:.1f} "
                     "ms).")
    csr = crossovers[crossovers["kind"] == "kernel-csr"]
    if len(csr):
        found = csr[csr["crossover_sparsity"] != ""]
        for n in sorted(csr["tokens"].unique()):
            at = found[found["tokens"] == n]["crossover_sparsity"].astype(float)
            never = int((csr["tokens"] == n).sum() - len(at))
            if len(at):
                span = f"{at.min():.0%}"
                if round(at.min(), 2) != round(at.max(), 2):
                    span += f"–{at.max():.0%}"
                parts.append(f"With {n} token(s) per batch, CSR beats dense from {span} sparsity depending "
                             "on the "
                             "matrix" + (f" (never, up to {runtime['sparsity'].max():.0%}, for {never} "
                                         "shape(s))."
                                         if never else "."))
            else:
                parts.append(f"With {n} token(s) per batch, CSR never beats dense up to "
                             f"{runtime['sparsity'].max():.0%} sparsity.")
    bsr = runtime[runtime["kind"] == "kernel-bsr"]
    if len(bsr):
        best = bsr.loc[bsr["speedup"].idxmax()]
        parts.append("BSR (16×16 blocks) on these unstructured masks reached at best "
                     f"{best['speedup']:.2f}× "
                     "dense "
                     f"({best['shape_or_model']}, {best['sparsity']:.0%}, {int(best['tokens'])} tokens): "
                     "block formats "
                     "pay off only when pruning keeps whole blocks.")
    e2e = runtime[runtime["kind"] == "sparse-kernels-e2e"]
    for r in e2e.itertuples():
        parts.append(f"End to end with CSR linear layers at {r.sparsity:.0%} sparsity, a batch of "
                     f"{int(float(r.batch))} runs "
                     f"{r.speedup:.2f}× as fast as dense ({r.sparse_ms:.1f} ms vs {r.dense_ms:.1f} ms).")
    gpu = runtime[runtime["kind"] == "kernel-2:4"]
    if len(gpu):
        parts.append(f"2:4 semi-structured kernels on {gpu['device'].iloc[0]}: {gpu['speedup'].min():.2f}–"
                     f"{gpu['speedup'].max():.2f}× over dense across shapes and batch sizes.")
    else:
        parts.append(f"No CUDA device was present ({runtime['device'].iloc[0]}), so 2:4 sparse tensor cores "
                     "were not "
                     "measured in this run; `bench/gpu_semi_structured.py` measures them where a GPU is.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------ challenges
def at_half(runtime: pd.DataFrame) -> str:
    """What CSR does at 50% sparsity, the level where one-shot quality holds best."""
    half = runtime[(runtime["kind"] == "kernel-csr") & (runtime["sparsity"] == 0.5)]
    if not len(half):
        return ""
    return (f" At 50% sparsity, where one-shot quality holds best, CSR ran at {half['speedup'].min():.2f}–"
            f"{half['speedup'].max():.2f}× dense speed across the measured shapes and batch sizes.")

def challenges_text(models: list[str], qualities: dict, sizes: dict, runtimes: dict, crossovers: dict) -> str:
    """The seed's four questions, each answered with this run's numbers and what stays unsolved."""
    kl = pd.concat([q[(q["metric"] == "kl_from_dense") & (q["method"] != "dense")].assign(model=m)
                    for m, q in qualities.items()])
    half = kl[(kl["target_sparsity"] == 0.5) & (kl["nm"] == "")]
    lines = ["### Which weights carry which abilities?",
             "No map from individual weights to abilities exists, and this suite does not build one. What it "
             "measures "
             "is how far pruning moves each model's output distribution: "]
    for m in models:
        h = half[half["model"] == m]
        if len(h):
            lo, hi = h.loc[h["value"].idxmin()], h.loc[h["value"].idxmax()]
            lines[-1] += (f"at 50% sparsity {m} moves by {lo['value']:.3g} nats of KL under {lo['method']} "
                          "but "
                          f"{hi['value']:.3g} under {hi['method']}; ")
    lines[-1] = lines[-1].rstrip("; ") + ". Which abilities those nats carry stays unsolved."
    lines += ["### One-shot or iterative?",
              "Every method here is one-shot: no retraining. "]
    best_calibrated = cases = 0
    for m, q in qualities.items():
        metric = next(x for x in PRIMARY_METRIC if x in set(q["metric"]))
        rows = q[(q["metric"] == metric) & (q["nm"] == "")]
        dense = float(rows[rows["method"] == "dense"]["value"].iloc[0])
        for target in sorted(rows[rows["method"] != "dense"]["target_sparsity"].unique()):
            at = rows[rows["target_sparsity"] == target]
            low, high = at.loc[at["value"].idxmin()], at.loc[at["value"].idxmax()]
            best, worst = (low, high) if PRIMARY_METRIC[metric] == "lower" else (high, low)
            lines[-1] += (f"{m} at {target:.0%}: {metric} {best['value']:.4g} with {best['method']} vs "
                          f"{worst['value']:.4g} with {worst['method']} (dense {dense:.4g}); ")
            cases += 1
            best_calibrated += best["method"] in ("wanda", "sparsegpt")
    lines[-1] = (lines[-1].rstrip("; ") + f". In {best_calibrated} of these {cases} model × sparsity cases "
                                          "the best "
                 "one-shot method is a calibrated one (Wanda or SparseGPT). The gap to dense that remains is "
                 "what "
                 "iterative pruning with retraining would have to close; that needs training compute this "
                 "suite does "
                 "not assume — unsolved here.")
    size_all = pd.concat([s.assign(model=m) for m, s in sizes.items()])
    un = size_all[size_all["nm"] == ""]
    probes = size_all[size_all["dense_save_bytes"] != ""]
    resaved = "; ".join(f"{r.model} pruned to {r.achieved_sparsity:.0%} and saved dense takes "
                        f"{float(r.dense_save_bytes) / r.dense_bytes:.1%} of the original's bytes"
                        for r in probes.itertuples())
    lines += ["### Do pruned models get smaller?",
              "Not when saved the seed's way: a dense save stores every zero (" + resaved + "). The "
                                                                                            "compressed "
                                                                                            "format stores "
                                                                                            "each pruned "
                                                                                            "matrix as its "
                                                                                            "kept values "
                                                                                            "plus a bitmask "
                                                                                            "or a "
              f"Rice-coded index: over {len(size_all)} checkpoints it spends at most "
              f"{size_all['ratio_to_bound'].max():.3f}× the entropy bound on the pruned matrices, and whole "
              "checkpoints "
              f"at {un['achieved_sparsity'].max():.0%} sparsity take "
              f"{un[un['target_sparsity'] == un['target_sparsity'].max()]['saved_over_dense'].min():.0%}–"
              f"{un[un['target_sparsity'] == un['target_sparsity'].max()]['saved_over_dense'].max():.0%} of "
              "the dense "
              "bytes; the rest is the unpruned embeddings, norms and heads."]
    rt = pd.concat([r.assign(model=m) for m, r in runtimes.items()])
    dk = rt[rt["kind"] == "dense-kernels"]
    e2e = rt[rt["kind"] == "sparse-kernels-e2e"]
    cr = pd.concat([c for c in crossovers.values()])
    csr = cr[(cr["kind"] == "kernel-csr") & (cr["crossover_sparsity"] != "")]
    found = csr["crossover_sparsity"].astype(float)
    lines += ["### Do pruned models get faster?",
              "Not with dense kernels: measured side by side, pruned models ran at "
              f"{dk['speedup'].min():.2f}–"
              f"{dk['speedup'].max():.2f}× the dense speed — zeros are multiplied like any number. "
              + (f"CPU CSR kernels win only above a crossover sparsity, {found.min():.0%}–"
                 f"{found.max():.0%} "
                 "on this "
                 "machine depending on matrix shape and tokens per batch; " if len(found) else
                 "CPU CSR kernels never beat dense in the measured range; ")
              + (f"end to end, models with their linear layers in CSR above that crossover ran "
                 f"{e2e['speedup'].min():.2f}–{e2e['speedup'].max():.2f}× as fast as dense. "
                 if len(e2e) else "")
              + "N:M (2:4) pruning is the pattern GPU sparse tensor cores run; "
              + ("this run measured them (see Runtime)." if (rt["kind"] == "kernel-2:4").any() else
                 "no GPU was present in this run, so that speed-up stays unmeasured here "
                 "(`bench/gpu_semi_structured.py` measures it where a GPU is).")
              + at_half(rt)]
    return "\n\n".join(lines)
