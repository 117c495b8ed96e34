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
from pathlib import Path

import pandas as pd
import torch

from ..artifacts import atomic_write_text, cached_json
from ..pruning.layers import LinearView, is_linear
from ..pruning.magnitude import nm_magnitude, prune_smallest
from ..pruning.runs import pick_run, read_pruning_table
from ..sources.registry import load_model
from ..sources.weights import tag
from ..storage import load_pruned

KERNEL_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
KERNEL_TOKENS = (1, 16, 128, 512)


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
        rows.append({"kind": kind, "shape_or_model": label, "sparsity": sparsity, "tokens": tokens,
                     "batch": b,
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
            rows.append({"kind": "kernel-2:4", "shape_or_model": f"{out_f}x{in_f}", "sparsity": 0.5,
                         "tokens": n, "dense_ms": dense_ms, "sparse_ms": sparse_ms,
                         "speedup": speedup(dense_ms, sparse_ms),
                         "device": device_name()})
    return rows


# ------------------------------------------------------------------------------ notebook 03
def input_maker(model, seqlen: int, seed: int = 0):
    """Random inputs of the model's kind, batch size b -> kwargs (latency does not depend on content)."""
    config = model.config
    vocab = config.vocab_size

    def make(b: int) -> dict:
        g = torch.Generator().manual_seed(seed + b)
        if config.model_type == "whisper":
            return {"input_features": torch.randn(b, config.num_mel_bins, 3000, generator=g),
                    "decoder_input_ids": torch.randint(0, vocab, (b, 16), generator=g)}
        ids = {"input_ids": torch.randint(0, vocab, (b, seqlen), generator=g)}
        if config.is_encoder_decoder:
            ids["decoder_input_ids"] = torch.randint(0, vocab, (b, 16), generator=g)
        return ids
    return make


def prunable_shapes(model) -> list[tuple[int, int]]:
    """Distinct (outputs, inputs) shapes of the prunable linear layers."""
    shapes = set()
    for name, module in model.named_modules():
        if is_linear(module) and tag(f"{name}.weight", tuple(module.weight.shape)).prunable:
            shapes.add(tuple(LinearView(module).weight().shape))
    return sorted(shapes)


def runtime_results(model: str, pruning_dir, out_dir, batch_sizes=(1, 8), seqlen: int = 128,
                    sparsities=KERNEL_SPARSITIES, tokens=KERNEL_TOKENS, repeats: int = 5) -> pd.DataFrame:
    """Measure (or reuse) runtime.csv: dense-kernel and sparse-kernel latencies, and GPU 2:4 where CUDA is."""
    out_dir = Path(out_dir)
    settings = {"model": model, "batch_sizes": list(batch_sizes), "seqlen": seqlen,
                "sparsities": list(sparsities),
                "tokens": list(tokens), "repeats": repeats, "device": device_name()}

    def measure() -> list[dict]:
        runs = read_pruning_table(pruning_dir)
        torch.manual_seed(0)
        dense = load_model(model, dtype=torch.float32)
        make_inputs = input_maker(dense, seqlen)
        rows = []
        half = pick_run(runs, "global_magnitude", 0.5)
        if half is not None:  # 1. the seed's observation: zeros in dense kernels cost the same
            rows += end_to_end(dense, load_pruned(half["checkpoint"], dtype=torch.float32), make_inputs,
                               batch_sizes, "dense-kernels", model, float(half["achieved_sparsity"]), repeats)
        shapes = prunable_shapes(dense)
        rows += kernel_sweep(shapes, sparsities, tokens, repeats=repeats)  # 2. CPU sparse kernels
        cross = pd.DataFrame(crossovers(rows))
        e2e_tokens = min(tokens, key=lambda n: abs(n - seqlen))
        at = cross[(cross["kind"] == "kernel-csr") & (cross["tokens"] == e2e_tokens)]["crossover_sparsity"]
        threshold = float(at.max()) if len(at) and at.notna().all() else None
        top = pick_run(runs, "layer_magnitude", None)  # uniform per matrix: every layer at the same sparsity
        if threshold is not None and top is not None and top["achieved_sparsity"] >= threshold:
            sparse_model = load_pruned(top["checkpoint"], dtype=torch.float32)
            swapped = sparsify_linears(sparse_model, threshold)
            rows += [{**r, "swapped_layers": swapped} for r in
                     end_to_end(dense, sparse_model, make_inputs, batch_sizes, "sparse-kernels-e2e", model,
                                float(top["achieved_sparsity"]), repeats)]
        if torch.cuda.is_available():  # 3. 2:4 tensor cores
            rows += semi_structured_sweep([s for s in shapes if s[1] % 64 == 0])
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "crossovers.csv", cross.to_csv(index=False))
        return rows

    rows = cached_json(out_dir / "runtime_rows.json", settings, measure)
    table = pd.DataFrame(rows)
    atomic_write_text(out_dir / "runtime.csv", table.to_csv(index=False))
    return table
