"""The run grid as a Dask task graph: JOBS=1 against JOBS=2 on this machine, and the seed grid's shape.

  .venv/bin/python bench/grid_scaling.py                # the packaged grid, JOBS=1 then JOBS=2 (~30 min)
  .venv/bin/python bench/grid_scaling.py --seed-only    # the seed grid's tasks and critical path (seconds)
  .venv/bin/python bench/grid_scaling.py --models /path/to/tiny --set 'methods=["wanda"]' --set nm=None

Measured, side by side in one run: each JOBS value runs the whole grid (the report left out: it is one task
at the end) into a fresh results folder; their wall times, the ratio, the tasks' own seconds by kind, and
the measured critical path (the longest chain of task seconds, which no number of workers beats).

Planned, not run: the seed grid (bert-large, gpt2-xl, t5-v1_1-xl with the notebooks' default runs) through
the library's own plan(): its task count and dependency depth; then, from per-task minutes ESTIMATED below
from the README's seed-scale expectations (no hub here, so nothing of it was measured), its critical path
and the time a greedy scheduler takes on N workers.
"""
from __future__ import annotations

import argparse
import ast
import heapq
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sparsescope.report.grid import plan
from sparsescope.report.pipeline import run_models
from sparsescope.sources.registry import profile_models

SEED_FP32_BYTES = {"bert-large": 1.34e9, "gpt2-xl": 6.23e9, "t5-v1_1-xl": 11.4e9}  # parameters x 4 bytes
LARGEST = max(SEED_FP32_BYTES.values())
# Estimated minutes on the README's 2-core machine for the largest seed model (t5-v1_1-xl), scaled by model
# size for the others (README, Seed scale: magnitude 1-3 min, Wanda a few minutes, SparseGPT 20-60 min, quality
# 1-3 min per checkpoint); notebooks that only assemble take about a minute.
ESTIMATED_MINUTES = {"global_magnitude": 3, "layer_magnitude": 3, "nm_magnitude": 3, "wanda": 5, "sparsegpt": 60,
                     "ffn_magnitude": 3, "ffn_activation": 5, "heads": 5, "evaluate": 3, "runtime": 5}
NOTEBOOK_MINUTES = {"01_distribution.ipynb": 1, "02_pruning.ipynb": 1, "03_benchmarks.ipynb": 2}


def critical_path(tasks, seconds: dict) -> tuple[float, list]:
    """The longest chain of task seconds through the graph (tasks come in dependency order)."""
    finish, before = {}, {}
    for task in tasks:
        start = max((finish[d] for d in task.deps), default=0.0)
        before[task.key] = max(task.deps, key=lambda d: finish[d]) if task.deps else None
        finish[task.key] = start + seconds[task.key]
    key = max(finish, key=finish.get)
    chain = []
    while key:
        chain.append(key)
        key = before[key]
    return finish[chain[0]], chain[::-1]


def depth(tasks) -> int:
    level = {}
    for task in tasks:
        level[task.key] = 1 + max((level[d] for d in task.deps), default=0)
    return max(level.values())


def makespan(tasks, seconds: dict, workers: int) -> float:
    """Greedy list scheduling in the plan's order on `workers` identical one-task workers (memory ignored)."""
    order = {t.key: i for i, t in enumerate(tasks)}
    waiting = {t.key: set(t.deps) for t in tasks}
    needed_by = defaultdict(list)
    for task in tasks:
        for d in task.deps:
            needed_by[d].append(task.key)
    ready = [(order[k], k) for k, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running, now, free = [], 0.0, workers
    while ready or running:
        while ready and free:
            _, key = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[key], key))
            free -= 1
        now, key = heapq.heappop(running)
        free += 1
        for other in needed_by[key]:
            waiting[other].discard(key)
            if not waiting[other]:
                heapq.heappush(ready, (order[other], other))
    return now


