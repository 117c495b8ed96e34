"""The report's HTML and PDF, from the executed report notebook: nbconvert with the code hidden, then
WeasyPrint with the print layout (A4, figures at their own size, tables that wrap, contents with page
numbers: print.css)."""
from __future__ import annotations

from pathlib import Path

from ..artifacts import atomic_write_text

REPORT_TITLE = "Weight sparsity in transformers"
PRINT_CSS = Path(__file__).with_name("print.css")


def export_report(executed: Path, report_dir: Path) -> Path:
    """report_dir/sparsity_report.html and .pdf from the executed notebook; the HTML's path."""
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4),
                                          resources={"metadata": {"name": REPORT_TITLE}})
    out = Path(report_dir) / "sparsity_report.html"
    atomic_write_text(out, html)
    write_pdf(out, Path(report_dir) / "sparsity_report.pdf")
    return out


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
