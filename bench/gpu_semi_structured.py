"""Every GPU check of sparsescope in one command.

    python bench/gpu_semi_structured.py [--out DIR] [--tokens 1 4 16 ... 4096] [--dtypes fp16 bf16]
        [--models gpt2-xl bert-large t5-v1_1-xl] [--e2e-model gpt2] [--batches 1 4 16 64] [--repeats 20]

1. kernels: 2:4 semi-structured sparse tensor cores (torch.sparse.to_sparse_semi_structured) vs dense
   F.linear on every prunable matrix shape of the seed models (GPT2-XL 1600/6400, BERT-Large 1024/4096,
   T5-v1.1-XL 2048/5120), in fp16 and bf16, across tokens per batch; plus a check that the 2:4 product
   equals the dense product of the same pruned matrix;
2. end to end: a randomly initialised GPT-2 (default the 124M config) with every block linear pruned 2:4,
   dense vs 2:4 forward latency across batch sizes at 128 tokens each, and the 2:4 model's logits against
   the same pruned weights run densely;
3. notebook 03 on CUDA: a tiny GPT-2 is pruned, then `runtime_results` and `evaluate_checkpoints` run
   with device="cuda" (the paths a CPU machine cannot run), and the quality scores are compared with a
   CPU run of the same checkpoints.

Needs a CUDA GPU with compute capability 8.0 or newer and torch >= 2.4; no hub access (random weights, a
made-up tokenizer and text). Prints tables and writes gpu_semi_structured.csv (one row per measurement)
and gpu_checks.csv (one row per check) into --out (default: $OUT, else the current folder). A failing
check is reported and the others still run; the exit status is 1 if any failed. The defaults time
10 matrix shapes x 2 dtypes x 7 token counts and the 124M GPT-2 at 4 batch sizes per dtype.
"""
from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from unittest import mock

import pandas as pd
import torch

from sparsescope.evaluation import quality
from sparsescope.evaluation.runtime import (device_name, fits_semi_structured, resolve_device,
                                            runtime_results, semi_structured_sweep,
                                            semi_structured_unavailable, sparsify_linears, time_ms, to_device)
from sparsescope.pruning.magnitude import nm_magnitude

# (outputs, inputs) of every prunable matrix of the seed models
SEED_SHAPES = {
    "gpt2-xl": [(4800, 1600), (1600, 1600), (6400, 1600), (1600, 6400)],  # c_attn, c_proj, c_fc, c_proj
    "bert-large": [(1024, 1024), (4096, 1024), (1024, 4096)],              # q/k/v/o, intermediate, output
    "t5-v1_1-xl": [(2048, 2048), (5120, 2048), (2048, 5120)],              # q/k/v/o, wi_0/wi_1, wo
}
E2E_MODELS = {  # GPT-2 configs (n_embd, n_layer, n_head); tiny is for smoke runs
    "tiny": (64, 2, 2), "gpt2": (768, 12, 12), "gpt2-medium": (1024, 24, 16), "gpt2-xl": (1600, 48, 25),
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MIN_TORCH = (2, 4)
E2E_SEQLEN = 128


# ------------------------------------------------------------------------------------ arguments
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or ".",
                        help="folder for the CSVs (default: $OUT, else the current folder)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096],
                        help="tokens per batch of the kernel sweep")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp16", "bf16"])
    parser.add_argument("--models", nargs="+", choices=list(SEED_SHAPES), default=list(SEED_SHAPES),
                        help="seed models whose matrix shapes the kernel sweep times")
    parser.add_argument("--e2e-model", choices=list(E2E_MODELS), default="gpt2",
                        help="GPT-2 config timed end to end (random weights)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64],
                        help=f"batch sizes of the end-to-end run, {E2E_SEQLEN} tokens each")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per measurement (median)")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out check 3 (notebook 03)")
    args = parser.parse_args(argv)
    for name in ("tokens", "batches"):
        if min(getattr(args, name)) < 1:
            parser.error(f"--{name} must be positive integers, not {getattr(args, name)}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")
    return args


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def gpu_problem() -> str | None:
    """Why this machine cannot run the checks, or None."""
    if torch_version() < MIN_TORCH:
        return f"torch {torch.__version__} is too old for 2:4 kernels: install torch >= 2.4"
    if not torch.cuda.is_available():
        return "no CUDA device: these checks need a GPU with compute capability 8.0 or newer"
    return semi_structured_unavailable("cuda")


