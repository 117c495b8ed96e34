"""Magnitude pruning: global (one threshold over every prunable weight), per layer, and N:M.

Tie rule, everywhere: the k weights zeroed are those with the smallest |w|; among weights whose |w|
equals the k-th smallest, the ones earliest in checkpoint order (tensor by tensor as stored, then
row-major within a tensor) are zeroed first. So exactly k weights are zeroed, deterministically, and
on tie-free weights the mask equals torch.nn.utils.prune's.

`global_threshold` finds the global k-th smallest |w| without concatenating the model: a histogram of
the top 16 bits of |w| (as float32) locates its bin, a second histogram of the low 16 bits inside
that one bin gives the exact value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from ..analysis.statistics import N_KEYS, float32_bits, split_histogram
from ..errors import SparsescopeError


def n_to_prune(sparsity: float, n: int) -> int:
    """torch.nn.utils.prune's count: round(amount * n), Python's rounding."""
    return round(sparsity * n)


def check_sparsity(sparsity: float) -> None:
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0):
        raise SparsescopeError(f"sparsity {sparsity!r} is outside [0, 1): pass e.g. 0.5 for half the weights "
                               "zeroed")


@numba.njit(parallel=True, cache=True)
def _low_histogram(bits, key, n_threads):
    """Histogram of the low 16 bits of the |w| patterns whose top 16 bits equal `key`."""
    n = bits.size
    local = np.zeros((n_threads, 1 << 16), np.int64)
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        for i in range(t * step, min(n, (t + 1) * step)):
            b = bits[i] & 0x7FFFFFFF
            if (b >> 16) == key:
                local[t, b & 0xFFFF] += 1
    return local.sum(axis=0)


@dataclass(frozen=True)
class Threshold:
    """Zero every |w| whose bits are below `bits`, plus the first `ties` weights whose bits equal it."""
    bits: int
    ties: int

    @classmethod
    def none(cls) -> "Threshold":
        return cls(0, 0)


def key_histogram(w: torch.Tensor) -> np.ndarray:
    bits = float32_bits(w)
    no_cut = np.arange(N_KEYS, dtype=np.uint32) << 16
    return split_histogram(bits, no_cut, numba.get_num_threads()).reshape(N_KEYS, 2).sum(axis=1)


def global_threshold(tensors_pass1, tensors_pass2, k: int) -> Threshold:
    """Exact k-th smallest |w| over tensors streamed twice (two iterables of tensors)."""
    if k == 0:
        return Threshold.none()
    hist = np.zeros(N_KEYS, np.int64)
    for w in tensors_pass1:
        hist += key_histogram(w)
    cum = np.cumsum(hist)
    key = int(np.searchsorted(cum, k, side="left"))  # bin holding the k-th smallest
    below_key = int(cum[key - 1]) if key else 0
    low = np.zeros(1 << 16, np.int64)
    for w in tensors_pass2:
        low += _low_histogram(float32_bits(w), key, numba.get_num_threads())
    low_cum = np.cumsum(low)
    j = int(np.searchsorted(low_cum, k - below_key, side="left"))
    below = below_key + (int(low_cum[j - 1]) if j else 0)
    return Threshold((key << 16) | j, k - below)


@numba.njit(parallel=True, cache=True)
def _zero_at_or_below(bits, out, threshold, n_threads):
    """out = bits with every |w| <= threshold zeroed (branch-free, threaded).
    Returns (how many |w| equal the threshold, zeros in out)."""
    n = bits.size
    equal = np.zeros(n_threads, np.int64)
    zeros = np.zeros(n_threads, np.int64)
    step = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        e = z = 0
        for i in range(t * step, min(n, (t + 1) * step)):
            b = bits[i] & 0x7FFFFFFF
            v = bits[i] if b > threshold else 0
            out[i] = v
            e += b == threshold
            z += (v & 0x7FFFFFFF) == 0
        equal[t], zeros[t] = e, z
    return equal.sum(), zeros.sum()


@numba.njit(cache=True)
def _restore_ties(bits, out, threshold, skip):
    """Give back the weights equal to the threshold after the first `skip` of them, in order."""
    seen = restored = 0
    for i in range(bits.size):
        if (bits[i] & 0x7FFFFFFF) == threshold:
            if seen >= skip:
                out[i] = bits[i]
                restored += 1
            seen += 1
    return restored


def apply_threshold(w: torch.Tensor, threshold: Threshold) -> tuple[torch.Tensor, int, int]:
    """Zero w below the threshold and up to `threshold.ties` ties in order.
    Returns (pruned tensor in w's dtype, ties used, zeros in it)."""
    bits = float32_bits(w)
    out = torch.empty(w.numel(), dtype=torch.float32)
    out_bits = out.numpy().view(np.uint32)
    equal, zeros = _zero_at_or_below(bits, out_bits, threshold.bits, numba.get_num_threads())
    used = min(int(equal), threshold.ties)
    if equal > used:  # ties beyond the quota stay
        restored = _restore_ties(bits, out_bits, threshold.bits, used)
        zeros -= restored if threshold.bits else 0
    return out.reshape(w.shape).to(w.dtype), used, int(zeros)


def prune_smallest(w: torch.Tensor, k: int) -> torch.Tensor:
    """Zero the k smallest |w| of one tensor under the tie rule."""
    if k == 0:
        return w.clone()
    return apply_threshold(w, global_threshold([w], [w], k))[0]


def parse_nm(nm: str | tuple[int, int]) -> tuple[int, int]:
    """'2:4' -> (2, 4): at most N non-zeros in every M consecutive input weights."""
    try:
        n, m = (int(x) for x in (nm.split(":") if isinstance(nm, str) else nm))
    except (ValueError, AttributeError):
        raise SparsescopeError(f"N:M pattern {nm!r} is not of the form 'N:M', e.g. '2:4'") from None
    if not (0 < n <= m):
        raise SparsescopeError(f"N:M pattern {nm!r} needs 0 < N <= M (N kept in every M weights), e.g. '2:4'")
    return n, m


def nm_prune_scores(w: torch.Tensor, scores: torch.Tensor, n: int, m: int, in_dim: int) -> torch.Tensor:
    """Zero the M-N lowest-scoring weights in each group of M along the input dimension; among equal
    scores the earlier input is zeroed first."""
    if w.shape[in_dim] % m:
        raise SparsescopeError(f"N:M with M={m} needs the input dimension ({w.shape[in_dim]}) of every "
                               "pruned "
                               f"matrix to be a multiple of M")
    wt, st = (w, scores) if in_dim == 1 else (w.t(), scores.t())
    rows, cols = wt.shape
    groups = st.reshape(rows, cols // m, m)
    order = torch.argsort(groups, dim=-1, stable=True)[..., : m - n]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True).reshape(rows, cols)
    pruned = wt.masked_fill(mask, 0)
    return pruned if in_dim == 1 else pruned.t().contiguous()


def nm_magnitude(w: torch.Tensor, n: int, m: int, in_dim: int) -> torch.Tensor:
    return nm_prune_scores(w, w.abs().float(), n, m, in_dim)


def torch_prune_global(model, parameters: list[tuple[torch.nn.Module, str]], sparsity: float) -> None:
    """The seed's method, literally: torch.nn.utils.prune.global_unstructured + prune.remove."""
    from torch.nn.utils import prune
    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=sparsity)
    for module, name in parameters:
        prune.remove(module, name)
