"""Structured pruning (whole FFN neurons and attention heads): the smaller model's exact shapes and config, that
removing nothing — or only units whose output weights are zero — changes nothing, that the least-squares repair
lowers a layer's error on real text, grouped-query heads, plain-transformers loading, hub layouts and one block
in memory. Expectations come from hand counts and from transformers itself, never from the suite's arithmetic."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import transformers
from safetensors import safe_open

from conftest import TINY_CLASSES, copy_processor_files, snapshot
from sparsescope import SparsescopeError
from sparsescope.pruning.calibration import calibration_inputs
from sparsescope.pruning.repair import OutputRepair
from sparsescope.pruning.runs import PruneSpec, pick_run, prune_model, prune_runs
from sparsescope.sources.registry import load_model, model_folder
from sparsescope.sources.weights import list_tensors
from sparsescope.storage import load_pruned

CAL = dict(n_samples=2, seqlen=32)
# Hand counts of conftest's tiny models (prunable = 2-D weights inside blocks). At share 0.3 every FFN loses
# round(0.3 * prunable / (FFNs * weights per neuron)) neurons:
#   gpt2  3 x (c_attn 32x96 + c_proj 32x32 + c_fc 32x128 + c_proj 128x32) = 36864; 0.3*36864/(3*64) = 57.6 -> 58
#   bert  2 x (4 x 32x32 + 32x64 + 64x32) = 16384;                           0.3*16384/(2*64) = 38.4 -> 38
#   t5    2 x (4 x 32x32 + 3 x 32x64) + 2 x (8 x 32x32 + 3 x 32x64) = 49152;  0.3*49152/(4*96) = 38.4 -> 38
#   whisper 2 x (4 x 32x32 + 2 x 32x64) + 2 x (8 x 32x32 + 2 x 32x64) = 40960; 0.3*40960/(4*64) = 48
#   llama 2 x (32x32 + 2 x 16x32 + 32x32 + 3 x 32x64) = 18432;                0.3*18432/(2*96) = 28.8 -> 29
FFN_AT_30 = {"gpt2": ({"n_inner": 128 - 58}, 58 * 64 * 3, 36864),
             "bert": ({"intermediate_size": 64 - 38}, 38 * 64 * 2, 16384),
             "t5": ({"d_ff": 64 - 38}, 38 * 96 * 4, 49152),
             "whisper": ({"encoder_ffn_dim": 64 - 48, "decoder_ffn_dim": 64 - 48}, 48 * 64 * 4, 40960),
             "llama": ({"intermediate_size": 64 - 29}, 29 * 96 * 2, 18432)}


def row_folder(row) -> Path:
    return Path(row["checkpoint"])


def stored_shapes(folder) -> dict:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}


def same_model_outputs(a, b, ids: torch.Tensor, atol: float = 0.0) -> bool:
    kwargs = {"input_ids": ids}
    if a.config.model_type == "whisper":
        kwargs = {"input_features": torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0)),
                  "decoder_input_ids": ids}
    elif a.config.is_encoder_decoder:
        kwargs["decoder_input_ids"] = ids
    with torch.no_grad():
        x, y = a(**kwargs), b(**kwargs)
    x = x.logits if hasattr(x, "logits") else x.last_hidden_state
    y = y.logits if hasattr(y, "logits") else y.last_hidden_state
    return torch.allclose(x, y, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def ffn_runs(tiny_models, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("structured")
    return {arch: prune_model(str(tiny_models[arch]), root / arch, PruneSpec("ffn_magnitude", 0.3), progress=False)
            for arch in FFN_AT_30}


def tiny_llama(folder, heads: int, kv: int) -> Path:
    """A 2-layer Llama, hidden 48, head_dim 8, FFN 64, with SmolLM2's tokenizer for calibration."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=49152, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=8,
                                      max_position_embeddings=128)
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    copy_processor_files("smollm2-135m", folder)
    return folder


