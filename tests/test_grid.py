"""The run grid as a Dask task graph (run.grid) on tiny models: a 2-worker LocalCluster gives the serial run's
results (tables, checkpoint bytes); a worker killed during a pruning run still ends complete and correct; memory
annotations keep two large tasks off one small worker; GPU tasks ask for a GPU; bad inputs and folders the
workers cannot share end in one line each."""
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from itertools import combinations
from pathlib import Path

import pandas as pd
import psutil
import pytest
from distributed import Client, LocalCluster, get_task_stream

from conftest import _bench_module
from sparsescope import SparsescopeError
from sparsescope.__main__ import build_parser
from sparsescope.artifacts import results_path
from sparsescope.run import grid
from sparsescope.run import tasks as worker_tasks
from sparsescope.run import MARKER, STAGES, run_model, run_models
from test_pipeline import SMALL, assert_marker_last

GB = 10**9


@contextlib.contextmanager
def cluster(n_workers: int, threads: int = 1, memory: int = 8 * GB, processes: bool = True):
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=processes, memory_limit=0,
                      resources={"MEMORY": memory}, silence_logs=logging.ERROR, dashboard_address=":0") as c:
        yield c


def capture(run) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run()
    return buffer.getvalue()


@pytest.fixture(scope="module")
def serial(tiny_models, tmp_path_factory):
    """The reference: each model's three notebooks in this process, one after another, no Dask."""
    models = [str(tiny_models["gpt2"]), str(tiny_models["bert"])]
    results = tmp_path_factory.mktemp("serial") / "results"
    for model in models:
        run_model(model, results, SMALL)
    return models, results


TIMING = re.compile(r"^(seconds|peak_.*|.*_ms|speedup.*)$")  # seconds, memory peaks, latencies and ratios


def comparable(results: Path, model: str) -> dict[str, pd.DataFrame]:
    """Every result table of a model, timing and memory columns left out, checkpoint paths made relative;
    runtime.csv keeps the rows whose presence does not depend on timings."""
    out = {}
    tables = [("distribution", "tensors.csv"), ("pruning", "pruning.csv"), ("benchmarks", "size.csv"),
              ("benchmarks", "quality.csv"), ("benchmarks", "runtime.csv")]
    for stage, name in tables:
        table = pd.read_csv(results_path(results, model, stage) / name, keep_default_na=False)
        # timings differ run to run; `device` names the threads a worker had (a worker of two gets one)
        table = table.drop(columns=[c for c in table.columns if TIMING.match(c) or c == "device"])
        if "checkpoint" in table.columns:
            table["checkpoint"] = [str(Path(c).relative_to(results)) for c in table["checkpoint"]]
        if name == "runtime.csv":
            kept = table["kind"].isin(["dense-kernels", "kernel-csr", "kernel-bsr"])
            table = table[kept].reset_index(drop=True)
        out[f"{stage}/{name}"] = table
    return out


def checkpoint_digests(results: Path, model: str) -> dict[str, str]:
    """SHA-256 of every file of every pruned checkpoint of a model, by path inside its pruning folder."""
    pruning = results_path(results, model, "pruning")
    return {str(p.relative_to(pruning)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(pruning.glob("*/compressed/*")) if p.is_file()}


def assert_same_as_serial(results: Path, expected_root: Path, model: str) -> None:
    expected, got = comparable(expected_root, model), comparable(results, model)
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=False, rtol=1e-6, obj=name)
    digests = checkpoint_digests(expected_root, model)
    assert digests and checkpoint_digests(results, model) == digests
    for stage, spec in STAGES.items():
        folder = results_path(results, model, stage)
        assert_marker_last(folder)
        assert (folder / spec.notebook).exists()  # the executed notebook lands where it does today
    assert not [p for p in results.rglob("*") if ".tmp-" in p.name]  # nothing half-written left behind


# ----------------------------------------------------------------------------- 2 workers vs serial
@pytest.fixture(scope="module")
def two_workers(serial, tmp_path_factory):
    models, _ = serial
    results = tmp_path_factory.mktemp("grid") / "results"
    with cluster(2) as c, Client(c) as client, get_task_stream(client) as stream:
        log = capture(lambda: run_models(models, results, knobs=SMALL, scheduler=c.scheduler_address))
    return results, log, {task["worker"] for task in stream.data}


def test_two_workers_give_the_serial_results(serial, two_workers):
    models, expected_root = serial
    results, log, workers = two_workers
    assert len(workers) == 2  # both workers ran tasks
    for model in models:
        assert_same_as_serial(results, expected_root, model)


