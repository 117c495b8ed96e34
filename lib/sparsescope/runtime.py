"""Does a sparse model run faster? Ratios measured side by side in one process: warm-up, repeats, median.

1. dense kernels: the pruned model run as it is saved (zeros multiplied like any number) vs the dense
   model — the seed's observation that pruning alone buys no time;
2. CPU sparse kernels: every prunable matrix shape as torch CSR (and BSR) vs dense, over sparsity and
   tokens per batch; the crossover sparsity where sparse starts to win; and the model end to end with
   its linear layers run as CSR above that crossover;
3. GPU 2:4 semi-structured kernels (`to_sparse_semi_structured`), only where CUDA is present.
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch

from .layers import LinearView, is_linear
from .magnitude import nm_magnitude, prune_smallest


warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse BSR tensor support is in beta")


def time_ms(fn, warmup: int = 2, repeats: int = 7) -> float:
    """Median wall time of fn() in milliseconds (CUDA synchronised where used)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def speedup(dense_ms: float, sparse_ms: float) -> float:
    """How many times faster the sparse run is (>1: sparse wins)."""
    return dense_ms / sparse_ms


def find_crossover(sparsities, speedups) -> float | None:
    """Lowest sparsity from which sparse wins at every measured sparsity above it, linearly interpolated
    between the last losing and the first winning point; None if sparse never wins at the top."""
    points = sorted(zip(sparsities, speedups))
    if not points or points[-1][1] < 1.0:
        return None
    i = len(points) - 1
    while i > 0 and points[i - 1][1] >= 1.0:
        i -= 1
    if i == 0:
        return points[0][0]
    (s0, v0), (s1, v1) = points[i - 1], points[i]
    return s0 + (1.0 - v0) * (s1 - s0) / (v1 - v0)


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads)"


# ------------------------------------------------------------------------------ CPU kernels
def kernel_sweep(shapes, sparsities, tokens, formats=("csr", "bsr"), bsr_block: int = 16, seed: int = 0,
                 repeats: int = 7) -> list[dict]:
    """Dense F.linear vs the same magnitude-pruned matrix in sparse formats, per shape/sparsity/tokens."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for out_f, in_f in shapes:
        dense_w = torch.randn(out_f, in_f, generator=g) * 0.02
        for s in sparsities:
            w = prune_smallest(dense_w, round(s * dense_w.numel()))
            kernels = {"csr": w.to_sparse_csr()}
            if "bsr" in formats and out_f % bsr_block == 0 and in_f % bsr_block == 0:
                kernels["bsr"] = w.to_sparse_bsr((bsr_block, bsr_block))
            for n in tokens:
                x = torch.randn(n, in_f, generator=g)
                xt = x.t().contiguous()
                dense_ms = time_ms(lambda: torch.nn.functional.linear(x, w), repeats=repeats)
                for fmt, sparse_w in kernels.items():
                    if fmt not in formats:
                        continue
                    sparse_ms = time_ms(lambda: (sparse_w @ xt).t(), repeats=repeats)
                    rows.append({"kind": f"kernel-{fmt}", "shape_or_model": f"{out_f}x{in_f}", "sparsity": s,
                                 "tokens": n, "dense_ms": dense_ms, "sparse_ms": sparse_ms,
                                 "speedup": speedup(dense_ms, sparse_ms), "device": device_name()})
    return rows


def crossovers(rows: list[dict]) -> list[dict]:
    """Crossover sparsity per (kind, shape, tokens) of a kernel sweep."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["kind"], r["shape_or_model"], r["tokens"]), []).append(r)
    return [{"kind": k, "shape_or_model": shape, "tokens": n,
             "crossover_sparsity": find_crossover([r["sparsity"] for r in rs], [r["speedup"] for r in rs])}
            for (k, shape, n), rs in sorted(groups.items())]


class SparseLinear(torch.nn.Module):
    """A linear layer whose weight is a CSR matrix: y = x Wᵀ + b computed as (W xᵀ)ᵀ."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.weight_csr = LinearView(module).weight().detach().float().to_sparse_csr()
        self.bias = None if module.bias is None else module.bias.detach().float()
        self.out_features = self.weight_csr.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = (self.weight_csr @ flat.t().contiguous()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def sparsify_linears(model, min_sparsity: float) -> int:
    """Swap in SparseLinear for every block linear layer at least `min_sparsity` sparse; returns how many."""
    swaps = []
    for name, module in model.named_modules():
        if is_linear(module) and module.weight.dim() == 2 and name.count(".") >= 2:
            sparsity = float((module.weight == 0).float().mean())
            if sparsity >= min_sparsity:
                swaps.append(name)
    for name in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, SparseLinear(getattr(parent, child)))
    return len(swaps)


@torch.no_grad()
def end_to_end(dense_model, other_model, make_inputs, batch_sizes, kind: str, label: str, sparsity: float,
               repeats: int = 5) -> list[dict]:
    """Model forward latency of `other_model` vs `dense_model` on the same inputs, per batch size."""
    rows = []
    for b in batch_sizes:
        inputs = make_inputs(b)
        dense_ms = time_ms(lambda: dense_model(**inputs), warmup=1, repeats=repeats)
        other_ms = time_ms(lambda: other_model(**inputs), warmup=1, repeats=repeats)
        tokens = int(next(iter(inputs.values())).shape[0] * next(iter(inputs.values())).shape[-1])
        rows.append({"kind": kind, "shape_or_model": label, "sparsity": sparsity, "tokens": tokens, "batch": b,
                     "dense_ms": dense_ms, "sparse_ms": other_ms, "speedup": speedup(dense_ms, other_ms),
                     "device": device_name()})
    return rows


# ------------------------------------------------------------------------------ GPU 2:4
def semi_structured_sweep(shapes, tokens, dtype=torch.float16, repeats: int = 20) -> list[dict]:
    """2:4 sparse tensor cores vs dense F.linear on CUDA, per shape and tokens. Needs a GPU."""
    from torch.sparse import to_sparse_semi_structured
    if not torch.cuda.is_available():
        raise RuntimeError("2:4 semi-structured kernels need a CUDA device")
    rows = []
    for out_f, in_f in shapes:
        w = nm_magnitude(torch.randn(out_f, in_f) * 0.02, 2, 4, in_dim=1).to("cuda", dtype)
        sparse_w = to_sparse_semi_structured(w)
        for n in tokens:
            x = torch.randn(n, in_f, device="cuda", dtype=dtype)
            dense_ms = time_ms(lambda: torch.nn.functional.linear(x, w), warmup=5, repeats=repeats)
            sparse_ms = time_ms(lambda: torch.nn.functional.linear(x, sparse_w), warmup=5, repeats=repeats)
            rows.append({"kind": "kernel-2:4", "shape_or_model": f"{out_f}x{in_f}", "sparsity": 0.5, "tokens": n,
                         "dense_ms": dense_ms, "sparse_ms": sparse_ms, "speedup": speedup(dense_ms, sparse_ms),
                         "device": device_name()})
    return rows
