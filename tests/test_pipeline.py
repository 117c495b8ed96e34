"""Papermill runs of notebooks 01–03 on tiny models, resume and atomic results, and the stitched report
(HTML checked in headless Chromium, PDF rendered to images with poppler)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsescope import SparsescopeError
from sparsescope.report.pipeline import NOTEBOOKS, build_report, run_models, run_notebook
from sparsescope.artifacts import result_slug

SECTIONS = ("Model Selection", "Sparsity Structure", "Histograms", "CDFs", "CDFs by Layer", "Sparsification",
            "Benchmarks", "Size", "Runtime", "Quality", "Challenges of Sparsification")
FIGURES_PER_MODEL = 8  # histogram, cdf, cdf by layer, layer sparsity, sparsity by method, size, runtime, quality


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: `make setup` installs it")
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    models = [str(tiny_models["gpt2"]), str(tiny_models["whisper"])]
    run_models(models, root / "results")
    html = build_report(models, root / "results", root / "report")
    return models, root / "results", html


def test_every_stage_writes_its_results(built):
    models, results, _ = built
    for model in models:
        out = results / result_slug(model) / "distribution"
        summary = json.loads((out / "summary.json").read_text())
        assert {"model", "family", "n_params", "all", "prunable"} <= set(summary)
        for group in ("all", "prunable"):
            assert {"n", "n_zero", "frac_below", "quantiles"} <= set(summary[group])
            assert {"1e-3", "1e-2", "1e-1"} <= set(summary[group]["frac_below"])
        with np.load(out / "histograms.npz") as z:
            i = list(z["groups"]).index("all")
            assert z["counts"][i].sum() == z["n"][i] == summary["n_params"]
        for figure in ("histogram.png", "cdf.png", "cdf_by_layer.png"):
            assert (out / figure).stat().st_size > 10_000
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["files"] and all(len(f["sha256"]) == 64 for f in manifest["files"].values())
        assert "torch" in manifest["versions"]

        pruning = results / result_slug(model) / "pruning"
        table = pd.read_csv(pruning / "pruning.csv")
        assert {"method", "target_sparsity", "achieved_sparsity", "n_prunable", "n_zeroed", "seconds",
                "peak_rss_bytes", "dense_bytes", "saved_bytes", "checkpoint"} <= set(table.columns)
        assert set(table["method"]) == {"global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt"}
        assert all(Path(c).is_dir() for c in table["checkpoint"])
        assert (pruning / "layer_sparsity.png").exists() and (pruning / "manifest.json").exists()

        bench = results / result_slug(model) / "benchmarks"
        quality = pd.read_csv(bench / "quality.csv")
        assert {"method", "target_sparsity", "metric", "value", "n_tokens"} <= set(quality.columns)
        assert set(quality["method"]) == set(table["method"]) | {"dense"}
        runtime = pd.read_csv(bench / "runtime.csv")
        assert {"kind", "shape_or_model", "sparsity", "tokens", "dense_ms", "sparse_ms", "speedup",
                "device"} <= set(runtime.columns)
        assert {"dense-kernels", "kernel-csr"} <= set(runtime["kind"])
        assert np.allclose(runtime["speedup"], runtime["dense_ms"] / runtime["sparse_ms"])
        sizes = pd.read_csv(bench / "size.csv")
        assert (sizes["ratio_to_bound"] <= 1.10).all() and len(sizes) == len(table)


def test_finished_models_are_skipped_on_rerun(built):
    models, results, _ = built
    stamp = (results / result_slug(models[0]) / "distribution" / "summary.json").stat().st_mtime_ns
    run_models(models[:1], results)
    assert (results / result_slug(models[0]) / "distribution" / "summary.json").stat().st_mtime_ns == stamp


def test_html_report_has_every_section_and_no_placeholder(built):
    models, _, html_path = built
    html = html_path.read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S))
    for heading in SECTIONS:
        assert re.search(rf">\s*{heading}\s*<", html), heading
    order = [html.find(f">{h}<") for h in ("Model Selection", "Sparsity Structure", "Sparsification", "Benchmarks",
                                            "Challenges of Sparsification")]
    assert order == sorted(order)
    assert "TODO" not in text and not re.search(r"\bnan\b", text, re.I)
    assert html.count("data:image/png;base64") >= 1 + FIGURES_PER_MODEL * len(models)
    assert "def " not in text  # code hidden


def test_html_shows_no_broken_image_in_chromium(built, tmp_path):
    need("chromium")
    _, _, html_path = built
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
              "const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length; "
              "document.body.setAttribute('data-images', imgs.length + '/' + broken); });</script>")
    probe.write_text(html_path.read_text().replace("</body>", script + "</body>"))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert found, "chromium did not run the page's load handler"
    total, broken = int(found.group(1)), int(found.group(2))
    assert total >= 1 + FIGURES_PER_MODEL * 2 and broken == 0


def test_pdf_pages_render_with_every_figure(built, tmp_path):
    need("pdftoppm")
    _, _, html_path = built
    pdf = html_path.with_suffix(".pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 6
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    rendered = sorted(tmp_path.glob("page*.png"))
    assert len(rendered) == pages and all(p.stat().st_size > 2_000 for p in rendered)
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    in_pdf = len([line for line in images.splitlines()[2:] if line.strip()])
    assert in_pdf >= html_path.read_text().count("data:image/png;base64")


def test_failed_run_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "results" / "x" / "distribution"
    with pytest.raises(SparsescopeError, match="not a folder"):
        run_notebook(NOTEBOOKS / "01_distribution.ipynb", out, {"model": str(tmp_path / "missing-model")})
    assert not out.exists()
    assert not list(out.parent.glob(".*tmp*"))
