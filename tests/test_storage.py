"""The compressed format against independent expectations: what size.csv says about the index (bits on
positions against the mask entropy n·H(s), or log2 C(M, N) / M for N:M), the "nm" code bit for bit, v1
checkpoints still loading, the files a pruned checkpoint carries, and the notebooks inside a built wheel."""
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sparsescope import SparsescopeError
from sparsescope.evaluation.size import size_results
from sparsescope.pruning.runs import PruneSpec, prune_model, prune_runs
from sparsescope.storage import (CheckpointWriter, copy_model_files, decode_sparse, encode_sparse, load_pruned,
                                 read_state_dict, size_breakdown)

ROOT = Path(__file__).resolve().parents[1]
INTS = {2: torch.int16, 4: torch.int32}
# The README's claim: on i.i.d. masks at 50, 70, 80, 90, 95% sparsity the index takes at most this many times
# the mask entropy n·H(s) (measured 1.000 at 50%, 1.007-1.024 at 70-95%).
INDEX_RATIO_CLAIM = 1.025
# 2:4 in 3 bits per group of 4: 0.75 bit per weight against log2 C(4, 2) / 4 = 0.646, 3 / log2 6 = 1.161x.
NM_RATIO_CLAIM = 3 / math.log2(6)


def entropy_bits(n: int, kept: int) -> float:
    """n·H(kept/n), by hand."""
    p = kept / n
    return -n * (p * math.log2(p) + (1 - p) * math.log2(1 - p))


def stored_bytes(folder: Path) -> dict[str, int]:
    """Bytes of every stored tensor, read with the safetensors library."""
    out = {}
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                out[name] = t.numel() * t.element_size()
    return out


# ------------------------------------------------------------------------ item 1: the index on its own
def test_index_is_measured_against_the_mask_entropy(tmp_path):
    """Bits on positions vs n·H(s) per matrix, values apart; at the README's figure, not looser."""
    sparsities = (0.5, 0.7, 0.8, 0.9, 0.95)
    folder = tmp_path / "ckpt"
    writer = CheckpointWriter(folder)
    kept = {}
    for i, s in enumerate(sparsities):
        torch.manual_seed(i)
        w = torch.randn(512, 768).to(torch.float16)
        w[torch.rand(w.shape) < s] = 0
        kept[f"m{i}"] = int((w != 0).sum())
        writer.add_sparse(f"m{i}", w)
    writer.close()
    (folder / "config.json").write_text("{}")
    sizes = stored_bytes(folder)
    n = 512 * 768
    for name in kept:  # each matrix's index against its own mask entropy, at the claimed figure
        ratio = 8 * sizes[f"{name}::index"] / entropy_bits(n, kept[name])
        assert ratio <= INDEX_RATIO_CLAIM, (name, ratio)

    got = size_breakdown(folder)
    total = n * len(kept)
    index_bits = 8 * sum(v for k, v in sizes.items() if k.endswith("::index"))
    bound = sum(entropy_bits(n, k) for k in kept.values())
    assert got["index_bits_per_weight"] == pytest.approx(index_bits / total, rel=1e-12)
    assert got["index_bound_bits_per_weight"] == pytest.approx(bound / total, rel=1e-12)
    assert got["index_ratio"] == pytest.approx(index_bits / bound, rel=1e-12)
    assert 1.0 <= got["index_ratio"] <= INDEX_RATIO_CLAIM
    assert got["value_bits_per_weight"] == pytest.approx(16 * sum(kept.values()) / total, rel=1e-12)
    assert got["index_coding"] == "bitmask+rice"  # 50%: a bitmask is smallest; sparser: Rice