def test_the_terminal_sees_each_task_as_the_serial_run_shows_a_notebook(serial, two_workers):
    models, _ = serial
    _, log, _ = two_workers
    assert re.search(r"^\[grid\] 18 tasks for 2 model\(s\) on the cluster at tcp://\S+: dashboard http", log, re.M)
    for model in models:
        for title in ("prune global_magnitude-0.5", "prune wanda-0.5", "evaluate dense", "evaluate wanda-0.5",
                      "runtime"):
            assert f"[{model}] {title}: running" in log and f"[{model}] {title}: done in " in log
        assert f"[{model}] 03_benchmarks.ipynb: done in " in log
        assert re.search(rf"^\[{re.escape(model)}\] writing: 100%\|█+\| \d+/\d+ \[", log, re.M)  # a text bar
    assert all(line.startswith(tuple(f"[{m}] " for m in models) + ("[grid] ",)) for line in log.splitlines())


# ---------------------------------------------------------------------------------------- faults
def test_a_worker_killed_during_a_pruning_run_still_ends_complete_and_correct(serial, tmp_path):
    models, expected_root = serial
    model, results = models[0], tmp_path / "results"
    pruning = results_path(results, model, "pruning")
    killed, finished = {}, threading.Event()

    def kill_the_worker_running_wanda() -> None:
        while not killed and not finished.is_set():
            for tmp in pruning.glob(".wanda-0.5.tmp-*"):  # the run's folder while it is written: .<run>.tmp-<pid>
                with contextlib.suppress(psutil.Error, ValueError):
                    task = psutil.Process(int(tmp.name.rsplit("-", 1)[1]))
                    worker = task.parent()
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.update(task=task, worker=worker.pid)
                    return
            time.sleep(0.02)

    with cluster(2) as c:
        killer = threading.Thread(target=kill_the_worker_running_wanda, daemon=True)
        killer.start()
        try:
            log = capture(lambda: run_models([model], results, knobs=SMALL, scheduler=c.scheduler_address))
        finally:
            finished.set()
            killer.join()
    assert killed, "the wanda run ended before the test could kill its worker"
    with contextlib.suppress(psutil.NoSuchProcess):
        killed["task"].wait(timeout=10)  # the task's process died with its worker...
    assert not killed["task"].is_running()
    assert log.count(f"[{model}] prune wanda-0.5: running") == 2  # ...and the task ran again, on a live worker
    assert_same_as_serial(results, expected_root, model)


def test_a_task_failing_on_a_bad_input_fails_once_in_one_line_and_the_rest_goes_on(tiny_models, tmp_path, capfd):
    model, results = str(tiny_models["gpt2"]), tmp_path / "results"
    occupied = results_path(results, model, "pruning") / "global_magnitude-0.5"  # another run's folder
    occupied.mkdir(parents=True)
    (occupied / "prune_info.json").write_text(json.dumps({"run": {"model": "other", "spec": {"method": "wanda"}}}))
    with pytest.raises(SparsescopeError) as failed:
        run_models([model], results, knobs={**SMALL, "methods": ["global_magnitude"]}, jobs=2)
    message, out = str(failed.value), capfd.readouterr().out
    assert message.startswith(f"{model}: ") and "already holds a different run" in message and "\n" not in message
    assert out.count(f"[{model}] prune global_magnitude-0.5: running") == 1  # not retried
    assert out.count(" error: ") == 1  # the tasks that needed it are not failures of their own
    assert not (results_path(results, model, "pruning") / MARKER).exists()
    assert_marker_last(results_path(results, model, "distribution"))  # what did not need it finished
    assert (results_path(results, model, "benchmarks") / "rows" / "dense.json").exists()


def test_a_results_folder_the_workers_cannot_write_is_refused_in_one_line(tiny_models, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SparsescopeError) as failed:
        run_models([str(tiny_models["gpt2"])], blocker / "results", knobs=SMALL)
    message = str(failed.value)
    assert "cannot be written from the worker" in message and "every worker" in message and "\n" not in message


def test_a_folder_the_workers_do_not_share_is_seen(tmp_path):
    assert "is not shared" in grid.probe_folder(str(tmp_path), ".token", "written-elsewhere")
    (tmp_path / ".token").write_text("written-elsewhere")
    assert grid.probe_folder(str(tmp_path), ".token", "written-elsewhere") == ""


