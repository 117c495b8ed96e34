"""The stages as notebooks: their parameters (a notebook's parameters cell holds every default) and their
completion markers. A stage is complete when its folder holds `.complete.json`, written last (after every
CSV and figure) with the parameters it ran with; a stage without it, or with other parameters, runs again
(finished pruning runs and cached scores inside it are reused by the library). The distribution stage also
runs in a temporary folder renamed on success."""
from __future__ import annotations

import ast
import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import atomic_dir, write_json
from ..errors import SparsescopeError
from .progress import duration, say

ROOT = Path(__file__).resolve().parents[3]  # a source checkout's root, where sparsescope runs from one


def packaged_path(relative: str, checkout: Path) -> Path:
    """A file or folder that ships inside the package (the notebooks, the report template), found through
    importlib.resources — in an installed copy, or in a checkout through the package's symlinks to
    notebooks/ and report/ — or else at `checkout` (a checkout whose symlinks git did not keep)."""
    from importlib.resources import files
    found = Path(str(files("sparsescope").joinpath(relative)))
    return found.resolve() if found.exists() else checkout


NOTEBOOKS = packaged_path("notebooks", ROOT / "notebooks")
KERNEL = "sparsescope"
MARKER = ".complete.json"


@dataclass(frozen=True)
class Stage:
    notebook: str
    atomic: bool  # True: the folder appears only when complete; False: finished pruning runs stay in place


STAGES = {"distribution": Stage("01_distribution.ipynb", True), "pruning": Stage("02_pruning.ipynb", False),
          "benchmarks": Stage("03_benchmarks.ipynb", False)}


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
    say(f"{label}: done in {duration(time.time() - started)}", out)
    return True


def write_marker(folder: Path, key: dict, started: float) -> None:
    write_json({**key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds": round(time.time() - started, 1)}, folder / MARKER)


def call_stage(function, parameters: dict, **given):
    """`function` (a step of sparsescope.stages) called with its notebook's `parameters` by name, plus what
    the one task gives (out_dir, a run): the grid passes what the notebook would pass, never a copy of it."""
    wanted = inspect.signature(function).parameters
    missing = [name for name, p in wanted.items()
               if p.default is p.empty and name not in given and name not in parameters]
    if missing:
        raise SparsescopeError(f"{function.__name__} takes {missing}, which its notebook's parameters lack: "
                               "add them to the notebook's parameters cell")
    return function(**{name: given[name] if name in given else parameters[name]
                       for name in wanted if name in given or name in parameters})
