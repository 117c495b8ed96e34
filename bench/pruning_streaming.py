"""Benchmark: streaming exact global magnitude pruning vs the seed's torch.nn.utils.prune path.

    python bench/pruning_streaming.py [--configs gpt2 gpt2-medium] [--big t5-v1_1-xl | --no-big]

For each GPT-2 config (124M, 355M; random-init checkpoints with the real shapes), in one run and each
in its own process: (a) the seed's path — from_pretrained, prune.global_unstructured(L1Unstructured,
0.5) over every prunable linear weight, prune.remove, save_pretrained — and (b)
`sparsescope.pruning.runs.prune_model(..., "global_magnitude", 0.5, save_format="dense")`; wall time, peak
RSS, and whether the two saved checkpoints are identical. Then (c) the streaming path alone on a
T5-v1.1-XL-shaped checkpoint (2.85B fp32, 11.4 GB), compressed output. Targets: >= 20x faster than
the seed's path with identical masks (up to the order in which exact ties at the threshold are
broken); <= 2 GB peak RSS on T5-v1.1-XL. Library imports happen before the clock starts, for both.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkpoints import random_checkpoint
from sparsescope.artifacts import peak_rss_bytes

SPARSITY = 0.5


def seed_path(folder: Path, out: Path) -> None:
    from sparsescope.pruning.runs import seed_global_magnitude
    seed_global_magnitude(str(folder), SPARSITY).save_pretrained(out)


def streaming_path(folder: Path, out: Path, save_format: str) -> None:
    from sparsescope.pruning.runs import PruneSpec, prune_model
    prune_model(str(folder), out, PruneSpec("global_magnitude", SPARSITY), save_format=save_format, progress=False)


def measure(kind: str, folder: Path, out: Path) -> dict:
    # Both paths need torch and transformers; load them before the clock starts so neither pays for imports.
    import transformers.models.gpt2.modeling_gpt2  # noqa: F401
    import sparsescope.pruning.runs  # noqa: F401
    started = time.perf_counter()
    if kind == "seed":
        seed_path(folder, out)
    else:
        streaming_path(folder, out, "dense" if kind == "streaming-dense" else "compressed")
    return {"kind": kind, "seconds": time.perf_counter() - started, "peak_rss_gb": peak_rss_bytes() / 2 ** 30}


def run(kind: str, folder: Path, out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--measure", kind, "--folder", str(folder), "--out", str(out)],
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{kind} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_masks(original: Path, seed_out: Path, ours: Path) -> str:
    """Masks must be identical, except where |w| ties at the threshold: torch's topk breaks such ties in
    an unspecified order, ours in checkpoint order. Both must zero the same number of weights."""
    from sparsescope.storage import read_state_dict
    from sparsescope.sources.layouts import stored_tagger
    dense, a, b = read_state_dict(original), read_state_dict(seed_out), read_state_dict(ours)
    tag = stored_tagger(original)
    names = [n for n in b if tag(n, tuple(b[n].shape)).prunable]
    differing, tied_values, zeros_a, zeros_b = 0, set(), 0, 0
    for n in names:
        za, zb = a[n] == 0, b[n] == 0
        zeros_a, zeros_b = zeros_a + int(za.sum()), zeros_b + int(zb.sum())
        diff = za != zb
        differing += int(diff.sum())
        tied_values |= set(dense[n].abs()[diff].tolist())
    if zeros_a != zeros_b:
        return f"DIFFERENT: {zeros_a} vs {zeros_b} weights zeroed"
    if differing == 0:
        return "identical masks"
    if len(tied_values) == 1:
        return (f"identical masks except {differing} weights tied at |w| = {tied_values.pop():.9g} "
                "(ties broken in a different order; same count zeroed)")
    return f"DIFFERENT: {differing} weights differ at {len(tied_values)} distinct magnitudes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=["gpt2", "gpt2-medium"])
    parser.add_argument("--big", default="t5-v1_1-xl")
    parser.add_argument("--no-big", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder, args.out)))
        return
    for config in args.configs:
        folder = random_checkpoint(config)
        with tempfile.TemporaryDirectory(dir=folder.parent) as work:
            seed = run("seed", folder, Path(work) / "seed")
            ours = run("streaming-dense", folder, Path(work) / "ours")
            masks = compare_masks(folder, Path(work) / "seed", Path(work) / "ours" / f"global_magnitude-{SPARSITY:g}" / "dense")
        print(f"{config}: seed path {seed['seconds']:.1f} s, {seed['peak_rss_gb']:.2f} GB | streaming "
              f"{ours['seconds']:.1f} s, {ours['peak_rss_gb']:.2f} GB | {seed['seconds'] / ours['seconds']:.1f}x faster, "
              f"{seed['peak_rss_gb'] / ours['peak_rss_gb']:.1f}x less memory; {masks}", flush=True)
    if not args.no_big:
        folder = random_checkpoint(args.big)
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 1e9
        with tempfile.TemporaryDirectory(dir=folder.parent) as work:
            big = run("streaming-compressed", folder, Path(work))
            saved = sum(p.stat().st_size for p in Path(work).rglob("*.safetensors")) / 1e9
        print(f"{args.big} ({size:.1f} GB fp32): streaming global magnitude {SPARSITY:.0%} in {big['seconds']:.0f} s, "
              f"peak RSS {big['peak_rss_gb']:.2f} GB (target <= 2 GB); compressed checkpoint {saved:.1f} GB")


if __name__ == "__main__":
    main()
