"""Benchmark: what structured pruning buys end to end on the CPU, and (for real models) what it costs.

    python bench/structured_speed.py                          # GPT2-XL-shaped random model: speedup only
    python bench/structured_speed.py --model gpt2-medium      # a smaller random GPT-2 shape (bench/checkpoints.py)
    python bench/structured_speed.py --model smollm2-135m --quality   # a packaged model: speedup and quality

A random model (bench/checkpoints.py's shapes; writes the checkpoint into $SPARSESCOPE_CACHE/bench once, 6.2 GB
for gpt2-xl) is pruned with ffn_magnitude at each share — random weights make every method's shapes, and so its
speed, the same — and needs the dense and the largest smaller model in memory together (~11 GB for gpt2-xl).
A registry model is pruned with ffn_activation (and heads where its config can say fewer heads), ffn_magnitude at
the first share as the baseline, and SparseGPT at the same shares: the unstructured run of equal parameter count.

In one process, each smaller model against the dense one (evaluation/runtime.py: warm-up, interleaved repeats,
medians, 95% bootstrap interval of the speedup): end to end at each batch size at --seqlen tokens, and per-token
greedy decoding with the KV cache for causal LMs; the SparseGPT runs through the same dense kernels at batch 1 (the
seed's observation: zeros cost as much as any number); bytes on disk. With --quality, every run is scored with the
model's own metric and the KL divergence from the dense model (evaluation/quality.py, default budgets).
Prints one table and writes it to <out>/structured_speed.csv.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from checkpoints import CONFIGS, random_checkpoint

# the quality metric each objective is judged by, and whether lower is better
PRIMARY = {"causal-lm": ("perplexity", True), "sentence-embedding": ("retrieval_top1", False),
           "speech": ("wer", True), "masked-lm": ("mlm_loss", True), "span-corruption": ("span_loss", True)}


def plan(model: str, shares: list[float], random: bool) -> list:
    from sparsescope.pruning.runs import PruneSpec
    if random:
        return [PruneSpec("ffn_magnitude", s) for s in shares]
    import json
    from sparsescope.sources.registry import model_folder
    from sparsescope.pruning.units import HEADS
    config = json.loads((model_folder(model) / "config.json").read_text())
    specs = [PruneSpec("ffn_activation", s) for s in shares] + [PruneSpec("ffn_magnitude", shares[0])]
    if config["model_type"] in HEADS:  # attention holds ~25% of SmolLM2's prunable weights: small shares
        specs.append(PruneSpec("heads", 0.1))
    return specs + [PruneSpec("sparsegpt", s) for s in shares]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-xl", help=f"random shapes ({', '.join(CONFIGS)}) or a registry "
                                                           "name / folder")
    parser.add_argument("--shares", nargs="+", type=float, default=[0.3, 0.5])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while timing (1: stable ratios on a shared machine; 0: torch's default)")
    parser.add_argument("--quality", action="store_true", help="also score quality (registry models)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from sparsescope.artifacts import cache_dir
    from sparsescope.evaluation.runtime import end_to_end, input_maker, structured_rows
    from sparsescope.pruning.runs import prune_runs
    from sparsescope.sources.registry import load_model
    from sparsescope.storage import load_pruned
    random = args.model in CONFIGS
    if random and args.quality:
        raise SystemExit("error: --quality needs a real model: random weights have no quality to lose")
    model = str(random_checkpoint(args.model)) if random else args.model
    out = args.out or cache_dir("bench", "structured", args.model.replace("/", "--"))
    table = prune_runs(model, out / "pruning", plan(model, args.shares, random), save_format="compressed")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = load_model(model, dtype=torch.float32)
    make_inputs = input_maker(dense, args.seqlen)
    rows = structured_rows(dense, table, make_inputs, args.batch_sizes, args.repeats, "cpu", args.decode_tokens)
    for run in table[table["kind"] != "structured"].itertuples():  # the equal-count unstructured runs
        pruned = load_pruned(run.checkpoint, dtype=torch.float32)
        label = Path(run.checkpoint).parent.name
        rows += [{**r, "run": label, "method": run.method, "bytes": int(run.saved_bytes),
                  "dense_bytes": int(run.dense_bytes)} for r in
                 end_to_end(dense, pruned, make_inputs, args.batch_sizes[:1], "dense-kernels", label,
                            float(run.achieved_sparsity), args.repeats)]
        del pruned
    speed = pd.DataFrame(rows)
    speed["mode"] = [f"decode b{b}" if k == "structured-decode" else f"prefill b{b}"
                     for k, b in zip(speed["kind"], speed["batch"])]
    shown = speed.assign(share=speed["sparsity"].round(3), speedup_ci=[
        f"{s:.2f}x [{lo:.2f}, {hi:.2f}]" for s, lo, hi in zip(speed["speedup"], speed["speedup_lo"],
                                                              speed["speedup_hi"])],
        MB=speed["bytes"] / 1e6, of_dense=speed["bytes"] / speed["dense_bytes"])
    shown = shown[["run", "kind", "mode", "share", "dense_ms", "sparse_ms", "speedup_ci", "MB", "of_dense"]]
    if args.quality:
        from sparsescope.evaluation.quality import evaluate_checkpoints, objective
        quality = evaluate_checkpoints(model, out / "pruning", out / "quality")
        metric, _ = PRIMARY[objective(dense)]
        quality["run"] = [f"{m}-{s:g}" if m != "dense" else "dense" for m, s in
                          zip(quality["method"], quality["target_sparsity"])]
        values = quality.pivot_table(index="run", columns="metric", values="value")
        shown = shown.join(pd.DataFrame({f"{metric}/dense": values[metric] / values.loc["dense", metric],
                                         "kl": values["kl_from_dense"]}), on="run")
    threads = torch.get_num_threads()
    print(f"{args.model}: {'random weights, ' if random else ''}{args.seqlen} tokens, {args.repeats} interleaved "
          f"repeats, {threads} thread{'s' if threads > 1 else ''}, CPU")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(shown.to_string(index=False))
    shown.to_csv(out / "structured_speed.csv", index=False)


if __name__ == "__main__":
    sys.exit(main())
