"""`make report`: run the notebooks per model with papermill, then stitch the report with nbconvert.

Each notebook run writes into a temporary folder renamed on success, so a finished model is skipped on
rerun and a killed run never looks complete.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..artifacts import atomic_dir, atomic_write_text, results_path
from ..errors import SparsescopeError
from ..sources.registry import profile_models, resolve

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOKS = ROOT / "notebooks"
REPORT_DIR = ROOT / "report"
REPORT_TEMPLATE = REPORT_DIR / "sparsity_report.ipynb"
REPORT_TITLE = "Weight sparsity in transformers"
KERNEL = "sparsescope"
# stage -> (notebook, atomic): an atomic stage's folder appears only when complete; a resumable one
# (pruning: minutes per run) keeps its finished runs in place and writes manifest.json last.
STAGES = {"distribution": ("01_distribution.ipynb", True), "pruning": ("02_pruning.ipynb", False),
          "benchmarks": ("03_benchmarks.ipynb", False)}


def run_notebook(notebook: Path, out_dir: Path, parameters: dict, kernel: str = KERNEL,
                 atomic: bool = True) -> bool:
    """Execute `notebook` into `out_dir` unless a finished run is already there. True if it ran."""
    if (out_dir / "manifest.json").exists():
        print(f"  {out_dir} is complete, skipped")
        return False

    if atomic:
        with atomic_dir(out_dir) as tmp:
            execute(notebook, tmp / notebook.name, {**parameters, "out_dir": str(tmp)}, kernel)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        execute(notebook, out_dir / notebook.name, {**parameters, "out_dir": str(out_dir)}, kernel)
    return True


def execute(notebook: Path, output: Path, parameters: dict, kernel: str) -> None:
    """papermill, with a failure turned into one line (a SparsescopeError's own message where it is one)."""
    import papermill
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                   progress_bar=False, cwd=str(ROOT))
    except papermill.PapermillExecutionError as err:
        if err.ename == "SparsescopeError":
            raise SparsescopeError(err.evalue) from None
        raise SparsescopeError(f"{notebook.name} failed ({parameters.get('model', '')}): {err.ename}: "
                               f"{err.evalue} "
                               f"(the executed notebook is {output})") from None


def run_models(models: list[str], results: Path, kernel: str = KERNEL) -> None:
    for model in models:
        resolve(model)  # fail fast, with one line, on a bad name
        for stage, (notebook, atomic) in STAGES.items():
            started = time.time()
            print(f"[{model}] {notebook}", flush=True)
            parameters = {"model": model}
            if stage == "benchmarks":
                parameters["pruning_dir"] = str(results_path(results, model, "pruning"))
            out_dir = results_path(results, model, stage)
            if run_notebook(NOTEBOOKS / notebook, out_dir, parameters, kernel, atomic):
                print(f"  done in {time.time() - started:.0f} s")


def build_report(models: list[str], results: Path, report_dir: Path = REPORT_DIR,
                 kernel: str = KERNEL) -> Path:
    """Execute the report notebook on the results and export it as one HTML page with code hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    build = report_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    executed = build / "sparsity_report.ipynb"
    execute(REPORT_TEMPLATE, executed, {"results_dir": str(results.resolve()), "models": models}, kernel)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4),
                                          resources={"metadata": {"name": REPORT_TITLE}})
    out = report_dir / "sparsity_report.html"
    atomic_write_text(out, html)
    write_pdf(out, report_dir / "sparsity_report.pdf")
    return out


# Print layout: A4, figures scaled to the page, tables in a smaller font and never split across pages.
PRINT_CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-center { content: counter(page); font-size: 8pt; } }
body { font-size: 10pt; }
img { max-width: 100% !important; height: auto !important; break-inside: avoid; }
table { font-size: 7pt; break-inside: avoid; border-collapse: collapse; }
th, td { padding: 1px 4px; }
.jp-OutputArea-output, .jp-RenderedHTMLCommon, .jp-OutputArea { overflow: visible !important; }
h2 { break-before: page; }
h2, h3, h4 { break-after: avoid; }
"""


def write_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Render the report HTML to PDF with WeasyPrint (no browser needed), through a temporary name."""
    import logging
    import weasyprint
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # nbconvert's CSS has rules it skips
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    tmp = pdf_path.with_name(f".{pdf_path.name}.tmp")
    css = weasyprint.CSS(string=PRINT_CSS)
    weasyprint.HTML(filename=str(html_path)).write_pdf(str(tmp), stylesheets=[css])
    tmp.replace(pdf_path)
    return pdf_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparsescope report", description=__doc__)
    parser.add_argument("--profile", default="packaged", help="packaged (offline default) or seed")
    parser.add_argument("--models", default="",
                        help="space-separated names, hub ids or folders; overrides --profile")
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--report-dir", default=REPORT_DIR, type=Path)
    parser.add_argument("--kernel", default=KERNEL)
    args = parser.parse_args(argv)
    try:
        models = args.models.split() or profile_models(args.profile)
        started = time.time()
        run_models(models, args.results, args.kernel)
        out = build_report(models, args.results, args.report_dir, args.kernel)
        print(f"report: {out} and {out.with_suffix('.pdf')} ({time.time() - started:.0f} s)")
    except SparsescopeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

