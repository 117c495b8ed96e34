"""GPU check: 2:4 semi-structured sparse tensor cores vs dense, on GPT2-XL shapes and end to end.

    python bench/gpu_semi_structured.py [--tokens 4 16 64 256 1024 4096] [--batches 1 4 16]

Needs CUDA (an Ampere or newer GPU; fp16). Random weights with GPT2-XL's config: every block linear is
pruned 2:4 by magnitude and converted with torch.sparse.to_sparse_semi_structured. Prints (1) per-matrix
F.linear latency dense vs 2:4 across tokens per batch and (2) the whole model's forward latency dense vs
2:4 across batch sizes at 128 tokens each. Sized to finish in a few minutes on one GPU. Published for
BERT on an A100: 1.1–1.4x at batch >= 16, slower at batch 4.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from sparsescope.pruning.magnitude import nm_magnitude
from sparsescope.evaluation.runtime import device_name, semi_structured_sweep, time_ms

GPT2_XL_SHAPES = [(4800, 1600), (1600, 1600), (6400, 1600), (1600, 6400)]  # (outputs, inputs) of c_attn, proj, fc, proj


def gpt2_xl_linear(dtype) -> torch.nn.Module:
    """Random-init GPT2-XL on the GPU with its Conv1D layers turned into nn.Linear (what the 2:4 kernels take)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D
    config = GPT2Config(n_embd=1600, n_layer=48, n_head=25)
    with torch.device("cuda"):
        model = GPT2LMHeadModel(config).to(dtype).eval()
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            linear = torch.nn.Linear(module.weight.shape[0], module.weight.shape[1], device="cuda", dtype=dtype)
            linear.weight.data = module.weight.data.t().contiguous()
            linear.bias.data = module.bias.data
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, linear)
    return model


def to_semi_structured(model: torch.nn.Module) -> torch.nn.Module:
    from torch.sparse import to_sparse_semi_structured
    sparse = copy.deepcopy(model)
    for name, module in sparse.named_modules():
        if isinstance(module, torch.nn.Linear) and ".h." in f".{name}":
            pruned = nm_magnitude(module.weight.data.float().cpu(), 2, 4, in_dim=1).to("cuda", module.weight.dtype)
            module.weight = torch.nn.Parameter(to_sparse_semi_structured(pruned), requires_grad=False)
    return sparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="*", default=[4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 4, 16, 64])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: 2:4 semi-structured kernels need a GPU (Ampere or newer)")
    started = time.time()
    print(f"device: {device_name()}, torch {torch.__version__}")
    print(f"{'matrix':>11} {'tokens':>6} {'dense ms':>9} {'2:4 ms':>8} {'speedup':>7}")
    for r in semi_structured_sweep(GPT2_XL_SHAPES, args.tokens):
        print(f"{r['shape_or_model']:>11} {r['tokens']:>6} {r['dense_ms']:9.3f} {r['sparse_ms']:8.3f} {r['speedup']:7.2f}")
    dense = gpt2_xl_linear(torch.float16)
    sparse = to_semi_structured(dense)
    print("\nGPT2-XL end to end, 128 tokens per sequence")
    print(f"{'batch':>5} {'dense ms':>9} {'2:4 ms':>8} {'speedup':>7}")
    with torch.no_grad():
        for b in args.batches:
            ids = torch.randint(0, 50257, (b, 128), device="cuda")
            d = time_ms(lambda: dense(ids), warmup=3, repeats=10)
            s = time_ms(lambda: sparse(ids), warmup=3, repeats=10)
            print(f"{b:>5} {d:9.2f} {s:8.2f} {d / s:7.2f}")
    print(f"\n{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