def estimated_seconds(task, sizes: dict) -> float:
    scale = sizes.get(task.model, LARGEST) / LARGEST
    if task.kind == "notebook":
        return 60 * NOTEBOOK_MINUTES[task.title]
    if task.kind == "prune":
        return 60 * ESTIMATED_MINUTES[task.job["spec"]["method"]] * scale
    if task.kind in ("evaluate", "runtime"):
        return 60 * ESTIMATED_MINUTES[task.kind] * scale
    return 60.0  # the report


def seed_grid(workers=(1, 2, 4, 8, 16, 32)) -> dict:
    """The seed grid planned by the library, with estimated task times: counts, depth, critical path, and
    the estimated time on N workers."""
    sizes = {m: int(b) for m, b in SEED_FP32_BYTES.items()}
    tasks = plan(list(sizes), Path(tempfile.gettempdir()) / "seed-grid-plan", None, sizes,
                 report_dir=Path(tempfile.gettempdir()))
    seconds = {t.key: estimated_seconds(t, sizes) for t in tasks}
    length, chain = critical_path(tasks, seconds)
    kinds = defaultdict(int)
    for task in tasks:
        kinds[task.kind] += 1
    titles = {t.key: f"{t.model or ''} {t.title}".strip() for t in tasks}
    return {"tasks": len(tasks), "by_kind": dict(kinds), "depth": depth(tasks), "work_s": sum(seconds.values()),
            "critical_path_s": length, "critical_path": [titles[k] for k in chain],
            "makespan_s": {n: makespan(tasks, seconds, n) for n in workers}}


def measure(models: list[str], knobs: dict, jobs_values: list[int], out: Path) -> dict:
    walls, runs = {}, {}
    for jobs in jobs_values:
        results = out / f"jobs{jobs}"
        if results.exists() and any(results.iterdir()):
            sys.exit(f"error: {results} is not empty: the measurement needs fresh results folders (--out)")
        started = time.time()
        runs[jobs] = run_models(models, results, knobs=knobs, jobs=jobs)
        walls[jobs] = time.time() - started
    return {"walls": walls, "runs": runs}


def parse_set(items: list[str]) -> dict:
    knobs = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            knobs[name.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            knobs[name.strip()] = text
    return knobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="default: the packaged profile")
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter, as a Python literal (repeatable)")
    parser.add_argument("--out", type=Path, help="where the results folders go (default: a temporary folder)")
    parser.add_argument("--seed-only", action="store_true", help="only the seed grid's plan (seconds)")
    args = parser.parse_args(argv)

    seed = seed_grid()
    print(f"seed grid (planned): {seed['tasks']} tasks {seed['by_kind']}, dependency depth {seed['depth']}")
    print(f"  estimated work {seed['work_s'] / 3600:.1f} h; critical path {seed['critical_path_s'] / 3600:.2f} h: "
          + " -> ".join(seed["critical_path"]))
    for n, span in seed["makespan_s"].items():
        print(f"  on {n:2d} workers: ~{span / 3600:.1f} h (x{seed['work_s'] / span:.1f})")
    if args.seed_only:
        return 0

    models = args.models or profile_models("packaged")
    with tempfile.TemporaryDirectory(prefix="grid-scaling-") as tmp:
        measured = measure(models, parse_set(args.set), args.jobs, args.out or Path(tmp))
    walls, runs = measured["walls"], measured["runs"]
    for jobs in args.jobs:
        grid = runs[jobs]
        seconds = {t.key: grid.outcomes[t.key]["seconds"] for t in grid.tasks}
        by_kind = defaultdict(float)
        for task in grid.tasks:
            by_kind[task.kind] += seconds[task.key]
        length, _ = critical_path(grid.tasks, seconds)
        print(f"JOBS={jobs}: {walls[jobs]:.0f} s wall, {len(grid.tasks)} tasks, task seconds "
              + ", ".join(f"{k} {v:.0f}" for k, v in by_kind.items()) + f"; critical path {length:.0f} s")
    if len(args.jobs) >= 2:
        a, b = args.jobs[:2]
        print(f"JOBS={a} / JOBS={b}: {walls[a] / walls[b]:.2f}x ({walls[a]:.0f} s vs {walls[b]:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
