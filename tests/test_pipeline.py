"""Papermill runs of notebooks 01–03 on tiny models, resume and atomic results, the stitched report
(HTML checked in headless Chromium, PDF rendered to images with poppler); completion markers, runs killed
mid-stage and resumed through the task graph, a failing model, and the progress the terminal sees. The task
graph against the serial run: test_grid.py."""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from sparsescope import SparsescopeError
from sparsescope.artifacts import result_slug, results_path
from sparsescope.pruning.runs import plan_runs
from sparsescope.run.markers import run_once
from sparsescope.run import (MARKER, NOTEBOOKS, ProgressStream, build_report, execute, marker_key,
                             run_model, run_models, run_notebook, stage_parameters)

SECTIONS = ("Summary", "Model Selection", "Sparsity Structure", "Histograms", "CDFs", "CDFs by Layer", "Sparsification",
            "Layer collapse", "Benchmarks", "Size", "Runtime", "Quality", "Challenges of Sparsification")


def report_figures(n_models: int) -> int:
    """Cross-model figures (histograms, CDFs, every model's CDF on one axis when there are several, CDFs by
    layer, depth, size, quality, trade-offs) and, per model, its global-magnitude heatmap and runtime."""
    return 7 + (n_models > 1) + 2 * n_models


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: `make setup` installs it")
        pytest.skip(f"{tool} is not installed")


# the default grid, but ffn_activation at 25% only: the tiny models' FFNs hold too few of their weights for 50%
# (a one-line refusal, tests/test_structured.py)
DEFAULTS = {"structured_sparsities": [0.25]}


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    models = [str(tiny_models["gpt2"]), str(tiny_models["whisper"])]
    for model in models:  # the serial path; the task graph reruns them in the next test and in test_grid.py
        run_model(model, root / "results", knobs=DEFAULTS)
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
        for figure in ("histogram.png", "cdf.png", "cdf_by_layer.png", "median_by_layer.png"):
            assert (out / figure).stat().st_size > 10_000
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["files"] and all(len(f["sha256"]) == 64 for f in manifest["files"].values())
        assert "torch" in manifest["versions"]

        pruning = results / result_slug(model) / "pruning"
        table = pd.read_csv(pruning / "pruning.csv")
        assert {"method", "target_sparsity", "achieved_sparsity", "n_prunable", "n_zeroed", "seconds",
                "peak_rss_bytes", "dense_bytes", "saved_bytes", "checkpoint"} <= set(table.columns)
        assert set(table["method"]) == {"global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt",
                                        "ffn_activation"}
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
        assert len(sizes) == len(table)
        # a structured run is a smaller dense model: no zeros, no index, no bound to compare with
        indexed = sizes["method"] != "ffn_activation"
        assert (sizes["ratio_to_bound"][indexed] <= 1.10).all() and sizes["ratio_to_bound"][~indexed].isna().all()
        for stage in (out, pruning, bench):
            assert_marker_last(stage)


def assert_marker_last(folder: Path) -> None:
    """The completion marker exists and nothing in the folder is newer than it."""
    marker = folder / MARKER
    assert marker.exists(), f"{folder} has no {MARKER}"
    newest = max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p != marker)
    assert marker.stat().st_mtime_ns >= newest


def test_finished_models_are_skipped_on_rerun(built):
    models, results, _ = built
    stages = [results_path(results, models[0], stage) for stage in ("distribution", "pruning", "benchmarks")]
    watched = [s / MARKER for s in stages] + [stages[0] / "summary.json"]
    stamps = [p.stat().st_mtime_ns for p in watched]
    run_models(models[:1], results, knobs=DEFAULTS)
    assert [p.stat().st_mtime_ns for p in watched] == stamps


def test_html_report_has_every_section_and_no_placeholder(built):
    models, _, html_path = built
    html = html_path.read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S))
    for heading in SECTIONS:
        assert re.search(rf">\s*{heading}\s*<", html), heading
    order = [html.find(f">{h}<") for h in ("Summary", "Model Selection", "Sparsity Structure", "Sparsification",
                                            "Benchmarks", "Challenges of Sparsification")]
    assert order == sorted(order)
    assert "TODO" not in text and not re.search(r"\bnan\b", text, re.I)
    assert html.count("data:image/png;base64") >= report_figures(len(models))
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
    assert total >= report_figures(2) and broken == 0


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