# -------------------------------------------------------------------------------- resources, plan
FOUR = {"methods": ["global_magnitude", "layer_magnitude", "wanda", "sparsegpt"], "sparsities": [0.5], "nm": None}


def occupy(job, *inputs):
    """A stand-in task: holds its slot for a moment and says when and where."""
    from distributed import get_worker
    started = time.time()
    time.sleep(0.3)
    return {"value": None, "seconds": 0.3, "ran": True, "span": (started, time.time()),
            "worker": get_worker().address}


def test_memory_annotations_keep_two_large_tasks_off_one_small_worker(tmp_path):
    tasks = grid.plan(["m"], tmp_path, FOUR, {"m": 4 * GB})  # a model of 4 GB in float32
    grid.fit(tasks, {"w": {"resources": {"MEMORY": 10 * GB}}})
    memory = {t.key: t.memory for t in tasks}
    large = {t.key for t in tasks if t.memory > 5 * GB}  # two of them do not fit in 10 GB
    assert {t.title for t in tasks if t.key in large} == {
        "prune wanda-0.5", "prune sparsegpt-0.5", "evaluate dense", "evaluate global_magnitude-0.5",
        "evaluate layer_magnitude-0.5", "evaluate wanda-0.5", "evaluate sparsegpt-0.5", "runtime",
        "03_benchmarks.ipynb"}
    with cluster(1, threads=2, memory=10 * GB, processes=False) as c, Client(c) as client:
        outcomes, failures = grid._collect(tasks, grid.submit(client, tasks, occupy))
    assert not failures and len(outcomes) == len(tasks)
    span = {key: outcome["span"] for key, outcome in outcomes.items()}
    together = [(a, b) for a, b in combinations(span, 2) if span[a][0] < span[b][1] and span[b][0] < span[a][1]]
    assert together  # the worker does run two tasks at once...
    assert all(memory[a] + memory[b] <= 10 * GB for a, b in together)  # ...when their memory fits
    assert not [(a, b) for a, b in together if a in large and b in large]


def test_memory_asked_follows_the_model_size_and_a_task_no_worker_holds_is_refused(tmp_path):
    tasks = {t.title: t for t in grid.plan(["m"], tmp_path, FOUR, {"m": 8 * GB})}
    # streamed: 2 GB whatever the size; a loaded model: its float32 bytes + 25% activations + 2 GB
    assert tasks["prune global_magnitude-0.5"].memory == tasks["01_distribution.ipynb"].memory == 2 * GB
    assert tasks["prune wanda-0.5"].memory == tasks["evaluate dense"].memory == 12 * GB
    assert (tasks["runtime"].memory, tasks["runtime"].least) == (20 * GB, 12 * GB)  # two copies if they fit
    plan = list(tasks.values())
    grid.fit(plan, {"a": {"resources": {"MEMORY": 16 * GB}}, "b": {"resources": {"MEMORY": 4 * GB}}})
    assert tasks["runtime"].memory == 16 * GB  # runtime_results swaps weights in place when short
    with pytest.raises(SparsescopeError) as failed:
        grid.fit(plan, {"a": {"resources": {"MEMORY": 10 * GB}}})
    assert "needs ~12.0 GB" in str(failed.value) and "largest: 10.0 GB" in str(failed.value)
    with pytest.raises(SparsescopeError, match="declares its memory.*--resources"):
        grid.fit(plan, {"a": {"resources": {}}})


def test_gpu_tasks_ask_for_a_gpu_where_workers_have_one(tmp_path):
    knobs = {"methods": ["global_magnitude", "wanda"], "sparsities": [0.5], "nm": None}
    tasks = grid.plan(["m"], tmp_path, knobs, {"m": GB}, gpu=True)
    assert {t.title for t in tasks if t.resources().get("GPU") == 1} == {
        "prune wanda-0.5", "evaluate dense", "evaluate global_magnitude-0.5", "evaluate wanda-0.5", "runtime",
        "03_benchmarks.ipynb"}
    assert not any(t.gpu for t in grid.plan(["m"], tmp_path, {**knobs, "device": "cpu"}, {"m": GB}, gpu=True))
    assert not any(t.gpu for t in grid.plan(["m"], tmp_path, knobs, {"m": GB}, gpu=False))