def test_size_csv_columns_and_the_true_nm_bound(tiny_models, tmp_path):
    specs = [PruneSpec("layer_magnitude", 0.7), PruneSpec("nm_magnitude", nm="2:4")]
    prune_runs(str(tiny_models["gpt2"]), tmp_path / "pruning", specs, progress=False)
    table = size_results(tmp_path / "pruning", tmp_path / "bench")
    csv = pd.read_csv(tmp_path / "bench" / "size.csv", keep_default_na=False)
    assert {"index_bits_per_weight", "index_bound_bits_per_weight", "index_ratio", "value_bits_per_weight",
            "index_coding", "bits_per_weight", "bound_bits_per_weight", "ratio_to_bound"} <= set(csv.columns)
    assert len(table) == 2

    nm = csv[csv["nm"] == "2:4"].iloc[0]
    assert nm["index_coding"] == "nm"
    assert nm["index_bits_per_weight"] == 0.75                       # 3 bits per group of 4
    assert nm["index_bound_bits_per_weight"] == pytest.approx(math.log2(6) / 4, rel=1e-12)   # 0.646
    assert nm["index_ratio"] == pytest.approx(NM_RATIO_CLAIM, rel=1e-12)
    assert nm["value_bits_per_weight"] == pytest.approx(32 * 0.5, rel=1e-12)  # 2 fp32 values per 4

    unstructured = csv[csv["nm"] == ""].iloc[0]
    per_tensor = pd.read_csv(tmp_path / "pruning" / "layer_magnitude-0.7" / "sparsity_by_tensor.csv")
    bound = sum(entropy_bits(r.n, r.n - r.n_zero) for r in per_tensor.itertuples())
    assert unstructured["index_bound_bits_per_weight"] == pytest.approx(bound / per_tensor["n"].sum(),
                                                                        rel=1e-12)
    assert unstructured["index_coding"] in ("bitmask", "rice", "bitmask+rice")


# ------------------------------------------------------------------------------- item 2: the nm code
def nm_matrix(shape, n, m, in_dim, dtype, seed=0) -> torch.Tensor:
    """A random matrix keeping the n largest of every m consecutive inputs (along in_dim)."""
    torch.manual_seed(seed)
    w = torch.randn(shape)
    rows = w.t() if in_dim == 0 else w
    groups = rows.reshape(rows.shape[0], -1, m).clone()
    groups.scatter_(-1, groups.abs().argsort(-1)[..., : m - n], 0)
    rows = groups.reshape(rows.shape)
    return (rows.t() if in_dim == 0 else rows).contiguous().to(dtype)


def expected_nm_index(w: torch.Tensor, n: int, m: int, in_dim: int) -> np.ndarray:
    """The nm code by its definition, with itertools and numpy: per group (output by output, inputs
    ascending) the rank in itertools.combinations order of the kept positions completed by the lowest
    unkept ones, in ceil(log2 C(m, n)) bits, least significant first, packed in little bit order."""
    subsets = list(itertools.combinations(range(m), n))
    bits = math.ceil(math.log2(len(subsets)))
    kept = (w.contiguous().view(INTS[w.element_size()]) != 0).numpy()
    rows = kept.T if in_dim == 0 else kept
    stream = []
    for group in rows.reshape(-1, m):
        chosen = [j for j in range(m) if group[j]]
        chosen += [j for j in range(m) if not group[j]][: n - len(chosen)]
        rank = subsets.index(tuple(sorted(chosen)))
        stream += [(rank >> b) & 1 for b in range(bits)]
    return np.packbits(np.array(stream, np.uint8), bitorder="little")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("in_dim", [0, 1])
def test_2_of_4_codes_at_exactly_0_75_bit_and_round_trips(dtype, in_dim):
    w = nm_matrix((64, 96), 2, 4, in_dim, dtype)
    first_kept = w.reshape(-1).ne(0).nonzero()[0].item()
    w.view(-1)[first_kept] = -0.0                       # a kept weight that is -0.0 stays kept
    if in_dim == 1:
        w[3, 4:8] = torch.tensor([0.0, 0.0, 0.0, 1.5])  # a group with one nonzero: +0.0 fills it
        w[5, 8:12] = 0                                  # and one with none
    else:
        w[4:8, 3] = torch.tensor([0.0, 0.0, 0.0, 1.5])
        w[8:12, 5] = 0
    values, index, info = encode_sparse(w, (2, 4, in_dim))
    assert info["coding"] == "nm" and (info["n"], info["m"], info["in_dim"]) == (2, 4, in_dim)
    assert 8 * index.numel() == 0.75 * w.numel()
    assert np.array_equal(index.numpy(), expected_nm_index(w, 2, 4, in_dim))
    assert values.numel() == w.numel() // 2                # two values stored per group of four
    back = decode_sparse(values, index, info)
    ints = INTS[w.element_size()]
    assert torch.equal(back.view(ints), w.view(ints))


