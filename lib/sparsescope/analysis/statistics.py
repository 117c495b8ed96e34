"""Streaming statistics of weight magnitudes, exact and in bounded memory.

The core trick: for float32, |w| ordered as a float is ordered as its bit pattern read as an
integer. So the top 16 bits of |w| (a bfloat16 truncation: 8 exponent bits, 7 mantissa bits) are a
bin index with 128 log-spaced bins per octave, and `bincount` over them is an *exact* histogram whose
bin edges are known floats. Thresholds that fall inside a bin (1e-3 is no bf16 number) are resolved
exactly by a lookup table that flags the few elements of that one bin.

Everything is computed in one read of the checkpoint: per tensor a moments pass and a bits pass, each a
fused multi-threaded numba loop; `WeightStats` merges tensors into groups (all, prunable, per stack, per
block, per component).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm.auto import tqdm

from ..sources.weights import iter_tensors, list_tensors, tag

N_KEYS = 1 << 15            # top 16 bits of a float32 without its sign bit
THRESHOLDS = {"1e-4": 1e-4, "1e-3": 1e-3, "1e-2": 1e-2, "1e-1": 1e-1, "1": 1.0}
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
OUTLIER_SIGMAS = 6.0
LOG10_RANGE = (-10, 2)      # log10 histogram spans 1e-10 .. 1e2, with under/overflow bins beside it
LOG10_BINS_PER_DECADE = 20


def threshold_bits(x: float) -> int:
    """The float32 bit pattern of a scalar threshold, as an integer."""
    return int(np.float32(x).view(np.uint32))


def float32_bits(w: torch.Tensor) -> np.ndarray:
    """w's float32 bit patterns as uint32 (a view for contiguous float32; fp16/bf16 convert exactly).
    The kernels drop the sign bit themselves, so integer order is magnitude order."""
    w = w.detach().reshape(-1)
    if w.dtype != torch.float32:
        w = w.float()
    return w.contiguous().numpy().view(np.uint32)


def key_lower_edges() -> np.ndarray:
    """Smallest |w| of each key bin, as float64 (exact copies of float32 values)."""
    edges = (np.arange(N_KEYS, dtype=np.uint32) << 16).view(np.float32)
    with np.errstate(invalid="ignore"):  # the keys past +inf are NaN patterns
        return np.append(edges.astype(np.float64), np.inf)


KEY_EDGES = key_lower_edges()  # KEY_EDGES[k] <= |w| < KEY_EDGES[k + 1] for key k; the last edge is +inf


# ---------------------------------------------------------------------------------- accumulator
@dataclass
class Accumulator:
    """Exact counts and float64 moment sums of one group of weights."""
    hist: np.ndarray = field(default_factory=lambda: np.zeros(N_KEYS, dtype=np.int64))
    n: int = 0
    n_zero: int = 0
    n_outlier: int = 0  # elements beyond OUTLIER_SIGMAS of their own tensor
    below: dict = field(default_factory=lambda: {k: 0 for k in THRESHOLDS})
    moments: np.ndarray = field(default_factory=lambda: np.zeros(4))  # sums of w, w^2, w^3, w^4

    def add(self, other: "Accumulator") -> None:
        self.hist += other.hist
        self.n += other.n
        self.n_zero += other.n_zero
        self.n_outlier += other.n_outlier
        for k in self.below:
            self.below[k] += other.below[k]
        self.moments += other.moments

    # -- derived
    def mean_std_kurtosis(self) -> tuple[float, float, float]:
        if self.n == 0:
            return math.nan, math.nan, math.nan
        s1, s2, s3, s4 = self.moments / self.n
        var = max(s2 - s1 * s1, 0.0)
        m4 = s4 - 4 * s1 * s3 + 6 * s1 * s1 * s2 - 3 * s1 ** 4
        kurt = m4 / var ** 2 - 3.0 if var > 0 else math.nan
        return float(s1), math.sqrt(var), float(kurt)

    def nonzero_hist(self) -> np.ndarray:
        h = self.hist.copy()
        h[0] -= self.n_zero  # exact zeros have bit pattern 0, i.e. key 0
        return h

    def quantiles(self, qs=QUANTILES) -> dict[str, float]:
        """Quantiles of |w| (zeros included) to bin resolution: the geometric middle of the key bin
        that holds the rank, so the relative error is below 2**-8."""
        cum = np.cumsum(self.hist)
        out = {}
        for q in qs:
            rank = q * self.n
            if self.n == 0:
                out[f"{q:g}"] = math.nan
            elif rank <= self.n_zero:
                out[f"{q:g}"] = 0.0
            else:
                k = int(np.searchsorted(cum, rank, side="left"))
                lo, hi = KEY_EDGES[k], KEY_EDGES[k + 1]
                out[f"{q:g}"] = float(math.sqrt(lo * hi)) if lo > 0 else float(hi / 2)
        return out

    def summary(self) -> dict:
        mean, std, kurt = self.mean_std_kurtosis()
        n = max(self.n, 1)
        return {
            "n": self.n, "n_zero": self.n_zero, "frac_zero": self.n_zero / n,
            "frac_below": {k: v / n for k, v in self.below.items()},
            "quantiles": self.quantiles(), "mean": mean, "std": std, "excess_kurtosis": kurt,
            "outlier_frac": self.n_outlier / n,
        }


# ------------------------------------------------------------------------------- one tensor
# Two fused, multi-threaded passes (numba): torch would need a dozen elementwise passes for the same.
@numba.njit(parallel=True, cache=True, fastmath=True)
def _moments(x, n_threads):
    """Sums of w, w^2, w^3, w^4 in float64 (reassociated per thread: fastmath is fine for sums)."""
    n = x.size
    parts = np.zeros((n_threads, 4))
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        s1 = s2 = s3 = s4 = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = np.float64(x[i])
            v2 = v * v
            s1 += v
            s2 += v2
            s3 += v2 * v
            s4 += v2 * v2
        parts[t, 0], parts[t, 1], parts[t, 2], parts[t, 3] = s1, s2, s3, s4
    return parts.sum(axis=0)


@numba.njit(parallel=True, cache=True)
def split_histogram(bits, split_at, n_threads):
    """Counts of 2*key + (|bits| < split_at[key]): the key histogram with each bin cut at its split."""
    n = bits.size
    local = np.zeros((n_threads, 2 * split_at.size), np.int64)
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        for i in range(t * step, min(n, (t + 1) * step)):
            b = bits[i] & 0x7FFFFFFF
            k = b >> 16
            local[t, 2 * k + (1 if b < split_at[k] else 0)] += 1
    return local.sum(axis=0)


class TensorScanner:
    """Computes an Accumulator for one tensor: a moments pass, then a histogram pass."""

    def __init__(self):
        # split_at[k] is the bit pattern bin k is cut at, else the bin's own lower edge (no cut)
        self.base_split = (np.arange(N_KEYS, dtype=np.uint32) << 16)
        self.fixed = {"zero": 1, **{k: threshold_bits(v) for k, v in THRESHOLDS.items()}}

    def scan(self, w: torch.Tensor) -> Accumulator:
        bits = float32_bits(w)
        x = bits.view(np.float32)
        acc = Accumulator(n=x.size)
        acc.moments = _moments(x, numba.get_num_threads()) if x.size else np.zeros(4)
        _, std, _ = acc.mean_std_kurtosis()
        splits = dict(self.fixed)
        if std > 0 and math.isfinite(std):
            splits["outlier"] = threshold_bits(OUTLIER_SIGMAS * std) + 1  # |w| <= 6 sigma  <=>  bits < this
        # one cut per bin: the outlier cut yields to a fixed threshold in the same bin, counted directly
        split_at, direct = self.base_split.copy(), []
        for label, b in splits.items():
            if split_at[b >> 16] != self.base_split[b >> 16]:
                direct.append(label)
            else:
                split_at[b >> 16] = b
        counts = split_histogram(bits, split_at, numba.get_num_threads()).reshape(N_KEYS, 2)
        acc.hist = counts.sum(axis=1)
        cum = np.concatenate([[0], np.cumsum(acc.hist)])

        def count_below(b: int) -> int:
            return int(cum[b >> 16] + counts[b >> 16, 1])

        below = {label: int(np.count_nonzero((bits & 0x7FFFFFFF) < b)) if label in direct
                 else count_below(b) for label, b in splits.items()}
        acc.n_zero = below["zero"]
        acc.below = {k: below[k] for k in THRESHOLDS}
        if "outlier" in below:
            acc.n_outlier = acc.n - below["outlier"]
        return acc


# ------------------------------------------------------------------------------- whole model
def group_names(t) -> list[str]:
    """Groups a tagged tensor belongs to."""
    groups = ["all", f"stack:{t.stack}", f"component:{t.component}"]
    if t.prunable:
        groups += ["prunable", f"prunable_stack:{t.stack}", f"block:{t.stack}:{t.block}"]
    return groups


@dataclass
class WeightStats:
    family: str | None
    groups: dict[str, Accumulator] = field(default_factory=dict)
    tensors: list[dict] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)   # stored tensors that are not weights, left out

    def add_tensor(self, name: str, w: torch.Tensor, scanner: TensorScanner) -> None:
        t = tag(name, tuple(w.shape), self.family, floating=w.is_floating_point())
        if t.component == "buffer":
            self.buffers.append(name)  # causal masks and index buffers are not weights
            return
        acc = scanner.scan(w)
        for g in group_names(t):
            self.groups.setdefault(g, Accumulator()).add(acc)
        mean, std, kurt = acc.mean_std_kurtosis()
        self.tensors.append({
            "name": name, "stack": t.stack, "block": t.block, "component": t.component,
            "prunable": t.prunable, "shape": "x".join(map(str, w.shape)),
            "dtype": str(w.dtype).replace("torch.", ""),
            "n": acc.n, "n_zero": acc.n_zero, "mean": mean, "std": std, "excess_kurtosis": kurt,
            "outlier_frac": acc.n_outlier / max(acc.n, 1),
            **{f"frac_below_{k}": v / max(acc.n, 1) for k, v in acc.below.items()},
        })

    def summary(self) -> dict:
        return {g: self.groups[g].summary() for g in ("all", "prunable") if g in self.groups}

    def group_summaries(self, prefix: str) -> dict:
        """Summaries of the groups named `prefix`<name>, by name."""
        return {g.removeprefix(prefix): a.summary() for g, a in self.groups.items() if g.startswith(prefix)}

    def save(self, out_dir: str | os.PathLike) -> None:
        """histograms.npz (exact key-bin counts per group) and tensors.csv."""
        import pandas as pd
        out_dir = Path(out_dir)
        names = sorted(self.groups)
        np.savez_compressed(
            out_dir / "histograms.npz", groups=np.array(names), key_edges=KEY_EDGES,
            counts=np.stack([self.groups[g].hist for g in names]),
            n_zero=np.array([self.groups[g].n_zero for g in names]),
            n=np.array([self.groups[g].n for g in names]))
        pd.DataFrame(self.tensors).to_csv(out_dir / "tensors.csv", index=False)


def log10_edge_keys() -> np.ndarray:
    """Key indices of log10-spaced edges, each snapped up to a key-bin edge so counts stay exact."""
    lo, hi = LOG10_RANGE
    steps = np.arange(lo * LOG10_BINS_PER_DECADE, hi * LOG10_BINS_PER_DECADE + 1)
    wanted = 10.0 ** (steps / LOG10_BINS_PER_DECADE)
    bits = wanted.astype(np.float32).view(np.uint32).astype(np.int64)
    return np.unique((bits >> 16) + ((bits & 0xFFFF) != 0))


def log10_histogram(acc: Accumulator) -> dict:
    """Counts of nonzero |w| in log10-spaced bins [edge_i, edge_i+1), with the zeros, the values below
    the first edge and those at or above the last edge apart; all of them sum to n exactly."""
    keys = log10_edge_keys()
    h = acc.nonzero_hist()
    cum = np.concatenate([[0], np.cumsum(h)])
    inner = np.diff(cum[keys])
    return {"edges": KEY_EDGES[keys], "counts": inner, "n_zero": acc.n_zero,
            "underflow": int(cum[keys[0]]), "overflow": int(cum[-1] - cum[keys[-1]]), "n": acc.n}


def cdf(acc: Accumulator) -> tuple[np.ndarray, np.ndarray]:
    """Exact F(x) = P(|w| < x) at every key-bin edge where the group has mass. The first bin (exact
    zeros and subnormals below 1e-38) is left out: its share is where the curve starts."""
    cum = np.cumsum(acc.hist)
    keep = np.flatnonzero(acc.hist[1:]) + 1
    return KEY_EDGES[keep + 1], cum[keep] / max(acc.n, 1)


def analyze_folder(folder: str | os.PathLike, family: str | None = None,
                   progress: bool = True) -> WeightStats:
    """Stream every tensor of an HF folder once and return its statistics."""
    total = sum(math.prod(shape) for _, dtype, shape in list_tensors(folder) if dtype.is_floating_point)
    stats, scanner = WeightStats(family), TensorScanner()
    with tqdm(total=total, unit="w", unit_scale=True, desc="weights", disable=not progress) as bar:
        for name, w in iter_tensors(folder):
            stats.add_tensor(name, w, scanner)
            if w.is_floating_point():
                bar.update(w.numel())
    return stats
