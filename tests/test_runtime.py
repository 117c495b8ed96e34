"""Runtime arithmetic, the crossover finder, that the sparse kernels compute what dense ones do, and the
CUDA paths (2:4 kernels, synchronised timing) driven on this CPU-only machine through a fake GPU."""
import math

import pandas as pd
import pytest
import torch

import sparsescope.evaluation.runtime as runtime
from sparsescope import SparsescopeError
from sparsescope.pruning.runs import PruneSpec, prune_runs
from sparsescope.evaluation.runtime import SparseLinear, crossovers, find_crossover, kernel_sweep, sparsify_linears, speedup, timing_row
from sparsescope.sources.registry import load_model


def test_speedup_arithmetic():
    assert speedup(10.0, 5.0) == 2.0
    assert speedup(3.0, 6.0) == 0.5


def test_crossover_on_synthetic_timings():
    s = [0.5, 0.7, 0.9, 0.95]
    assert find_crossover(s, [0.2, 0.6, 1.4, 3.0]) == 0.9                 # the first measured win that holds
    assert find_crossover(s, [0.2, 0.6, 1.4, 3.0], interpolate=True) == pytest.approx(0.7 + 0.4 * 0.2 / 0.8)
    assert find_crossover(s, [0.2, 0.3, 0.5, 0.9]) is None          # never wins
    assert find_crossover(s, [1.1, 1.5, 2.0, 4.0]) == 0.5          # wins everywhere measured
    assert find_crossover(s, [1.1, 1.5, 2.0, 4.0], interpolate=True) == 0.5
    assert find_crossover(s, [1.2, 0.8, 1.5, 2.0]) == 0.9          # a lucky win below ignored
    assert find_crossover(s, [1.2, 0.8, 1.5, 2.0], interpolate=True) == pytest.approx(0.7 + 0.2 * 0.2 / 0.7)
    assert find_crossover([0.9, 0.5, 0.7], [1.4, 0.2, 0.6], interpolate=True) == pytest.approx(0.8)  # any order


def test_crossover_needs_a_measurable_win_when_intervals_are_given():
    s = [0.5, 0.7, 0.9, 0.95]
    medians = [1.05, 1.1, 1.4, 3.0]                                 # every median above 1.0: noise at 50-70%
    assert find_crossover(s, medians) == 0.5
    # the lower 95% bounds: 50% and 70% hold 1.0, so the first measured win is 90%; interpolated on the
    # bounds the line crosses 1.0 at 0.7 + 0.2 * 0.4 / 0.6, a sparsity never measured
    assert find_crossover(s, medians, [0.8, 0.6, 1.2, 2.0]) == 0.9
    assert find_crossover(s, medians, [0.8, 0.6, 1.2, 2.0], interpolate=True) == pytest.approx(0.8333333)
    assert find_crossover(s, medians, [0.9, 0.9, 0.95, 0.99]) is None   # no interval clears 1.0
    assert find_crossover(s, medians, [0.9, 0.9, 1.0, 1.5]) == 0.95
    assert find_crossover(s, medians, [0.9, 0.9, 0.95, 1.0]) is None     # a bound of exactly 1.0 is no win
    rows = [{"kind": "kernel-csr", "shape_or_model": "8x8", "tokens": 16, "sparsity": x, "speedup": v,
             "speedup_lo": lo, "repeats": 5} for x, v, lo in zip(s, medians, [0.8, 0.6, 1.2, 2.0])]
    got = crossovers(rows)[0]
    assert got["crossover_sparsity"] == 0.9 and got["interpolated_crossover"] == pytest.approx(0.8333333)
    assert got["rule"] == "interval" and got["measured_sparsities"] == "0.5 0.7 0.9 0.95"
    older = [{**r, "speedup_lo": float("nan")} for r in rows]       # rows saved before intervals: medians
    assert crossovers(older)[0]["crossover_sparsity"] == 0.5 and crossovers(older)[0]["rule"] == "median"
    # only the sparse-kernel sweeps have crossovers: whole-model rows are left out of crossovers.csv
    whole = {"kind": "dense-kernels", "shape_or_model": "gpt2", "tokens": 16, "sparsity": 0.5, "speedup": 1.0}
    assert [c["kind"] for c in crossovers(rows + [whole])] == ["kernel-csr"]