# ------------------------------------------------------------------------------------ tables
def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A fixed-width text table: columns are (header, key, format spec); a missing value prints as '-'."""
    cells = [[("-" if r.get(key) is None else format(r[key], spec)) for _, key, spec in columns]
             for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _, _) in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) for (h, _, _), w in zip(columns, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


KERNEL_COLUMNS = [("model", "model", ""), ("matrix", "shape_or_model", ""), ("dtype", "dtype", ""),
                  ("tokens", "tokens", "d"), ("dense ms", "dense_ms", ".3f"), ("2:4 ms", "sparse_ms", ".3f"),
                  ("speedup", "speedup", ".2f")]
E2E_COLUMNS = [("model", "shape_or_model", ""), ("dtype", "dtype", ""), ("batch", "batch", "d"),
               ("tokens", "tokens", "d"), ("dense ms", "dense_ms", ".2f"), ("2:4 ms", "sparse_ms", ".2f"),
               ("speedup", "speedup", ".2f")]
CHECK_COLUMNS = [("check", "check", ""), ("status", "status", ""), ("seconds", "seconds", ".1f"),
                 ("detail", "detail", "")]


# ------------------------------------------------------------------------------------ 1. kernels
def kernel_rows(models, dtypes, tokens, repeats: int, device) -> list[dict]:
    rows = []
    for dtype in dtypes:
        for model in models:
            rows += [{"check": "kernels", "model": model, **r}
                     for r in semi_structured_sweep(SEED_SHAPES[model], tokens, DTYPES[dtype], repeats,
                                                    device=device)]
    return rows


def kernel_matches_dense(dtypes, device) -> str:
    """The 2:4 product of a pruned matrix equals the dense product of the same matrix (to fp16 accuracy)."""
    from torch.sparse import to_sparse_semi_structured
    g = torch.Generator().manual_seed(1)
    details = []
    for dtype in dtypes:
        w = to_device(nm_magnitude(torch.randn(1024, 1024, generator=g), 2, 4, in_dim=1).to(DTYPES[dtype]),
                      device)
        x = to_device(torch.randn(64, 1024, generator=g).to(DTYPES[dtype]), device)
        dense = torch.nn.functional.linear(x, w).float()
        sparse = torch.nn.functional.linear(x, to_sparse_semi_structured(w)).float()
        error = float((sparse - dense).norm() / dense.norm())
        if not error < 2e-2:  # rounding of the outputs only; a wrong kernel is off by ~1
            raise AssertionError(f"{dtype}: 2:4 product is {error:.2g} (relative) away from dense")
        details.append(f"{dtype} {error:.1e}")
    return "relative error " + ", ".join(details)


# ------------------------------------------------------------------------------------ 2. end to end
def gpt2_linear(size: str, dtype, device) -> torch.nn.Module:
    """Random-init GPT-2 of a config in E2E_MODELS with its Conv1D layers as nn.Linear (what the 2:4 kernels
    take), built on the CPU and moved to `device`."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D
    n_embd, n_layer, n_head = E2E_MODELS[size]
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head)).eval()
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            linear = torch.nn.Linear(*module.weight.shape)
            linear.weight.data = module.weight.data.t().contiguous()  # Conv1D stores [in, out]
            linear.bias.data = module.bias.data
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, linear)
    return to_device(model.to(dtype), device)


def block_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".h." in f".{n}"]


def prune_2_4(model) -> None:
    """Every block linear pruned 2:4 by magnitude along its inputs, in place (weights stay dense)."""
    for _, module in block_linears(model):
        module.weight.data = nm_magnitude(module.weight.data, 2, 4, in_dim=1)


def to_semi_structured(model) -> torch.nn.Module:
    """A copy with every (already 2:4) block linear weight as a 2:4 sparse tensor."""
    from torch.sparse import to_sparse_semi_structured
    sparse = copy.deepcopy(model)
    for _, module in block_linears(sparse):
        module.weight = torch.nn.Parameter(to_sparse_semi_structured(module.weight.data), requires_grad=False)
    return sparse


