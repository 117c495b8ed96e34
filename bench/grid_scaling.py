"""The run grid as a Dask task graph: JOBS=1 against JOBS=2 on this machine, and the seed grid's shape.

  .venv/bin/python bench/grid_scaling.py                # the packaged grid, JOBS=1 then JOBS=2 (~30 min)
  .venv/bin/python bench/grid_scaling.py --models minilm-l6 --repeats 2 --csv bench/grid_scaling.csv
  .venv/bin/python bench/grid_scaling.py --seed-only    # the seed grid's tasks and critical path (seconds)
  .venv/bin/python bench/grid_scaling.py --models /path/to/tiny --set 'methods=["wanda"]' --set nm=None

Measured, side by side in one run: each JOBS value runs the whole grid (the report left out: it is one task
at the end) into a fresh results folder; their wall times, the ratio, the tasks' own seconds by kind, and
the measured critical path (the longest chain of task seconds, which no number of workers beats).

Planned, not run as a whole: the seed grid (bert-large, gpt2-xl, t5-v1_1-xl with the notebooks' default runs)
through the library's own plan(): its task count and dependency depth; then its critical path and the time a
greedy scheduler takes on N workers, from per-task seconds MEASURED by the dress rehearsal where it ran that
task (bench/seed_rehearsal.csv: same model, same kind of task) and otherwise scaled from a measured one: by
model size, or for SparseGPT by its work, sum of d_out * d_in^2 over the layers (BERT-large's run measured).
Each source is counted in the output.
"""
from __future__ import annotations

import argparse
import ast
import heapq
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sparsescope.run.grid import plan
from sparsescope.run import run_models
from sparsescope.sources.registry import profile_models

SEED_FP32_BYTES = {"bert-large": 1.34e9, "gpt2-xl": 6.23e9, "t5-v1_1-xl": 11.4e9}  # parameters x 4 bytes
# SparseGPT's work, sum over the prunable layers of d_out * d_in^2 (the Hessian inverse and the column sweep)
SPARSEGPT_WORK = {"bert-large": 0.62e12, "gpt2-xl": 4.7e12, "t5-v1_1-xl": 7.1e12}
REHEARSAL_CSV = Path(__file__).resolve().parent / "seed_rehearsal.csv"
# what a task's seconds are looked up by: its method for a pruning run, else its kind or notebook
CALIBRATED_LIKE = {"layer_magnitude": "global_magnitude", "ffn_magnitude": "global_magnitude",
                   "ffn_activation": "wanda", "heads": "wanda"}  # unmeasured methods timed like their nearest


def task_key(task) -> str:
    if task.kind == "prune":
        return task.job["spec"]["method"] + ("-nm" if task.job["spec"].get("nm") else "")
    return task.title if task.kind == "notebook" else task.kind


