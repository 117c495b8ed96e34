"""A task of the grid on a worker: a notebook in its kernel, other work in a child Python of its own that
dies with the worker, its lines sent to the client as Dask events, its value or one-line error back."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..artifacts import write_json
from ..errors import SparsescopeError
from .markers import MARKER, NOTEBOOKS, STAGES, call_stage, stage_status
from .notebooks import run_notebook
from .pipeline import build_report
from .progress import ProgressStream, duration

TOPIC = "sparsescope-progress"  # the Dask event topic that carries tasks' terminal lines to the client
CHILD = "import sys; from sparsescope.run.tasks import child; sys.exit(child(sys.argv[1]))"


def run_task(job: dict, *inputs) -> dict:
    """One task on a worker. A notebook runs from here (papermill starts its kernel, a process of its own,
    which exits when the worker dies); other work runs in a child process unless it is complete already.
    `inputs`: the values of the tasks it needs, there so that Dask runs it after them; it reads what they
    wrote."""
    started = time.time()
    _uncap_threads()
    emit = _emitter()
    if job["kind"] == "notebook":
        spec = STAGES[job["stage"]]
        ran = run_notebook(NOTEBOOKS / spec.notebook, Path(job["out_dir"]), job["parameters"], job["kernel"],
                           spec.atomic, job["prefix"], _Lines(emit))
        value = None
    else:
        done, value = _already_done(job)
        ran = not done
        if ran:
            value = _in_child(job, emit)
    return {"value": value, "seconds": round(time.time() - started, 3), "ran": ran}


def _already_done(job: dict) -> tuple[bool, object]:
    """(True, value) when the task's output is complete for its parameters: checked here, on the worker, so a
    rerun starts no process for it."""
    kind = job["kind"]
    if kind == "prune" and stage_status(Path(job["out_dir"]), job["key"])[0]:
        from ..pruning.runs import read_pruning_table
        table = read_pruning_table(job["out_dir"])
        rows = [r for r in table.to_dict("records") if Path(r["checkpoint"]).parent.name == job["label"]]
        if rows:
            return True, rows[0]
    elif kind in ("evaluate", "runtime") and stage_status(Path(job["out_dir"]), job["key"])[0]:
        return True, None
    return False, None


def _emitter():
    """Where a task's terminal lines go: to the client as Dask events, or printed when not on a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return lambda line: print(line, flush=True)
    return lambda line: worker.log_event(TOPIC, line)


class _Lines:
    """A file whose complete lines go to `emit`."""

    def __init__(self, emit):
        self.emit, self.pending, self.lock = emit, "", threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                self.emit(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:  # asked by libraries that colour their output (transformers' load report)
        return False


_UNCAPPED = threading.Lock()


def _uncap_threads() -> None:
    """Drop the nanny's one-thread caps from this worker's environment, which the processes a task starts
    (its child, a notebook's kernel) inherit: the caps suit many small numpy tasks per process, while a task
    here is a whole process and gets the threads it would get from a shell (torch: one per core)."""
    import dask
    with _UNCAPPED:
        for name, value in (dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}).items():
            if name.endswith("_NUM_THREADS") and os.environ.get(name) == str(value):
                os.environ.pop(name)


def _in_child(job: dict, emit) -> object:
    with tempfile.TemporaryDirectory(prefix="sparsescope-task-") as tmp, _gpu_slot(job) as gpu_env:
        result, payload = Path(tmp) / "result.json", Path(tmp) / "job.json"
        write_json({**job, "result": str(result), "parent": os.getpid()}, payload)
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONIOENCODING": "utf-8", **gpu_env}
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(payload)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", env=env)
        try:
            for line in proc.stdout:
                line = line.rstrip()
                if line:
                    emit(line if line.startswith(job["prefix"]) else job["prefix"] + line)
        finally:
            code = proc.wait()
        if code == 0:
            return json.loads(result.read_text())["value"]
        if result.exists():
            raise SparsescopeError(json.loads(result.read_text())["error"])
        how = (f"signal {-code} (killed, or out of memory); run again to resume" if code < 0 else
               f"exit code {code} before it could say why (see the lines above)")
        raise SparsescopeError(f"{job['title']} stopped: its process ended with {how}")