@pytest.fixture(scope="module")
def gqa_llama(tmp_path_factory):
    """Grouped-query attention as SmolLM2 has it (3 query heads per KV head): 6 heads, 2 KV heads."""
    return tiny_llama(tmp_path_factory.mktemp("gqa") / "llama", 6, 2)


# ------------------------------------------------------------------------------------------ shapes and config
@pytest.mark.parametrize("arch", list(FFN_AT_30))
def test_smaller_model_has_exact_shapes_and_config(arch, tiny_models, ffn_runs):
    fields, removed, prunable = FFN_AT_30[arch]
    row = ffn_runs[arch]
    folder = tiny_models[arch]
    written = json.loads((row_folder(row) / "config.json").read_text())
    assert {k: written[k] for k in fields} == fields
    assert written["sparsescope"]["method"] == "ffn_magnitude"
    # every stored tensor has the shape transformers gives the smaller config
    expected_config = transformers.AutoConfig.from_pretrained(folder)
    for k, v in fields.items():
        setattr(expected_config, k, v)
    expected = getattr(transformers, TINY_CLASSES[arch])(expected_config).state_dict()
    shapes = stored_shapes(row_folder(row))
    assert shapes == {name: tuple(expected[name].shape) for name in shapes}
    assert set(stored_shapes(folder)) == set(shapes)  # the source's names, no tensor lost or added
    assert (row["kind"], row["n_prunable"], row["n_zeroed"]) == ("structured", prunable, removed)
    assert row["achieved_sparsity"] == pytest.approx(removed / prunable)


