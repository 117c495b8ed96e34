"""The pipeline's steps, one function each, taking their notebook's parameters by the same names and
returning data. The notebooks call them and plot; the task graph (run/grid.py) calls the very same ones,
one task per step, with the parameters the notebook would get — so a notebook and the grid never differ.

    notebook 01  distribution
    notebook 02  pruning_plan -> pruning_run (each) -> pruning_table
    notebook 03  size, checkpoint_quality (each) -> quality, runtime
"""
from __future__ import annotations

from pathlib import Path

from .analysis.distribution import Distribution, analyze_model
from .evaluation.quality import Budget, evaluate_checkpoints, quality_rows
from .evaluation.runtime import runtime_results
from .evaluation.size import size_results
from .pruning.runs import PruneSpec, applicable_runs, plan_runs, prune_model, prune_runs, read_runs


# ---------------------------------------------------------------------------------- notebook 01
def distribution(model: str, out_dir) -> Distribution:
    """Histograms, CDFs and summary statistics of |w|, streamed from the checkpoint into out_dir."""
    return analyze_model(model, out_dir)


# ---------------------------------------------------------------------------------- notebook 02
def pruning_plan(model: str, methods, sparsities, nm, nm_methods, structured_sparsities, head_sparsities,
                 include_embeddings, n_samples, seqlen, seed, read_model: bool = True) -> list[PruneSpec]:
    """The runs notebook 02 makes. methods None (the default grid): runs the model cannot take are left
    out; named ones that cannot apply refuse in one line. read_model False: every planned run, without
    opening the model (offline planning)."""
    specs = plan_runs(methods, sparsities, nm, nm_methods, include_embeddings=include_embeddings,
                      structured_sparsities=structured_sparsities, head_sparsities=head_sparsities,
                      n_samples=n_samples, seqlen=seqlen, seed=seed)
    return applicable_runs(model, specs, skip=methods is None)[0] if read_model else specs


def pruning_run(model: str, out_dir, spec: PruneSpec, save_format, device) -> dict:
    """One run of the plan into out_dir/<run>/ (a finished one is reused); its row of pruning.csv."""
    return prune_model(model, out_dir, spec, save_format, True, device)


def pruning_table(model: str, out_dir, methods, sparsities, nm, nm_methods, structured_sparsities,
                  head_sparsities, include_embeddings, n_samples, seqlen, seed, save_format, device):
    """Every run of the plan (finished ones reused, skipped ones listed in skipped.csv); pruning.csv."""
    specs = pruning_plan(model, methods, sparsities, nm, nm_methods, structured_sparsities, head_sparsities,
                         include_embeddings, n_samples, seqlen, seed, read_model=False)
    return prune_runs(model, out_dir, specs, save_format, device=device, skip_inapplicable=methods is None)


# ---------------------------------------------------------------------------------- notebook 03
def size(pruning_dir, out_dir):
    """Bytes on disk of every run against the entropy bound of its index; size.csv."""
    return size_results(pruning_dir, out_dir)


def checkpoint_quality(model: str, pruning_dir, out_dir, runs: list[str], corpus, n_tokens, window,
                       n_passages, n_clips, seed, device) -> list[dict]:
    """The quality rows of the named runs of pruning_dir ("dense": the dense model), cached in
    out_dir/rows/ where `quality` finds them: a checkpoint's own task in the grid."""
    budget = Budget(n_tokens, window, n_passages, n_clips, seed)
    table = read_runs(pruning_dir, [r for r in runs if r != "dense"])
    named = {Path(run.checkpoint).parent.name: run for run in table.itertuples()}
    ordered = [None if r == "dense" else named[r] for r in runs]
    return quality_rows(model, ordered, Path(out_dir) / "rows", budget, corpus, True, device)


def quality(model: str, pruning_dir, out_dir, corpus, n_tokens, window, n_passages, n_clips, seed, device):
    """The dense model's and every checkpoint's quality (cached rows reused); quality.csv."""
    budget = Budget(n_tokens, window, n_passages, n_clips, seed)
    return evaluate_checkpoints(model, pruning_dir, out_dir, budget, corpus, device=device)


def runtime(model: str, pruning_dir, out_dir, batch_sizes, runtime_seqlen, kernel_sparsities, kernel_tokens,
            repeats, decode_tokens, device):
    """Latencies with dense and sparse kernels and of the structured runs' smaller models; runtime.csv."""
    return runtime_results(model, pruning_dir, out_dir, batch_sizes, runtime_seqlen, kernel_sparsities,
                           kernel_tokens, repeats, device=device, decode_tokens=decode_tokens)
