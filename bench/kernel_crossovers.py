"""CSR and BSR kernels against dense on a model's prunable matrix shapes: the crossover sparsity by today's
rule (the lowest measured sparsity from which the sparse kernel is measurably faster, its 95% interval above
1.0x there and at every measured sparsity above), beside the interpolated estimate. The kernels time random
magnitude-pruned matrices of those shapes, so only the shapes matter: a packaged model's folder, or a seed
model's config built on the meta device (no weights needed).

    .venv/bin/python bench/kernel_crossovers.py minilm-l6 smollm2-135m whisper-tiny-en gpt2-xl \
        --out bench/kernel_crossovers.csv           # one row per (model, kind, shape, tokens)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from accelerate import init_empty_weights

from anatomy_probe import SEED_CONFIGS  # bench/: the seed models' hub config values
from sparsescope.evaluation.runtime import KERNEL_SPARSITIES, KERNEL_TOKENS, crossovers, kernel_sweep
from sparsescope.sources.anatomy import Anatomy, model_anatomy
from sparsescope.sources.registry import model_folder


def shapes_of(name: str) -> list[tuple[int, int]]:
    if name in SEED_CONFIGS:
        cls, config = SEED_CONFIGS[name]
        with init_empty_weights(include_buffers=False):
            anatomy = Anatomy(cls(config))
    else:
        anatomy = model_anatomy(model_folder(name))
    return sorted({m.shape for m in anatomy.matrices.values()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/kernel_crossovers.csv"))
    args = parser.parse_args()
    rows, table = [], []
    for name in args.models:
        started = time.time()
        shapes = shapes_of(name)
        print(f"{name}: {len(shapes)} shapes {shapes}", flush=True)
        for shape in shapes:  # one shape at a time, so progress shows every few seconds
            swept = kernel_sweep([shape], KERNEL_SPARSITIES, KERNEL_TOKENS, repeats=args.repeats)
            rows += [{"model": name, **r} for r in swept]
            table += [{"model": name, **c} for c in crossovers(swept)]
            print(f"  {shape[0]}x{shape[1]} done, {time.time() - started:.0f} s", flush=True)
    args.out.with_suffix(".rows.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    args.out.write_text(pd.DataFrame(table).to_csv(index=False))
    print(pd.DataFrame(table).to_string(index=False))


if __name__ == "__main__":
    main()