def rehearsal_seconds(path: Path = REHEARSAL_CSV) -> dict[tuple[str, str], float]:
    """(model, task key) -> the median seconds the rehearsal measured for such tasks (runs that were reused
    from an earlier invocation, 'skipped' or 'reused', are not timings)."""
    import pandas as pd
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    table = table[table["status"] == "ran"]
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in table.itertuples():
        task = str(row.task)
        if task.startswith("prune "):
            label = task.split()[1]
            method = label.rsplit("-", 1)[0]
            key = method + ("-nm" if "of" in label.rsplit("-", 1)[1] else "")
        elif task.startswith("evaluate "):
            key = "evaluate"
        else:
            key = task
        out[(row.model, key)].append(float(row.seconds))
    return {k: sorted(v)[len(v) // 2] for k, v in out.items()}


def task_seconds(task, measured: dict, sizes: dict) -> tuple[float, str]:
    """(seconds, 'measured' | 'scaled'): the rehearsal's own figure for this model and kind of task, else a
    measured figure of another model scaled by size (SparseGPT: by its work)."""
    if task.kind == "report":
        return measured.get(("report", "report"), 120.0), "scaled"
    key = task_key(task)
    if (task.model, key) in measured:
        return measured[(task.model, key)], "measured"
    base = key.replace("-nm", "") if key.endswith("-nm") else key
    for candidate in (key, base, CALIBRATED_LIKE.get(base, base), CALIBRATED_LIKE.get(base, base) + "-nm"):
        others = [(m, s) for (m, k), s in measured.items() if k == candidate]
        if others:
            model, seconds = max(others, key=lambda ms: SEED_FP32_BYTES.get(ms[0], 0))  # the largest measured
            ratio = (SPARSEGPT_WORK[task.model] / SPARSEGPT_WORK[model] if base == "sparsegpt"
                     else SEED_FP32_BYTES[task.model] / SEED_FP32_BYTES[model])
            return seconds * ratio, "scaled"
    raise SystemExit(f"error: nothing in {REHEARSAL_CSV} to time a {key} task by: rerun bench/seed_rehearsal.py")


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


def seed_grid(workers=(1, 2, 4, 8, 16, 32), measured: dict | None = None) -> dict:
    """The seed grid planned by the library, with each task's seconds from the rehearsal (measured or scaled):
    counts, depth, critical path, and the time on N workers."""
    sizes = {m: int(b) for m, b in SEED_FP32_BYTES.items()}
    tasks = plan(list(sizes), Path(tempfile.gettempdir()) / "seed-grid-plan", None, sizes,
                 report_dir=Path(tempfile.gettempdir()), open_models=False)
    measured = rehearsal_seconds() if measured is None else measured
    timed = {t.key: task_seconds(t, measured, sizes) for t in tasks}
    seconds = {k: s for k, (s, _) in timed.items()}
    sources = defaultdict(int)
    for _, source in timed.values():
        sources[source] += 1
    length, chain = critical_path(tasks, seconds)
    kinds = defaultdict(int)
    for task in tasks:
        kinds[task.kind] += 1
    titles = {t.key: f"{t.model or ''} {t.title}".strip() for t in tasks}
    return {"tasks": len(tasks), "by_kind": dict(kinds), "depth": depth(tasks), "work_s": sum(seconds.values()),
            "critical_path_s": length, "critical_path": [titles[k] for k in chain], "sources": dict(sources),
            "makespan_s": {n: makespan(tasks, seconds, n) for n in workers}}


def measure(models: list[str], knobs: dict, jobs_values: list[int], out: Path, repeats: int = 1) -> dict:
    """Each JOBS value runs the grid into its own fresh folder, `repeats` times, interleaved (1, 2, 1, 2, ...)
    so that drifting load on a shared machine falls on both alike; a folder is deleted once measured."""
    import shutil
    walls, runs = defaultdict(list), {}
    for r in range(repeats):
        for jobs in jobs_values:
            results = out / f"jobs{jobs}-r{r}"
            if results.exists() and any(results.iterdir()):
                sys.exit(f"error: {results} is not empty: the measurement needs fresh results folders (--out)")
            print(f"repeat {r + 1}/{repeats}, JOBS={jobs}: running the grid", flush=True)
            started = time.time()
            runs[jobs] = run_models(models, results, knobs=knobs, jobs=jobs)
            walls[jobs].append(time.time() - started)
            print(f"repeat {r + 1}/{repeats}, JOBS={jobs}: {walls[jobs][-1]:.0f} s", flush=True)
            shutil.rmtree(results, ignore_errors=True)
    return {"walls": dict(walls), "runs": runs}


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
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every JOBS value")
    parser.add_argument("--csv", type=Path, help="append each measured wall time here")
    args = parser.parse_args(argv)

    seed = seed_grid()
    print(f"seed grid (planned): {seed['tasks']} tasks {seed['by_kind']}, dependency depth {seed['depth']}")
    print(f"  task seconds: {seed['sources'].get('measured', 0)} measured by the rehearsal, "
          f"{seed['sources'].get('scaled', 0)} scaled from measured ones ({REHEARSAL_CSV.name})")
    print(f"  work {seed['work_s'] / 3600:.1f} h; critical path {seed['critical_path_s'] / 3600:.2f} h: "
          + " -> ".join(seed["critical_path"]))
    for n, span in seed["makespan_s"].items():
        print(f"  on {n:2d} workers: ~{span / 3600:.1f} h (x{seed['work_s'] / span:.1f})")
    if args.seed_only:
        return 0

    models = args.models or profile_models("packaged")
    with tempfile.TemporaryDirectory(prefix="grid-scaling-") as tmp:
        measured = measure(models, parse_set(args.set), args.jobs, args.out or Path(tmp), args.repeats)
    walls, runs = measured["walls"], measured["runs"]
    for jobs in args.jobs:
        grid = runs[jobs]  # the last repeat's task seconds
        seconds = {t.key: grid.outcomes[t.key]["seconds"] for t in grid.tasks}
        by_kind = defaultdict(float)
        for task in grid.tasks:
            by_kind[task.kind] += seconds[task.key]
        length, _ = critical_path(grid.tasks, seconds)
        print(f"JOBS={jobs}: wall {', '.join(f'{w:.0f}' for w in walls[jobs])} s, {len(grid.tasks)} tasks, "
              "task seconds " + ", ".join(f"{k} {v:.0f}" for k, v in by_kind.items())
              + f"; critical path {length:.0f} s")
    if len(args.jobs) >= 2:
        a, b = args.jobs[:2]
        pairs = [x / y for x, y in zip(walls[a], walls[b])]  # repeat by repeat: side by side in time
        print(f"JOBS={a} / JOBS={b}: median {statistics.median(pairs):.2f}x over {len(pairs)} interleaved "
              f"repeat(s), range {min(pairs):.2f}-{max(pairs):.2f}x (walls {walls[a]} s vs {walls[b]} s)")
    if args.csv:
        new_file = not args.csv.exists()
        with args.csv.open("a") as f:
            if new_file:
                f.write("models,jobs,repeat,wall_s,tasks\n")
            for jobs in args.jobs:
                for r, wall in enumerate(walls[jobs]):
                    f.write(f"{'+'.join(models)},{jobs},{r},{wall:.1f},{len(runs[jobs].tasks)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