def test_the_graph_follows_the_data_in_the_serial_order(tmp_path):
    knobs = {"methods": ["global_magnitude", "wanda"], "sparsities": [0.5], "nm": None}
    tasks = grid.plan(["a", "b"], tmp_path, knobs, {"a": GB, "b": GB}, report_dir=tmp_path / "report")
    title = {t.key: f"{t.model} {t.title}" if t.model else t.title for t in tasks}
    needs = {title[t.key]: {title[d] for d in t.deps} for t in tasks}
    per_model = ["01_distribution.ipynb", "prune global_magnitude-0.5", "prune wanda-0.5", "02_pruning.ipynb",
                 "evaluate dense", "evaluate global_magnitude-0.5", "evaluate wanda-0.5", "runtime",
                 "03_benchmarks.ipynb"]
    assert list(needs) == [f"{m} {t}" for m in "ab" for t in per_model] + ["report"]
    assert needs["a evaluate wanda-0.5"] == {"a prune wanda-0.5", "a evaluate dense"}
    assert needs["a 02_pruning.ipynb"] == {"a prune global_magnitude-0.5", "a prune wanda-0.5"}
    assert needs["a runtime"] == {"a 02_pruning.ipynb"}
    assert needs["a 03_benchmarks.ipynb"] == {"a 02_pruning.ipynb", "a evaluate dense", "a runtime",
                                              "a evaluate global_magnitude-0.5", "a evaluate wanda-0.5"}
    assert needs["report"] == {f"{m} {nb}" for m in "ab" for nb in ("01_distribution.ipynb", "03_benchmarks.ipynb")}
    assert not needs["a 01_distribution.ipynb"] and not needs["a prune wanda-0.5"]


def test_one_worker_scores_each_model_in_one_quality_task(tmp_path):
    knobs = {"methods": ["global_magnitude", "wanda"], "sparsities": [0.5], "nm": None}
    tasks = grid.plan(["a"], tmp_path, knobs, {"a": GB}, evaluate_each=False)
    title = {t.key: t.title for t in tasks}
    needs = {t.title: {title[d] for d in t.deps} for t in tasks}
    assert list(needs) == ["01_distribution.ipynb", "prune global_magnitude-0.5", "prune wanda-0.5",
                           "02_pruning.ipynb", "evaluate dense and 2 runs", "runtime", "03_benchmarks.ipynb"]
    assert needs["evaluate dense and 2 runs"] == {"prune global_magnitude-0.5", "prune wanda-0.5"}
    assert needs["03_benchmarks.ipynb"] == {"02_pruning.ipynb", "evaluate dense and 2 runs", "runtime"}
    job = next(t.job for t in tasks if t.kind == "evaluate")
    assert job["runs"] == ["global_magnitude-0.5", "wanda-0.5"] and job["run"] is None


def test_make_report_hands_the_scheduler_address_to_the_command_line():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(["make", "-n", "report", "DASK_SCHEDULER=tcp://head:8786", "JOBS=4"], capture_output=True,
                           text=True, cwd=root, timeout=120).stdout
    words = shlex.split(next(line for line in shown.splitlines() if "-m sparsescope report" in line))
    args = build_parser().parse_args(words[words.index("sparsescope") + 1:])
    assert (args.scheduler, args.jobs) == ("tcp://head:8786", "4")


def test_the_seed_grid_bench_plans_every_run(tmp_path):
    bench = _bench_module("grid_scaling")
    seed = bench.seed_grid(workers=(1, 4))
    runs = seed["by_kind"]["prune"] // 3
    assert seed["by_kind"] == {"notebook": 9, "prune": 3 * runs, "evaluate": 3 * (runs + 1), "runtime": 3, "report": 1}
    assert seed["tasks"] == sum(seed["by_kind"].values()) and seed["depth"] == 5
    assert seed["makespan_s"][1] == pytest.approx(seed["work_s"])
    assert seed["critical_path_s"] <= seed["makespan_s"][4] < seed["makespan_s"][1]


def test_a_task_runs_where_transformers_asks_the_terminal_for_colour(seed_hub, capsys):
    """BERT-large's hub file holds heads BertForMaskedLM does not use; transformers' load report then asks
    sys.stdout.isatty(), which the task's captured stream must answer (the seed rehearsal failed here)."""
    from conftest import snapshot
    from sparsescope.sources.registry import load_model
    folder = snapshot(seed_hub, "google-bert/bert-large-uncased")
    model = worker_tasks._captured({"prefix": "[bert] ", "title": "evaluate dense"}, lambda: load_model(str(folder)))
    assert type(model).__name__ == "BertForMaskedLM"
    assert "[bert] evaluate dense: done in" in capsys.readouterr().out