# ------------------------------------------------------------------------------ completion markers
def test_marker_is_written_last_and_a_rerun_with_other_parameters_runs_again(tmp_path):
    out, calls = tmp_path / "stage", []

    def work(folder):
        calls.append(folder)
        (folder / "table.csv").write_text("a\n1\n")

    key = marker_key({"model": "m", "sparsities": [0.5]})
    assert run_once(out, key, work, atomic=False, label="t") is True
    assert_marker_last(out)
    assert run_once(out, key, work, atomic=False, label="t") is False and len(calls) == 1
    changed = marker_key({"model": "m", "sparsities": [0.5, 0.7]})

    def killed(folder):
        (folder / "table.csv").write_text("a\n2\n")
        raise KeyboardInterrupt  # killed after its CSV, before its figures

    with pytest.raises(KeyboardInterrupt):
        run_once(out, changed, killed, atomic=False, label="t")
    assert not (out / MARKER).exists()  # the old marker does not vouch for the new, half-written table
    assert run_once(out, key, work, atomic=False, label="t") is True and len(calls) == 2


def test_benchmarks_follow_the_pruning_runs_they_measure(tmp_path):
    pruning, bench = tmp_path / "pruning", tmp_path / "benchmarks"
    run_once(pruning, marker_key({"model": "m", "sparsities": [0.5]}), lambda f: None, False, "p")
    params = {"model": "m", "pruning_dir": str(pruning)}
    run_once(bench, marker_key(params), lambda f: None, False, "b")
    assert run_once(bench, marker_key(params), lambda f: None, False, "b") is False
    run_once(pruning, marker_key({"model": "m", "sparsities": [0.5, 0.9]}), lambda f: None, False, "p")
    assert run_once(bench, marker_key(params), lambda f: None, False, "b") is True


def test_stage_parameters_are_the_notebook_defaults_with_the_knobs():
    p = stage_parameters("pruning", "gpt2", {"sparsities": [0.5], "nm": None, "corpus": "wikitext2"})
    # defaults as written in notebooks/02_pruning.ipynb; corpus is not a parameter of notebook 02
    assert p["sparsities"] == [0.5] and p["nm"] is None and p["n_samples"] is None and p["device"] == "auto"
    assert p["methods"] is None  # the default grid: runs that cannot apply are skipped
    assert {s.method for s in plan_runs(p["methods"], [0.5])} == {
        "global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt", "ffn_activation"}
    assert "corpus" not in p and "out_dir" not in p and p["model"] == "gpt2"
    b = stage_parameters("benchmarks", "gpt2", {"n_tokens": 512, "seed": 3}, "results/gpt2/pruning")
    assert (b["n_tokens"], b["seed"], b["window"], b["corpus"]) == (512, 3, 512, "sotu")
    assert b["pruning_dir"] == str(Path("results/gpt2/pruning").resolve())


# ------------------------------------------------------------------------------------- progress
def feed_bar(stream, clock, steps: int, seconds_per_step: float, desc: str = "bar") -> None:
    """What tqdm writes: a carriage-return redraw per step, the finished bar once more at close, a newline."""
    for i in range(steps + 1):
        clock[0] += seconds_per_step if i else 0
        stream.stderr.write(f"\r{desc}: {100 * i // steps:3d}%|#   | {i}/{steps} [00:{i:02d}<00:00, 1.0it/s]")
        stream.beat()
    stream.stderr.write(f"\r{desc}: 100%|#   | {steps}/{steps} [00:{steps:02d}<00:00, 1.0it/s]\n")


def test_bar_redraws_show_one_line_per_ten_seconds_and_the_finished_bar_once():
    clock, out = [0.0], io.StringIO()
    stream = ProgressStream("[m] ", "02_pruning.ipynb", clock=lambda: clock[0], out=out)
    stream.stdout.write("m: run 1/2 wan")
    stream.stdout.write("da-0.5\n")
    feed_bar(stream, clock, 35, 1.0)
    feed_bar(stream, clock, 3, 0.1, desc="writing")
    stream.close()
    assert out.getvalue().splitlines() == [
        "[m] m: run 1/2 wanda-0.5",
        "[m] bar:  28%|#   | 10/35 [00:10<00:00, 1.0it/s]",
        "[m] bar:  57%|#   | 20/35 [00:20<00:00, 1.0it/s]",
        "[m] bar:  85%|#   | 30/35 [00:30<00:00, 1.0it/s]",
        "[m] bar: 100%|#   | 35/35 [00:35<00:00, 1.0it/s]",
        "[m] writing: 100%|#   | 3/3 [00:03<00:00, 1.0it/s]",
    ]


