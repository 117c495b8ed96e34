"""Pruning methods, their exactness, the compressed format and the bad inputs."""
import json

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from sparsescope import SparsescopeError
from sparsescope.pruning.layers import input_dim, is_linear
from sparsescope.pruning.magnitude import nm_prune_scores
from sparsescope.pruning.runs import PruneSpec, prune_model, seed_global_magnitude
from sparsescope.sources.registry import load_model
from sparsescope.storage import (decode_sparse, encode_sparse, entropy_bound_bits, export_dense, load_pruned,
                                 read_state_dict)
from sparsescope.pruning.wanda import Wanda
from sparsescope.sources.weights import iter_tensors, tag


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_global_magnitude_equals_torch_prune(arch, tiny_models, tmp_path):
    row = prune_model(str(tiny_models[arch]), tmp_path, PruneSpec("global_magnitude", 0.6), progress=False)
    ours = load_pruned(row["checkpoint"]).state_dict()
    reference = seed_global_magnitude(str(tiny_models[arch]), 0.6)
    for name, w in reference.state_dict().items():
        assert torch.equal(ours[name], w), name
    assert row["n_zeroed"] == round(0.6 * row["n_prunable"])


def test_ties_zero_exactly_k_in_checkpoint_order(tiny_models, tmp_path):
    """Weights drawn from 7 values: thousands of ties at the threshold; exactly k are zeroed, the first ones."""
    folder = tmp_path / "ties"
    folder.mkdir()
    torch.manual_seed(0)
    state = {n: (torch.randint(-3, 4, w.shape) * 0.01).float() if tag(n, tuple(w.shape)).prunable else w.clone()
             for n, w in iter_tensors(tiny_models["gpt2"])}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text((tiny_models["gpt2"] / "config.json").read_text())
    row = prune_model(str(folder), tmp_path / "out", PruneSpec("global_magnitude", 0.55), progress=False)
    pruned = read_state_dict(row["checkpoint"])
    names = [n for n in state if tag(n, tuple(state[n].shape)).prunable]  # checkpoint order = sorted names here
    order = [n for n, _ in iter_tensors(folder) if n in names]
    before = torch.cat([state[n].reshape(-1) for n in order])
    after = torch.cat([pruned[n].reshape(-1) for n in order])
    k = round(0.55 * before.numel())
    expected = before.clone()
    expected[torch.argsort(before.abs(), stable=True)[:k]] = 0  # smallest first, ties in order
    assert torch.equal(after, expected)
    assert int((after == 0).sum()) == k == row["n_zeroed"]


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_nm_groups_are_valid(arch, tiny_models, tmp_path):
    row = prune_model(str(tiny_models[arch]), tmp_path, PruneSpec("nm_magnitude", nm="2:4"), progress=False)
    model = load_pruned(row["checkpoint"])
    dense = load_model(str(tiny_models[arch]))
    checked = 0
    for (name, module), (_, original) in zip(model.named_modules(), dense.named_modules()):
        if is_linear(module) and tag(f"{name}.weight", tuple(module.weight.shape)).prunable:
            w = module.weight if input_dim(module) == 1 else module.weight.t()
            groups = w.reshape(w.shape[0], -1, 4)
            assert int((groups != 0).sum(-1).max()) <= 2
            kept = (w != 0)
            ow = original.weight if input_dim(module) == 1 else original.weight.t()
            # the kept two are the two largest of each group
            top = ow.abs().reshape(w.shape[0], -1, 4).topk(2, dim=-1).values.sum(-1)
            assert torch.allclose((ow.abs() * kept).reshape(w.shape[0], -1, 4).sum(-1), top)
            checked += 1
    assert checked >= 4


def test_wanda_hand_computed():
    layer = torch.nn.Linear(4, 2, bias=False)
    layer.weight.data = torch.tensor([[1.0, -2.0, 3.0, 0.5], [4.0, 1.0, -1.0, 2.0]])
    pruner = Wanda(layer)
    pruner.add_batch(torch.tensor([[1.0, 0.0, 0.0, 2.0], [1.0, 2.0, 0.0, 2.0]]))  # ||X_j|| = sqrt(2), 2, 0, sqrt(8)
    # scores row 0: 1.41, 4, 0, 1.41 ; row 1: 5.66, 2, 0, 5.66 -> the two lowest per row go
    pruner.prune(0.5)
    assert torch.equal(layer.weight.data, torch.tensor([[0.0, -2.0, 0.0, 0.5], [4.0, 0.0, 0.0, 2.0]]))


