"""Pruning methods, their exactness, the compressed format and the bad inputs."""
import json

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from conftest import linear_weights_in_blocks
from sparsescope import SparsescopeError
from sparsescope.sources.anatomy import input_dim, is_linear
from sparsescope.pruning.magnitude import nm_prune_scores
from sparsescope.pruning.runs import PruneSpec, prune_model, seed_global_magnitude
from sparsescope.sources.registry import load_model
from sparsescope.storage import (decode_sparse, encode_sparse, export_dense, load_pruned,
                                 read_state_dict)
from sparsescope.pruning.wanda import Wanda
from sparsescope.sources.layouts import stored_tagger
from sparsescope.sources.weights import iter_tensors


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
    tag = stored_tagger(tiny_models["gpt2"])
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
    in_blocks = linear_weights_in_blocks(dense)
    for (name, module), (_, original) in zip(model.named_modules(), dense.named_modules()):
        if is_linear(module) and f"{name}.weight" in in_blocks:
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
    from sparsescope.pruning.calibration import block_stacks, calibration_inputs
    from sparsescope.pruning.magnitude import prune_smallest
    from sparsescope.pruning.sparsegpt import SparseGPT
    model = load_model("minilm-l6", dtype=torch.float32)
    inputs = calibration_inputs(model, model_folder("minilm-l6"), n_samples=8, seqlen=64)
    _, _, blocks = block_stacks(model)[0]
    layer = blocks[0].intermediate.dense
    captured = []
    handle = layer.register_forward_hook(lambda m, args, out: captured.append(args[0].reshape(-1, 384)))
    with torch.no_grad():
        model(**inputs)
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


@pytest.mark.parametrize("spec,coding", [(PruneSpec("layer_magnitude", 0.7), {"bitmask", "rice"}),
                                         (PruneSpec("nm_magnitude", nm="2:4"), {"nm"})])
def test_compressed_round_trip_is_bit_exact_and_loadable(spec, coding, tiny_models, tmp_path):
    from safetensors import safe_open
    row = prune_model(str(tiny_models["gpt2"]), tmp_path, spec, save_format="both", progress=False)
    compressed = read_state_dict(row["checkpoint"])
    dense = read_state_dict(tmp_path / spec.label / "dense")
    assert compressed.keys() == dense.keys()
    for name in dense:
        assert torch.equal(compressed[name].view(torch.int32), dense[name].view(torch.int32)), name
    assert row["saved_bytes"] < row["dense_saved_bytes"]
    with safe_open(f"{row['checkpoint']}/model.safetensors", "pt") as f:
        header = json.loads(f.metadata()["sparsescope"])
    assert {info["coding"] for info in header["tensors"].values()} <= coding  # 2:4 GPT-2 Conv1D: "nm"
    exported = export_dense(row["checkpoint"], tmp_path / "exported")
    from transformers import GPT2LMHeadModel
    plain = GPT2LMHeadModel.from_pretrained(exported).eval()
    ours = load_pruned(row["checkpoint"])
    assert type(ours) is GPT2LMHeadModel
    ids = torch.arange(20).reshape(1, -1)
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, ours(ids).logits)
    config = json.loads((tmp_path / spec.label / "compressed" / "config.json").read_text())["sparsescope"]
    assert config["format"] == "sparsescope-sparse" and config["version"] == 2
    # what the README says: plain from_pretrained cannot read the compressed matrices (it reports them missing
    # and initialises them anew), so other tools need export_dense
    _, loading = GPT2LMHeadModel.from_pretrained(row["checkpoint"], output_loading_info=True)
    assert set(header["tensors"]) <= set(loading["missing_keys"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9, 0.95])