@pytest.mark.parametrize("n,m", [(1, 4), (4, 8), (3, 7), (2, 8)])
def test_other_patterns_match_the_definition(n, m):
    w = nm_matrix((16, 56), n, m, 1, torch.float32, seed=n * m)
    values, index, info = encode_sparse(w, (n, m, 1))
    assert info["coding"] == "nm"
    assert np.array_equal(index.numpy(), expected_nm_index(w, n, m, 1))
    assert torch.equal(decode_sparse(values, index, info).view(torch.int32), w.view(torch.int32))


def test_nm_follows_the_input_dimension_and_needs_at_most_n_per_group():
    w = nm_matrix((64, 32), 2, 4, 0, torch.float32)  # Conv1D-like [in, out]: groups run along dim 0
    assert encode_sparse(w, (2, 4, 0))[2]["coding"] == "nm"
    assert encode_sparse(w, (2, 4, 1))[2]["coding"] != "nm"  # along dim 1 groups hold up to 4 nonzeros
    w[0:4, 0] = 1.0                                             # a group of 4 nonzeros: not 2:4 any more
    values, index, info = encode_sparse(w, (2, 4, 0))
    assert info["coding"] in ("bitmask", "rice")
    assert torch.equal(decode_sparse(values, index, info).view(torch.int32), w.view(torch.int32))
    assert encode_sparse(w, None)[2]["coding"] in ("bitmask", "rice")  # unstructured runs never get nm


def test_corrupt_nm_index_is_one_line():
    w = nm_matrix((8, 16), 2, 4, 1, torch.float32)
    values, index, info = encode_sparse(w, (2, 4, 1))
    bad = index.clone()
    bad[0] = 0b111  # rank 7 of a group: 2:4 has only 6 subsets
    with pytest.raises(SparsescopeError, match="corrupt N:M index") as err:
        decode_sparse(values, bad, info)
    assert "\n" not in str(err.value)
    with pytest.raises(SparsescopeError, match="bytes"):
        decode_sparse(values, index[:-1], info)


# --------------------------------------------------------------------------------- format versions
def rice_code(positions: np.ndarray, k: int) -> np.ndarray:
    """v1's Rice index by its definition: per gap, q ones, a zero, then k remainder bits LSB first."""
    stream = []
    for gap in np.diff(positions, prepend=-1) - 1:
        stream += [1] * int(gap >> k) + [0] + [(int(gap) >> b) & 1 for b in range(k)]
    return np.packbits(np.array(stream, np.uint8), bitorder="little")


def write_v1(src: Path, dst: Path, sparsity: float) -> dict[str, torch.Tensor]:
    """A v1 compressed checkpoint of a tiny GPT-2, written by hand from the v1 description: the block
    matrices pruned at random, alternately bitmask- and Rice-coded. Returns the expected weights."""
    from sparsescope.sources.layouts import stored_tagger
    from sparsescope.sources.weights import iter_tensors
    tag = stored_tagger(src)
    dst.mkdir()
    tensors, described, expected = {}, {}, {}
    generator = torch.Generator().manual_seed(0)
    for name, w in iter_tensors(src):
        w = w.clone()
        if not tag(name, tuple(w.shape)).prunable:
            tensors[name] = expected[name] = w
            continue
        w[torch.rand(w.shape, generator=generator) < sparsity] = 0
        w.view(-1)[w.reshape(-1).ne(0).nonzero()[0]] = -0.0
        expected[name] = w
        mask = (w.reshape(-1).view(torch.int32) != 0).numpy()
        positions = np.flatnonzero(mask)
        info = {"shape": list(w.shape), "dtype": "float32", "nnz": int(positions.size)}
        if len(described) % 2:
            index = rice_code(positions, 1)
            info.update(coding="rice", k=1)
        else:
            index = np.packbits(mask, bitorder="little")
            info.update(coding="bitmask")
        tensors[f"{name}::values"] = w.reshape(-1)[torch.from_numpy(positions)].clone()
        tensors[f"{name}::index"] = torch.from_numpy(index)
        described[name] = info
    metadata = {"format": "pt", "sparsescope": json.dumps({"version": 1, "tensors": described})}
    save_file(tensors, str(dst / "model.safetensors"), metadata)
    config = json.loads((src / "config.json").read_text())
    config["sparsescope"] = {"format": "sparsescope-sparse", "version": 1, "method": "layer_magnitude"}
    (dst / "config.json").write_text(json.dumps(config))
    return expected