def test_one_repeat_has_no_interval_and_makes_no_claim():
    # a bootstrap of one timing per side resamples the same two numbers: its "interval" would be zero wide
    row = timing_row([2.0], [1.0])
    assert row["speedup"] == 2.0 and row["repeats"] == 1
    assert math.isnan(row["speedup_lo"]) and math.isnan(row["speedup_hi"])
    rows = [{"kind": "kernel-csr", "shape_or_model": "8x8", "tokens": 16, "sparsity": x, "speedup": 3.0,
             **timing_row([3.0], [1.0])} for x in (0.5, 0.9)]
    got = crossovers(rows)[0]
    assert got["rule"] == "one repeat" and got["crossover_sparsity"] is None
    # two repeats do resample: an interval (here planted so every resampled ratio is 2.0 or 3.0)
    lo, hi = runtime.ratio_interval([2.0, 3.0], [1.0, 1.0])
    assert 2.0 <= lo <= hi <= 3.0
    from sparsescope.report.facts import speed_interval, speed_words
    assert speed_interval(row) is None and "no interval" in speed_words(2.0, speed_interval(row))


def test_bootstrap_interval_resamples_the_repeats_of_each_side():
    # planted: dense repeats 1..5 against sparse repeats all 1.0; by hand, with the same generator, the
    # interval of median(dense resample) / 1.0 is the 2.5% and 97.5% quantiles of resampled medians
    import numpy as np
    dense, sparse = [1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(np.asarray(dense), (2000, 5)), axis=1)
    rng.choice(np.asarray(sparse), (2000, 5))
    expected = (np.quantile(medians, 0.025), np.quantile(medians, 0.975))
    assert runtime.ratio_interval(dense, sparse) == pytest.approx(expected)
    assert expected[0] < 3.0 < expected[1] and expected[1] - expected[0] >= 1.0


def test_kernel_sweep_rows_and_crossovers():
    rows = kernel_sweep([(64, 32)], [0.5, 0.9], [1, 8], repeats=2)
    assert {r["kind"] for r in rows} == {"kernel-csr", "kernel-bsr"}
    assert all(r["speedup"] == pytest.approx(r["dense_ms"] / r["sparse_ms"]) for r in rows)
    # timed interleaved: each row carries its spread and an interval around its speedup
    assert all(r["repeats"] == 2 and r["speedup_lo"] <= r["speedup"] <= r["speedup_hi"] for r in rows)
    assert len(crossovers(rows)) == 4


def test_sparse_linear_matches_dense_and_conv1d(tiny_models):
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 48)
    layer.weight.data[torch.rand(48, 32) < 0.8] = 0
    x = torch.randn(3, 5, 32)
    assert torch.allclose(SparseLinear(layer)(x), layer(x), atol=1e-5)
    model = load_model(str(tiny_models["gpt2"]))
    for module in model.modules():
        if hasattr(module, "weight") and module.weight.dim() == 2 and type(module).__name__ == "Conv1D":
            module.weight.data[torch.rand(module.weight.shape) < 0.9] = 0
    ids = torch.arange(24).reshape(2, 12)
    with torch.no_grad():
        before = model(ids).logits
        swapped = sparsify_linears(model, 0.85)
        after = model(ids).logits
    assert swapped == 4 * 3
    assert torch.allclose(before, after, atol=1e-4)