def test_plain_transformers_opens_every_smaller_model(ffn_runs, tmp_path):
    """A separate process that never imports sparsescope opens each checkpoint with from_pretrained, with nothing
    missing, unexpected or mismatched; its outputs equal sparsescope's load_pruned."""
    jobs = {arch: (TINY_CLASSES[arch], str(row_folder(row))) for arch, row in ffn_runs.items()}
    script = f"""
import json, sys, torch, transformers
jobs = {jobs!r}
report = {{}}
for arch, (cls, path) in jobs.items():
    model, info = getattr(transformers, cls).from_pretrained(path, output_loading_info=True)
    report[arch] = {{k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs"}}
    torch.save(model.state_dict(), {str(tmp_path)!r} + f"/{{arch}}.pt")
assert not any(m.startswith("sparsescope") for m in sys.modules)
print(json.dumps(report))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for arch, row in ffn_runs.items():
        assert all(not keys for keys in report[arch].values()), (arch, report[arch])
        plain = getattr(transformers, TINY_CLASSES[arch])(transformers.AutoConfig.from_pretrained(row_folder(row)))
        plain.load_state_dict(torch.load(tmp_path / f"{arch}.pt"))
        assert same_model_outputs(plain.eval(), load_pruned(row_folder(row)), torch.arange(1, 13).reshape(1, 12))


# ------------------------------------------------------------------------------------- nothing that matters goes
@pytest.mark.parametrize("arch,method", [("gpt2", "ffn_activation"), ("t5", "ffn_activation"),
                                         ("bert", "ffn_magnitude"), ("llama", "heads")])
def test_a_structured_run_at_zero_equals_the_dense_model(arch, method, tiny_models, gqa_llama, tmp_path):
    folder = gqa_llama if arch == "llama" else tiny_models[arch]
    options = CAL if method != "ffn_magnitude" else {}
    row = prune_model(str(folder), tmp_path, PruneSpec(method, 0.0, **options), progress=False)
    dense, pruned = load_model(str(folder)), load_pruned(row["checkpoint"])
    for name, w in dense.state_dict().items():
        assert torch.equal(pruned.state_dict()[name], w), name
    assert same_model_outputs(dense, pruned, torch.arange(1, 13).reshape(1, 12))
    assert row["n_zeroed"] == 0


def test_removing_neurons_whose_output_weights_are_zero_changes_nothing(tiny_models, tmp_path):
    """Ten neurons per FFN read out by all-zero weights are the ones ffn_activation removes, and the smaller model
    computes what the model did (the repair has nothing to move: the removed columns are zero)."""
    source = tmp_path / "gpt2"
    model = load_model(str(tiny_models["gpt2"]))
    dead = [3, 17, 29, 40, 51, 66, 77, 90, 101, 120]
    for block in model.transformer.h:
        block.mlp.c_proj.weight.data[dead] = 0  # Conv1D stores [inputs, outputs]: row j reads neuron j
    model.save_pretrained(source)
    copy_processor_files("smollm2-135m", source)
    share = 10 * 3 * 64 / 36864  # ten neurons of 2 x 32 weights in each of 3 FFNs
    row = prune_model(str(source), tmp_path / "out", PruneSpec("ffn_activation", share, **CAL), progress=False)
    pruned = load_pruned(row["checkpoint"])
    assert pruned.config.n_inner == 118
    alive = [j for j in range(128) if j not in dead]
    for before, after in zip(model.transformer.h, pruned.transformer.h):
        assert torch.equal(after.mlp.c_fc.weight, before.mlp.c_fc.weight[:, alive])
    assert same_model_outputs(model, pruned, torch.arange(1, 25).reshape(2, 12), atol=1e-5)


# Which heads are read out by zero o_proj columns, and what must remain. Grouped (6 query heads, 2 KV heads): one
# query head per group goes, both KV heads stay: 2 groups x 2 layers x (q rows 8x48 + o columns 48x8) = 3072 of
# 2 x (48x48 + 2 x 16x48 + 48x48 + 3 x 48x64) = 30720. Ungrouped (4 heads, 4 KV heads): one head per layer goes
# with its key and value rows: 2 layers x (3 x 8x48 + 48x8) = 3072 of 2 x (4 x 32x48 + 3 x 48x64) = 30720.
HEAD_CASES = {"grouped": dict(heads=6, kv=2, zero=(1, 4), kept=(0, 2, 3, 5), share=3072 / 30720, config=(4, 2)),
              "ungrouped": dict(heads=4, kv=4, zero=(2,), kept=(0, 1, 3), share=3072 / 30720, config=(3, 3))}


@pytest.mark.parametrize("case", HEAD_CASES)
def test_heads_keep_query_and_kv_heads_consistent(case, tmp_path):
    """The heads read out by zero columns of o_proj are exactly the ones removed; grouped-query attention keeps
    every KV head and the same number of query heads per group, ungrouped attention loses the key and value rows
    of a removed head; plain transformers opens the result, which computes what the model did."""
    c = HEAD_CASES[case]
    source = tiny_llama(tmp_path / "llama", c["heads"], c["kv"])
    model = load_model(str(source))
    for layer in model.model.layers:
        for head in c["zero"]:
            layer.self_attn.o_proj.weight.data[:, head * 8:(head + 1) * 8] = 0
    model.save_pretrained(source)
    row = prune_model(str(source), tmp_path / "out", PruneSpec("heads", c["share"], **CAL), progress=False)
    config = json.loads((row_folder(row) / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (*c["config"], 8)
    pruned = transformers.LlamaForCausalLM.from_pretrained(row_folder(row)).eval()  # plain transformers
    rows = torch.cat([torch.arange(h * 8, (h + 1) * 8) for h in c["kept"]])
    kv_rows = rows if case == "ungrouped" else torch.arange(c["kv"] * 8)
    for before, after in zip(model.model.layers, pruned.model.layers):
        assert torch.equal(after.self_attn.q_proj.weight, before.self_attn.q_proj.weight[rows])
        assert torch.equal(after.self_attn.k_proj.weight, before.self_attn.k_proj.weight[kv_rows])
        assert torch.equal(after.self_attn.v_proj.weight, before.self_attn.v_proj.weight[kv_rows])
        assert torch.equal(after.self_attn.o_proj.weight, before.self_attn.o_proj.weight[:, rows])
        assert after.self_attn.num_key_value_groups == c["config"][0] // c["config"][1]
    assert same_model_outputs(model, pruned, torch.arange(1, 25).reshape(2, 12), atol=1e-5)


# ------------------------------------------------------------------------------------------------- the repair
def layer_inputs(model, layer, inputs) -> torch.Tensor:
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().reshape(-1, args[0].shape[-1])))
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    return torch.cat(seen)


@pytest.mark.parametrize("which", ["minilm", "llama"])
def test_repair_lowers_the_layers_error_on_held_out_text(which, gqa_llama):
    """Half the FFN neurons of a block go; refit on calibration text, the output projection reproduces its dense
    outputs on other text better than the same layer with those columns simply removed. MiniLM's real weights
    exercise the bias compensation; the Llama's down_proj has no bias."""
    folder = model_folder("minilm-l6") if which == "minilm" else gqa_llama
    model = load_model(str(folder))
    layer = model.encoder.layer[0].output.dense if which == "minilm" else model.model.layers[0].mlp.down_proj
    fit = layer_inputs(model, layer, calibration_inputs(model, folder, 8, 64, seed=0))
    held = layer_inputs(model, layer, calibration_inputs(model, folder, 8, 64, seed=1))
    reference = layer(held).detach()
    columns = layer.weight.shape[1]
    kept = torch.randperm(columns, generator=torch.Generator().manual_seed(0))[:columns // 2].sort().values

    cut = torch.nn.Linear(columns, layer.weight.shape[0], bias=layer.bias is not None)
    cut.load_state_dict(layer.state_dict())
    removed = torch.ones(columns, dtype=torch.bool)
    removed[kept] = False
    cut.weight.data[:, removed] = 0                         # no repair, written out by hand
    repaired = torch.nn.Linear(columns, layer.weight.shape[0], bias=layer.bias is not None)
    repaired.load_state_dict(layer.state_dict())
    pruner = OutputRepair(repaired)
    pruner.add_batch(fit)
    pruner.remove(kept, repair=True)
    assert torch.equal(repaired.weight[:, removed], torch.zeros_like(repaired.weight[:, removed]))

    def error(m):
        return float(((m(held).detach() - reference) ** 2).sum())
    # real weights have correlated inputs the refit uses; a random model's are nearly independent
    assert error(repaired) < {"minilm": 0.8, "llama": 1.0}[which] * error(cut)


# ------------------------------------------------------------------------------- hub layouts, one block in memory
REPOS = {"gpt2-xl": ("openai-community/gpt2-xl", "GPT2LMHeadModel"),
         "bert-large": ("google-bert/bert-large-uncased", "BertForMaskedLM"),
         "t5-v1_1-xl": ("google/t5-v1_1-xl", "T5ForConditionalGeneration")}


@pytest.mark.parametrize("name", REPOS)
def test_hub_layouts_keep_their_names_and_open_plainly(name, seed_hub, tmp_path):
    """The seed repos' files (bare GPT-2 names with mask buffers, BERT gamma/beta, a T5 pickle with aliased
    embeddings): the smaller checkpoint keeps the stored names, and from_pretrained reports for it exactly what it
    reports for its source."""
    repo, cls = REPOS[name]
    source = snapshot(seed_hub, repo)
    row = prune_model(str(source), tmp_path, PruneSpec("ffn_magnitude", 0.3), progress=False)
    assert [n for n, _, _ in list_tensors(row_folder(row))] == [n for n, _, _ in list_tensors(source)]
    load = getattr(transformers, cls).from_pretrained
    _, source_info = load(source, output_loading_info=True)
    model, info = load(row_folder(row), output_loading_info=True)
    assert {k: sorted(v) for k, v in info.items() if k != "error_msgs"} == \
        {k: sorted(v) for k, v in source_info.items() if k != "error_msgs"}
    assert same_model_outputs(model.eval(), load_pruned(row_folder(row)), torch.arange(1, 13).reshape(1, 12))


def test_calibration_holds_one_block_at_a_time(seed_hub, tmp_path, blocks_in_memory):
    """While ffn_activation calibrates T5 (encoder, then decoder on the pruned encoder), the weights of at most one
    transformer block are ever materialised."""
    from conftest import HAVE_SPM
    if not HAVE_SPM:
        pytest.fail("sentencepiece/protobuf are missing: `make setup` installs them (T5's tokenizer needs them)")
    seen = blocks_in_memory
    source = snapshot(seed_hub, "google/t5-v1_1-xl")
    row = prune_model(str(source), tmp_path, PruneSpec("ffn_activation", 0.3, **CAL), progress=False)
    assert seen and max(seen) == 1
    assert json.loads((row_folder(row) / "config.json").read_text())["d_ff"] < json.loads(
        (source / "config.json").read_text())["d_ff"]


# ------------------------------------------------------------------------------------ bad inputs, tables, runtime
def test_bad_inputs_are_one_line(tiny_models, gqa_llama, tmp_path):
    cases = [(lambda: PruneSpec("ffn_activation", nm="2:4"), "drop nm"),
             (lambda: PruneSpec("heads", 0.1, include_embeddings=True), "include_embeddings"),
             (lambda: prune_model(str(tiny_models["gpt2"]), tmp_path, PruneSpec("heads", 0.1, **CAL),
                                  progress=False), "head size = hidden size / number of heads"),
             (lambda: prune_model(str(tiny_models["t5"]), tmp_path, PruneSpec("heads", 0.1, **CAL),
                                  progress=False), "relative_attention_bias.weight changes shape too"),
             # at most one query head of three per group can go: 2 x 2 x 2 x 768 / 30720 = 20% at most
             (lambda: prune_model(str(gqa_llama), tmp_path, PruneSpec("heads", 0.3, **CAL), progress=False),
              "at most 20.0%")]
    for make, words in cases:
        with pytest.raises(SparsescopeError, match=words) as err:
            make()
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_tables_quality_and_runtime_take_structured_runs(tiny_models, tmp_path):
    from sparsescope.evaluation.quality import Budget, evaluate_checkpoints
    from sparsescope.evaluation.runtime import runtime_results
    model = str(tiny_models["gpt2"])
    specs = [PruneSpec("global_magnitude", 0.3), PruneSpec("ffn_magnitude", 0.3)]
    table = prune_runs(model, tmp_path / "pruning", specs, progress=False)
    table = pd.read_csv(tmp_path / "pruning" / "pruning.csv", keep_default_na=False)
    assert list(table["kind"]) == ["unstructured", "structured"]
    assert pick_run(table, None, 0.3)["method"] == "global_magnitude"  # structured runs are not sparse ones
    quality = evaluate_checkpoints(model, tmp_path / "pruning", tmp_path / "bench", Budget(n_tokens=128, window=64),
                                   progress=False)
    assert set(quality["method"]) == {"dense", "global_magnitude", "ffn_magnitude"}
    runtime = runtime_results(model, tmp_path / "pruning", tmp_path / "bench", batch_sizes=[1, 2], seqlen=16,
                              sparsities=[0.5], tokens=[4], repeats=1, decode_tokens=3)
    rows = runtime[runtime["kind"].str.startswith("structured")]
    assert sorted(zip(rows["kind"], rows["batch"])) == [("structured-decode", 1), ("structured-prefill", 1),
                                                        ("structured-prefill", 2)]
    assert set(rows["run"]) == set(rows["shape_or_model"]) == {"ffn_magnitude-0.3"}
    assert (rows["bytes"] < rows["dense_bytes"]).all()