def test_silence_is_broken_every_twenty_seconds_with_the_latest_bar():
    clock, out = [0.0], io.StringIO()
    stream = ProgressStream("[m] ", "03_benchmarks.ipynb", clock=lambda: clock[0], out=out)
    stream.stderr.write("\x1b[A\revaluating:  33%|##  | 1/3 [00:04<00:08, 4.0s/it]")  # cursor-up dropped
    for _ in range(45):  # one slow iteration: tqdm writes nothing for 45 s
        clock[0] += 1
        stream.beat()
    stream.stderr.write("[transformers] a warning\n")  # printed over the bar, as in a terminal
    stream.close()
    assert out.getvalue().splitlines() == [
        "[m] 03_benchmarks.ipynb still running after 20 s: evaluating:  33%|##  | 1/3 [00:04<00:08, 4.0s/it]",
        "[m] 03_benchmarks.ipynb still running after 40 s: evaluating:  33%|##  | 1/3 [00:04<00:08, 4.0s/it]",
        "[m] [transformers] a warning",
    ]


def test_notebook_output_reaches_the_terminal_as_text(tmp_path, capfd):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm\n"
                                          "for i in tqdm(range(3), desc='steps'): pass\nprint('finished')")]
    nbformat.write(nb, tmp_path / "probe.ipynb")
    execute(tmp_path / "probe.ipynb", tmp_path / "out.ipynb", {}, "sparsescope", "[probe] ")
    out, err = capfd.readouterr()
    assert re.search(r"^\[probe\] steps: 100%\|.*\| 3/3 \[", out, re.M)  # a text bar, not a widget
    assert re.search(r"^\[probe\] finished$", out, re.M)
    for noise in ("without encryption", "IProgress", "KeyboardInterrupt"):
        assert noise not in out + err


# ------------------------------------------------------------------------- kill, resume, parallel
# Small settings for these runs: two methods at one sparsity, small quality and runtime budgets (the
# runtime settings are notebook parameters without a make knob; the Python API takes any of them).
SMALL = {"methods": ["global_magnitude", "wanda"], "sparsities": [0.5], "nm": None, "n_samples": 4,
         "seqlen": 32, "n_tokens": 256, "window": 32, "n_passages": 8, "n_clips": 1, "batch_sizes": [1],
         "runtime_seqlen": 16, "kernel_sparsities": [0.5, 0.9], "kernel_tokens": [16], "repeats": 1}


def killed_copy(notebook: str, after: str, before: str, folder: Path) -> Path:
    """The notebook with a cell that SIGKILLs its kernel right after the cell calling `after` (which must
    come before the cell calling `before`)."""
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if after in c.source)
    assert any(before in c.source for c in nb.cells[i + 1:]), f"{notebook}: {before} no longer after {after}"
    kill = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(kill))
    path = folder / notebook
    nbformat.write(nb, path)
    return path


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_models, tmp_path_factory):
    """gpt2 through four steps, with what was seen after each: stage 02 killed after pruning.csv and before
    its figures; run_models; stage 03 (with a new quality budget) killed between quality and runtime;
    run_models with that budget."""
    root = tmp_path_factory.mktemp("killed")
    model, results = str(tiny_models["gpt2"]), root / "results"
    pruning, bench = results_path(results, model, "pruning"), results_path(results, model, "benchmarks")
    seen = {"model": model, "results": results}
    with pytest.raises(SparsescopeError, match="kernel died") as died:
        run_notebook(killed_copy("02_pruning.ipynb", "stages.pruning_table(", "savefig", root), pruning,
                     stage_parameters("pruning", model, SMALL), atomic=False)
    seen["02 killed"] = (files(pruning), str(died.value))
    seen["runs at kill"] = {p.name: p.stat().st_mtime_ns for p in pruning.glob("*/prune_info.json")}
    seen["02 resumed"] = capture(lambda: run_models([model], results, knobs=SMALL))
    budget = {**SMALL, "n_tokens": 128}
    killed_at = time.time_ns()
    with pytest.raises(SparsescopeError, match="kernel died"):
        run_notebook(killed_copy("03_benchmarks.ipynb", "stages.quality(", "stages.runtime(", root),
                     bench, stage_parameters("benchmarks", model, budget, pruning), atomic=False)
    seen["03 killed"] = (files(bench), pd.read_csv(bench / "quality.csv"), killed_at)
    seen["03 resumed"] = capture(lambda: run_models([model], results, knobs=budget))
    seen["budget"] = budget
    return seen


