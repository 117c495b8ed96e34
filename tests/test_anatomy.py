"""Any transformer: thirteen architectures the suite never names (conftest.ANY), each read from the model itself
and taken through analysis, every pruning method, load_pruned, plain from_pretrained of the structured
checkpoints and evaluation; legacy stored names read by transformers' own rules. Expectations come from the
modules (conftest.linear_weights_in_blocks: Linear/Conv1D weights inside a ModuleList), from each
architecture's documented config field for its FFN width, written here by hand, and from transformers'
from_pretrained — never from the suite's anatomy."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest import ANY, ANY_DTYPE, build_any, copy_processor_files, linear_weights_in_blocks
from sparsescope import SparsescopeError
from sparsescope.artifacts import results_path
from sparsescope.analysis.statistics import analyze_folder
from sparsescope.evaluation.quality import Budget, QualityEvaluator, evaluate_checkpoints
from sparsescope.pruning.runs import PruneSpec, applicable_runs, plan_runs, prune_model, prune_runs, read_skipped
from sparsescope.sources.anatomy import ROLES, Anatomy
from sparsescope.sources.layouts import checkpoint_layout, stored_tagger
from sparsescope.sources.registry import auto_class, load_model
from sparsescope.sources.weights import list_tensors
from sparsescope.storage import StoredTensors, export_dense, load_pruned

# each architecture's FFN width, as its config documents it (stack -> field)
FFN_FIELD = {"opt": {"decoder": "ffn_dim"}, "roberta": {"encoder": "intermediate_size"},
             "distilbert": {"encoder": "hidden_dim"}, "electra": {"encoder": "intermediate_size"},
             "bart": {"encoder": "encoder_ffn_dim", "decoder": "decoder_ffn_dim"},
             "t5-relu": {"encoder": "d_ff", "decoder": "d_ff"}, "gpt-neox": {"decoder": "intermediate_size"},
             "gptj": {"decoder": "n_inner"}, "falcon": {"decoder": "ffn_hidden_size"},
             "qwen2": {"decoder": "intermediate_size"}, "mistral": {"decoder": "intermediate_size"},
             "phi3": {"decoder": "intermediate_size"}, "gemma": {"decoder": "intermediate_size"}}
FFN_WIDTH = {"gptj": 4 * 32, "falcon": 4 * 32}  # n_inner / ffn_hidden_size None: 4 x hidden
# attention whose head size the config can hold (an explicit head_dim the model reads), separate q/k/v
HEADS = {"qwen2", "mistral", "gemma"}
ARCHS = list(ANY)


def width_of(arch: str, stack: str) -> int:
    return FFN_WIDTH.get(arch) or ANY[arch][2][FFN_FIELD[arch][stack]]


def model_inputs(model, n: int = 12) -> dict:
    ids = torch.randint(5, 1000, (1, n), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, **({"decoder_input_ids": ids[:, :6]} if model.config.is_encoder_decoder else {})}


def finite_outputs(model) -> bool:
    with torch.no_grad():
        out = model(**model_inputs(model))
    return bool(torch.isfinite(out.logits.float()).all())


@pytest.mark.parametrize("arch", ARCHS)
def test_anatomy_is_read_from_the_modules(arch):
    model = build_any(arch)
    anatomy = Anatomy(model)
    assert set(anatomy.matrices) == linear_weights_in_blocks(model)
    assert anatomy.ffn.fields == FFN_FIELD[arch], anatomy.ffn.refusal
    blocks = {m.block_path for m in anatomy.matrices.values()}
    assert {u.block for u in anatomy.ffn.units} == blocks
    for unit in anatomy.ffn.units:
        down = model.get_submodule(unit.output)
        assert unit.n == width_of(arch, unit.stack) == down.in_features
        for path, parts in unit.inputs:  # each row of a fused gate_up counts once per part
            assert model.get_submodule(path).out_features == parts * unit.n
    roles = [m.role for m in anatomy.matrices.values()]
    assert set(roles) <= set(ROLES), "every matrix of these architectures has a named role"
    assert roles.count("down") == len(blocks)
    assert ("gate_up" in roles) == (arch == "phi3") and ("qkv" in roles) == (arch in ("gpt-neox", "falcon", "phi3"))
    assert bool(anatomy.heads.units) == (arch in HEADS), anatomy.heads.refusal
    if arch in HEADS:
        kv = ANY[arch][2]["num_key_value_heads"]
        assert {u.groups for u in anatomy.heads.units} == {kv}
        assert all(len(u.inputs) == 1 and u.inputs[0][0].endswith("q_proj") for u in anatomy.heads.units)


@pytest.mark.parametrize("arch", ARCHS)
def test_stored_tensors_are_tagged_as_the_modules_say(arch, any_models):
    folder = any_models[arch]
    stored = {name: shape for name, _, shape in list_tensors(folder)}
    tag = stored_tagger(folder)
    dense = load_model(str(folder))
    expected = linear_weights_in_blocks(dense) & set(stored)
    assert {n for n, shape in stored.items() if tag(n, shape).prunable} == expected
    stats = analyze_folder(folder, progress=False)
    assert stats.groups["prunable"].n == sum(math.prod(stored[n]) for n in expected)


def plan(arch: str) -> list[PruneSpec]:
    """Every method: the default grid at 50% (Wanda and SparseGPT also 2:4), ffn_activation and ffn_magnitude
    at 30%, heads where the config can hold fewer."""
    specs = plan_runs(None, [0.5], "2:4", structured_sparsities=[0.3], n_samples=2, seqlen=32)
    specs.append(PruneSpec("ffn_magnitude", 0.3))
    if arch in HEADS:
        specs.append(PruneSpec("heads", 0.1, n_samples=2, seqlen=32))
    return specs


@pytest.mark.parametrize("arch", ARCHS)
def test_every_method_loads_back_and_evaluates(arch, any_models, tmp_path):
    folder = any_models[arch]
    dense = load_model(str(folder))
    table = prune_runs(str(folder), tmp_path / "pruning", plan(arch), progress=False)
    assert len(table) == len(plan(arch)) and read_skipped(tmp_path / "pruning").empty
    for row in table.itertuples():
        if row.kind == "structured":
            # plain transformers opens the smaller model: narrower FFN (or fewer heads), finite outputs
            config = transformers.AutoConfig.from_pretrained(row.checkpoint)
            smaller = auto_class(config).from_pretrained(row.checkpoint)
            assert type(smaller) is type(dense) and finite_outputs(smaller)
            if row.method == "heads":
                assert config.num_attention_heads < dense.config.num_attention_heads
            else:
                for field in set(FFN_FIELD[arch].values()):
                    assert getattr(config, field) < (getattr(dense.config, field) or FFN_WIDTH[arch])
            assert sum(p.numel() for p in smaller.parameters()) < sum(p.numel() for p in dense.parameters())
        else:
            pruned = load_pruned(row.checkpoint)
            assert type(pruned) is type(dense) and finite_outputs(pruned)
            assert abs(row.achieved_sparsity - 0.5) < 0.01
            if arch in ANY_DTYPE:
                assert next(pruned.parameters()).dtype == ANY_DTYPE[arch]
    quality = evaluate_checkpoints(str(folder), tmp_path / "pruning", tmp_path / "quality",
                                   Budget(n_tokens=64, window=32), progress=False)
    assert (quality["method"] == "dense").any()
    assert set(quality["method"]) >= set(table["method"])
    evaluator = QualityEvaluator(load_model(str(folder), dtype=torch.float32), folder, Budget(n_tokens=64, window=32))
    kl = [r["value"] for r in evaluator.evaluate(load_model(str(folder), dtype=torch.float32))
          if r["metric"] == "kl_from_dense"]
    assert kl and abs(kl[0]) < 1e-6, "the dense model is its own reference"


def test_a_structured_method_that_cannot_apply_refuses_when_named_and_is_skipped_by_default(any_models, tmp_path):
    opt = str(any_models["opt"])
    with pytest.raises(SparsescopeError, match=r"heads-0\.1 cannot apply: heads: OPTForCausalLM builds its "
                                               r"attention with head size = hidden size / number of heads"):
        applicable_runs(opt, [PruneSpec("global_magnitude", 0.5), PruneSpec("heads", 0.1)])
    # 90% of the prunable weights cannot go through the FFN: it holds 2 x 32 x 128 of each block's 12288 and
    # keeps one neuron of 128, so 127/128 x 2/3 = 66.1% at most: skipped in the default grid
    specs = plan_runs(None, [0.5], None, structured_sparsities=[0.3, 0.9], n_samples=2, seqlen=32)
    kept, skipped = applicable_runs(opt, specs, skip=True)
    assert [s.label for s in kept if s.method == "ffn_activation"] == ["ffn_activation-0.3"]
    assert [r["run"] for r in skipped] == ["ffn_activation-0.9"] and "at most 66.1%" in skipped[0]["reason"]
    table = prune_runs(opt, tmp_path, [s for s in specs if s.method in ("global_magnitude", "ffn_activation")],
                       progress=False, skip_inapplicable=True)
    assert list(table["method"]) == ["global_magnitude", "ffn_activation"]
    assert list(read_skipped(tmp_path)["run"]) == ["ffn_activation-0.9"]


# ------------------------------------------------------------------------ legacy names, transformers' rules
def exaone_legacy_checkpoint(folder) -> dict[str, torch.Tensor]:
    """A tiny EXAONE 3 checkpoint under the names its hub repos store (GPT-2 style), written by hand from
    EXAONE's published layout: transformer.wte, transformer.h.N.attn.attention.{q,k,v,out}_proj, ln_1/ln_2,
    mlp.c_fc_0 (gate), mlp.c_fc_1 (up), mlp.c_proj (down), transformer.ln_f, lm_head."""
    config = transformers.ExaoneConfig(vocab_size=49152, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                       tie_word_embeddings=False)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    legacy = {}
    for name, w in model.state_dict().items():
        stored = (name.replace("model.embed_tokens.", "transformer.wte.").replace("model.norm.", "transformer.ln_f.")
                  .replace("model.layers.", "transformer.h.").replace(".self_attn.o_proj.", ".attn.attention.out_proj.")
                  .replace(".self_attn.", ".attn.attention.").replace(".input_layernorm.", ".ln_1.")
                  .replace(".post_attention_layernorm.", ".ln_2.").replace(".mlp.gate_proj.", ".mlp.c_fc_0.")
                  .replace(".mlp.up_proj.", ".mlp.c_fc_1.").replace(".mlp.down_proj.", ".mlp.c_proj."))
        legacy[stored] = w.contiguous()
    folder.mkdir()
    save_file(legacy, folder / "model.safetensors", metadata={"format": "pt"})
    config.architectures = ["ExaoneForCausalLM"]  # as the hub's config.json says
    config.save_pretrained(folder)
    copy_processor_files("smollm2-135m", folder)
    return legacy


def test_legacy_names_are_read_by_transformers_rules(any_models, tiny_models, tmp_path):
    """Three model types whose stored names transformers renames when loading: GPT-NeoX stores embed_out for
    lm_head (save_pretrained writes it so), EXAONE 3 stores GPT-2-style names for a Llama model, BERT's hub
    repos LayerNorm.gamma/beta. The suite reads each as from_pretrained does, and its checkpoints keep the
    stored names."""
    exaone = tmp_path / "exaone"
    exaone_legacy_checkpoint(exaone)
    folders = [exaone, any_models["gpt-neox"], bert_with_gamma(tiny_models["bert"], tmp_path / "bert")]
    assert "embed_out.weight" in load_file(folders[1] / "model.safetensors")
    for folder in folders:
        config = transformers.AutoConfig.from_pretrained(folder)
        reference = auto_class(config).from_pretrained(folder).eval()  # transformers' own reading
        assert not checkpoint_layout(folder).unused, folder.name
        row = prune_model(str(folder), tmp_path / f"{folder.name}-pruned", PruneSpec("global_magnitude", 0.5),
                          progress=False)
        assert set(StoredTensors(row["checkpoint"]).shapes) == set(load_file(folder / "model.safetensors"))
        pruned = load_pruned(row["checkpoint"])
        prunable = linear_weights_in_blocks(reference)
        zeroed = 0
        for name, w in reference.state_dict().items():
            got = pruned.state_dict()[name]
            if name in prunable:  # zeros where pruned, the reference everywhere else
                assert torch.equal(got, torch.where(got == 0, torch.zeros_like(w), w)), name
                zeroed += int((got == 0).sum())
            else:
                assert torch.equal(got, w), name
        assert zeroed == row["n_zeroed"] > 0
        plain_folder = export_dense(row["checkpoint"], tmp_path / f"{folder.name}-dense")
        plain = auto_class(config).from_pretrained(plain_folder)
        for name, w in plain.state_dict().items():
            assert torch.equal(pruned.state_dict()[name], w), name


def bert_with_gamma(src, folder):
    """The tiny BERT with its LayerNorms stored under the legacy gamma/beta names (BERT's hub repos)."""
    folder.mkdir()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in load_file(src / "model.safetensors").items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text((src / "config.json").read_text())
    return folder


def test_the_default_report_completes_on_opt_and_roberta(any_models, tmp_path):
    """`make report MODELS="<tiny OPT> <tiny RoBERTa>"`: the default grid (ffn_activation included) on two
    architectures the suite never names, small budgets, through the task graph to the HTML report."""
    from sparsescope.run import run_models
    models = [str(any_models["opt"]), str(any_models["roberta"])]
    knobs = {"sparsities": [0.5], "n_samples": 2, "seqlen": 32, "n_tokens": 64, "window": 32, "batch_sizes": [1],
             "runtime_seqlen": 16, "kernel_sparsities": [0.5], "kernel_tokens": [16], "repeats": 2}
    grid = run_models(models, tmp_path / "results", knobs=knobs, report_dir=tmp_path / "report")
    assert grid.report.exists() and grid.report.with_suffix(".pdf").exists()
    for model in models:
        table = pd.read_csv(results_path(tmp_path / "results", model, "pruning") / "pruning.csv")
        assert {"ffn_activation", "wanda", "sparsegpt", "global_magnitude"} <= set(table["method"])


def test_block_weights_the_model_lacks_are_refused_and_families_follow_the_heads(tiny_models, tmp_path):
    from sparsescope.sources.registry import family_from_config
    folder = tmp_path / "extra-block"
    folder.mkdir()
    state = load_file(tiny_models["gpt2"] / "model.safetensors")
    state["transformer.h.9.mlp.c_fc.weight"] = torch.zeros(32, 128)  # a block the 3-layer config lacks
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text((tiny_models["gpt2"] / "config.json").read_text())
    with pytest.raises(SparsescopeError, match=r"block weights this GPT2LMHeadModel lacks.*h\.9\.mlp\.c_fc"):
        load_pruned(folder)
    assert family_from_config({"model_type": "gpt2", "architectures": ["GPT2Model"]}) == "decoder-only"
    assert family_from_config({"model_type": "llama", "architectures": ["LlamaForSequenceClassification"]}) == \
        "decoder-only"
    assert family_from_config({"model_type": "bert", "architectures": ["BertModel"]}) == "encoder-only"
    assert family_from_config({"model_type": "opt"}) == "decoder-only"
