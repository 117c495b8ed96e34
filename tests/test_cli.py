"""The command line: one --help, every knob parsed or refused in one line, make's knobs passed through, and
`analyze` / `prune` / `evaluate` writing what notebooks 01-03 write, under the marker `make report` reuses."""
import contextlib
import io
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sparsescope import SparsescopeError
from sparsescope.__main__ import build_parser, main
from sparsescope.artifacts import results_path
from sparsescope.run import KNOBS, MARKER, STAGES, parse_knobs, run_models

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sparsescope", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_one_help_lists_every_command_and_its_knobs():
    shown = cli("--help")
    assert shown.returncode == 0
    for word in ("analyze", "prune", "evaluate", "report", "prepare", "--methods", "--sparsities", "--nm",
                 "--n-samples", "--seqlen", "--seed", "--n-tokens", "--window", "--n-passages", "--n-clips",
                 "--corpus", "--device", "--pruning-dir", "--jobs", "--out"):
        assert word in shown.stdout, word


@pytest.mark.parametrize("given, parsed", [
    ({"sparsities": "0.5 0.7"}, {"sparsities": [0.5, 0.7]}),
    ({"sparsities": ["0.5", "0.7"]}, {"sparsities": [0.5, 0.7]}),  # --sparsities 0.5 0.7
    ({"sparsities": "0.5,0.9"}, {"sparsities": [0.5, 0.9]}),
    ({"methods": "wanda sparsegpt"}, {"methods": ["wanda", "sparsegpt"]}),
    ({"nm": "none"}, {"nm": None}),
    ({"nm": " 4:8 "}, {"nm": "4:8"}),
    ({"n_samples": "auto"}, {"n_samples": None}),
    ({"n_samples": "32", "seqlen": "64", "seed": "0"}, {"n_samples": 32, "seqlen": 64, "seed": 0}),
    ({"n_tokens": "1024", "window": "256", "n_passages": "16", "n_clips": "2"},
     {"n_tokens": 1024, "window": 256, "n_passages": 16, "n_clips": 2}),
    ({"corpus": "wikitext2", "device": "CPU"}, {"corpus": "wikitext2", "device": "cpu"}),
    ({"methods": "", "sparsities": [""], "nm": None, "device": "  "}, {}),  # unset: notebook defaults
])
def test_knobs_are_parsed(given, parsed):
    assert parse_knobs(given) == parsed


@pytest.mark.parametrize("given, message", [
    ({"sparsities": "0.5 x"}, "bad SPARSITIES (--sparsities) '0.5 x': 'x' is not a number"),
    ({"sparsities": "50"}, "bad SPARSITIES (--sparsities) '50': 50 is not a fraction between 0 and 1"),
    ({"methods": "wanda magnitude"}, "bad METHODS (--methods) 'wanda magnitude': unknown method 'magnitude'"),
    ({"nm": "4:2"}, "bad NM (--nm) '4:2': give N:M with 0 < N < M"),
    ({"nm": "2-4"}, "bad NM (--nm) '2-4'"),
    ({"n_samples": "0"}, "bad N_SAMPLES (--n-samples) '0': 0 is below the least value, 1"),
    ({"seqlen": "12.5"}, "bad SEQLEN (--seqlen) '12.5': '12.5' is not a whole number"),
    ({"corpus": "c4"}, "bad CORPUS (--corpus) 'c4': use sotu"),
    ({"device": "tpu"}, "bad DEVICE (--device) 'tpu'"),
    ({"device": "cuda"}, "bad DEVICE (--device) 'cuda'"),
])
def test_bad_knobs_are_one_line(given, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SparsescopeError) as bad:
        parse_knobs(given)
    assert str(bad.value).startswith(message) and "\n" not in str(bad.value)


