"""Does a sparse model run faster? Ratios measured side by side in one process: warm-up, repeats, median.

1. dense kernels: the pruned model run as it is saved (zeros multiplied like any number) vs the dense
   model — the seed's observation that pruning alone buys no time;
2. CPU sparse kernels: every prunable matrix shape as torch CSR (and BSR) vs dense, over sparsity and
   tokens per batch; the crossover sparsity where sparse starts to win; and the model end to end with
   its linear layers run as CSR above that crossover;
3. GPU 2:4 semi-structured kernels (`to_sparse_semi_structured`), when the run is on a CUDA device;
4. structured runs (smaller dense models): end to end against the dense model at each batch size
   (`structured-prefill`) and, for causal LMs, per-token greedy decoding with the KV cache
   (`structured-decode`), with each run's bytes on disk.

Everything runs on one device, chosen by `resolve_device` ("auto": CUDA when torch sees a GPU, else CPU);
each row names it. Models and tensors reach the device only through `to_device`, and 2:4 tensors only
through `semi_structured_sweep`, so tests can drive the CUDA paths on a machine without a GPU.
"""
from __future__ import annotations

import inspect
import statistics
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from ..artifacts import atomic_write_text, cached_json, content_hashes, folder_hashes
from ..errors import SparsescopeError
from ..pruning.layers import LinearView
from ..sources.anatomy import Anatomy
from ..pruning.magnitude import nm_magnitude, prune_smallest
from ..pruning.runs import pick_run, read_pruning_table
from ..sources.devices import device_name, resolve_device, to_device
from ..sources.registry import load_model, model_folder
from ..sources.weights import model_source_files
from ..storage import load_pruned

KERNEL_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
KERNEL_TOKENS = (1, 16, 128, 512)
ROWS_VERSION = 2  # what a cached row holds (2: nan intervals for one repeat): older caches are measured anew


warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse BSR tensor support is in beta")


def time_ms(fn, warmup: int = 2, repeats: int = 7, *, device: str | torch.device) -> float:
    """Median wall time of fn() in milliseconds. CUDA kernels run asynchronously, so work timed on a CUDA
    device is synchronised before each clock read; CPU timings never wait on a GPU they do not use."""
    device = resolve_device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
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


def interleaved_ms(run_a, run_b, repeats: int, *, device, warmup: int = 1, switch=None) -> tuple[list, list]:
    """Wall times (ms) of two runs measured ABAB…: each repeat times A then B, so a machine that slows down
    or speeds up meanwhile moves both alike. `switch(which)`, when given, is called before each timing to put
    the model in state "a" or "b" (weights swapped in place when two models do not fit in memory); it is not
    timed."""
    device = resolve_device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    times: dict[str, list] = {"a": [], "b": []}
    for which, run in (("a", run_a), ("b", run_b)):
        if switch is not None:
            switch(which)
        for _ in range(warmup):
            run()
    for _ in range(repeats):
        for which, run in (("a", run_a), ("b", run_b)):
            if switch is not None:
                switch(which)
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[which].append(1000 * (time.perf_counter() - start))
    return times["a"], times["b"]


