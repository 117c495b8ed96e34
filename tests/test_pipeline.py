"""Papermill runs of notebook 01, resume and atomic results, and the stitched HTML report."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsescope import SparsescopeError
from sparsescope.pipeline import build_report, run_models, run_notebook, NOTEBOOKS
from sparsescope.report import result_slug


def test_notebooks_and_report_end_to_end(tiny_models, tmp_path):
    models = [str(tiny_models["gpt2"]), str(tiny_models["whisper"])]
    results = tmp_path / "results"
    run_models(models, results)
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
        pruning = results / result_slug(model) / "pruning"
        table = pd.read_csv(pruning / "pruning.csv")
        assert {"method", "target_sparsity", "achieved_sparsity", "n_prunable", "n_zeroed", "seconds",
                "peak_rss_bytes", "dense_bytes", "saved_bytes", "checkpoint"} <= set(table.columns)
        assert set(table["method"]) == {"global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt"}
        assert all(Path(c).is_dir() for c in table["checkpoint"])
        assert (pruning / "layer_sparsity.png").exists() and (pruning / "manifest.json").exists()
        quality = pd.read_csv(results / result_slug(model) / "benchmarks" / "quality.csv")
        assert {"method", "target_sparsity", "metric", "value", "n_tokens"} <= set(quality.columns)
        assert set(quality["method"]) == set(table["method"]) | {"dense"}
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["files"] and all(len(f["sha256"]) == 64 for f in manifest["files"].values())
        assert "torch" in manifest["versions"]

    stamp = (results / result_slug(models[0]) / "distribution" / "summary.json").stat().st_mtime_ns
    run_models(models[:1], results)  # a finished model is skipped on rerun
    assert (results / result_slug(models[0]) / "distribution" / "summary.json").stat().st_mtime_ns == stamp

    html_path = build_report(models, results, tmp_path / "report")
    html = html_path.read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S))
    for heading in ("Model Selection", "Sparsity Structure", "Histograms", "CDFs", "CDFs by Layer", "Sparsification",
                    "Benchmarks", "Quality"):
        assert re.search(rf">\s*{heading}\s*<", html), heading
    assert "TODO" not in text and not re.search(r"\bnan\b", text)
    assert html.count("data:image/png;base64") >= 1 + 6 * len(models)
    assert "def " not in text  # code hidden


def test_failed_run_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "results" / "x" / "distribution"
    with pytest.raises(SparsescopeError, match="not a folder"):
        run_notebook(NOTEBOOKS / "01_distribution.ipynb", out, {"model": str(tmp_path / "missing-model")})
    assert not out.exists()
    assert not list(out.parent.glob(".*tmp*"))