def test_codes_are_exact_and_near_the_entropy_bound(dtype, sparsity):
    """The index alone against the mask entropy n·H(s), at the README's figure (1.025x), not looser."""
    import math
    torch.manual_seed(0)
    w = torch.randn(512, 768).to(dtype)
    w[torch.rand(w.shape) < sparsity] = 0
    w[0, :3] = -0.0  # negative zeros are kept as values
    values, index, info = encode_sparse(w)
    back = decode_sparse(values, index, info)
    ints = {2: torch.int16, 4: torch.int32}[w.element_size()]
    assert torch.equal(back.view(ints), w.view(ints))
    kept = int((w.view(ints) != 0).sum())            # bit pattern not +0.0: -0.0 counts as kept
    assert values.numel() == kept
    p = kept / w.numel()
    mask_entropy = -w.numel() * (p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert 8 * index.numel() <= 1.025 * mask_entropy


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


# ------------------------------------------------------- Wanda and SparseGPT against independent expectations
def test_wanda_and_magnitude_choose_different_weights():
    """Wanda keeps a small weight on a loud input over a large one on a quiet input; magnitude does not."""
    w = torch.tensor([[1.0, 2.0, 3.0, 5.0], [0.5, 3.0, -2.0, 7.0]])
    x = torch.tensor([[4.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.5]])  # ||X_j||_2 = 4, 1, 2, 0.5
    # |W| * ||X_j||: row 0 -> 4, 2, 6, 2.5 (drop inputs 1, 3); row 1 -> 2, 3, 4, 3.5 (drop inputs 0, 1)
    wanda = torch.tensor([[1.0, 0.0, 3.0, 0.0], [0.0, 0.0, -2.0, 7.0]])
    magnitude = torch.tensor([[0.0, 0.0, 3.0, 5.0], [0.0, 3.0, 0.0, 7.0]])  # the two smallest |w| per row
    for nm in ((0, 0), (2, 4)):                                   # 50% per row, and 2:4 (one group per row)
        layer = torch.nn.Linear(4, 2, bias=False)
        layer.weight.data = w.clone()
        pruner = Wanda(layer)
        pruner.add_batch(x)
        pruner.prune(0.5, *nm)
        assert torch.equal(layer.weight.data, wanda), nm
        assert not torch.equal(layer.weight.data, magnitude)


def obs_reference(w: torch.Tensor, x: torch.Tensor, sparsity: float = 0.5, n: int = 0, m: int = 0,
                  damp: float = 0.01) -> torch.Tensor:
    """SparseGPT re-derived with plain dense algebra in float64, one column at a time, no Cholesky and no
    blocks. H = 2 XᵀX / n_samples, dead inputs (H_jj = 0) set to H_jj = 1 with their weights zeroed, then
    damped by damp * mean(diag H). Once columns < j are fixed, the free columns F = j.. have Hessian
    H[F, F]; with Hinv = inv(H[F, F]), OBS sets w_j to q_j (0 or kept) and corrects the free weights by
    -(w_j - q_j) Hinv[0, :] / Hinv[0, 0]. The saliency of w_j is w_j² / Hinv[0, 0] (the algorithm's
    w² / [Cholesky diagonal]²): unstructured, the round(sparsity * size) least salient weights of the
    weights as given; N:M, at each group's first column, the M - N least salient of its M per row."""
    w, x = w.double().clone(), x.double()
    cols = w.shape[1]
    h = 2 * x.t() @ x / x.shape[0]
    dead = torch.diag(h) == 0
    for j in torch.nonzero(dead).flatten().tolist():
        h[j, j] = 1.0
    w[:, dead] = 0
    h = h + damp * torch.diag(h).mean() * torch.eye(cols, dtype=torch.float64)
    inv_diag = torch.stack([torch.linalg.inv(h[j:, j:])[0, 0] for j in range(cols)])
    mask = torch.zeros_like(w, dtype=torch.bool)
    if n == 0:
        k = round(w.numel() * sparsity)
        mask.view(-1)[torch.argsort((w ** 2 / inv_diag).reshape(-1))[:k]] = True
    for j in range(cols):
        if n and j % m == 0:
            weakest = torch.argsort(w[:, j:j + m] ** 2 / inv_diag[j:j + m], dim=1)[:, : m - n]
            mask[:, j:j + m] = mask[:, j:j + m].scatter(1, weakest, True)
        hinv = torch.linalg.inv(h[j:, j:])
        q = w[:, j].masked_fill(mask[:, j], 0.0)
        w[:, j:] -= ((w[:, j] - q) / hinv[0, 0]).unsqueeze(1) * hinv[0].unsqueeze(0)
        w[:, j] = q                                               # what the update leaves, up to rounding
    return w


@pytest.mark.parametrize("nm,block_size,dead", [((0, 0), 128, False), ((0, 0), 128, True), ((2, 4), 128, False),
                                                ((2, 4), 4, False), ((2, 8), 12, False)])
def test_sparsegpt_equals_the_dense_obs_derivation(nm, block_size, dead):
    """8 x 16 weights. Unstructured in one block (its mask is chosen per block); N:M also over several blocks
    (the lazy batch update changes nothing), a block size that is no multiple of M included."""
    from sparsescope.pruning.sparsegpt import SparseGPT
    g = torch.Generator().manual_seed(4)
    w = torch.randn(8, 16, generator=g)
    x = torch.randn(96, 16, generator=g) * torch.linspace(0.2, 3.0, 16)  # inputs of different loudness
    if dead:
        x[:, 5] = 0.0                                             # an input never active
    layer = torch.nn.Linear(16, 8, bias=False)
    layer.weight.data = w.clone()
    pruner = SparseGPT(layer)
    pruner.add_batch(x[:40])                                      # two batches: H is their running mean
    pruner.add_batch(x[40:])
    pruner.prune(0.5, *nm, block_size=block_size)
    expected = obs_reference(w, x, 0.5, *nm)
    got = layer.weight.data
    assert torch.equal(got == 0, expected == 0)                   # the same weights pruned
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    assert int((got == 0).sum()) == (128 * (nm[1] - nm[0]) // nm[1] if nm[0] else 64)  # 2:8 prunes 6 of 8


def test_sparsegpt_nm_needs_whole_groups_one_line(tiny_models, tmp_path):
    from sparsescope.pruning.sparsegpt import SparseGPT
    layer = torch.nn.Linear(10, 4, bias=False)
    pruner = SparseGPT(layer)
    pruner.add_batch(torch.randn(32, 10))
    with pytest.raises(SparsescopeError, match=r"M=4 needs the input dimension \(10\)") as err:
        pruner.prune(0.0, 2, 4)
    assert "\n" not in str(err.value)
    with pytest.raises(SparsescopeError, match="multiple of M"):   # a whole run: nothing left complete
        prune_model(str(tiny_models["bert"]), tmp_path, PruneSpec("sparsegpt", nm="2:5", n_samples=2, seqlen=32),
                    progress=False)
    assert not list(tmp_path.glob("sparsegpt*")) and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("arch,method", [("gpt2", "wanda"), ("gpt2", "sparsegpt"), ("whisper", "sparsegpt")])
def test_calibrated_nm_runs_are_valid_nm(arch, method, tiny_models, tmp_path):
    """Every group of 4 consecutive inputs of every pruned matrix of a real run holds at most 2 nonzeros."""
    spec = PruneSpec(method, nm="2:4", n_samples=2, seqlen=32)
    row = prune_model(str(tiny_models[arch]), tmp_path, spec, progress=False)
    names = pd.read_csv(tmp_path / spec.label / "sparsity_by_tensor.csv")["name"]
    modules = dict(load_pruned(row["checkpoint"]).named_modules())
    for name in names:
        module = modules[name.removesuffix(".weight")]
        w = module.weight if input_dim(module) == 1 else module.weight.t()  # (outputs, inputs)
        nonzeros = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        assert int(nonzeros.max()) <= 2, name
    assert len(names) >= 6 and row["achieved_sparsity"] >= 0.5


def test_nm_methods_narrow_which_methods_get_the_nm_run():
    from sparsescope.pruning.runs import plan_runs
    from sparsescope.run import parse_knobs
    every = [s.label for s in plan_runs(["global_magnitude", "nm_magnitude", "wanda"], [0.5], "2:4")]
    assert every == ["global_magnitude-0.5", "nm_magnitude-2of4", "wanda-0.5", "wanda-2of4"]
    narrowed = [s.label for s in plan_runs(["global_magnitude", "nm_magnitude", "wanda"], [0.5], "2:4",
                                           ["nm_magnitude"])]
    assert narrowed == ["global_magnitude-0.5", "nm_magnitude-2of4", "wanda-0.5"]
    assert parse_knobs({"nm_methods": "nm_magnitude wanda"}) == {"nm_methods": ["nm_magnitude", "wanda"]}
    with pytest.raises(SparsescopeError, match="NM_METHODS.*'global_magnitude' has no N:M run"):
        parse_knobs({"nm_methods": "global_magnitude"})


def test_whisper_decoder_calibrates_on_as_many_rows_as_its_widest_layer_has_inputs(tmp_path):
    """Whisper's transcripts are cut to the shortest, so 2 clips give its decoder ~120 rows: fewer than the
    512 inputs of this decoder's fc2, whose SparseGPT Hessian would be singular. Counted by an independent
    hook on that layer, the calibration forward feeds it at least 512 rows, and pruning.csv says so."""
    import transformers
    from conftest import copy_processor_files
    from sparsescope.pruning.calibration import calibration_inputs
    folder = tmp_path / "whisper-wide-ffn"
    torch.manual_seed(0)
    transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(
        vocab_size=51864, d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=512, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=50257,
        pad_token_id=50256, eos_token_id=50256, bos_token_id=50256)).save_pretrained(folder)
    copy_processor_files("whisper-tiny-en", folder)
    model = load_model(str(folder))
    inputs = calibration_inputs(model, folder, n_samples=2, seqlen=128)
    widest = model.model.decoder.layers[1].fc2
    seen = []
    handle = widest.register_forward_hook(lambda m, a, out: seen.append(a[0].reshape(-1, a[0].shape[-1]).shape[0]))
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    assert widest.in_features == 512 and sum(seen) >= 512
    assert inputs["input_features"].shape[0] > 2                 # clips added beyond n_samples to get there
    row = prune_model(str(folder), tmp_path / "pruned", PruneSpec("sparsegpt", 0.5, n_samples=2), progress=False)
    assert row["calibration_rows"] == sum(seen)                  # the decoder's layers saw the fewest rows
    assert row["n_samples"] == inputs["input_features"].shape[0]
    assert row["calibration_tokens"] == inputs["decoder_input_ids"].numel() and row["calibration_note"] == ""
    table = pd.read_csv(tmp_path / "pruned" / "pruning.csv") if (tmp_path / "pruned" / "pruning.csv").exists() else None
    assert table is None or "calibration_rows" in table
