"""Benchmark: streaming distribution analysis vs a plain read of every tensor, on a GPT2-XL-shaped checkpoint.

    python bench/distribution_streaming.py [--config gpt2-xl] [--repeats 2]

Writes a random-init checkpoint with the real config (1.56B fp32 weights, ~6.2 GB) once into the cache,
without ever holding the model, then measures in one run, each in its own process (so peak RSS is
its own): (a) the plain pass — safetensors `get_tensor` for every tensor and sum |w| — and (b)
`sparsescope.analysis.statistics.analyze_folder`. Targets: peak RSS <= 2.5 GB; wall <= 2x the plain pass.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from checkpoints import CONFIGS, random_checkpoint
from sparsescope.artifacts import peak_rss_bytes

def plain_pass(folder: Path) -> float:
    """The floor: read every tensor with safetensors and sum |w|."""
    from safetensors import safe_open
    from sparsescope.sources.weights import weight_files
    total = 0.0
    for path in weight_files(folder):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                total += float(f.get_tensor(key).abs().sum())
    return total


def analysis(folder: Path) -> float:
    from sparsescope.analysis.statistics import analyze_folder
    return float(analyze_folder(folder, "decoder-only", progress=False).groups["all"].n)


def measure(kind: str, folder: Path) -> dict:
    started = time.perf_counter()
    result = {"plain": plain_pass, "analysis": analysis}[kind](folder)
    return {"kind": kind, "seconds": time.perf_counter() - started,
            "peak_rss_gb": peak_rss_bytes() / 2 ** 30, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="gpt2-xl", choices=sorted(CONFIGS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--measure", choices=["plain", "analysis"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder)))
        return
    folder = random_checkpoint(args.config)
    size_gb = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 1e9
    print(f"checkpoint: {folder} ({size_gb:.2f} GB)")
    runs = []
    for _ in range(args.repeats):  # alternate, so both see the same page-cache state
        for kind in ("plain", "analysis"):
            out = subprocess.run([sys.executable, __file__, "--measure", kind, "--folder", str(folder)],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"  {kind:9s} {runs[-1]['seconds']:6.1f} s   peak RSS {runs[-1]['peak_rss_gb']:.2f} GB")
    best = {k: min((r for r in runs if r["kind"] == k), key=lambda r: r["seconds"]) for k in ("plain", "analysis")}
    ratio = best["analysis"]["seconds"] / best["plain"]["seconds"]
    print(f"analysis / plain wall time: {ratio:.2f}x (target <= 2x); analysis peak RSS "
          f"{best['analysis']['peak_rss_gb']:.2f} GB (target <= 2.5 GB); plain peak RSS {best['plain']['peak_rss_gb']:.2f} GB")


if __name__ == "__main__":
    main()
