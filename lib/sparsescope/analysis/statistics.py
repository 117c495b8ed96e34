"""Streaming statistics of weight magnitudes, exact and in bounded memory.

The core trick: for float32, |w| ordered as a float is ordered as its bit pattern read as an
integer. So the top 16 bits of |w| (a bfloat16 truncation: 8 exponent bits, 7 mantissa bits) are a
bin index with 128 bins per octave (equal width within an octave, so each spans at most 2**-7 of its
lower edge), and `bincount` over them is an *exact* histogram whose bin edges are known floats.
Thresholds that fall inside a bin (1e-3 is no bf16 number) are resolved exactly by a lookup table that
flags the few elements of that one bin.

Everything is computed in one read of the checkpoint: per tensor a moments pass and a bits pass, each a
fused multi-threaded numba loop; the bits pass also counts the tensor's outliers, |w - mean| > 6 std of
that tensor. `WeightStats` merges tensors into groups (all, prunable, per stack, per block, per
component).
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

from ..errors import SparsescopeError
from ..sources.layouts import stored_tagger
from ..sources.weights import iter_tensors, list_tensors

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
    n_outlier: int = 0  # elements with |w - mean| > OUTLIER_SIGMAS * std of their own tensor
    # elements with |w| < each threshold; None where unknown (loaded from a histograms.npz saved without them)
    below: dict | None = field(default_factory=lambda: {k: 0 for k in THRESHOLDS})
    moments: np.ndarray = field(default_factory=lambda: np.zeros(4))  # sums of d, d^2, d^3, d^4 ...
    shift: float = 0.0  # ... for d = w - shift: a shift near the mean spares var the cancellation

    def add(self, other: "Accumulator") -> None:
        self.hist += other.hist
        self.n += other.n
        self.n_zero += other.n_zero
        self.n_outlier += other.n_outlier
        if self.below is None or other.below is None:
            self.below = None  # a sum with an unknown part is unknown
        else:
            for k in self.below:
                self.below[k] += other.below[k]
        self.moments += shifted_moments(other.moments, other.n, other.shift - self.shift)

    # -- derived
    def mean_std_kurtosis(self) -> tuple[float, float, float]:
        if self.n == 0:
            return math.nan, math.nan, math.nan
        s1, s2, s3, s4 = self.moments / self.n  # central moments do not depend on the shift
        var = max(s2 - s1 * s1, 0.0)
        m4 = s4 - 4 * s1 * s3 + 6 * s1 * s1 * s2 - 3 * s1 ** 4
        kurt = m4 / var ** 2 - 3.0 if var > 0 else math.nan
        return float(self.shift + s1), math.sqrt(var), float(kurt)

    def nonzero_hist(self) -> np.ndarray:
        h = self.hist.copy()
        h[0] -= self.n_zero  # exact zeros have bit pattern 0, i.e. key 0
        return h

    def quantiles(self, qs=QUANTILES) -> dict[str, float]:
        """Quantiles of |w| (zeros included) to bin resolution. The q-quantile is the smallest |w| with
        at least q*n values at or below it (numpy's method="inverted_cdf"); it is given as the geometric
        middle of the key bin that holds it, so its relative error is below 2**-8 (a bin spans at most
        2**-7 of its lower edge, and sqrt(1 + 2**-7) - 1 < 2**-8)."""
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
        if self.below is None:
            raise SparsescopeError("frac_below is unknown: this histograms.npz was saved without its "
                                   "below-threshold counts; run analyze_model again to write them")
        mean, std, kurt = self.mean_std_kurtosis()
        n = max(self.n, 1)
        return {
            "n": self.n, "n_zero": self.n_zero, "frac_zero": self.n_zero / n,
            "frac_below": {k: v / n for k, v in self.below.items()},
            "quantiles": self.quantiles(), "mean": mean, "std": std, "excess_kurtosis": kurt,
            "outlier_frac": self.n_outlier / n,
        }


def shifted_moments(moments: np.ndarray, n: int, d: float) -> np.ndarray:
    """Sums of (v + d)^k, k = 1..4, from the sums of v^k over n values (binomial expansion)."""
    s1, s2, s3, s4 = moments
    return np.array([s1 + n * d,
                     s2 + 2 * d * s1 + n * d ** 2,
                     s3 + 3 * d * s2 + 3 * d ** 2 * s1 + n * d ** 3,
                     s4 + 4 * d * s3 + 6 * d ** 2 * s2 + 4 * d ** 3 * s1 + n * d ** 4])


# ------------------------------------------------------------------------------- one tensor
# Two fused, multi-threaded passes (numba): torch would need a dozen elementwise passes for the same.
@numba.njit(parallel=True, cache=True, fastmath=True)
def _moments(x, pivot, n_threads):
    """Sums of d, d^2, d^3, d^4 for d = w - pivot, in float64 (reassociated per thread: fastmath is fine
    for sums). A pivot inside the data spares the variance of e.g. a gain 1 +- 1e-3 the cancellation."""
    n = x.size
    parts = np.zeros((n_threads, 4))
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        s1 = s2 = s3 = s4 = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = np.float64(x[i]) - pivot
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


@numba.njit(parallel=True, cache=True)
def signed_histogram(bits, slot_of, cuts, n_threads):
    """Counts of the top 16 bits *with* the sign bit (2 * N_KEYS keys: w >= 0 first, then w < 0, each in
    |w| order), then one count per cut: the elements of cut s's bin (slot_of[bin] == s + 1) whose bit
    pattern is below cuts[s]. The slot table keeps the per-thread table as small as split_histogram's."""
    n = bits.size
    m = slot_of.size
    local = np.zeros((n_threads, m + cuts.size), np.int64)
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        for i in range(t * step, min(n, (t + 1) * step)):
            b = bits[i]
            k = b >> 16
            local[t, k] += 1
            s = slot_of[k]
            if s != 0 and b < cuts[s - 1]:
                local[t, m + s - 1] += 1
    return local.sum(axis=0)


SIGN = 0x80000000


def outlier_bounds(mean: float, cut: float) -> tuple[np.float32, np.float32]:
    """(hi, lo): float32 w has |float64(w) - mean| > cut  <=>  w >= hi or w <= lo. Monotone in w, so the
    bounds are the float32 neighbours of mean +- cut, stepped until the float64 test flips."""
    def above(f):
        return np.float64(f) - mean > cut

    def below(f):
        return np.float64(f) - mean < -cut
    up, down = np.float32(np.inf), np.float32(-np.inf)
    with np.errstate(over="ignore"):
        hi, lo = np.float32(mean + cut), np.float32(mean - cut)
    while not above(hi):
        hi = np.nextafter(hi, up)
    while above(np.nextafter(hi, down)):
        hi = np.nextafter(hi, down)
    while not below(lo):
        lo = np.nextafter(lo, down)
    while below(np.nextafter(lo, up)):
        lo = np.nextafter(lo, up)
    return hi, lo


class TensorScanner:
    """Computes an Accumulator for one tensor: a moments pass, then one histogram pass.

    The histogram keeps the sign, so every count is a cut in one half: |w| < t is a cut at t in each
    half, and the outliers |w - mean| > 6 std (mean and std of this tensor, from the first pass) are
    w >= hi and w <= lo, one cut each (see outlier_bounds)."""

    def __init__(self):
        fixed = {"zero": 1, **{k: threshold_bits(v) for k, v in THRESHOLDS.items()}}
        self.fixed = {label: (b, b | SIGN) for label, b in fixed.items()}
        self.slot_of, self.cuts = self.place(np.zeros(2 * N_KEYS, np.uint8), [],
                                             [c for pair in self.fixed.values() for c in pair])

    @staticmethod
    def place(slot_of: np.ndarray, cuts: list[int], new: list[int]) -> tuple[np.ndarray, list[int]]:
        """One cut per bin, counted by the histogram pass; a second cut in a taken bin is counted directly
        (which bins are taken is in slot_of, so a cut on a bin's lower edge, as 1.0 is, still takes it)."""
        for c in new:
            if slot_of[c >> 16] == 0:
                cuts.append(c)
                slot_of[c >> 16] = len(cuts)
        return slot_of, cuts

    def scan(self, w: torch.Tensor) -> Accumulator:
        bits = float32_bits(w)
        x = bits.view(np.float32)
        pivot = float(x[0]) if x.size and math.isfinite(x[0]) else 0.0
        acc = Accumulator(n=x.size, shift=pivot)
        acc.moments = _moments(x, pivot, numba.get_num_threads()) if x.size else np.zeros(4)
        mean, std, _ = acc.mean_std_kurtosis()
        slot_of, cuts = self.slot_of, self.cuts
        bounds = None
        if std > 0 and math.isfinite(std) and math.isfinite(mean):  # else no finite cut, no outliers
            hi, lo = outlier_bounds(mean, OUTLIER_SIGMAS * std)
            # w >= hi and w <= lo as cuts: a positive hi cuts the positive half at hi, a negative hi
            # cuts the negative half just above |hi|; lo the same, mirrored
            hi_cut = threshold_bits(hi) if hi > 0 else (threshold_bits(abs(hi)) + 1) | SIGN
            lo_cut = (threshold_bits(-lo) | SIGN) if lo < 0 else threshold_bits(abs(lo)) + 1
            bounds = hi, lo, hi_cut, lo_cut
            slot_of, cuts = self.place(slot_of.copy(), list(cuts), [hi_cut, lo_cut])
        counts = signed_histogram(bits, slot_of, np.array(cuts, np.uint32), numba.get_num_threads())
        hist, in_bin = counts[:2 * N_KEYS], counts[2 * N_KEYS:]
        cum = np.concatenate([[0], np.cumsum(hist)])
        n_positive = int(cum[N_KEYS])  # sign bit clear: +0 and w > 0

        def below(c: int) -> int:
            """Elements of c's half (its sign) whose bit pattern is below c."""
            start, slot = c & SIGN, int(slot_of[c >> 16])
            if slot and cuts[slot - 1] == c:
                return int(cum[c >> 16] - cum[start >> 16] + in_bin[slot - 1])
            return int(np.count_nonzero((bits >= np.uint32(start)) & (bits < np.uint32(c))))  # bin taken

        if bounds is not None:
            hi, lo, hi_cut, lo_cut = bounds
            n_hi = n_positive - below(hi_cut) if hi > 0 else n_positive + below(hi_cut)
            n_lo = (acc.n - n_positive) - below(lo_cut) if lo < 0 else (acc.n - n_positive) + below(lo_cut)
            acc.n_outlier = n_hi + n_lo
        acc.hist = hist[:N_KEYS] + hist[N_KEYS:]
        below_both = {label: below(p) + below(n) for label, (p, n) in self.fixed.items()}
        acc.n_zero = below_both["zero"]
        acc.below = {k: below_both[k] for k in THRESHOLDS}
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
    tag: object                                        # stored_tagger(folder, family)
    groups: dict[str, Accumulator] = field(default_factory=dict)
    tensors: list[dict] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)   # stored tensors that are not weights, left out

    def add_tensor(self, name: str, w: torch.Tensor, scanner: TensorScanner) -> None:
        t = self.tag(name, tuple(w.shape), floating=w.is_floating_point())
        if t.component == "buffer":
            self.buffers.append(name)  # causal masks and index buffers are not weights
            return
        acc = scanner.scan(w)
        for g in group_names(t):
            self.groups.setdefault(g, Accumulator()).add(acc)
        mean, std, kurt = acc.mean_std_kurtosis()
        self.tensors.append({
            "name": name, "stack": t.stack, "block": t.block, "component": t.component, "role": t.role,
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
            n=np.array([self.groups[g].n for g in names]),
            # exact counts below each threshold: one inside a key bin cannot be read off the histogram
            below_thresholds=np.array(list(THRESHOLDS)),
            below=np.array([[self.groups[g].below[k] for k in THRESHOLDS] for g in names], dtype=np.int64))
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
    stats, scanner = WeightStats(stored_tagger(folder, family)), TensorScanner()
    with tqdm(total=total, unit="w", unit_scale=True, desc="weights", disable=not progress) as bar:
        for name, w in iter_tensors(folder):
            stats.add_tensor(name, w, scanner)
            if w.is_floating_point():
                bar.update(w.numel())
    return stats