@torch.no_grad()
def e2e_rows(size: str, dtypes, batches, repeats: int, device) -> tuple[list[dict], str]:
    rows, details = [], []
    name = device_name(device)
    for dtype in dtypes:
        dense = gpt2_linear(size, DTYPES[dtype], device)
        prune_2_4(dense)  # the dense baseline holds the same pruned weights: same work, dense kernels
        if not all(fits_semi_structured(tuple(m.weight.shape)) for _, m in block_linears(dense)):
            raise AssertionError(f"{size}: a block linear does not fit a 2:4 tensor")
        sparse = to_semi_structured(dense)
        g = torch.Generator().manual_seed(0)
        ids = to_device(torch.randint(0, dense.config.vocab_size, (1, E2E_SEQLEN), generator=g), device)
        want, got = dense(ids).logits.float(), sparse(ids).logits.float()
        error = float((got - want).norm() / want.norm())
        if not error < 0.1:  # rounding compounds over the layers (bf16 most); a wrong kernel is off by ~1
            raise AssertionError(f"{size} {dtype}: 2:4 logits are {error:.2g} (relative) from dense")
        details.append(f"{dtype} logits relative error {error:.1e}")
        for b in batches:
            ids = to_device(torch.randint(0, dense.config.vocab_size, (b, E2E_SEQLEN), generator=g), device)
            d = time_ms(lambda: dense(ids), warmup=3, repeats=repeats, device=device)
            s = time_ms(lambda: sparse(ids), warmup=3, repeats=repeats, device=device)
            rows.append({"check": "end-to-end", "kind": "e2e-2:4", "model": size,
                         "shape_or_model": f"{size} (random)", "dtype": dtype, "batch": b,
                         "tokens": b * E2E_SEQLEN, "sparsity": 0.5, "dense_ms": d, "sparse_ms": s,
                         "speedup": d / s, "device": name, "rel_error": error})
        dense = sparse = None  # freed before the next dtype's pair is built
    return rows, "; ".join(details)


# ------------------------------------------------------------------------------------ 3. notebook 03
WORDS = ("the nation people state government year congress world new law work must war peace great "
         "time country president power public economy america free right family we our will have "
         "been made make today security health care children future tax business job freedom").split()