_GPU_LOCK = threading.Lock()
_GPUS_BUSY: set[str] = set()


@contextlib.contextmanager
def _gpu_slot(job: dict):
    """A GPU task on a worker with several GPUs sees one that no other task of this worker uses (Dask counts
    GPUs; this picks which). A task given an explicit cuda:N keeps it."""
    if not job.get("gpu") or job.get("device") not in ("auto", "cuda"):
        yield {}
        return
    from distributed import get_worker
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in
                                              range(int(get_worker().state.total_resources.get("GPU", 1)))]
    with _GPU_LOCK:
        mine = next((i for i in ids if i not in _GPUS_BUSY), ids[0])
        _GPUS_BUSY.add(mine)
    try:
        yield {"CUDA_VISIBLE_DEVICES": mine}
    finally:
        with _GPU_LOCK:
            _GPUS_BUSY.discard(mine)


# ------------------------------------------------------------------------------------ in the child
def child(job_file: str) -> int:
    """A task's process: its work, its value or its one-line error in the result file, the exit code."""
    job = json.loads(Path(job_file).read_text())
    _die_with(job["parent"])
    result = Path(job["result"])
    try:
        value = WORK[job["kind"]](job)
    except SparsescopeError as err:
        write_json({"error": str(err)}, result)
        return 2
    except Exception as err:  # a bug, not a bad input: its traceback goes to the terminal as well
        import traceback
        traceback.print_exc()
        first = (str(err).strip().splitlines() or [""])[0]
        write_json({"error": f"{job['title']} failed: {type(err).__name__}: {first}"}, result)
        return 1
    write_json({"value": value}, result)
    return 0


def _die_with(parent: int) -> None:
    """Killed with the worker that started it (Linux), so a task handed to another worker is not still being
    written here."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the worker died before the line above
        os._exit(1)


def _captured(job: dict, work):
    """work() with what it prints shown as a notebook's output is: prefixed, bars thinned, heartbeats."""
    out, prefix, title = sys.stdout, job["prefix"], job["title"]
    print(f"{prefix}{title}: running", file=out, flush=True)
    started = time.time()
    stream = ProgressStream(prefix, title, out=out)
    with stream.heartbeat(), contextlib.redirect_stdout(stream.stdout), \
            contextlib.redirect_stderr(stream.stderr):
        value = work()
    print(f"{prefix}{title}: done in {duration(time.time() - started)}", file=out, flush=True)
    return value


def _prune(job: dict) -> dict:
    from .. import stages  # in the task's own process: the worker's start-up stays light
    from ..pruning.runs import PruneSpec
    spec = PruneSpec(**job["spec"])
    return _captured(job, lambda: call_stage(stages.pruning_run, job["parameters"], out_dir=job["out_dir"],
                                             spec=spec))


def _evaluate(job: dict) -> None:
    """Quality rows of one checkpoint (job["run"]), or of the dense model and job["runs"] (None: the dense
    model alone), into the stage's rows/ cache, which notebook 03's `quality` then reads."""
    from .. import stages
    runs = [job["run"]] if job["run"] else ["dense", *job.get("runs", [])]
    _captured(job, lambda: call_stage(stages.checkpoint_quality, job["parameters"], out_dir=job["out_dir"],
                                      runs=runs))


def _runtime(job: dict) -> None:
    from .. import stages
    bench = Path(job["out_dir"])
    # runtime.csv is written into the stage's folder: a marker there for other parameters vouches no more
    if not stage_status(bench, job["key"])[0]:
        (bench / MARKER).unlink(missing_ok=True)
    bench.mkdir(parents=True, exist_ok=True)
    _captured(job, lambda: call_stage(stages.runtime, job["parameters"], out_dir=bench))


def _report(job: dict) -> str:
    return str(build_report(job["models"], Path(job["results"]), Path(job["report_dir"]), job["kernel"]))


WORK = {"prune": _prune, "evaluate": _evaluate, "runtime": _runtime, "report": _report}
