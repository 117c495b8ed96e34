"""Index codes of a pruned matrix (bitmask, Rice, N:M), their decoders, and the bounds they are measured
against (the mask entropy n·H(s), log2 C(M, N) / M for N:M). The format they sit in: storage/__init__.py."""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ..errors import SparsescopeError

CODINGS = ("bitmask", "rice", "nm")
INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


# --------------------------------------------------------------------------------- index codes
def kept_mask(w: torch.Tensor) -> np.ndarray:
    """True where the stored bit pattern is not +0.0."""
    flat = w.detach().contiguous().reshape(-1)
    return (flat.view(INT_VIEW[flat.element_size()]) != 0).numpy()


def rice_bits(gaps: np.ndarray, k: int) -> int:
    return int(gaps.size * (1 + k) + (gaps >> k).sum())


def best_rice_parameter(gaps: np.ndarray) -> tuple[int, int]:
    sizes = [(rice_bits(gaps, k), k) for k in range(0, 32)]
    return min(sizes)


@numba.njit(cache=True)
def _rice_encode(gaps, k, n_bytes):
    out = np.zeros(n_bytes, np.uint8)
    pos = 0
    low = (1 << k) - 1
    for g in gaps:
        q = g >> k
        for _ in range(q):              # unary quotient: q ones ...
            out[pos >> 3] |= 1 << (pos & 7)
            pos += 1
        pos += 1                        # ... then a zero
        r = g & low
        for b in range(k):              # remainder, least significant bit first
            if (r >> b) & 1:
                out[pos >> 3] |= 1 << (pos & 7)
            pos += 1
    return out


@numba.njit(cache=True)
def _rice_decode(code, k, n_kept, numel):
    positions = np.empty(n_kept, np.int64)
    pos = 0
    last = -1
    for i in range(n_kept):
        q = 0
        while (code[pos >> 3] >> (pos & 7)) & 1:
            q += 1
            pos += 1
        pos += 1
        r = 0
        for b in range(k):
            r |= ((code[pos >> 3] >> (pos & 7)) & 1) << b
            pos += 1
        last = last + 1 + ((q << k) | r)
        if last >= numel:
            raise ValueError("corrupt Rice index: position past the end of the matrix")
        positions[i] = last
    return positions


# N:M ranks fit in an int64 (and so do the partial sums of the binomials that make them)
MAX_NM_SUBSETS = 1 << 62


def nm_code_bits(n: int, m: int) -> int:
    """Bits of one group's code: ceil(log2 C(m, n)) (0 when there is only one subset)."""
    return (math.comb(m, n) - 1).bit_length()


def _binomials(m: int) -> np.ndarray:
    """C(a, b) for a, b <= m as int64, capped where it cannot matter (entries above a valid rank)."""
    return np.array([[min(math.comb(a, b), MAX_NM_SUBSETS) for b in range(m + 1)] for a in range(m + 1)],
                    np.int64)


