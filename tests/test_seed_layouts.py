"""Every stage of the suite on the seed models' files as the hub ships them (tiny sizes, random weights):
bare GPT-2 names with causal-mask buffers, BERT's legacy gamma/beta with pooler and NSP head, and a T5 v1.1
pickle whose encoder/decoder embeddings alias `shared`. Expectations come from hand formulas and from
transformers' own `from_pretrained`, never from the suite's arithmetic."""
from __future__ import annotations

import errno
import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import HAVE_SPM, hand_counts, hub_layouts, snapshot
from sparsescope import SparsescopeError, export_dense, load_pruned
from sparsescope.analysis.distribution import analyze_model
from sparsescope.pruning.calibration import calibration_budget
from sparsescope.pruning.layers import LinearView
from sparsescope.sources.anatomy import is_linear
from sparsescope.pruning.runs import PruneSpec, prune_model, prune_runs
from sparsescope.sources.registry import load_model

REPOS = {"gpt2-xl": "openai-community/gpt2-xl", "bert-large": "google-bert/bert-large-uncased",
         "t5-v1_1-xl": "google/t5-v1_1-xl"}
CLASSES = {"gpt2-xl": "GPT2LMHeadModel", "bert-large": "BertForMaskedLM", "t5-v1_1-xl": "T5ForConditionalGeneration"}
CALIBRATION = dict(n_samples=2, seqlen=32)
SPECS = [PruneSpec("global_magnitude", 0.5), PruneSpec("layer_magnitude", 0.5), PruneSpec("nm_magnitude", nm="2:4"),
         PruneSpec("wanda", 0.5, **CALIBRATION), PruneSpec("sparsegpt", nm="2:4", **CALIBRATION)]


@pytest.fixture(scope="module")
def folders(seed_hub) -> dict:
    if not HAVE_SPM:
        pytest.fail("sentencepiece/protobuf are missing: `make setup` installs them (T5's tokenizer needs them)")
    return {name: snapshot(seed_hub, repo) for name, repo in REPOS.items()}


@pytest.fixture(scope="module")
def runs(folders, tmp_path_factory) -> dict:
    """Each seed layout pruned once by every method (tiny calibration budgets)."""
    root = tmp_path_factory.mktemp("seed_runs")
    out = {}
    for name, folder in folders.items():
        table = prune_runs(str(folder), root / name, SPECS, progress=False)
        out[name] = (root / name, {r.method: r._asdict() for r in table.itertuples()})
    return out


def block_linears(model):
    """(name, module) of the linear / Conv1D layers inside a ModuleList, found by module type."""
    inside = set()
    for list_name, container in model.named_modules():
        if isinstance(container, torch.nn.ModuleList):
            inside |= {f"{list_name}.{n}" for n, _ in container.named_modules() if n}
    return [(n, m) for n, m in model.named_modules() if is_linear(m) and n in inside]


