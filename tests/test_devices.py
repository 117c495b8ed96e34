"""Device choice (resolve_device), synchronised timing only on CUDA, and bench/gpu_semi_structured.py run on
this CPU-only machine: its arguments, its tables, and the whole command against a fake GPU."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import sparsescope.evaluation.quality as quality
import sparsescope.evaluation.runtime as runtime
from sparsescope import SparsescopeError
from sparsescope.evaluation.runtime import time_ms
from sparsescope.sources.devices import device_name, resolve_device

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_semi_structured.py"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """One GPU named "Fake GPU" with Hopper's capability; synchronisations counted; moves to a device
    recorded and left on the CPU; 2:4 conversion replaced by the dense matrix itself."""
    seen = {"sync": 0, "moved_to": set(), "converted": []}

    def sync(device=None):
        seen["sync"] += 1

    def move(x, device):
        seen["moved_to"].add(str(device))
        return x

    def convert(w):
        seen["converted"].append((tuple(w.shape), w.dtype))
        return w
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    monkeypatch.setattr(torch.sparse, "to_sparse_semi_structured", convert)
    for module in (runtime, quality):
        monkeypatch.setattr(module, "to_device", move)
    return seen


# ------------------------------------------------------------------------------ resolve_device
def test_auto_follows_cuda_and_names_are_normalised(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device() == resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")  # asking for the CPU on a GPU machine is honoured


@pytest.mark.parametrize("bad, message", [
    ("tpu", "unknown device 'tpu': use 'auto' (CUDA when torch sees a GPU, else the CPU), 'cpu', 'cuda' "
            "or 'cuda:N'"),
    ("mps", "unknown device 'mps'"),
    ("cuda:x", "unknown device 'cuda:x'"),
    ("", "unknown device ''"),
    (None, "unknown device None"),
    ("cuda", "device 'cuda' needs CUDA, but torch"),
    ("cuda:0", "use device='cpu' or 'auto', or install a CUDA build of torch"),
])
def test_bad_devices_are_one_line(no_cuda, bad, message):
    with pytest.raises(SparsescopeError) as err:
        resolve_device(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_gpu_index_that_does_not_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SparsescopeError,
                       match=r"'cuda:2' does not exist: torch sees 2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_device_names(fake_cuda):
    assert device_name("cuda") == "Fake GPU"
    assert device_name("cpu") == f"cpu ({torch.get_num_threads()} threads)"


# ------------------------------------------------------------------------------ time_ms
def test_time_ms_synchronises_only_work_timed_on_cuda(fake_cuda):
    calls = []
    time_ms(lambda: calls.append(1), warmup=2, repeats=3, device="cpu")
    assert len(calls) == 5 and fake_cuda["sync"] == 0       # a GPU is present, but the work is on the CPU
    time_ms(lambda: calls.append(1), warmup=2, repeats=3, device="cuda")
    assert fake_cuda["sync"] == 1 + 3                        # once after the warm-up, once per timed repeat


# ------------------------------------------------------------------------------ the GPU bench
@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_semi_structured", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing it must not need a GPU
    return module


def test_bench_arguments(bench, monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    args = bench.parse_args([])
    assert args.out == str(tmp_path) and args.tokens == [1, 4, 16, 64, 256, 1024, 4096]
    assert args.dtypes == ["fp16", "bf16"] and args.models == ["gpt2-xl", "bert-large", "t5-v1_1-xl"]
    monkeypatch.delenv("OUT")
    args = bench.parse_args(["--tokens", "8", "--dtypes", "bf16", "--models", "bert-large", "--out", "x"])
    assert (args.tokens, args.dtypes, args.models, args.out) == ([8], ["bf16"], ["bert-large"], "x")
    assert bench.parse_args([]).out == "."


@pytest.mark.parametrize("argv, message", [
    (["--tokens", "0"], "--tokens must be positive integers"),
    (["--dtypes", "fp8"], "invalid choice: 'fp8'"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_bench_bad_arguments_are_one_line(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_bench_shapes_are_the_seed_models_matrices(bench):
    # from the models' configs: GPT2-XL n_embd 1600 (c_attn 3 x, MLP 4 x); BERT-Large hidden 1024,
    # intermediate 4096; T5-v1.1-XL d_model 2048, 32 heads x d_kv 64, gated d_ff 5120
    assert set(bench.SEED_SHAPES["gpt2-xl"]) == {(4800, 1600), (1600, 1600), (6400, 1600), (1600, 6400)}
    assert set(bench.SEED_SHAPES["bert-large"]) == {(1024, 1024), (4096, 1024), (1024, 4096)}
    assert set(bench.SEED_SHAPES["t5-v1_1-xl"]) == {(32 * 64, 2048), (5120, 2048), (2048, 5120)}
    assert all(runtime.fits_semi_structured(s) for shapes in bench.SEED_SHAPES.values() for s in shapes)


def test_bench_table_format(bench):
    rows = [{"model": "bert-large", "shape_or_model": "4096x1024", "dtype": "fp16", "tokens": 1,
             "dense_ms": 0.0123, "sparse_ms": 0.0311, "speedup": 0.3955},
            {"model": "gpt2-xl", "shape_or_model": "6400x1600", "dtype": "bf16", "tokens": 4096,
             "dense_ms": 1.5, "sparse_ms": 1.0, "speedup": 1.5}]
    assert bench.format_table(rows, bench.KERNEL_COLUMNS).splitlines() == [
        "     model     matrix  dtype  tokens  dense ms  2:4 ms  speedup",
        "bert-large  4096x1024   fp16       1     0.012   0.031     0.40",
        "   gpt2-xl  6400x1600   bf16    4096     1.500   1.000     1.50",
    ]
    checks = [{"check": "kernel sweep", "status": "pass", "seconds": 12.34, "detail": ""},
              {"check": "end to end (gpt2)", "status": "FAIL", "seconds": None,
               "detail": "RuntimeError: boom"}]
    assert bench.format_table(checks, bench.CHECK_COLUMNS).splitlines() == [
        "            check  status  seconds              detail",
        "     kernel sweep    pass     12.3                    ",
        "end to end (gpt2)    FAIL        -  RuntimeError: boom",
    ]


def test_bench_help_and_no_gpu_from_the_command_line(no_cuda):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    shown = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert shown.returncode == 0 and "2:4 semi-structured" in shown.stdout and "--e2e-model" in shown.stdout
    if torch.cuda.is_available():
        pytest.skip("a real GPU is here")
    refused = subprocess.run([sys.executable, str(BENCH), "--tokens", "8"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("gpu_semi_structured: no CUDA device: these checks need a GPU with "
                                      "compute capability 8.0 or newer")


def test_bench_runs_whole_against_a_fake_gpu(bench, fake_cuda, monkeypatch, tmp_path, capsys):
    """Every check of the command, with the GPU faked: what a CUDA machine would run, minus the kernels."""
    monkeypatch.setattr(bench, "to_device", runtime.to_device)  # the bench's own moves, recorded too
    status = bench.main(["--out", str(tmp_path), "--models", "bert-large", "--tokens", "1", "8", "--dtypes",
                         "fp16", "--e2e-model", "tiny", "--batches", "2", "--repeats", "1"])
    printed = capsys.readouterr().out
    checks = pd.read_csv(tmp_path / "gpu_checks.csv")
    assert status == 0, checks.to_string()
    assert list(checks["check"]) == ["kernel sweep", "2:4 product equals dense", "end to end (tiny)",
                                     "notebook 03 on CUDA"]
    assert set(checks["status"]) == {"pass"}
    rows = pd.read_csv(tmp_path / "gpu_semi_structured.csv")
    kernels = rows[rows["kind"] == "kernel-2:4"]
    assert sorted(zip(kernels["shape_or_model"], kernels["tokens"])) == [
        (s, n) for s in ("1024x1024", "1024x4096", "4096x1024") for n in (1, 8)]
    e2e = rows[rows["kind"] == "e2e-2:4"]
    assert list(e2e["batch"]) == [2] and list(e2e["tokens"]) == [2 * 128]
    assert set(rows["device"]) == {"Fake GPU"}
    assert fake_cuda["moved_to"] == {"cuda", "cpu"}  # the CPU: notebook 03's quality reference run
    # converted to 2:4: the sweep's 3 matrices, the 1024 x 1024 check, 2 blocks x 4 linears of the tiny
    # GPT-2 end to end, and the notebook-03 sweep's 4 tiny matrices (64 wide, MLP 256)
    assert len(fake_cuda["converted"]) == 3 + 1 + 8 + 4
    assert "device: Fake GPU" in printed and "all checks passed" in printed