@numba.njit(cache=True)
def _nm_encode(groups, n, bits, binom):
    """Each row of `groups` (kept flags of m inputs) -> the lexicographic rank of its n-subset (kept
    positions, completed by the lowest unkept ones), packed in `bits` bits; and the subsets as flags."""
    n_groups, m = groups.shape
    out = np.zeros((n_groups * bits + 7) // 8, np.uint8)
    chosen = np.zeros((n_groups, m), np.bool_)
    for g in range(n_groups):
        fill = n
        for j in range(m):
            fill -= groups[g, j]
        rank = 0
        i = 0
        prev = -1
        for j in range(m):
            if groups[g, j]:
                take = True
            elif fill > 0:
                take = True
                fill -= 1
            else:
                take = False
            if take:
                for v in range(prev + 1, j):    # subsets whose i-th element is smaller come first
                    rank += binom[m - 1 - v, n - 1 - i]
                prev = j
                i += 1
                chosen[g, j] = True
        pos = g * bits
        for b in range(bits):
            if (rank >> b) & 1:
                out[(pos + b) >> 3] |= 1 << ((pos + b) & 7)
    return out, chosen


@numba.njit(cache=True)
def _nm_decode(code, n_groups, m, n, bits, binom, n_subsets):
    chosen = np.zeros((n_groups, m), np.bool_)
    for g in range(n_groups):
        pos = g * bits
        rank = 0
        for b in range(bits):
            rank |= np.int64((code[(pos + b) >> 3] >> ((pos + b) & 7)) & 1) << b
        if rank >= n_subsets:
            raise ValueError("corrupt N:M index: a group's code is not the rank of a subset")
        v = 0
        for i in range(n):
            while rank >= binom[m - 1 - v, n - 1 - i]:
                rank -= binom[m - 1 - v, n - 1 - i]
                v += 1
            chosen[g, v] = True
            v += 1
    return chosen


def _nm_groups(mask: np.ndarray, shape, m: int, in_dim: int) -> np.ndarray:
    """Kept flags of a matrix as [groups, m]: output by output, m consecutive inputs per group."""
    grid = mask.reshape(shape)
    return np.ascontiguousarray(grid.T if in_dim == 0 else grid).reshape(-1, m)


def _nm_positions(chosen: np.ndarray, shape, in_dim: int) -> np.ndarray:
    """Row-major positions in the stored matrix of the groups' chosen entries."""
    grid = chosen.reshape((shape[1], shape[0]) if in_dim == 0 else tuple(shape))
    return np.flatnonzero(grid.T if in_dim == 0 else grid)


def nm_applies(shape, nm) -> bool:
    """Whether an "nm" index can describe a matrix of this shape: a 2-D matrix whose input dimension
    divides into groups of m, with a subset rank that fits in 62 bits."""
    if nm is None:
        return False
    n, m, in_dim = nm
    return (len(shape) == 2 and in_dim in (0, 1) and 0 < n <= m and shape[in_dim] % m == 0
            and math.comb(m, n) <= MAX_NM_SUBSETS)


def encode_sparse(w: torch.Tensor, nm: tuple[int, int, int] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(values, index bytes, description) of a matrix, with the smallest index code that applies.
    `nm` = (n, m, input dimension) for a matrix pruned N:M: the "nm" code is a candidate when every group
    of m inputs holds at most n kept entries."""
    mask = kept_mask(w)
    flat = w.detach().contiguous().reshape(-1)
    positions = np.flatnonzero(mask)
    bitmask_bits = mask.size
    gaps = np.diff(positions, prepend=-1) - 1
    rice_size, k = best_rice_parameter(gaps) if positions.size else (0, 0)
    info = {"shape": list(w.shape), "dtype": str(w.dtype).replace("torch.", ""), "nnz": int(positions.size)}
    coding = "rice" if rice_size < bitmask_bits else "bitmask"
    if nm_applies(w.shape, nm):
        n, m, in_dim = nm
        groups = _nm_groups(mask, w.shape, m, in_dim)
        if groups.size and groups.sum(axis=1).max() <= n:
            n_groups, bits = groups.shape[0], nm_code_bits(n, m)
            usual = positions.size * flat.element_size() + ((rice_size if coding == "rice" else bitmask_bits)
                                                             + 7) // 8
            if n_groups * n * flat.element_size() + (n_groups * bits + 7) // 8 <= usual:
                index, chosen = _nm_encode(groups, n, bits, _binomials(m))
                positions = _nm_positions(chosen, w.shape, in_dim)
                info.update(nnz=int(positions.size), coding="nm", n=int(n), m=int(m), in_dim=int(in_dim))
                coding = "nm"
    if coding == "rice":
        index = _rice_encode(gaps.astype(np.int64), k, (rice_size + 7) // 8)
        info.update(coding="rice", k=int(k))
    elif coding == "bitmask":
        index = np.packbits(mask, bitorder="little")
        info.update(coding="bitmask")
    values = flat[torch.from_numpy(positions)]
    return values, torch.from_numpy(index), info


def decode_sparse(values: torch.Tensor, index: torch.Tensor, info: dict) -> torch.Tensor:
    numel = math.prod(info["shape"])
    if values.numel() != info["nnz"]:
        raise SparsescopeError(f"sparse tensor holds {values.numel()} values but its index says "
                               f"{info['nnz']}")
    code = index.numpy()
    try:
        if info["coding"] == "bitmask":
            positions = np.flatnonzero(np.unpackbits(code, count=numel, bitorder="little"))
        elif info["coding"] == "rice":
            positions = _rice_decode(code, int(info["k"]), int(info["nnz"]), numel)
        elif info["coding"] == "nm":
            positions = _decode_nm(code, info)
        else:
            raise SparsescopeError(f"unknown sparse index coding {info['coding']!r}: this sparsescope reads "
                                   f"{', '.join(CODINGS)}")
    except ValueError as err:
        raise SparsescopeError(f"sparse tensor of shape {info['shape']}: {err}") from None
    if positions.size != values.numel():
        raise SparsescopeError(f"sparse tensor holds {values.numel()} values but its index marks "
                               f"{positions.size} positions")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(positions)] = values
    return dense.reshape(info["shape"])


def _decode_nm(code: np.ndarray, info: dict) -> np.ndarray:
    missing = [key for key in ("n", "m", "in_dim") if key not in info]
    if missing:
        raise ValueError(f"its N:M index description lacks {', '.join(missing)}")
    shape, n, m, in_dim = info["shape"], int(info["n"]), int(info["m"]), int(info["in_dim"])
    if not nm_applies(shape, (n, m, in_dim)):
        raise ValueError(f"an N:M index of {n}:{m} along dimension {in_dim} does not fit this shape")
    n_groups, bits = math.prod(shape) // m, nm_code_bits(n, m)
    if code.size != (n_groups * bits + 7) // 8:
        raise ValueError(f"its N:M index holds {code.size} bytes, {n_groups} groups of {bits} bits need "
                         f"{(n_groups * bits + 7) // 8}")
    chosen = _nm_decode(code, n_groups, m, n, bits, _binomials(m), math.comb(m, n))
    return _nm_positions(chosen, shape, in_dim)


def binary_entropy(p):
    """H(p) in bits, elementwise; 0 at p = 0 and p = 1."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.where((p <= 0) | (p >= 1), 0.0, h)


def entropy_bound_bits(numel: int, nnz: int, value_bits: int) -> float:
    """H(s) per weight for the mask plus the kept values' bits: what any lossless code must spend
    on an i.i.d. mask of this density."""
    if numel == 0:
        return 0.0
    return numel * float(binary_entropy(nnz / numel)) + nnz * value_bits


def index_bound_bits(numel: int, nnz: int, nm: tuple[int, int] | None = None) -> float:
    """The fewest bits any index can take on average over i.i.d. masks of density nnz/numel, n·H(s) (not a
    bound for this one mask, whose structure a code could exploit: ratios near or under 1.0 are possible);
    for an N:M mask, one of C(M, N) subsets per group of M, log2 C(M, N) / M per weight."""
    if nm is not None:
        n, m = nm
        return numel * math.log2(math.comb(m, n)) / m
    return numel * float(binary_entropy(nnz / numel)) if numel else 0.0
