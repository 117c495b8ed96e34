"""Exactness of the streaming statistics against numpy on the same weights."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsescope.analysis.statistics import (KEY_EDGES, QUANTILES, THRESHOLDS, Accumulator, TensorScanner, analyze_folder,
                                             cdf, log10_histogram)
from sparsescope.sources.layouts import stored_tagger
from sparsescope.sources.weights import iter_tensors


def numpy_outliers(w) -> int:
    """Reference: |w - mean| > 6 std of the tensor itself (float64, population std)."""
    x = np.asarray(w, dtype=np.float64).reshape(-1)
    return int((np.abs(x - x.mean()) > 6 * x.std()).sum())


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
    assert acc.n_outlier == numpy_outliers(w.numpy()) >= 5
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


def quantile_cases():
    g = torch.Generator().manual_seed(3)
    yield "uniform", torch.rand(100_000, generator=g) * 0.1
    normal = torch.randn(300_001, generator=g) * 0.02
    normal[::101] = 0.0
    yield "normal with zeros", normal
    yield "lognormal, 1e-9 .. 1e9", torch.exp(4.0 * torch.randn(200_000, generator=g)) * torch.sign(torch.randn(200_000, generator=g))
    # every value on a bin's lower edge where bins are widest (powers of two): the worst case
    yield "powers of two", 2.0 ** torch.randint(-30, 10, (50_000,), generator=g).float()
    yield "float16", (torch.randn(80_000, generator=g) * 0.05).to(torch.float16)


@pytest.mark.parametrize("case", [name for name, _ in quantile_cases()])
def test_quantiles_within_the_stated_resolution(case):
    """The claim: relative error below 2**-8 against the exact order statistic (numpy, inverted_cdf)."""
    w = dict(quantile_cases())[case]
    abs_w = w.float().abs().numpy()
    qs = tuple(np.round(np.linspace(0.01, 0.99, 99), 2)) + QUANTILES
    got = TensorScanner().scan(w).quantiles(qs)
    for q in qs:
        exact = float(np.quantile(abs_w, q, method="inverted_cdf"))
        if exact == 0:
            assert got[f"{q:g}"] == 0.0, q
        else:
            assert abs(got[f"{q:g}"] - exact) < 2 ** -8 * exact, (q, got[f"{q:g}"], exact)


def test_outliers_are_measured_from_the_tensors_own_mean():
    g = torch.Generator().manual_seed(5)
    gain = 1 + 0.01 * torch.randn(100_000, generator=g)          # a LayerNorm gain: no outlier at all
    assert numpy_outliers(gain.numpy()) == 0
    assert TensorScanner().scan(gain).n_outlier == 0            # |w| > 6 std would call all of it one
    both = 1 + 0.01 * torch.randn(100_000, generator=g)
    both[:7], both[7:12] = 1.5, 0.4                              # beyond 6 std above and below the mean
    shifted = -3 + 0.1 * torch.randn(100_000, generator=g)
    shifted[:4], shifted[4:9] = -1.0, -5.5
    heavy = torch.distributions.StudentT(2.0).sample((200_000,)) * 0.02 + 0.01
    for w, expected in ((both, 12), (shifted, 9), (heavy, None), (both.to(torch.float16), 12)):
        acc = TensorScanner().scan(w)
        ref = numpy_outliers(w.float().numpy())
        assert acc.n_outlier == ref, (acc.n_outlier, ref)
        assert expected is None or ref == expected
    constant = torch.full((1000,), 0.1)                          # std 0: nothing is an outlier
    assert TensorScanner().scan(constant).n_outlier == 0


def bin_of(x: float) -> int:
    return int(np.float32(x).view(np.uint32)) >> 16


def tensor_with_std(target: float, planted: np.ndarray, n: int = 200_000) -> torch.Tensor:
    """Gaussian weights plus `planted` values, scaled so that the float32 tensor's std is `target`."""
    z = np.random.default_rng(11).standard_normal(n)
    a = target
    for _ in range(8):
        w = np.concatenate([a * z, planted]).astype(np.float32)
        a *= target / w.astype(np.float64).std()
    return torch.from_numpy(w)


@pytest.mark.parametrize("key,side", [(k, side) for k, t in THRESHOLDS.items() for side in ("below", "above")
                                      if side == "above" or KEY_EDGES[bin_of(t)] < np.float32(t)])  # 1: an edge
def test_thresholds_exact_when_six_sigma_falls_in_their_bin(key, side):
    """6 std inside the bin of a threshold, below or above it: every count still equals numpy's."""
    t = float(np.float32(THRESHOLDS[key]))
    lo_edge, hi_edge = KEY_EDGES[bin_of(t)], KEY_EDGES[bin_of(t) + 1]
    six_sigma = (lo_edge + t) / 2 if side == "below" else (t + hi_edge) / 2
    between = (t + six_sigma) / 2
    planted = np.array([t] * 5 + [-t] * 5 + [float(np.nextafter(np.float32(t), np.float32(0)))] * 3
                       + [between] * 20 + [-between] * 20 + [six_sigma * 1.5, -six_sigma * 2])
    w = tensor_with_std(six_sigma / 6, planted)
    sd = w.double().std(unbiased=False).item()
    assert bin_of(6 * sd) == bin_of(t)                           # the case this test is about
    acc = TensorScanner().scan(w)
    check_against_numpy(acc, w.abs().numpy())
    assert acc.n_outlier == numpy_outliers(w.numpy())


