"""`make report` as a task graph on Dask distributed: a local cluster by default, a running one by address.

Per model, edges following the data:

    analyse (notebook 01) ───────────────────────────────────────────────────────┐
    prune(run) ─┬─> notebook 02 ──> runtime ──────────────────────> notebook 03 ──┴─> report
                └─> evaluate(run) <── evaluate(dense)  ──────────────────┘

prune(run) is `prune_model` for one run of notebook 02's plan, into the stage's folder (a finished run is
reused); evaluate scores one checkpoint into the per-run cache notebook 03 reads (rows/<run>.json, through
`evaluate_checkpoints`); runtime is `runtime_results` (cached in runtime_rows.json). The notebooks then run
as `run_model` runs them, with the same parameters and completion markers: they find every run finished
and every score cached, so they only assemble tables and figures.

Every task runs in a process of its own that dies with its worker (a notebook in its kernel, other work in
a child Python): its memory is its own (the peak-memory columns of pruning.csv stay true, an out-of-memory
kill ends one task), and a worker killed mid-task leaves nothing writing behind it, so the scheduler can
hand the task to another worker. What tasks print reaches the terminal of `make report` as Dask events,
line by line, as the serial run prints it. Everything a task writes goes through a temporary name renamed
when complete, or is vouched for by a marker written last, so what a killed task leaves is never taken
for finished; a rerun resumes from what is complete. Tasks declare the memory they need (MEMORY, bytes)
and, where workers have GPUs, one GPU, as Dask resources.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..artifacts import results_path
from ..errors import SparsescopeError
from ..sources.registry import resolve
from .markers import KERNEL, NOTEBOOKS, STAGES, call_stage, stage_parameters
from .progress import say
from .tasks import TOPIC, run_task

GB = 10**9
STREAM = 2 * GB          # a streamed task (analysis, magnitude pruning, a notebook assembling) stays below
CLUSTER_DOC = "docs/cluster.md"


@dataclass
class Task:
    key: str
    kind: str                 # notebook | prune | evaluate | runtime | report
    model: str | None
    title: str               # what the terminal calls it: "prune wanda-0.5", "02_pruning.ipynb"
    job: dict                # everything the task needs, as JSON
    deps: list[str] = field(default_factory=list)
    memory: int = STREAM      # bytes it asks for (MEMORY resource)
    least: int = STREAM       # the least it can run in (runtime measures with one model copy when short)
    gpu: bool = False

    def resources(self) -> dict:
        return {"MEMORY": self.memory, **({"GPU": 1} if self.gpu else {})}


@dataclass
class GridRun:
    tasks: list[Task]
    outcomes: dict            # key -> {"seconds": float, "ran": bool} for every task that finished
    report: Path | None
    seconds: float


# ---------------------------------------------------------------------------------------------- plan
def plan(models: list[str], results: Path, knobs: dict | None, sizes: dict[str, int], gpu: bool = False,
         kernel: str = KERNEL, report_dir: Path | None = None, evaluate_each: bool = True,
         open_models: bool = True) -> list[Task]:
    """The task graph, in the order a single worker runs it (today's serial order: per model notebook 01,
    the pruning runs, notebook 02, quality, runtime, notebook 03; then the report). `sizes`: each model's
    bytes in float32; `gpu`: whether some worker declares GPUs. `evaluate_each`: one quality task per
    checkpoint (they spread over workers); False: one per model, as notebook 03 scores them (one Python,
    the dense reference built once), for a single worker, where spreading buys nothing and every task's
    start-up and dense pass would be paid again. `open_models` False: plan every run of the grid without
    reading the models (offline planning, bench/grid_scaling.py), so default runs a model cannot take stay
    in."""
    from ..evaluation.runtime import TWO_MODELS
    from .. import stages  # here: torch and transformers stay out of the command line's start-up
    from ..pruning.runs import CALIBRATED
    token = uuid.uuid4().hex[:8]  # keys unique to this run: a long-lived cluster keeps no stale results
    tasks: list[Task] = []

    def add(kind, model, title, job, deps=(), memory=STREAM, least=None, gpu=False) -> str:
        key = f"{kind}-{len(tasks):04d}-{token}"  # the dashboard groups tasks by the name before the number
        job = {"kind": kind, "model": model, "title": title, "prefix": f"[{model or 'report'}] ", "gpu": gpu,
               **job}
        least = memory if least is None else least
        tasks.append(Task(key, kind, model, title, job, list(deps), memory, least, gpu))
        return key

    finals = []
    for model in models:
        folder = {stage: results_path(results, model, stage) for stage in STAGES}
        params = {stage: stage_parameters(stage, model, knobs, folder["pruning"]) for stage in STAGES}
        pp, pb = params["pruning"], params["benchmarks"]
        # the key notebook 03's marker will carry once notebook 02 has run with these parameters
        bench_key = {"parameters": pb, "pruning": pp}
        load = int(1.25 * sizes[model]) + STREAM  # the model in float32 with its activations
        gpu_prune, gpu_bench = gpu and pp["device"] != "cpu", gpu and pb["device"] != "cpu"

        def notebook(stage, deps=(), memory=STREAM, gpu=False):
            return add("notebook", model, STAGES[stage].notebook,
                       {"stage": stage, "out_dir": str(folder[stage]), "parameters": params[stage],
                        "kernel": kernel, "device": params[stage].get("device")}, deps, memory, gpu=gpu)

        finals.append(notebook("distribution"))
        prunes = {}
        # notebook 02's pruning_table runs the same plan: it finds these runs done and skips the same ones
        for spec in call_stage(stages.pruning_plan, pp, read_model=open_models):
            calibrated = spec.method in CALIBRATED
            prunes[spec.label] = add("prune", model, f"prune {spec.label}",
                                     {"spec": asdict(spec), "label": spec.label, "parameters": pp,
                                      "out_dir": str(folder["pruning"]), "device": pp["device"],
                                      "key": {"parameters": pp}},
                                     memory=load if calibrated else STREAM, gpu=calibrated and gpu_prune)
        assembled = notebook("pruning", list(prunes.values()))
        bench = {"out_dir": str(folder["benchmarks"]), "parameters": pb, "key": bench_key,
                 "device": pb["device"]}
        if evaluate_each:
            # the dense rows first, once: every checkpoint's task would otherwise score and write them too
            dense = add("evaluate", model, "evaluate dense", {**bench, "run": None}, memory=load,
                        gpu=gpu_bench)
            scored = [add("evaluate", model, f"evaluate {label}", {**bench, "run": label}, [prune, dense],
                          memory=load, gpu=gpu_bench) for label, prune in prunes.items()]
        else:
            dense = add("evaluate", model, f"evaluate dense and {len(prunes)} runs",
                        {**bench, "run": None, "runs": list(prunes)}, list(prunes.values()), memory=load,
                        gpu=gpu_bench)
            scored = []
        # a dense and a pruned copy side by side when they fit; runtime_results swaps weights when not
        runtime = add("runtime", model, "runtime", bench, [assembled],
                      memory=int(TWO_MODELS * sizes[model]) + STREAM, least=load, gpu=gpu_bench)
        finals.append(notebook("benchmarks", [assembled, dense, *scored, runtime], load, gpu_bench))
    if report_dir is not None:
        add("report", None, "report", {"models": models, "results": str(results),
                                       "report_dir": str(report_dir), "kernel": kernel}, finals)
    return tasks


def fit(tasks: list[Task], workers: dict[str, dict]) -> None:
    """Check every task fits on some worker (a task no worker can hold would wait forever); a task that can
    run in less than it asks for (runtime) asks for what the largest worker has."""
    memory = [w["resources"].get("MEMORY", 0) for w in workers.values()]
    if not any(memory):
        raise SparsescopeError("no Dask worker declares its memory: start workers with a MEMORY resource in "
                               "bytes, e.g. `dask worker tcp://HOST:8786 --nthreads 2 --resources "
                               f"\"MEMORY=30e9\"` ({CLUSTER_DOC})")
    largest = max(memory)
    for task in tasks:
        if task.memory > largest:
            if task.least > largest:
                raise SparsescopeError(f"{task.model}: {task.title} needs ~{task.least / GB:.1f} GB of "
                                       f"memory, more than any worker offers (largest: "
                                       f"{largest / GB:.1f} GB): start a worker with more (--resources "
                                       "\"MEMORY=...\"), or for a local run free memory; nothing was run")
            task.memory = largest


def model_bytes(model: str) -> int:
    """A model's weights in float32 (how the calibrated methods, quality and runtime load it), from its
    checkpoint files; on a worker, which fetches or converts the model where needed."""
    from ..sources.registry import describe
    from ..storage import checkpoint_bytes
    info = describe(model)
    stored = 2 if info["dtype"] in ("float16", "bfloat16") else 4
    return checkpoint_bytes(info["folder"]) * 4 // stored


def probe_folder(folder: str, token_name: str, token: str | None) -> str:
    """'' when this process can write `folder` and (given a token) reads there the token another worker
    wrote; else why not, in words."""
    where = f"worker on {socket.gethostname()}"
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        mine = path / f".probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        mine.write_text("ok")
        mine.unlink()
    except OSError as err:
        return (f"{folder} cannot be written from the {where} ({err.strerror or err}): put it on a folder "
                "every worker can write, on a filesystem they all mount")
    if token is not None:
        try:
            seen = (path / token_name).read_text()
        except OSError:
            seen = None
        if seen != token:
            return (f"{folder} is not shared: the {where} does not see what another worker wrote there; "
                    "put it on a filesystem every worker mounts at the same path")
    if not (NOTEBOOKS / STAGES["pruning"].notebook).exists():
        return (f"the {where} has no sparsescope notebooks ({NOTEBOOKS}): install sparsescope there the way "
                "this machine has it")
    return ""


def _write_token(folder: str, token_name: str, token: str) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / token_name).write_text(token)


# ------------------------------------------------------------------------------------- the client
@contextlib.contextmanager
def connect(jobs: int, scheduler: str | None):
    """A client of the cluster at `scheduler`, or of a local one: one worker process with `jobs` threads
    (tasks at once) whose MEMORY is what this machine has free, so its tasks share one machine's memory."""
    import logging
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise SparsescopeError(f"cannot reach the Dask scheduler at {scheduler} ({type(err).__name__}): "
                                   "start one (`dask scheduler`), or fix DASK_SCHEDULER / --scheduler"
                                   ) from None
        with client:
            yield client, f"the cluster at {scheduler}"
        return
    import psutil
    resources = {"MEMORY": psutil.virtual_memory().available}
    gpus = _local_gpus()
    if gpus:
        resources["GPU"] = gpus
    # silence_logs: a failed task is reported once, as its one line (_settle), not also as Dask's "Compute
    # Failed" block; dashboard on a free port: a second cluster on this machine warns about none
    cluster = LocalCluster(n_workers=1, threads_per_worker=jobs, processes=True, memory_limit=0,
                           resources=resources, silence_logs=logging.CRITICAL, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        yield client, f"a local cluster ({jobs} at once)"


def _local_gpus() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _workers(client, where: str) -> dict[str, dict]:
    workers = client.scheduler_info()["workers"]
    if not workers:
        say(f"[grid] waiting for a worker to join {where}")
        client.wait_for_workers(1)
        workers = client.scheduler_info()["workers"]
    return workers


def check_folders(client, workers: dict, folders: list[Path]) -> None:
    """Every worker can write each folder, and sees what another worker wrote there (one shared folder)."""
    first = next(iter(workers))
    for folder in folders:
        name, token = f".grid-probe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        answers = client.run(probe_folder, str(folder), name, None, workers=[first])
        if not answers[first]:
            client.run(_write_token, str(folder), name, token, workers=[first])
            answers = client.run(probe_folder, str(folder), name, token)
            with contextlib.suppress(OSError, KeyError):
                client.run(os.remove, str(folder / name), workers=[first])
        bad = {address: why for address, why in answers.items() if why}
        if bad:
            address, why = next(iter(bad.items()))
            raise SparsescopeError(f"{why} (worker {address}; every worker writes results to one folder, "
                                   f"{CLUSTER_DOC})")


def run_grid(models: list[str], results, kernel: str = KERNEL, knobs: dict | None = None, jobs: int = 1,
             scheduler: str | None = None, report_dir=None, run=None) -> GridRun:
    """Every model's stages (and the report, given report_dir) as one task graph on Dask. A failing task does
    not stop the tasks that do not need it; its one line is printed when it fails, and the first failure is
    raised once everything else has ended. `run`: the task function (tests pass stand-ins)."""
    for model in models:
        resolve(model)  # one line, before any cluster starts, on a bad name
    started = time.time()
    results = Path(results).resolve()  # the same absolute path on every worker
    report_dir = Path(report_dir).resolve() if report_dir else None
    with connect(jobs, scheduler) as (client, where):
        workers = _workers(client, where)
        check_folders(client, workers, [results] + ([report_dir] if report_dir else []))
        client.subscribe_topic(TOPIC, lambda event: print(event[1], flush=True))
        sizes, failures = _model_sizes(client, models)
        spread = bool(scheduler) or jobs > 1
        tasks = plan([m for m in models if m in sizes], results, knobs, sizes,
                     any(w["resources"].get("GPU") for w in workers.values()), kernel,
                     None if failures else report_dir, evaluate_each=spread)
        fit(tasks, workers)
        say(f"[grid] {len(tasks)} tasks for {len(models)} model(s) on {where}: {_dashboard(client)}")
        if spread:
            outcomes, failed = _collect(tasks, submit(client, tasks, run or run_task))
        else:
            outcomes, failed = _run_in_order(client, tasks, run or run_task)
        failures += failed
    if failures:
        more = f" ({len(failures) - 1} other failure(s), see above)" if len(failures) > 1 else ""
        raise SparsescopeError(failures[0] + more)
    report = next((outcomes[t.key]["value"] for t in tasks if t.kind == "report"), None)
    return GridRun(tasks, outcomes, Path(report) if report else None, time.time() - started)


def _dashboard(client) -> str:
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return "no dashboard (it needs bokeh: pip install 'dask[diagnostics]')"
    return f"dashboard {client.dashboard_link}"


def _model_sizes(client, models: list[str]) -> tuple[dict, list[str]]:
    """Each model's float32 bytes, read on a worker (which fetches or converts it where needed); a model that
    fails here is a failure of its own, and the other models go on."""
    futures = {m: client.submit(model_bytes, m, key=f"model-bytes-{uuid.uuid4().hex[:8]}") for m in models}
    sizes, failures = {}, []
    for model, future in futures.items():
        try:
            sizes[model] = future.result()
        except Exception as err:  # whatever it was, it is this model's one line
            first = (str(err).strip().splitlines() or [""])[0]
            line = str(err) if isinstance(err, SparsescopeError) else (
                f"cannot read its weights: {type(err).__name__}: {first}")
            failures.append(f"{model}: {line}")
            say(f"[{model}] error: {line}")
    return sizes, failures


def submit(client, tasks: list[Task], run) -> dict:
    """Every task, with its resources, and a priority that makes the plan's order break ties."""
    futures = {}
    for i, task in enumerate(tasks):
        futures[task.key] = _submit(client, task, run, futures, len(tasks) - i)
    return futures


def _submit(client, task: Task, run, futures: dict, priority: int = 0):
    return client.submit(run, task.job, *(futures[d] for d in task.deps), key=task.key,
                         resources=task.resources(), priority=priority, pure=False)


def _collect(tasks: list[Task], futures: dict) -> tuple[dict, list[str]]:
    """Wait for every task; a task's own failure (not one inherited from a task it needs) as one line each."""
    from distributed import as_completed
    by_key = {t.key: t for t in tasks}
    outcomes, failures = {}, []
    for future in as_completed(list(futures.values())):
        task = by_key[future.key]
        if not any(futures[d].status == "error" for d in task.deps):
            _settle(task, future, outcomes, failures)
    return outcomes, failures


def _run_in_order(client, tasks: list[Task], run) -> tuple[dict, list[str]]:
    """One task at a time, in the plan's order: a local JOBS=1 is today's serial order exactly (a worker given
    the whole graph starts whichever task it holds when one ends, before the scheduler hands it the next one
    of the plan). A task whose input failed is left out; the others go on."""
    from distributed import wait
    futures, outcomes, failures, failed = {}, {}, [], set()
    for task in tasks:
        if failed.intersection(task.deps):
            failed.add(task.key)
            continue
        futures[task.key] = _submit(client, task, run, futures)
        wait([futures[task.key]])
        if not _settle(task, futures[task.key], outcomes, failures):
            failed.add(task.key)
    return outcomes, failures


def _settle(task: Task, future, outcomes: dict, failures: list) -> bool:
    """Record a finished task's outcome, or print and record its failure as one line; True if it finished."""
    if future.status == "finished":
        outcomes[task.key] = future.result()
        return True
    err = future.exception() if future.status == "error" else RuntimeError(f"it was {future.status}")
    line = _failure(task, err)
    failures.append(line)
    say(f"[{task.model or 'report'}] error: {line}")
    return False


def _failure(task: Task, err: BaseException) -> str:
    if isinstance(err, SparsescopeError):
        text = str(err)
    elif type(err).__name__ == "KilledWorker":
        text = (f"{task.title} was running each time its worker died ({task.memory / GB:.1f} GB asked for; "
                "out of memory?): give workers more memory, then run again to resume")
    else:
        text = f"{task.title} failed: {type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
    return f"{task.model}: {text}" if task.model and not text.startswith(f"{task.model}: ") else text