def test_v1_checkpoints_still_load(tiny_models, tmp_path):
    expected = write_v1(tiny_models["gpt2"], tmp_path / "v1", 0.7)
    stored = read_state_dict(tmp_path / "v1")
    assert stored.keys() == expected.keys()
    for name, w in expected.items():
        assert torch.equal(stored[name].view(torch.int32), w.view(torch.int32)), name
    model = load_pruned(tmp_path / "v1")
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, expected["transformer.h.0.attn.c_attn.weight"])
    sizes = size_breakdown(tmp_path / "v1")
    assert sizes["index_coding"] == "bitmask+rice" and sizes["index_ratio"] > 1


def test_a_newer_format_version_is_one_line(tmp_path):
    w = torch.zeros(64, 64)
    w[0, :5] = 1
    writer = CheckpointWriter(tmp_path)
    writer.add_sparse("m", w)
    writer.close()
    path = tmp_path / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(metadata["sparsescope"])
    assert meta["version"] == 2
    meta["version"] = 3
    save_file(tensors, str(path), {**metadata, "sparsescope": json.dumps(meta)})
    with pytest.raises(SparsescopeError, match="version 3") as err:
        read_state_dict(tmp_path)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ item 4: what a checkpoint carries
def test_copy_model_files_copies_only_what_the_model_needs(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    needed = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
              "added_tokens.json", "normalizer.json", "preprocessor_config.json"]
    junk = ["tf_model.h5", "flax_model.msgpack", "model.onnx", "model.gguf", "README.md", ".gitattributes",
            "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "training_args.bin",
            "rust_model.ot", "notes.txt", "ctranslate2_config.json"]
    for name in needed + junk:
        (src / name).write_text("{}" if name.endswith(".json") else "x")
    (src / "onnx").mkdir()
    (src / "onnx" / "model.onnx").write_text("x")
    copy_model_files(src, dst, {"format": "sparsescope-sparse"})
    assert sorted(p.name for p in dst.iterdir()) == sorted(needed)
    assert json.loads((dst / "config.json").read_text()) == {"sparsescope": {"format": "sparsescope-sparse"}}


def test_pruned_checkpoint_carries_no_other_weights(tiny_models, tmp_path):
    src = tmp_path / "model"
    shutil.copytree(tiny_models["gpt2"], src)
    for name in ("tf_model.h5", "flax_model.msgpack", "model.onnx", "model.gguf"):
        (src / name).write_bytes(b"\0" * 1024)
    row = prune_model(str(src), tmp_path / "runs", PruneSpec("layer_magnitude", 0.5), progress=False)
    names = {p.name for p in Path(row["checkpoint"]).iterdir()}
    assert not names & {"tf_model.h5", "flax_model.msgpack", "model.onnx", "model.gguf"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names


# -------------------------------------------------- item 5: notebooks and template inside the package
NOTEBOOK_FILES = {"sparsescope/notebooks/01_distribution.ipynb": "notebooks/01_distribution.ipynb",
                  "sparsescope/notebooks/02_pruning.ipynb": "notebooks/02_pruning.ipynb",
                  "sparsescope/notebooks/03_benchmarks.ipynb": "notebooks/03_benchmarks.ipynb",
                  "sparsescope/report/sparsity_report.ipynb": "report/sparsity_report.ipynb"}


def test_wheel_ships_the_notebooks_and_an_installed_copy_finds_them(tmp_path):
    src = tmp_path / "src"  # a clean copy of the sources: the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "lib", src / "lib", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "notebooks", src / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (src / "report").mkdir()
    shutil.copy(ROOT / "report" / "sparsity_report.ipynb", src / "report")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "w")],
                   check=True, cwd=tmp_path, timeout=300)
    wheel = next((tmp_path / "w").glob("sparsescope-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for inside, source in NOTEBOOK_FILES.items():
            assert z.read(inside) == (ROOT / source).read_bytes(), inside

    target = tmp_path / "installed"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path, timeout=300)
    probe = ("import json, sparsescope.run as p; "
             "print(json.dumps([str(p.NOTEBOOKS), str(p.REPORT_TEMPLATE), p.notebook_defaults('pruning')]))")
    env = {**os.environ, "PYTHONPATH": str(target)}  # before the editable install's path
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    notebooks, template, defaults = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(notebooks) == target / "sparsescope" / "notebooks"
    assert Path(template) == target / "sparsescope" / "report" / "sparsity_report.ipynb"
    assert "sparsities" in defaults