def test_nm_scores_tie_rule():
    w = torch.ones(1, 4)
    assert torch.equal(nm_prune_scores(w, w, 2, 4, in_dim=1), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


@pytest.mark.slow
def test_sparsegpt_reconstructs_better_than_magnitude():
    """On real calibration inputs of a real layer (MiniLM block 0), at equal sparsity."""
    from sparsescope import model_folder
    from sparsescope.pruning.calibration import block_stacks, calibration_inputs, record_block_calls, run_block
    from sparsescope.pruning.magnitude import prune_smallest
    from sparsescope.pruning.sparsegpt import SparseGPT
    model = load_model("minilm-l6", dtype=torch.float32)
    inputs = calibration_inputs(model, model_folder("minilm-l6"), n_samples=8, seqlen=64)
    _, _, blocks = block_stacks(model)[0]
    hidden, calls = record_block_calls(model, inputs, blocks)
    layer = blocks[0].intermediate.dense
    captured = []
    handle = layer.register_forward_hook(lambda m, args, out: captured.append(args[0].reshape(-1, 384)))
    with torch.no_grad():
        run_block(blocks[0], hidden, calls[0])
    handle.remove()
    x, w = captured[0], layer.weight.data.clone()
    magnitude = prune_smallest(w, w.numel() // 2)
    pruner = SparseGPT(layer)
    pruner.add_batch(x)
    pruner.prune(0.5)
    sparsegpt = layer.weight.data
    assert int((sparsegpt == 0).sum()) == w.numel() // 2
    err = {name: float(((x @ (w - p).t()) ** 2).sum()) for name, p in (("magnitude", magnitude), ("sparsegpt", sparsegpt))}
    assert err["sparsegpt"] < 0.7 * err["magnitude"], err


@pytest.mark.parametrize("arch,method", [("gpt2", "wanda"), ("gpt2", "sparsegpt"), ("t5", "sparsegpt"),
                                         ("whisper", "wanda")])
def test_calibrated_methods_prune_every_stack(arch, method, tiny_models, tmp_path):
    spec = PruneSpec(method, 0.5, n_samples=2, seqlen=32)
    row = prune_model(str(tiny_models[arch]), tmp_path, spec, progress=False)
    per_tensor = pd.read_csv(tmp_path / spec.label / "sparsity_by_tensor.csv")
    assert set(per_tensor["stack"]) == ({"encoder", "decoder"} if arch != "gpt2" else {"decoder"})
    assert (per_tensor["n_zero"] / per_tensor["n"]).between(0.49, 0.52).all()
    assert row["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_compressed_round_trip_is_bit_exact_and_loadable(tiny_models, tmp_path):
    row = prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("layer_magnitude", 0.7), save_format="both",
                      progress=False)
    compressed = read_state_dict(row["checkpoint"])
    dense = read_state_dict(tmp_path / "layer_magnitude-0.7" / "dense")
    assert compressed.keys() == dense.keys()
    for name in dense:
        assert torch.equal(compressed[name].view(torch.int32), dense[name].view(torch.int32)), name
    assert row["saved_bytes"] < row["dense_saved_bytes"]
    exported = export_dense(row["checkpoint"], tmp_path / "exported")
    from transformers import GPT2LMHeadModel
    plain = GPT2LMHeadModel.from_pretrained(exported).eval()
    ours = load_pruned(row["checkpoint"])
    ids = torch.arange(20).reshape(1, -1)
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, ours(ids).logits)
    assert json.loads((tmp_path / "layer_magnitude-0.7" / "compressed" / "config.json").read_text())["sparsescope"][
        "format"] == "sparsescope-sparse"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9, 0.95])
def test_codes_are_exact_and_near_the_entropy_bound(dtype, sparsity):
    torch.manual_seed(0)
    w = torch.randn(512, 768).to(dtype)
    w[torch.rand(w.shape) < sparsity] = 0
    w[0, :3] = -0.0  # negative zeros are kept as values
    values, index, info = encode_sparse(w)
    back = decode_sparse(values, index, info)
    ints = {2: torch.int16, 4: torch.int32}[w.element_size()]
    assert torch.equal(back.view(ints), w.view(ints))
    bits = 8 * (values.numel() * values.element_size() + index.numel())
    assert bits <= 1.10 * entropy_bound_bits(w.numel(), info["nnz"], 8 * w.element_size())


def test_tied_embeddings_are_never_pruned_by_default(tiny_models, tmp_path):
    row = prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("global_magnitude", 0.9), progress=False)
    dense = load_model(str(tiny_models["gpt2"]))
    pruned = load_pruned(row["checkpoint"])
    assert torch.equal(pruned.transformer.wte.weight, dense.transformer.wte.weight)
    assert pruned.lm_head.weight.data_ptr() == pruned.transformer.wte.weight.data_ptr()
    with_embeddings = prune_model(str(tiny_models["gpt2"]), tmp_path / "emb",
                                  PruneSpec("global_magnitude", 0.9, include_embeddings=True), progress=False)
    assert with_embeddings["n_prunable"] > row["n_prunable"]


@pytest.mark.parametrize("spec_args,message", [
    (("global_magnitude", 1.0), "outside"),
    (("global_magnitude", -0.1), "outside"),
    (("magnitude_of_doom", 0.5), "unknown pruning method"),
    (("nm_magnitude", None, "4:2"), "0 < N <= M"),
    (("nm_magnitude", None, "two:four"), "not of the form"),
    (("global_magnitude", 0.5, "2:4"), "unstructured"),
])
def test_bad_specs_are_one_line(spec_args, message):
    with pytest.raises(SparsescopeError, match=message) as err:
        PruneSpec(*spec_args)
    assert "\n" not in str(err.value)


def test_m_not_dividing_the_input_leaves_nothing_complete(tiny_models, tmp_path):
    with pytest.raises(SparsescopeError, match="multiple of M"):
        prune_model(str(tiny_models["bert"]), tmp_path, PruneSpec("nm_magnitude", nm="2:5"), progress=False)
    assert not (tmp_path / "nm_magnitude-2of5").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_calibration_text_too_short(tiny_models, tmp_path):
    with pytest.raises(SparsescopeError, match="too short"):
        prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("wanda", 0.5, seqlen=10 ** 6), progress=False)


def test_folder_of_a_different_run_is_refused(tiny_models, tmp_path):
    prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("global_magnitude", 0.5), progress=False)
    again = prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("global_magnitude", 0.5), progress=False)
    assert again["n_zeroed"] > 0  # a finished run is reused
    with pytest.raises(SparsescopeError, match="different run"):
        prune_model(str(tiny_models["bert"]), tmp_path, PruneSpec("global_magnitude", 0.5), progress=False)