# ------------------------------------------------------------------------------ CUDA paths, on the CPU
# the tiny GPT-2 of conftest (n_embd 32, MLP 4 x 32): its prunable matrices (outputs x inputs) are
# c_attn 96x32, attn c_proj 32x32, c_fc 128x32 and mlp c_proj 32x128; only the last has inputs a multiple
# of 64 and outputs a multiple of 32, as torch's 2:4 tensors need
TINY_GPT2_2_4_SHAPES = [(32, 128)]


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA as the code sees it, on this CPU-only machine: a GPU named "Fake GPU" (Hopper capability),
    synchronisations counted, and every move to a device recorded and left on the CPU."""
    seen = {"sync": 0, "moved_to": set()}

    def sync(device=None):
        seen["sync"] += 1

    def move(x, device):
        seen["moved_to"].add(str(device))
        return x
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    monkeypatch.setattr(runtime, "to_device", move, raising=False)
    return seen


@pytest.fixture(scope="module")
def pruned_tiny_gpt2(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("runtime-pruning")
    prune_runs(str(tiny_models["gpt2"]), out,
               [PruneSpec("global_magnitude", 0.5), PruneSpec("layer_magnitude", 0.9)], progress=False)
    return out


def small_runtime(tiny_models, pruning, out, **kwargs):
    return runtime.runtime_results(str(tiny_models["gpt2"]), pruning, out, batch_sizes=(1,), seqlen=16,
                                   sparsities=(0.5, 0.9), tokens=(1, 8), repeats=2, **kwargs)


def test_runtime_rows_follow_the_checkpoints_timed_not_only_the_knobs(tiny_models, tmp_path):
    # the sequence: prune at 0.5 into one folder, measure; prune at 0.7 into another, measure into
    # the same benchmarks folder. Keyed by knobs only, the second call returned the 0.5 rows again.
    model, bench = str(tiny_models["gpt2"]), tmp_path / "bench"
    first, second = tmp_path / "p50", tmp_path / "p70"
    prune_runs(model, first, [PruneSpec("global_magnitude", 0.5)], progress=False)
    prune_runs(model, second, [PruneSpec("global_magnitude", 0.7)], progress=False)
    def timed_sparsity(table):  # the pruned checkpoint timed against dense in dense kernels
        return sorted(set(table.query("kind == 'dense-kernels'")["sparsity"].round(2)))
    at_half = small_runtime(tiny_models, first, bench)
    assert timed_sparsity(at_half) == [0.5]
    at_seventy = small_runtime(tiny_models, second, bench)
    assert timed_sparsity(at_seventy) == [0.7]                   # before: [0.5], the first plan's rows
    # and a checkpoint re-pruned in place under the same label is timed again, not read back
    stamp = (bench / "runtime_rows.json").stat().st_mtime_ns
    again = small_runtime(tiny_models, second, bench)
    assert (bench / "runtime_rows.json").stat().st_mtime_ns == stamp and len(again) == len(at_seventy)
    prune_runs(model, second, [PruneSpec("global_magnitude", 0.5)], progress=False)
    assert timed_sparsity(small_runtime(tiny_models, second, bench)) == [0.5]


def test_cuda_runtime_path_calls_the_2_4_sweep_with_the_kernel_tokens(fake_cuda, tiny_models,
                                                                      pruned_tiny_gpt2, tmp_path, monkeypatch):
    calls = []

    def fake_sweep(shapes, tokens, dtype=torch.float16, repeats=20, device="cuda", seed=0):
        calls.append({"shapes": list(shapes), "tokens": list(tokens), "device": str(device)})
        return [{"kind": "kernel-2:4", "shape_or_model": f"{o}x{i}", "sparsity": 0.5, "tokens": n,
                 "dense_ms": 2.0, "sparse_ms": 1.0, "speedup": 2.0, "device": "Fake GPU", "dtype": "float16"}
                for o, i in shapes for n in tokens]
    monkeypatch.setattr(runtime, "semi_structured_sweep", fake_sweep)
    small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path)  # device "auto": the (fake) GPU
    assert len(calls) == 1
    assert calls[0]["tokens"] == [1, 8]                       # the kernel sweep's tokens per batch
    assert calls[0]["shapes"] == TINY_GPT2_2_4_SHAPES
    table = pd.read_csv(tmp_path / "runtime.csv")
    gpu = table[table["kind"] == "kernel-2:4"]
    assert sorted(gpu["tokens"]) == [1, 8] and set(gpu["shape_or_model"]) == {"32x128"}
    assert set(table["device"]) == {"Fake GPU"}               # every row timed on the GPU says so
    assert {"dense-kernels", "kernel-csr", "kernel-bsr"} <= set(table["kind"])
    assert fake_cuda["sync"] > 0 and fake_cuda["moved_to"] == {"cuda"}


def test_cuda_runtime_path_with_the_real_sweep_and_a_fake_kernel(fake_cuda, tiny_models, pruned_tiny_gpt2,
                                                                 tmp_path, monkeypatch):
    converted = []

    def fake_semi_structured(w):
        converted.append(w.clone())
        return w  # a dense stand-in for the 2:4 tensor: F.linear gives the same product
    monkeypatch.setattr(torch.sparse, "to_sparse_semi_structured", fake_semi_structured)
    table = small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path)
    gpu = table[table["kind"] == "kernel-2:4"]
    assert sorted(gpu["tokens"]) == [1, 8] and set(gpu["shape_or_model"]) == {"32x128"}
    assert set(gpu["dtype"]) == {"float16"} and (gpu["sparsity"] == 0.5).all()
    assert (gpu["speedup"] - gpu["dense_ms"] / gpu["sparse_ms"]).abs().max() < 1e-9
    (w,) = converted
    assert w.shape == (32, 128) and w.dtype == torch.float16
    kept_per_group = (w.reshape(32, 32, 4) != 0).sum(-1)       # groups of 4 consecutive inputs
    assert (kept_per_group == 2).all()


def test_2_4_sweep_rows_and_bad_inputs(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch.sparse, "to_sparse_semi_structured", lambda w: w)
    rows = runtime.semi_structured_sweep([(64, 128), (32, 64)], [1, 4, 16], torch.bfloat16, repeats=1)
    assert [(r["shape_or_model"], r["tokens"]) for r in rows] == [
        ("64x128", 1), ("64x128", 4), ("64x128", 16), ("32x64", 1), ("32x64", 4), ("32x64", 16)]
    assert {r["dtype"] for r in rows} == {"bfloat16"} and {r["device"] for r in rows} == {"Fake GPU"}
    with pytest.raises(SparsescopeError, match="multiple of 64, not 96x32") as err:
        runtime.semi_structured_sweep([(96, 32)], [1])
    assert "\n" not in str(err.value)
    with pytest.raises(SparsescopeError, match="need a CUDA GPU, and this run is on cpu"):
        runtime.semi_structured_sweep([(64, 128)], [1], device="cpu")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.raises(SparsescopeError, match="compute capability 7.5"):
        runtime.semi_structured_sweep([(64, 128)], [1])


def test_older_gpu_skips_2_4_and_cpu_device_never_syncs(fake_cuda, tiny_models, pruned_tiny_gpt2, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # a T4
    table = small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path / "t4")
    assert "kernel-2:4" not in set(table["kind"]) and set(table["device"]) == {"Fake GPU"}
    assert "2:4 kernels not measured: Fake GPU has compute capability 7.5" in capsys.readouterr().out
    fake_cuda["sync"] = 0
    fake_cuda["moved_to"].clear()
    table = small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path / "cpu", device="cpu")  # a GPU is there
    assert "kernel-2:4" not in set(table["kind"])
    assert set(table["device"]) == {f"cpu ({torch.get_num_threads()} threads)"}
    assert fake_cuda["sync"] == 0 and fake_cuda["moved_to"] <= {"cpu"}


def test_a_causal_lm_gets_its_decode_regime_timed(tiny_models, pruned_tiny_gpt2, tmp_path):
    """Per-token decoding with the cache, dense vs the 50% run, beside the prefill rows."""
    table = small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path / "decode", decode_tokens=4)
    decode = table[table["kind"] == "dense-kernels-decode"]
    assert len(decode) == 1
    row = decode.iloc[0]
    assert (row["tokens"], row["batch"], row["seqlen"]) == (4, 1, 16)
    assert row["dense_ms"] > 0 and row["sparse_ms"] > 0 and row["speedup_lo"] <= row["speedup"] <= row["speedup_hi"]


@pytest.mark.parametrize("free_models, expected", [(2.0, "swapped in place"), (3.0, "two models")])
def test_two_copies_run_side_by_side_only_when_both_fit_in_what_was_free_before_loading(
        tiny_models, pruned_tiny_gpt2, tmp_path, monkeypatch, free_models, expected):
    """Memory is asked before the dense model loads: a model mapped from its file still shows as available
    page cache afterwards, and the two copies together need 2.25x its bytes."""
    from sparsescope.sources.registry import load_model
    size = runtime.model_bytes(load_model(str(tiny_models["gpt2"])))
    asked = []

    def free():
        asked.append(True)
        return int(free_models * size) if len(asked) == 1 else 100 * size  # "plenty" once loaded: ignored
    monkeypatch.setattr(runtime, "available_bytes", free)
    table = small_runtime(tiny_models, pruned_tiny_gpt2, tmp_path / expected.replace(" ", "-"))
    row = table[table["kind"] == "dense-kernels"].iloc[0]
    assert row["interleaved"] == expected
