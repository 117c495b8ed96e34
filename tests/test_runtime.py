"""Runtime arithmetic, the crossover finder, and that the sparse kernels compute what dense ones do."""
import pytest
import torch

from sparsescope.evaluation.runtime import SparseLinear, crossovers, find_crossover, kernel_sweep, sparsify_linears, speedup
from sparsescope.sources.registry import load_model


def test_speedup_arithmetic():
    assert speedup(10.0, 5.0) == 2.0
    assert speedup(3.0, 6.0) == 0.5


def test_crossover_on_synthetic_timings():
    s = [0.5, 0.7, 0.9, 0.95]
    assert find_crossover(s, [0.2, 0.6, 1.4, 3.0]) == pytest.approx(0.7 + 0.4 * 0.2 / 0.8)
    assert find_crossover(s, [0.2, 0.3, 0.5, 0.9]) is None          # never wins
    assert find_crossover(s, [1.1, 1.5, 2.0, 4.0]) == 0.5          # wins everywhere measured
    assert find_crossover(s, [1.2, 0.8, 1.5, 2.0]) == pytest.approx(0.7 + 0.2 * 0.2 / 0.7)  # a lucky win below ignored
    assert find_crossover([0.9, 0.5, 0.7], [1.4, 0.2, 0.6]) == pytest.approx(0.8)  # order of input does not matter


def test_kernel_sweep_rows_and_crossovers():
    rows = kernel_sweep([(64, 32)], [0.5, 0.9], [1, 8], repeats=2)
    assert {r["kind"] for r in rows} == {"kernel-csr", "kernel-bsr"}
    assert all(r["speedup"] == pytest.approx(r["dense_ms"] / r["sparse_ms"]) for r in rows)
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
