"""Facts about the weights: matrix roles, layer collapse, casts against sparse bytes, and what the
magnitude distributions say about thresholds and depth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...sources.anatomy import ROLES
from .format import pct, span
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
    from ..html import say

    sentence = collapse_sentence(*worst_collapse(found)) if near_collapse(found) else ""
    name, most = most_pruned(found)
    return say("findings").collapse_overview(sentence, name, {**most, "collapsed": COLLAPSED})


def collapse_lead(found: list[tuple[str, pd.DataFrame]]) -> str:
    """Challenges' answer on layer collapse, over every model: collapse is claimed only where some matrix
    is (nearly) emptied; where none comes near, the short form (the full one stands under Layer collapse)."""
    from ..html import say

    name, c = worst_collapse(found)
    sentence = collapse_sentence(name, c) if near_collapse(found) else ""
    most_name, most = most_pruned(found)
    return say("findings").collapse_lead(sentence, c["zeroed"].max() >= COLLAPSED, most_name, most)


def collapse_sentence(model: str, collapse: pd.DataFrame, strong: bool = False) -> str:
    """The first and last target's most-pruned matrix and how many matrices are all but removed."""
    from ..html import say

    first = dict(collapse.iloc[0]) if len(collapse) else None
    last = dict(collapse.iloc[-1]) if len(collapse) else None
    calm = bool(len(collapse)) and collapse["collapsed"].max() == 0 and collapse["zeroed"].max() < 0.9
    return say("findings").collapse(model, first, last, calm, COLLAPSED, strong)


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
    from ..html import say

    stored = sum(int(n) * itemsize(d) for n, d in zip(tensors["n"], tensors["dtype"]))
    extra = dense_bytes - stored
    if extra <= share * dense_bytes:
        return ""
    return say("size").beside_weights(model, extra, extra / dense_bytes, buffers)


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


def casting_sentences(cases: list[tuple[str, dict[str, int], float, float | None]],
                      strong: bool = False) -> list[str]:
    """casting_sentence for many models at once: models with the same verdict (the same casts smaller than
    their 50% checkpoint) share one sentence, so three models do not repeat one finding three times."""
    from ..html import say

    groups: dict[tuple[str, ...], list] = {}
    for model, base, dense, half in cases:
        if half is not None:
            groups.setdefault(tuple(k for k in ("fp16", "int8", "4-bit") if base[k] < half), []).append(
                (model, base, dense, half))
    out = []
    for beaten, rows in sorted(groups.items(), key=lambda kv: -len(kv[1])):  # the commonest verdict first
        shares = [half / dense for _, _, dense, half in rows]
        alike = pct(min(shares)) == pct(max(shares))
        best = beaten[-1] if beaten else None
        takes = span(min(b[best] / d for _, b, d, _ in rows), max(b[best] / d for _, b, d, _ in rows),
                     pct) if best else ""
        out.append(say("findings").casting(
            pct(shares[0]) if alike or len(rows) == 1 else span(min(shares), max(shares), pct),
            [r[0] for r in rows], [] if alike or len(rows) == 1 else [pct(x) for x in shares],
            list(beaten), best, takes, strong))
    return out


# ------------------------------------------------------------------------- conditional conclusions
def threshold_sentence(medians: dict[str, float], factor: float = 2.0) -> str:
    """Whether one magnitude threshold could be shared across models: only when their median |w| differ by
    at least `factor` does the data say it cannot."""
    from ..html import say

    if len(medians) < 2:
        return ""
    hi, lo = max(medians, key=medians.get), min(medians, key=medians.get)
    return say("structure").threshold(hi, medians[hi], lo, medians[lo], medians[hi] / medians[lo], factor)


def histogram_sentence(model: str, acc) -> str:
    """Where a model's |w| histogram peaks and how many decades its middle 98% spans, from exact counts."""
    from ...analysis.statistics import log10_histogram
    from ..html import say

    h = log10_histogram(acc)
    k = int(np.argmax(h["counts"]))
    q = acc.quantiles((0.01, 0.99))
    lo, hi = q["0.01"], q["0.99"]
    return say("structure").histogram(
        model, math.sqrt(h["edges"][k] * h["edges"][k + 1]), h["counts"][k] / max(acc.n, 1), acc.n, lo, hi,
        math.log10(hi / lo) if lo > 0 else None, acc.n_zero / max(acc.n, 1))


def cdf_sentence(model: str, summary: dict) -> str:
    """The magnitudes one-shot global thresholds would cut at, read off a group's saved summary (its exact
    quantiles and shares below 1e-3 and 1e-2, counted on the raw floats when the model was read)."""
    from ..html import say

    q, below = summary["quantiles"], summary["frac_below"]
    return say("structure").cdf(model, q["0.5"], q["0.9"], below["1e-3"], below["1e-2"])


def depth_sentence(
    stack: str, model: str, blocks: list[int], medians: list[float], min_blocks: int = 8
) -> str:
    """Median |w| against depth, with a trend named only when there are enough blocks to test one (Spearman,
    p < 0.05 over at least `min_blocks`)."""
    from scipy.stats import spearmanr

    from ..html import say

    lo, hi = int(np.argmin(medians)), int(np.argmax(medians))
    rho = p = way = None
    if len(blocks) >= min_blocks:
        rho, p = spearmanr(blocks, medians)
        way = ("grows" if rho > 0 else "shrinks") if p < 0.05 and abs(rho) >= 0.5 else None
    return say("structure").depth(model, stack, medians[lo], blocks[lo], medians[hi], blocks[hi], len(blocks),
                                      min_blocks, rho, p, way)