@pytest.mark.parametrize("name", REPOS)
def test_statistics_count_every_stored_weight_once(name, folders, tmp_path):
    dist = analyze_model(str(folders[name]), tmp_path, progress=False)
    total, prunable = hand_counts(name, hub_layouts.tiny_config(name))
    assert (dist.summary["n_params"], dist.summary["n_prunable"]) == (total, prunable)
    assert dist.groups["all"].hist.sum() == total  # no mask element reached a histogram
    excluded = json.loads((tmp_path / "manifest.json").read_text())["excluded"]
    buffers, aliases = excluded["buffers (not weights)"], excluded["aliases (stored once, counted once)"]
    n_layer = hub_layouts.tiny_config(name).get("n_layer", 0)
    assert buffers == [f"h.{i}.attn.bias" for i in range(n_layer)]
    assert aliases == ({"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}
                       if name == "t5-v1_1-xl" else {})


@pytest.mark.parametrize("name", REPOS)
def test_every_method_loads_back_as_the_full_model(name, folders, runs):
    reference = load_model(str(folders[name]))  # transformers' from_pretrained on the hub layout
    assert type(reference).__name__ == CLASSES[name]
    dense = reference.state_dict()
    ids = torch.arange(5, 21).reshape(1, -1)
    for method, row in runs[name][1].items():
        pruned = load_pruned(row["checkpoint"])
        assert type(pruned).__name__ == CLASSES[name], method
        state = pruned.state_dict()
        assert state.keys() == dense.keys()
        linears = {f"{n}.weight" for n, _ in block_linears(pruned)}
        for key, w in state.items():
            if key in linears:
                assert abs(float((w == 0).float().mean()) - 0.5) < 0.02, (method, key)
                if method != "sparsegpt":  # masks only: every kept weight is the source's
                    assert torch.equal(w[w != 0], dense[key][w != 0]), (method, key)
            else:
                assert torch.equal(w, dense[key]), (method, key)
        inputs = {"input_ids": ids, **({"decoder_input_ids": ids} if name == "t5-v1_1-xl" else {})}
        with torch.no_grad():
            assert torch.isfinite(pruned(**inputs).logits).all()


@pytest.mark.parametrize("name", REPOS)
def test_nm_groups_run_along_the_inputs(name, runs):
    """2:4 keeps at most 2 of every 4 consecutive *input* weights of an output, GPT-2's Conv1D included."""
    for method in ("nm_magnitude", "sparsegpt"):
        model = load_pruned(runs[name][1][method]["checkpoint"])
        checked = 0
        for layer_name, module in block_linears(model):
            w = LinearView(module).weight()  # (outputs, inputs) whatever the storage
            assert int((w.reshape(w.shape[0], -1, 4) != 0).sum(-1).max()) <= 2, (method, layer_name)
            checked += 1
        assert checked >= 8


@pytest.mark.parametrize("name", REPOS)
def test_exported_checkpoint_opens_with_plain_transformers(name, runs, tmp_path):
    row = runs[name][1]["wanda"]
    exported = export_dense(row["checkpoint"], tmp_path / "dense")
    plain = load_model(str(exported))
    ours = load_pruned(row["checkpoint"])
    ids = torch.arange(3, 19).reshape(1, -1)
    inputs = {"input_ids": ids, **({"decoder_input_ids": ids} if name == "t5-v1_1-xl" else {})}
    with torch.no_grad():
        assert torch.equal(plain(**inputs).logits, ours(**inputs).logits)


@pytest.mark.parametrize("name", REPOS)
def test_quality_and_runtime_run_on_the_hub_layouts(name, folders, runs, tmp_path):
    from sparsescope.evaluation.quality import Budget, evaluate_checkpoints
    from sparsescope.evaluation.runtime import runtime_results
    pruning_dir, rows = runs[name]
    quality = evaluate_checkpoints(str(folders[name]), pruning_dir, tmp_path, Budget(n_tokens=128, window=64),
                                   progress=False)
    assert set(quality["method"]) == {"dense", *rows}
    kl = quality[quality["metric"] == "kl_from_dense"].set_index("method")["value"]
    assert kl["dense"] == pytest.approx(0, abs=1e-6) and (kl.drop("dense") > 0).all()
    runtime = runtime_results(str(folders[name]), pruning_dir, tmp_path, batch_sizes=[1], seqlen=16,
                              sparsities=[0.5, 0.9], tokens=[4], repeats=1)
    assert {"dense-kernels", "kernel-csr"} <= set(runtime["kind"])


def test_calibration_holds_one_block_at_a_time(folders, tmp_path, blocks_in_memory):
    """While Wanda calibrates, the weights of at most one transformer block are ever materialised."""
    seen = blocks_in_memory
    prune_model(str(folders["t5-v1_1-xl"]), tmp_path, PruneSpec("wanda", 0.5, **CALIBRATION), progress=False)
    assert seen and max(seen) == 1


def test_calibration_budget_covers_the_widest_layer(folders, tmp_path):
    assert calibration_budget(None, 128, 6400) == {"n_samples": 50, "tokens": 6400, "note": ""}
    assert calibration_budget(None, 128, 1536)["n_samples"] == 16  # never below the CPU default
    assert "fewer than the 6400 inputs" in calibration_budget(16, 128, 6400)["note"]
    row = prune_model(str(folders["gpt2-xl"]), tmp_path, PruneSpec("sparsegpt", 0.5, seqlen=16), progress=False)
    widest = 4 * hub_layouts.tiny_config("gpt2-xl")["n_embd"]  # mlp.c_proj's inputs
    assert (row["n_samples"], row["calibration_tokens"], row["calibration_note"]) == (
        max(16, -(-widest // 16)), 16 * max(16, -(-widest // 16)), "")


def test_truncated_pickle_is_one_line(folders, tmp_path):
    folder = tmp_path / "t5"
    shutil.copytree(folders["t5-v1_1-xl"], folder)
    pickle = folder / "pytorch_model.bin"
    data = pickle.read_bytes()
    pickle.unlink()  # the snapshot's file may be a link into the cache's blobs: write a new file
    pickle.write_bytes(data[: len(data) // 2])
    with pytest.raises(SparsescopeError, match="cannot read pickle checkpoint") as err:
        analyze_model(str(folder), tmp_path / "out", progress=False)
    assert "\n" not in str(err.value)


def test_a_full_disk_leaves_nothing_that_looks_complete(folders, tmp_path, monkeypatch):
    from sparsescope.storage import checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint, "write_safetensors", full)  # what the checkpoint writer calls
    with pytest.raises(SparsescopeError, match="disk filled up") as err:
        prune_model(str(folders["bert-large"]), tmp_path, PruneSpec("global_magnitude", 0.5), progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_pruned_rows_record_memory_and_budget(runs):
    table = pd.read_csv(runs["gpt2-xl"][0] / "pruning.csv", keep_default_na=False)
    assert {"peak_rss_bytes", "peak_anon_bytes", "n_samples", "seqlen", "calibration_tokens", "device"} <= set(
        table.columns)
    calibrated = table[table["method"].isin(["wanda", "sparsegpt"])]
    assert (calibrated["calibration_tokens"].astype(int) == 2 * 32).all()
    assert (table["peak_anon_bytes"].astype(int) > 0).all()