def analyze_planted(state: dict, like: Path, tmp_path: Path) -> None:
    """analyze_model on `state` saved with the config of the model folder `like`; results in tmp_path/out."""
    from safetensors.torch import save_file
    from sparsescope.analysis.distribution import analyze_model
    folder = tmp_path / "model"
    folder.mkdir()
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text((like / "config.json").read_text())
    analyze_model(str(folder), tmp_path / "out", progress=False)


def test_outlier_share_flows_to_tensors_csv_and_summary(tiny_models, tmp_path):
    import json
    import pandas as pd
    g = torch.Generator().manual_seed(2)
    state = {}
    for name, w in iter_tensors(tiny_models["gpt2"]):
        w = w.clone()
        if name.endswith("ln_1.weight"):                         # gains near 1: no outlier
            w = 1 + 0.01 * torch.randn(w.shape, generator=g)
        if name.endswith("mlp.c_fc.weight"):                     # a mean far from zero, outliers both sides
            w = 0.5 + 0.02 * torch.randn(w.shape, generator=g)
            w[0, :3], w[1, :2] = 0.0, 1.0
        state[name] = w.contiguous()
    analyze_planted(state, tiny_models["gpt2"], tmp_path)
    rows = pd.read_csv(tmp_path / "out" / "tensors.csv").set_index("name")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    expected = {name: numpy_outliers(state[name].float().numpy()) for name in rows.index}
    for name, count in expected.items():
        assert rows.loc[name, "outlier_frac"] == pytest.approx(count / state[name].numel(), abs=0), name
    assert sum(expected[n] for n in rows.index if n.endswith("ln_1.weight")) == 0
    assert sum(expected[n] for n in rows.index if n.endswith("c_fc.weight")) == 5 * 3   # 3 blocks
    for group, members in (("all", rows.index), ("prunable", rows.index[rows["prunable"]])):
        n = sum(state[m].numel() for m in members)
        assert summary[group]["outlier_frac"] == pytest.approx(sum(expected[m] for m in members) / n, abs=0)


def test_loaded_groups_keep_their_shares_below_thresholds(tiny_models, tmp_path):
    """frac_below of the groups load_distribution rebuilds equals numpy's share of the planted |w| under each
    threshold; a histograms.npz saved without the counts says so in one line instead of reading 0%."""
    import re
    from sparsescope import SparsescopeError
    from sparsescope.analysis.distribution import load_distribution
    g = torch.Generator().manual_seed(3)
    ties = torch.tensor([float(np.float32(t)) for t in THRESHOLDS.values()])  # |w| == threshold: not below
    state = {}
    for name, w in iter_tensors(tiny_models["gpt2"]):                 # no buffers in this file
        w = 10 ** (torch.rand(w.shape, generator=g) * 5.5 - 5) * torch.randn(w.shape, generator=g).sign()
        w.view(-1)[:len(ties)] = ties
        w.view(-1)[-1] = 0.0
        state[name] = w.contiguous()
    analyze_planted(state, tiny_models["gpt2"], tmp_path)
    dist = load_distribution(tmp_path / "out")
    block_weight = re.compile(r"transformer\.h\.\d+\.(attn\.c_(attn|proj)|mlp\.c_(fc|proj))\.weight")
    every = np.concatenate([w.abs().reshape(-1).numpy() for w in state.values()])
    prunable = np.concatenate([w.abs().reshape(-1).numpy() for n, w in state.items()
                               if block_weight.fullmatch(n)])
    for group, a in (("all", every), ("prunable", prunable)):
        expected = {k: int((a < np.float32(t)).sum()) / a.size for k, t in THRESHOLDS.items()}
        assert 0 < expected["1e-4"] < expected["1"] < 1
        assert dist.groups[group].summary()["frac_below"] == expected, group
    with np.load(tmp_path / "out" / "histograms.npz") as z:   # as analyze_model wrote it before the counts
        older = {k: z[k] for k in z.files if k not in ("below", "below_thresholds")}
    np.savez_compressed(tmp_path / "out" / "histograms.npz", **older)
    with pytest.raises(SparsescopeError, match="analyze_model again") as err:
        load_distribution(tmp_path / "out").groups["all"].summary()
    assert "\n" not in str(err.value)


def test_half_precision_tensors_are_counted_exactly():
    w = (torch.randn(50_000) * 0.05).to(torch.float16)
    acc = TensorScanner().scan(w)
    check_against_numpy(acc, w.float().abs().numpy())


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5", "llama", "whisper"])
def test_model_histograms_match_numpy(arch, tiny_models):
    stats = analyze_folder(tiny_models[arch], progress=False)
    tag = stored_tagger(tiny_models[arch])
    weights = [(n, w) for n, w in iter_tensors(tiny_models[arch])
               if tag(n, tuple(w.shape), floating=w.is_floating_point()).component != "buffer"]
    every = np.concatenate([w.float().abs().reshape(-1).numpy() for _, w in weights])
    prunable = np.concatenate([w.float().abs().reshape(-1).numpy() for n, w in weights if tag(n, tuple(w.shape)).prunable])
    check_against_numpy(stats.groups["all"], every)
    check_against_numpy(stats.groups["prunable"], prunable)
    blocks = [g for g in stats.groups if g.startswith("block:")]
    assert sum(stats.groups[g].n for g in blocks) == prunable.size
