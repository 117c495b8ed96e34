"""Streaming reads, and tags (through the layout onto the anatomy) across BERT, GPT-2, T5, Llama and Whisper."""
import json
import struct
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from sparsescope import SparsescopeError
from conftest import linear_weights_in_blocks
from sparsescope.sources.layouts import stored_tagger
from sparsescope.sources.weights import iter_tensors, list_tensors

@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5", "llama", "whisper"])
def test_prunable_tags_match_module_types(arch, tiny_models, tiny_modules):
    stored = {name: shape for name, _, shape in list_tensors(tiny_models[arch])}
    tag = stored_tagger(tiny_models[arch])
    prunable = {n for n, shape in stored.items() if tag(n, shape).prunable}
    expected = linear_weights_in_blocks(tiny_modules[arch]) & set(stored)
    assert prunable == expected
    assert prunable, "every architecture has prunable matrices"


def test_tags_of_known_names(tiny_models):
    gpt2, t5, whisper, bert = (stored_tagger(tiny_models[a], f) for a, f in (
        ("gpt2", "decoder-only"), ("t5", "encoder-decoder"), ("whisper", "encoder-decoder"), ("bert", "encoder-only")))
    assert gpt2("transformer.wte.weight", (49152, 32)).component == "embedding"
    t = gpt2("transformer.h.2.attn.c_attn.weight", (32, 96))
    assert (t.stack, t.block, t.component, t.prunable, t.role) == ("decoder", 2, "attention", True, "qkv")
    assert gpt2("transformer.h.2.mlp.c_proj.weight", (128, 32)).role == "down"
    assert gpt2("transformer.h.1.attn.bias", (1, 1, 64, 64), floating=False).component == "buffer"
    t = t5("decoder.block.1.layer.1.EncDecAttention.q.weight", (32, 32))
    assert (t.stack, t.block, t.component, t.prunable, t.role) == ("decoder", 1, "attention", True, "cross q")
    t = t5("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (32, 2))
    assert (t.component, t.prunable) == ("position", False)
    t = t5("encoder.block.1.layer.1.DenseReluDense.wi_1.weight", (64, 32))
    assert (t.component, t.role) == ("mlp", "up")
    assert t5("encoder.block.1.layer.1.DenseReluDense.wi_0.weight", (64, 32)).role == "gate"
    assert whisper("model.encoder.conv1.weight", (32, 80, 3)).component == "conv"
    t = whisper("model.decoder.layers.1.encoder_attn_layer_norm.weight", (32,))
    assert (t.stack, t.component, t.prunable) == ("decoder", "norm", False)
    assert whisper("model.decoder.layers.1.encoder_attn.out_proj.weight", (32, 32)).role == "cross o"
    assert bert("cls.predictions.decoder.weight", (30522, 32)).stack == "encoder"
    assert not bert("cls.predictions.decoder.weight", (30522, 32)).prunable
    t = bert("bert.encoder.layer.1.output.dense.weight", (32, 64))
    assert (t.component, t.role) == ("mlp", "down")
    t = bert("bert.encoder.layer.1.attention.output.dense.weight", (32, 32))
    assert (t.component, t.role) == ("attention", "o")


def test_iter_tensors_is_exact(tiny_models):
    from safetensors.torch import load_file
    folder = tiny_models["gpt2"]
    expected = load_file(folder / "model.safetensors")
    got = dict(iter_tensors(folder))
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_truncated_safetensors_names_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.ones(1000), "b": torch.ones(1000)}, path)
    (tmp_path / "config.json").write_text("{}")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SparsescopeError, match=r"truncated safetensors file .*model\.safetensors"):
        list(iter_tensors(tmp_path))


def test_corrupt_header_names_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 16)
    with pytest.raises(SparsescopeError, match=r"corrupt safetensors file .*model\.safetensors"):
        list(iter_tensors(tmp_path))


def test_pickle_checkpoint_loads_weights_only(tmp_path):
    state = {"encoder.layer.0.attention.self.query.weight": torch.randn(4, 4)}
    torch.save(state, tmp_path / "pytorch_model.bin")
    got = dict(iter_tensors(tmp_path))
    assert torch.equal(got["encoder.layer.0.attention.self.query.weight"], state["encoder.layer.0.attention.self.query.weight"])


class Evil:  # unpickling this would need arbitrary code
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"w": torch.ones(2), "x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(SparsescopeError, match="weights_only=True"):
        list(iter_tensors(tmp_path))


def test_iteration_memory_is_bounded_by_one_tensor(tmp_path):
    """Peak RSS while streaming a 640 MB checkpoint stays within a few of its 64 MB tensors."""
    tensors = {f"h.{i}.mlp.c_fc.weight": torch.full((4096, 4096), float(i + 1)) for i in range(10)}
    save_file(tensors, tmp_path / "model.safetensors")
    # the config the tensors fit (analysis reads what each is from the model's anatomy)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 4096, "n_inner": 4096,
                                                      "n_layer": 10, "n_head": 32}))
    del tensors
    script = f"""
import torch
from sparsescope.artifacts import peak_rss_bytes
from sparsescope.analysis.statistics import TensorScanner, analyze_folder
from sparsescope.sources.weights import iter_tensors
TensorScanner().scan(torch.ones(10))  # warm-up on a tiny tensor: numba compiles or loads its cache
base = peak_rss_bytes()
total = sum(float(w.sum()) for _, w in iter_tensors({str(tmp_path)!r}))
stats = analyze_folder({str(tmp_path)!r}, progress=False)
assert stats.groups["all"].n == 10 * 4096 * 4096
print(peak_rss_bytes() - base, total)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    growth_mb = int(out[0]) / 2 ** 20
    assert float(out[1]) == sum((i + 1) * 4096 * 4096 for i in range(10))
    assert growth_mb < 4 * 64, f"RSS grew by {growth_mb:.0f} MB for a 640 MB checkpoint"
