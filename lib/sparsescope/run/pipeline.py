"""`make report`: every model's stages, then the report notebook executed on their results and exported as
HTML and PDF. The command line (`python -m sparsescope analyze|prune|evaluate`) runs the same stages, as
notebooks under the same completion rule, so `make report` reuses what it wrote and the reverse."""
from __future__ import annotations

from pathlib import Path

from ..artifacts import results_path
from ..sources.registry import resolve
from .markers import KERNEL, NOTEBOOKS, ROOT, STAGES, packaged_path, stage_parameters
from .notebooks import execute, run_notebook
from .progress import say

REPORT_DIR = ROOT / "report"
REPORT_TEMPLATE = packaged_path("report/sparsity_report.ipynb", REPORT_DIR / "sparsity_report.ipynb")


def run_model(model: str, results: Path, knobs: dict | None = None, kernel: str = KERNEL) -> None:
    """The three notebooks of one model, in order, in this process: the serial reference the task graph
    (run.grid) is checked against."""
    prefix = f"[{model}] "
    pruning_dir = results_path(results, model, "pruning")
    for stage, spec in STAGES.items():
        parameters = stage_parameters(stage, model, knobs, pruning_dir)
        run_notebook(NOTEBOOKS / spec.notebook, results_path(results, model, stage), parameters, kernel,
                     spec.atomic, prefix)


def run_models(models: list[str], results: Path, kernel: str = KERNEL, knobs: dict | None = None,
               jobs: int = 1, scheduler: str | None = None, report_dir=None):
    """Every model's stages (and the report, given report_dir) as one task graph on Dask (run.grid): on a
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


def build_report(models: list[str], results: Path, report_dir: Path = REPORT_DIR,
                 kernel: str = KERNEL) -> Path:
    """Execute the report notebook on the results, then export it as one HTML page with code hidden and
    as PDF (report.build)."""
    from ..report.build import export_report
    build = report_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    executed = build / "sparsity_report.ipynb"
    say(f"report: {REPORT_TEMPLATE.name}")
    execute(REPORT_TEMPLATE, executed, {"results_dir": str(results.resolve()), "models": models}, kernel,
            "[report] ")
    return export_report(executed, report_dir)