def capture(run) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run()
    return buffer.getvalue()


def test_pruning_killed_after_its_csv_is_resumed(killed_and_resumed):
    seen = killed_and_resumed
    model, pruning = seen["model"], results_path(seen["results"], seen["model"], "pruning")
    at_kill, message = seen["02 killed"]
    assert {"pruning.csv", "manifest.json"} <= at_kill  # the library's table and manifest were written...
    assert not {"layer_sparsity.png", "sparsity_by_method.png", MARKER} & at_kill  # ...the figures were not
    assert "run again to resume" in message and "\n" not in message
    log = seen["02 resumed"]
    assert f"[{model}] 02_pruning.ipynb: unfinished (no completion marker), running it again" in log
    assert {"layer_sparsity.png", "sparsity_by_method.png"} <= files(pruning)
    assert_marker_last(pruning)
    assert json.loads((pruning / MARKER).read_text())["parameters"]["sparsities"] == [0.5]
    # the pruning runs finished before the kill were reused, not redone
    assert {p.name: p.stat().st_mtime_ns for p in pruning.glob("*/prune_info.json")} == seen["runs at kill"]
    assert set(pd.read_csv(pruning / "pruning.csv")["method"]) == {"global_magnitude", "wanda"}
    # what the terminal saw: every task's line names the model, bars are text, per-run progress is there
    assert all(line.startswith((f"[{model}] ", "[grid] ")) for line in log.splitlines())
    assert re.search(r"run \d/2 wanda-0.5", log) and "%|" in log


def test_benchmarks_killed_between_quality_and_runtime_are_resumed(killed_and_resumed):
    seen = killed_and_resumed
    model, results = seen["model"], seen["results"]
    bench = results_path(results, model, "benchmarks")
    at_kill, quality_at_kill, killed_at = seen["03 killed"]
    assert "quality.csv" in at_kill and MARKER not in at_kill  # old figures may remain; no marker vouches
    assert set(quality_at_kill["n_tokens"]) <= {128, 124}  # the new budget's scores were written
    log = seen["03 resumed"]
    for skipped in ("01_distribution.ipynb", "02_pruning.ipynb"):
        assert f"[{model}] {skipped}: complete" in log
    assert f"[{model}] 03_benchmarks.ipynb: unfinished (no completion marker), running it again" in log
    # one worker: the dense model and both runs scored in one quality task, each with the new budget
    assert f"[{model}] evaluate dense and 2 runs: done in " in log and "evaluate wanda-0.5" not in log
    quality = pd.read_csv(bench / "quality.csv")
    assert set(quality["method"]) == {"dense", "global_magnitude", "wanda"}
    assert set(quality["n_tokens"]) <= {128, 124}
    for name in ("runtime.csv", "runtime.png", "quality.png", "size.png"):
        assert (bench / name).stat().st_mtime_ns > killed_at, name
    assert_marker_last(bench)
    assert json.loads((bench / MARKER).read_text())["parameters"]["n_tokens"] == 128


def test_a_failing_model_in_parallel_is_one_line_and_the_others_finish(killed_and_resumed, tmp_path, capfd):
    seen = killed_and_resumed
    bad = tmp_path / "no-weights"  # a folder that resolves, then fails on the worker that reads its weights
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    with pytest.raises(SparsescopeError) as failed:
        run_models([str(bad), seen["model"]], seen["results"], knobs=seen["budget"], jobs=2)
    message = str(failed.value)
    assert message.startswith(f"{bad}: ") and "safetensors" in message and "\n" not in message
    assert capfd.readouterr().out.count(f"[{bad}] error: ") == 1  # printed once, not retried
    for stage in ("distribution", "pruning", "benchmarks"):
        assert_marker_last(results_path(seen["results"], seen["model"], stage))
