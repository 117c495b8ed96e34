"""Facts about the weights: matrix roles, layer collapse, casts against sparse bytes, and what the
magnitude distributions say about thresholds and depth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...sources.anatomy import ROLES
from .format import join, megabytes, num, plural, pct, span
from .results import ModelResults


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
    from ...analysis.statistics import log10_histogram

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