def ratio_interval(a: list[float], b: list[float], level: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of median(a) / median(b): each resample draws the repeats of a and of b anew.
    Fewer than 2 repeats of either leave nothing to resample: (nan, nan), no interval and so no claim."""
    import numpy as np
    if min(len(a), len(b)) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ratios = (np.median(rng.choice(a, (resamples, a.size)), axis=1)
              / np.median(rng.choice(b, (resamples, b.size)), axis=1))
    tail = (1 - level) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


def timing_row(dense: list[float], sparse: list[float]) -> dict:
    """Medians, interquartile ranges and the speedup with its 95% bootstrap interval (nan with 1 repeat)."""
    import numpy as np
    lo, hi = ratio_interval(dense, sparse)
    q = {name: np.percentile(t, [25, 50, 75]) for name, t in (("dense", dense), ("sparse", sparse))}
    return {"dense_ms": float(q["dense"][1]), "sparse_ms": float(q["sparse"][1]),
            "dense_iqr_ms": float(q["dense"][2] - q["dense"][0]),
            "sparse_iqr_ms": float(q["sparse"][2] - q["sparse"][0]),
            "speedup": speedup(float(q["dense"][1]), float(q["sparse"][1])),
            "speedup_lo": lo, "speedup_hi": hi,
            "repeats": len(dense)}


def find_crossover(sparsities, speedups, lows=None, interpolate: bool = False) -> float | None:
    """The lowest measured sparsity from which sparse wins there and at every measured sparsity above it;
    None if sparse does not win at the top. Given `lows` (each point's lower 95% bound), a win must be
    measurable, its interval above 1.0: a median above 1.0 from three noisy repeats makes no crossover.
    With `interpolate`, the crossing is instead put on the line between the last losing and the first winning
    point (on the bounds when given): an estimate at a sparsity that was never measured."""
    return crossings(sparsities, speedups, lows)[1 if interpolate else 0]


def crossings(sparsities, speedups, lows=None) -> tuple[float | None, float | None]:
    """(the measured crossover, the interpolated one) as find_crossover defines them, from one pass."""
    measured = lows is not None
    points = sorted(zip(sparsities, lows if measured else speedups))

    def wins(value: float) -> bool:
        return value > 1.0 if measured else value >= 1.0

    if not points or not wins(points[-1][1]):
        return None, None
    i = len(points) - 1
    while i > 0 and wins(points[i - 1][1]):
        i -= 1
    if i == 0:
        return points[0][0], points[0][0]
    (s0, v0), (s1, v1) = points[i - 1], points[i]
    return s1, s0 + (1.0 - v0) * (s1 - s0) / (v1 - v0)


# ------------------------------------------------------------------------------ CSR / BSR kernels
def kernel_sweep(shapes, sparsities, tokens, formats=("csr", "bsr"), bsr_block: int = 16, seed: int = 0,
                 repeats: int = 7, device: str | torch.device = "cpu") -> list[dict]:
    """Dense F.linear vs the same magnitude-pruned matrix in sparse formats, per shape/sparsity/tokens:
    timed interleaved (dense, sparse, dense, ...), with medians, IQRs and the speedup's bootstrap interval."""
    device = resolve_device(device)
    name = device_name(device)
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same matrices whatever the device
    rows = []
    for out_f, in_f in shapes:
        dense_w = torch.randn(out_f, in_f, generator=g) * 0.02
        for s in sparsities:
            w = to_device(prune_smallest(dense_w, round(s * dense_w.numel())), device)
            kernels = {"csr": w.to_sparse_csr()}
            if "bsr" in formats and out_f % bsr_block == 0 and in_f % bsr_block == 0:
                kernels["bsr"] = w.to_sparse_bsr((bsr_block, bsr_block))
            for n in tokens:
                x = to_device(torch.randn(n, in_f, generator=g), device)
                xt = x.t().contiguous()
                for fmt, sparse_w in kernels.items():
                    if fmt not in formats:
                        continue
                    dense_t, sparse_t = interleaved_ms(lambda: torch.nn.functional.linear(x, w),
                                                       lambda: (sparse_w @ xt).t(), repeats, device=device)
                    rows.append({"kind": f"kernel-{fmt}", "shape_or_model": f"{out_f}x{in_f}", "sparsity": s,
                                 "tokens": n, **timing_row(dense_t, sparse_t), "device": name})
    return rows


def crossover_rule(rows: list[dict]) -> str:
    """How a group of kernel rows can decide a crossover: "interval" (every row has a 95% interval),
    "one repeat" (a row timed once has none, so no claim is made), "median" (rows saved before intervals
    were recorded: their medians decide, and the report says so)."""
    if any(int(r.get("repeats") or 2) < 2 for r in rows):
        return "one repeat"
    lows = [r.get("speedup_lo") for r in rows]
    return "median" if any(x is None or x != x for x in lows) else "interval"


def crossovers(rows: list[dict]) -> list[dict]:
    """Crossover per (kind, shape, tokens) of the CSR and BSR kernel sweeps (other rows are left out):
    `crossover_sparsity`, the lowest measured sparsity from which sparse is measurably faster there and
    at every measured sparsity above; `interpolated_crossover`, the same crossing interpolated between
    the measured points (an estimate, labelled so); `rule`, what decided (crossover_rule)."""
    groups: dict = {}
    for r in rows:
        if r["kind"] in ("kernel-csr", "kernel-bsr"):
            groups.setdefault((r["kind"], r["shape_or_model"], r["tokens"]), []).append(r)
    out = []
    for (kind, shape, n), rs in sorted(groups.items()):
        rule = crossover_rule(rs)
        at = [r["sparsity"] for r in rs]
        lows = [float(r["speedup_lo"]) for r in rs] if rule == "interval" else None
        found = (None, None) if rule == "one repeat" else crossings(at, [r["speedup"] for r in rs], lows)
        out.append({"kind": kind, "shape_or_model": shape, "tokens": n, "crossover_sparsity": found[0],
                    "interpolated_crossover": found[1],
                    "measured_sparsities": " ".join(f"{x:g}" for x in sorted(at)), "rule": rule})
    return out


class SparseLinear(torch.nn.Module):
    """A linear layer whose weight is a CSR matrix: y = x Wᵀ + b computed as (W xᵀ)ᵀ."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        # on the module's own device; contiguous first, as Conv1D's view is a transpose
        self.weight_csr = LinearView(module).weight().detach().float().contiguous().to_sparse_csr()
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
    swaps = [m.module for m in Anatomy(model).matrices.values()
             if float((model.get_submodule(m.module).weight == 0).float().mean()) >= min_sparsity]
    for name in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, SparseLinear(getattr(parent, child)))
    return len(swaps)


@torch.no_grad()
def end_to_end(dense_model, other_model, make_inputs, batch_sizes, kind: str, label: str, sparsity: float,
               repeats: int = 5, device: str | torch.device = "cpu", switch=None) -> list[dict]:
    """Model forward latency of `other_model` vs `dense_model` on the same inputs, per batch size, measured
    interleaved; both models already on `device`. With `switch`, the two are one model whose weights
    `switch("a" | "b")` swaps in place."""
    device = resolve_device(device)
    name = device_name(device)
    rows = []
    for b in batch_sizes:
        inputs = {k: to_device(v, device) for k, v in make_inputs(b).items()}
        dense, other = interleaved_ms(lambda: dense_model(**inputs), lambda: other_model(**inputs), repeats,
                                      device=device, switch=switch)
        first = next(iter(inputs.values()))
        rows.append({"kind": kind, "shape_or_model": label, "sparsity": sparsity,
                     "tokens": int(first.shape[0] * first.shape[-1]), "batch": b,
                     "seqlen": int(first.shape[-1]), **timing_row(dense, other),
                     "interleaved": "swapped in place" if switch else "two models",
                     "device": name})
    return rows


def model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


TWO_MODELS = 2.25  # memory a dense model and a pruned copy need side by side, in model bytes


def available_bytes() -> int:
    """MemAvailable: what can be allocated without swapping (Linux), else a generous guess."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 40


def weight_switch(model, folders: dict[str, Path]):
    """switch("a" | "b"): copy the weights of folders["a"] or folders["b"] into `model` in place, tensor by
    tensor, so comparing two checkpoints needs one model's memory."""
    from ..storage import copy_weights_into
    state = {"now": None}

    def switch(which: str) -> None:
        if state["now"] != which:
            copy_weights_into(model, folders[which])
            state["now"] = which
    return switch


# ------------------------------------------------------------------------------ structured runs
def is_causal_lm(model) -> bool:
    return any(word in type(model).__name__ for word in ("CausalLM", "LMHead"))


@torch.no_grad()
def decode_ms(dense_model, other_model, prompt: torch.Tensor, new_tokens: int, repeats: int, *,
              device) -> tuple[list, list]:
    """Per-token wall times (ms) of greedy decoding with the KV cache — `new_tokens` steps of one token
    after `prompt` — for two models, interleaved. Each timing starts from a fresh cache of the prompt, built
    before the clock starts (the untimed `switch` of interleaved_ms)."""
    models, state = {"a": dense_model, "b": other_model}, {}
    # transformers 5.x renames past_key_values to cache (the old name warns until 5.40)
    key = "cache" if "cache" in inspect.signature(dense_model.forward).parameters else "past_key_values"

    def prefill(which: str) -> None:
        out = models[which](input_ids=prompt, use_cache=True)
        state[which] = (out[key], out.logits[:, -1:].argmax(-1))

    def steps(which: str) -> None:
        past, token = state[which]
        for _ in range(new_tokens):
            out = models[which](input_ids=token, use_cache=True, **{key: past})
            past, token = out[key], out.logits[:, -1:].argmax(-1)
    a, b = interleaved_ms(lambda: steps("a"), lambda: steps("b"), repeats, device=device, switch=prefill)
    return [t / new_tokens for t in a], [t / new_tokens for t in b]


def structured_rows(dense_model, runs: pd.DataFrame, make_inputs, batch_sizes, repeats: int = 5,
                    device: str | torch.device = "cpu", decode_tokens: int = 32) -> list[dict]:
    """Every structured run of a pruning table (smaller dense models) against the dense model, both in memory:
    end to end per batch size (`structured-prefill`), per-token decoding for causal LMs (`structured-decode`).
    Rows name the run (`run`, also in `shape_or_model`), its method, share removed and bytes on disk."""
    device = resolve_device(device)
    rows = []
    for run in runs[runs["kind"] == "structured"].itertuples():
        label = Path(run.checkpoint).parent.name
        small = to_device(load_pruned(run.checkpoint, dtype=torch.float32), device)
        share = float(run.achieved_sparsity)
        about = {"run": label, "method": run.method, "structure": run.structure,
                 "bytes": int(run.saved_bytes), "dense_bytes": int(run.dense_bytes)}
        rows += [{**r, **about} for r in end_to_end(dense_model, small, make_inputs, batch_sizes,
                                                    "structured-prefill", label, share, repeats, device)]
        if is_causal_lm(dense_model) and decode_tokens:
            rows.append({**decode_row(dense_model, small, make_inputs, decode_tokens, repeats, device,
                                      "structured-decode", label, share), **about})
        del small
    return rows


def decode_row(dense_model, other_model, make_inputs, decode_tokens: int, repeats: int, device, kind: str,
               name: str, sparsity: float) -> dict:
    """The decode regime of a causal LM: per-token latency of greedy decoding with the KV cache after a
    prompt of one batch-1 input, dense against `other_model`, interleaved."""
    prompt = to_device(make_inputs(1)["input_ids"], device)
    dense_t, other_t = decode_ms(dense_model, other_model, prompt, decode_tokens, repeats, device=device)
    return {"kind": kind, "shape_or_model": name, "sparsity": sparsity, "tokens": decode_tokens, "batch": 1,
            "seqlen": int(prompt.shape[-1]), **timing_row(dense_t, other_t), "interleaved": "two models",
            "device": device_name(device)}


# ------------------------------------------------------------------------------ GPU 2:4
def fits_semi_structured(shape: tuple[int, int]) -> bool:
    """Whether an (outputs, inputs) weight can be a 2:4 tensor: torch's CUTLASS kernels take fp16/bf16
    weights whose rows are a multiple of 32 and columns a multiple of 64 (cuSPARSELt takes 16 x 16)."""
    out_f, in_f = shape
    return out_f % 32 == 0 and in_f % 64 == 0


def semi_structured_unavailable(device: str | torch.device) -> str | None:
    """Why 2:4 sparse tensor cores cannot run on `device`, or None when they can."""
    device = resolve_device(device)
    if device.type != "cuda":
        return f"2:4 sparse tensor cores need a CUDA GPU, and this run is on {device}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 0):
        return (f"{device_name(device)} has compute capability {major}.{minor}; 2:4 sparse tensor cores "
                "need 8.0 (Ampere) or newer")
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return f"torch {torch.__version__} has no to_sparse_semi_structured: install torch >= 2.4"
    return None


def semi_structured_sweep(shapes, tokens, dtype=torch.float16, repeats: int = 20,
                          device: str | torch.device = "cuda", seed: int = 0) -> list[dict]:
    """2:4 sparse tensor cores vs dense F.linear on a CUDA device, per (outputs, inputs) shape and tokens
    per batch; the weight is 2:4 magnitude-pruned along its inputs."""
    reason = semi_structured_unavailable(device)
    if reason:
        raise SparsescopeError(f"{reason}: run the 2:4 sweep on such a GPU")
    misfits = [f"{o}x{i}" for o, i in shapes if not fits_semi_structured((o, i))]
    if misfits:
        raise SparsescopeError(f"2:4 kernels need weights with outputs a multiple of 32 and inputs a "
                               f"multiple of 64, not {', '.join(misfits)} (outputs x inputs): leave those "
                               "shapes out (fits_semi_structured tells)")
    from torch.sparse import to_sparse_semi_structured  # looked up per call, so tests can replace it
    device = resolve_device(device)
    name, dtype_name = device_name(device), str(dtype).removeprefix("torch.")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for out_f, in_f in shapes:
        w = nm_magnitude(torch.randn(out_f, in_f, generator=g) * 0.02, 2, 4, in_dim=1)
        w = to_device(w.to(dtype), device)
        sparse_w = to_sparse_semi_structured(w)
        for n in tokens:
            x = to_device(torch.randn(n, in_f, generator=g).to(dtype), device)
            dense_t, sparse_t = interleaved_ms(lambda: torch.nn.functional.linear(x, w),
                                               lambda: torch.nn.functional.linear(x, sparse_w), repeats,
                                               device=device, warmup=5)
            rows.append({"kind": "kernel-2:4", "shape_or_model": f"{out_f}x{in_f}", "sparsity": 0.5,
                         "tokens": n, **timing_row(dense_t, sparse_t), "device": name, "dtype": dtype_name})
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
    return sorted({m.shape for m in Anatomy(model).matrices.values()})


def csr_threshold(rows: list[dict], tokens, seqlen: int) -> float | None:
    """The sparsity from which CSR wins on every matrix shape at the sweep's tokens nearest `seqlen` (None
    where some shape has no crossover): the layers worth swapping end to end."""
    cross = pd.DataFrame(crossovers(rows))
    e2e_tokens = min(tokens, key=lambda n: abs(n - seqlen))
    at = cross[(cross["kind"] == "kernel-csr") & (cross["tokens"] == e2e_tokens)]["crossover_sparsity"]
    return float(at.max()) if len(at) and at.notna().all() else None


def semi_structured_rows(shapes, tokens, repeats: int, device) -> list[dict]:
    """The 2:4 sweep on the shapes that fit a 2:4 tensor, or none, said in one line, where it cannot run."""
    reason = semi_structured_unavailable(device)
    fitting = [s for s in shapes if fits_semi_structured(s)]
    if reason or not fitting:
        print(f"2:4 kernels not measured: {reason or 'no prunable matrix fits a 2:4 tensor'}")
        return []
    return semi_structured_sweep(fitting, list(tokens), repeats=repeats, device=device)


def runtime_results(model: str, pruning_dir, out_dir, batch_sizes=(1, 8), seqlen: int = 128,
                    sparsities=KERNEL_SPARSITIES, tokens=KERNEL_TOKENS, repeats: int = 5,
                    device: str | torch.device = "auto", decode_tokens: int = 32) -> pd.DataFrame:
    """Measure (or reuse) runtime.csv on `device`: dense-kernel and sparse-kernel latencies, 2:4 sparse
    tensor cores when the device is a CUDA GPU that has them, and the structured runs' smaller models."""
    out_dir = Path(out_dir)
    device = resolve_device(device)
    settings = {"model": model, "batch_sizes": list(batch_sizes), "seqlen": seqlen,
                "sparsities": list(sparsities),
                "tokens": list(tokens), "repeats": repeats, "device": device_name(device),
                "decode_tokens": decode_tokens}
    runs = read_pruning_table(pruning_dir)
    structured = runs[runs["kind"] == "structured"] if "kind" in runs else runs.iloc[:0]
    half = pick_run(runs, "global_magnitude", 0.5)
    top = pick_run(runs, "layer_magnitude", None)  # uniform per matrix: every layer at the same sparsity
    # keyed by the content of what is timed, as the quality rows are: another plan (0.7 instead of 0.5, a
    # new structured run, a re-pruned checkpoint in another pruning_dir) is measured, not read back stale
    folder = Path(model_folder(model))
    timed = {"dense": content_hashes(model_source_files(folder), folder)}
    for run in [r for r in (half, top) if r is not None] + [r for _, r in structured.iterrows()]:
        timed[Path(run["checkpoint"]).parent.name] = folder_hashes(run["checkpoint"])
    settings.update(timed=timed, rows=ROWS_VERSION)

    def measure() -> list[dict]:
        torch.manual_seed(0)
        # asked before loading: a model read through a mapped file (safetensors, or a pickle with mmap) sits
        # in page cache, which still counts as "available" once loaded, yet evicting it makes every forward
        # read the file again (T5-XL beside a pruned copy on 24 GB: dense "1.9x slower" from that alone)
        free = available_bytes()
        dense = to_device(load_model(model, dtype=torch.float32), device)
        make_inputs = input_maker(dense, seqlen)
        rows = []
        # two copies resident, plus a quarter for activations (the grid asks the same for this task)
        two_fit = TWO_MODELS * model_bytes(dense) < free or device.type == "cuda"
        if half is not None:  # 1. the seed's observation: zeros in dense kernels cost the same
            sparsity = float(half["achieved_sparsity"])
            if two_fit:
                pruned = to_device(load_pruned(half["checkpoint"], dtype=torch.float32), device)
                rows += end_to_end(dense, pruned, make_inputs, batch_sizes, "dense-kernels", model, sparsity,
                                   repeats, device)
                if is_causal_lm(dense) and decode_tokens:  # the decode regime: one new token with the cache
                    rows.append(decode_row(dense, pruned, make_inputs, decode_tokens, repeats, device,
                                           "dense-kernels-decode", model, sparsity))
                del pruned
            else:  # one model, its weights swapped between the two checkpoints in place
                folders = {"a": model_folder(model), "b": Path(half["checkpoint"])}
                switch = weight_switch(dense, folders)
                rows += end_to_end(dense, dense, make_inputs, batch_sizes, "dense-kernels", model, sparsity,
                                   repeats, device, switch=switch)
                switch("a")
        shapes = prunable_shapes(dense)
        rows += kernel_sweep(shapes, sparsities, tokens, repeats=repeats, device=device)  # 2. CSR / BSR
        threshold = csr_threshold(rows, tokens, seqlen)
        if not two_fit and top is not None:
            print(f"{model}: CSR layers end to end not measured: a dense and a sparse copy of the model do "
                  "not "
                  f"fit in memory together ({model_bytes(dense) / 1e9:.1f} GB each)", flush=True)
        elif threshold is not None and top is not None and top["achieved_sparsity"] >= threshold:
            # moved before the swap: SparseLinear builds its CSR weight where the layer already is
            sparse_model = to_device(load_pruned(top["checkpoint"], dtype=torch.float32), device)
            swapped = sparsify_linears(sparse_model, threshold)
            rows += [{**r, "swapped_layers": swapped} for r in
                     end_to_end(dense, sparse_model, make_inputs, batch_sizes, "sparse-kernels-e2e", model,
                                float(top["achieved_sparsity"]), repeats, device)]
        if len(structured) and not two_fit:
            print(f"{model}: structured runs not measured: the dense model and a smaller one do not fit in "
                  f"memory together ({model_bytes(dense) / 1e9:.1f} GB dense)", flush=True)
        elif len(structured):  # 4. smaller dense models (after the crossovers: not kernels)
            rows += structured_rows(dense, structured, make_inputs, batch_sizes, repeats, device,
                                    decode_tokens)
        if device.type == "cuda":  # 3. 2:4 tensor cores, on the same tokens per batch as the CSR sweep
            rows += semi_structured_rows(shapes, tokens, repeats, device)
        return rows

    rows = cached_json(out_dir / "runtime_rows.json", settings, measure)
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)  # derived from the rows each time, so never older than they
    atomic_write_text(out_dir / "crossovers.csv", pd.DataFrame(crossovers(rows)).to_csv(index=False))
    atomic_write_text(out_dir / "runtime.csv", table.to_csv(index=False))
    return table
