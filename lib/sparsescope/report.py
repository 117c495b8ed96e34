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