def tiny_model_folder(root: Path) -> Path:
    """A tiny GPT-2 whose matrices fit 2:4 tensors, with a word-level tokenizer over WORDS, saved as an HF
    folder (no hub needed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    folder = root / "tiny-gpt2"
    vocab = {w: i for i, w in enumerate(["[UNK]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_embd=64, n_layer=2, n_head=2, n_positions=128)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    return folder


def made_up_text(n_words: int = 4000) -> str:
    rng = random.Random(0)
    return " ".join(rng.choice(WORDS) + ("." if rng.random() < 0.1 else "") for _ in range(n_words))


def pipeline_checks(device, repeats: int = 2) -> str:
    """Notebook 03's runtime and quality stages on `device`, on a pruned tiny GPT-2; quality compared with
    the CPU. Raises AssertionError on a wrong result."""
    from sparsescope.evaluation.quality import Budget, evaluate_checkpoints
    from sparsescope.pruning.runs import PruneSpec, prune_runs
    from sparsescope.storage import load_pruned
    device = resolve_device(device)
    name = device_name(device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = tiny_model_folder(root)
        pruning = root / "pruning"
        prune_runs(str(folder), pruning,
                   [PruneSpec("global_magnitude", 0.5), PruneSpec("layer_magnitude", 0.9)], progress=False)
        runtime = runtime_results(str(folder), pruning, root / "bench", batch_sizes=(1, 2), seqlen=32,
                                  sparsities=(0.5, 0.95), tokens=(1, 16), repeats=repeats, device=device)
        want = {"dense-kernels", "kernel-csr", "kernel-bsr"} | (
            {"kernel-2:4"} if device.type == "cuda" and not semi_structured_unavailable(device) else set())
        if not want <= set(runtime["kind"]) or set(runtime["device"]) != {name}:
            raise AssertionError(f"runtime.csv has kinds {sorted(set(runtime['kind']))} on "
                                 f"{sorted(set(runtime['device']))}, expected {sorted(want)} on {name}")
        # the CSR layers of the end-to-end run, on the device: same logits as the model they replace
        model = to_device(load_pruned(str(pruning / "layer_magnitude-0.9" / "compressed")), device)
        ids = to_device(torch.arange(64).reshape(2, 32) % model.config.vocab_size, device)
        with torch.no_grad():
            before = model(ids).logits
            swapped = sparsify_linears(model, 0.85)
            after = model(ids).logits
        if swapped != 2 * 4 or not torch.allclose(before, after, atol=1e-4):
            raise AssertionError(f"CSR layers on {device}: {swapped} swapped (want 8), logits differ by "
                                 f"{float((before - after).abs().max()):.2g}")
        budget = Budget(n_tokens=256, window=64)
        with mock.patch.object(quality, "evaluation_text", lambda corpus: made_up_text()):
            here = evaluate_checkpoints(str(folder), pruning, root / "q-device", budget, progress=False,
                                        device=device)
            cpu = evaluate_checkpoints(str(folder), pruning, root / "q-cpu", budget, progress=False,
                                       device="cpu")
        if set(here["device"]) != {name}:
            raise AssertionError(f"quality.csv names {sorted(set(here['device']))}, not {name}")
        merged = here.merge(cpu, on=["method", "target_sparsity", "metric"], suffixes=("", "_cpu"))
        if len(merged) != len(cpu) or len(cpu) != 3 * 3:  # dense + 2 runs, x (perplexity, nll, kl)
            raise AssertionError(f"quality rows differ: {len(here)} on {device}, {len(cpu)} on the CPU")
        scale = merged["value_cpu"].abs().clip(lower=1e-3)  # the dense KL is 0: compare it absolutely
        gap = ((merged["value"] - merged["value_cpu"]).abs() / scale).max()
        if not gap < 1e-3:
            raise AssertionError(f"quality on {device} differs from the CPU by {gap:.2g} (relative)")
    return f"runtime kinds {', '.join(sorted(want))}; quality equals the CPU's within {gap:.1e}"


# ------------------------------------------------------------------------------------ main
def run_check(name: str, fn, checks: list[dict]):
    """fn() -> (rows, detail) or detail; a failure is recorded and printed, not raised."""
    started = time.time()
    try:
        out = fn()
        rows, detail = out if isinstance(out, tuple) else ([], out)
        checks.append({"check": name, "status": "pass", "seconds": time.time() - started, "detail": detail})
        return rows
    except Exception as err:  # noqa: BLE001 - one failing check must not hide the others
        traceback.print_exc()
        first = (str(err).splitlines() or [""])[0]
        checks.append({"check": name, "status": "FAIL", "seconds": time.time() - started,
                       "detail": f"{type(err).__name__}: {first}"})
        return []


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = gpu_problem()
    if problem:
        raise SystemExit(f"gpu_semi_structured: {problem}")
    started = time.time()
    device = resolve_device("cuda")
    cusparselt = getattr(torch.backends, "cusparselt", None)
    backend = "cusparselt" if cusparselt is not None and cusparselt.is_available() else "cutlass"
    print(f"device: {device_name(device)}, capability {torch.cuda.get_device_capability(device)}, "
          f"torch {torch.__version__}, 2:4 backend {backend}", flush=True)
    checks: list[dict] = []
    kernels = run_check("kernel sweep", lambda: (kernel_rows(args.models, args.dtypes, args.tokens,
                                                             args.repeats, device), ""), checks)
    run_check("2:4 product equals dense", lambda: kernel_matches_dense(args.dtypes, device), checks)
    if kernels:
        print("\n2:4 vs dense F.linear, per matrix (outputs x inputs)\n"
              + format_table(kernels, KERNEL_COLUMNS))
    e2e = run_check(f"end to end ({args.e2e_model})",
                    lambda: e2e_rows(args.e2e_model, args.dtypes, args.batches, args.repeats, device), checks)
    if e2e:
        print(f"\nend to end, {E2E_SEQLEN} tokens per sequence\n" + format_table(e2e, E2E_COLUMNS))
    if not args.skip_pipeline:
        run_check("notebook 03 on CUDA", lambda: pipeline_checks(device), checks)
    print("\nchecks\n" + format_table(checks, CHECK_COLUMNS))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(kernels + e2e).to_csv(out / "gpu_semi_structured.csv", index=False)
    pd.DataFrame(checks).to_csv(out / "gpu_checks.csv", index=False)
    failed = [c["check"] for c in checks if c["status"] != "pass"]
    verdict = f"FAILED: {', '.join(failed)}" if failed else "all checks passed"
    print(f"\n{time.time() - started:.0f} s in all; wrote {out / 'gpu_semi_structured.csv'} and "
          f"{out / 'gpu_checks.csv'}; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
