"""Streaming reads and tagging across BERT, GPT-2, T5, Llama and Whisper naming."""
import json
import struct
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from transformers.pytorch_utils import Conv1D

from sparsescope import SparsescopeError
from sparsescope.sources.weights import iter_tensors, list_tensors, tag

def linear_weights_in_blocks(model) -> set[str]:
    """Oracle by module type, not by name: the 2-D weights of Linear/Conv1D layers inside a ModuleList
    (the container of transformer blocks in every architecture here)."""
    in_lists = set()
    for list_name, container in model.named_modules():
        if isinstance(container, torch.nn.ModuleList):
            in_lists |= {f"{list_name}.{name}" for name, _ in container.named_modules() if name}
    return {f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D)) and name in in_lists}


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5", "llama", "whisper"])
def test_prunable_tags_match_module_types(arch, tiny_models, tiny_modules):
    stored = {name: shape for name, _, shape in list_tensors(tiny_models[arch])}
    prunable = {n for n, shape in stored.items() if tag(n, shape).prunable}
    expected = linear_weights_in_blocks(tiny_modules[arch]) & set(stored)
    assert prunable == expected
    assert prunable, "every architecture has prunable matrices"


def test_tags_of_known_names():
    assert tag("transformer.wte.weight", (50257, 1600)).component == "embedding"
    assert not tag("lm_head.weight", (50257, 1600)).prunable
    t = tag("transformer.h.7.attn.c_attn.weight", (1600, 4800), "decoder-only")
    assert (t.stack, t.block, t.component, t.prunable) == ("decoder", 7, "attention", True)
    assert tag("transformer.h.7.attn.bias", (1, 1, 64, 64)).component == "buffer"
    t = tag("decoder.block.3.layer.1.EncDecAttention.q.weight", (2048, 2048))
    assert (t.stack, t.block, t.component, t.prunable) == ("decoder", 3, "attention", True)
    t = tag("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (32, 32))
    assert (t.component, t.prunable) == ("position", False)
    assert tag("encoder.block.2.layer.1.DenseReluDense.wi_1.weight", (5120, 2048)).component == "mlp"
    assert tag("model.encoder.conv1.weight", (384, 80, 3)).component == "conv"
    t = tag("model.decoder.layers.1.encoder_attn_layer_norm.weight", (384,))
    assert (t.stack, t.component) == ("decoder", "norm")
    assert tag("cls.predictions.decoder.weight", (30522, 1024), "encoder-only").stack == "encoder"
    assert tag("bert.encoder.layer.23.output.dense.weight", (1024, 4096)).component == "mlp"
    assert tag("bert.encoder.layer.23.attention.output.dense.weight", (1024, 1024)).component == "attention"
    assert tag("model.layers.5.mlp.down_proj.weight", (576, 1536)).prunable


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
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
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