def test_bad_input_on_the_command_line_is_one_line_and_exit_code_2(tmp_path):
    for args, start in [(("prune", "gpt2", "--sparsities", "0.5", "x"), "error: bad SPARSITIES"),
                        (("report", "--jobs", "0"), "error: bad JOBS (--jobs) '0'"),
                        (("evaluate", "gpt2", "--budget", "3"), "error: unrecognized arguments: --budget"),
                        (("analyze", str(tmp_path / "missing")), "error: ")]:
        done = cli(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(start), done.stderr


def test_make_report_passes_its_knobs_to_the_command_line():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shown = subprocess.run(["make", "-n", "report", "PROFILE=seed", "METHODS=wanda sparsegpt",
                            "SPARSITIES=0.5 0.7", "NM=none", "N_SAMPLES=auto", "SEQLEN=256", "N_TOKENS=1024",
                            "CORPUS=wikitext2", "DEVICE=cpu", "JOBS=3", "NM_METHODS=nm_magnitude",
                            "BATCH_SIZES=1", "REPEATS=3"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    line = next(line for line in shown.splitlines() if "-m sparsescope report" in line)
    words = shlex.split(line)
    args = build_parser().parse_args(words[words.index("sparsescope") + 1:])
    assert (args.command, args.profile, args.jobs) == ("report", "seed", "3")
    assert parse_knobs({name: getattr(args, name) for name in KNOBS}) == {
        "methods": ["wanda", "sparsegpt"], "sparsities": [0.5, 0.7], "nm": None, "n_samples": None,
        "seqlen": 256, "n_tokens": 1024, "corpus": "wikitext2", "device": "cpu", "nm_methods": ["nm_magnitude"],
        "batch_sizes": [1], "repeats": 3}


def test_command_line_stages_are_reused_by_make_report(tiny_models, tmp_path):
    model, results = str(tiny_models["gpt2"]), tmp_path / "results"
    common = ["--results", str(results)]
    assert main(["analyze", model, *common]) == 0
    prune = ["prune", model, *common, "--methods", "global_magnitude", "wanda", "--sparsities", "0.5", "--nm",
             "none", "--n-samples", "4", "--seqlen", "32"]
    assert main(prune) == 0
    assert main(["evaluate", model, *common, "--n-tokens", "256", "--window", "32", "--n-passages", "8",
                 "--n-clips", "1"]) == 0

    expected = {"distribution": {"summary.json", "histograms.npz", "tensors.csv", "manifest.json",
                                 "histogram.png", "cdf.png", "cdf_by_layer.png",
                                 "median_by_layer.png"},
                "pruning": {"pruning.csv", "layer_sparsity.png", "sparsity_by_method.png",
                            "global_magnitude-0.5", "wanda-0.5"},
                "benchmarks": {"size.csv", "runtime.csv", "crossovers.csv", "quality.csv", "size.png",
                               "runtime.png", "quality.png"}}
    for stage, names in expected.items():
        folder = results_path(results, model, stage)
        assert names | {MARKER} <= {p.name for p in folder.iterdir()}, stage
        marker = folder / MARKER
        assert marker.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
                                                and p != marker)
    table = pd.read_csv(results_path(results, model, "pruning") / "pruning.csv")
    # tiny GPT-2: 3 blocks of c_attn 32x96, attn c_proj 32x32, c_fc 32x128, mlp c_proj 128x32 = 3 x 12,288
    assert sorted(table["method"]) == ["global_magnitude", "wanda"]
    assert (table["n_prunable"] == 36864).all() and (table["n_zeroed"] == 18432).all()

    # the same settings through make report's path: every stage is found complete, nothing runs again
    knobs = {"methods": ["global_magnitude", "wanda"], "sparsities": [0.5], "nm": None, "n_samples": 4,
             "seqlen": 32, "n_tokens": 256, "window": 32, "n_passages": 8, "n_clips": 1}
    before = {s: json.loads((results_path(results, model, s) / MARKER).read_text()) for s in STAGES}
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        run_models([model], results, knobs=knobs)
    for notebook in ("01_distribution.ipynb", "02_pruning.ipynb", "03_benchmarks.ipynb"):
        assert f"[{model}] {notebook}: complete" in log.getvalue(), log.getvalue()
    assert {s: json.loads((results_path(results, model, s) / MARKER).read_text()) for s in STAGES} == before
