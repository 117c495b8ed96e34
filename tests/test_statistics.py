"""Exactness of the streaming statistics against numpy on the same weights."""
import numpy as np
import pytest
import torch

from sparsescope.analysis.statistics import (THRESHOLDS, Accumulator, TensorScanner, analyze_folder, cdf, log10_histogram)
from sparsescope.sources.weights import iter_tensors, tag


def numpy_log10_counts(abs_w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Reference: [underflow, bins..., overflow] of nonzero |w| for edges with [lo, hi) bins."""
    nz = abs_w[abs_w > 0]
    return np.bincount(np.searchsorted(edges, nz, side="right"), minlength=len(edges) + 1)


def check_against_numpy(acc: Accumulator, abs_w: np.ndarray) -> None:
    assert acc.n == abs_w.size
    assert acc.n_zero == int((abs_w == 0).sum())
    for key, t in THRESHOLDS.items():
        assert acc.below[key] == int((abs_w < np.float32(t)).sum()), key
    h = log10_histogram(acc)
    ref = numpy_log10_counts(abs_w, h["edges"])
    assert h["underflow"] == ref[0] and h["overflow"] == ref[-1]
    np.testing.assert_array_equal(h["counts"], ref[1:-1])
    assert h["n_zero"] + h["underflow"] + h["counts"].sum() + h["overflow"] == acc.n
    x, f = cdf(acc)
    for i in np.linspace(0, len(x) - 1, 7).astype(int):
        assert f[i] == pytest.approx((abs_w < x[i]).mean(), abs=0)


def test_scanner_exact_with_ties_zeros_thresholds_and_outliers():
    torch.manual_seed(1)
    w = torch.randn(700_001) * 0.02
    w[::997] = 0.0
    w[10:20] = 1e-3                      # exactly on a threshold (ties)
    w[20:30] = -float(np.nextafter(np.float32(1e-3), np.float32(0)))  # one ulp below it
    w[30:35] = 0.5                       # far beyond 6 sigma
    w[35:40] = 1e-12                     # below the log10 histogram's range
    acc = TensorScanner().scan(w)
    abs_w = w.abs().numpy()
    check_against_numpy(acc, abs_w)
    std = float(w.double().std(unbiased=False))
    assert acc.n_outlier == int((abs_w > np.float32(6 * std)).sum()) >= 5
    mean, sd, kurt = acc.mean_std_kurtosis()
    assert mean == pytest.approx(float(w.double().mean()), abs=1e-7)
    assert sd == pytest.approx(std, rel=1e-5)
    centred = w.double() - w.double().mean()
    assert kurt == pytest.approx(float((centred ** 4).mean() / centred.var(unbiased=False) ** 2 - 3), rel=1e-3)


def test_values_above_the_histogram_range_are_counted():
    w = torch.tensor([0.0, 1e-3, 150.0, -250.0, 7.0])
    acc = TensorScanner().scan(w)
    check_against_numpy(acc, w.abs().numpy())
    assert log10_histogram(acc)["overflow"] == 2


def test_quantiles_are_within_one_bin():
    w = torch.rand(100_000) * 0.1
    acc = TensorScanner().scan(w)
    for q, v in acc.quantiles((0.1, 0.5, 0.9)).items():
        assert v == pytest.approx(np.quantile(w.numpy(), float(q)), rel=2 ** -7)


def test_half_precision_tensors_are_counted_exactly():
    w = (torch.randn(50_000) * 0.05).to(torch.float16)
    acc = TensorScanner().scan(w)
    check_against_numpy(acc, w.float().abs().numpy())


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5", "llama", "whisper"])
def test_model_histograms_match_numpy(arch, tiny_models):
    stats = analyze_folder(tiny_models[arch], progress=False)
    weights = [(n, w) for n, w in iter_tensors(tiny_models[arch])
               if tag(n, tuple(w.shape), floating=w.is_floating_point()).component != "buffer"]
    every = np.concatenate([w.float().abs().reshape(-1).numpy() for _, w in weights])
    prunable = np.concatenate([w.float().abs().reshape(-1).numpy() for n, w in weights if tag(n, tuple(w.shape)).prunable])
    check_against_numpy(stats.groups["all"], every)
    check_against_numpy(stats.groups["prunable"], prunable)
    blocks = [g for g in stats.groups if g.startswith("block:")]
    assert sum(stats.groups[g].n for g in blocks) == prunable.size
