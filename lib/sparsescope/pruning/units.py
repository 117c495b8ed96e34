"""What structured pruning removes, by architecture: units (FFN neurons, attention heads) of every block, how
many each loses for a share of the prunable parameters, and the smaller config that describes the result.

A unit is a group of input columns of an output projection (a neuron: one column of an FFN's output layer;
a head: head_dim columns of attention's output layer) together with the output rows of the layers that
compute it. Every module loses the same number of units, so the smaller model has one `intermediate_size`
(or head count) per stack and opens with a plain `from_pretrained`.

Heads: transformers 5 builds BERT, GPT-2 and Whisper attention with head size = hidden size / heads and no
longer reads `pruned_heads`, so fewer heads cannot be written in their configs; T5 shares one relative
position bias across the layers of a stack, so its layers cannot keep different heads. Heads are therefore
removed where the config can say so: Llama-style models (`num_attention_heads` with an explicit
`head_dim`). Grouped-query attention keeps every KV head and drops the same number of query heads inside
each KV group, so `num_attention_heads` stays a multiple of `num_key_value_heads` (a KV head serves several
query heads: dropping one would cost all of them). Without grouping (as many KV heads as query heads), a
head goes with its key and value rows.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch

from ..errors import SparsescopeError
from .calibration import block_stacks
from .layers import input_dim


@dataclass(frozen=True)
class FFNLayout:
    inputs: tuple[str, ...]   # patterns, inside a block, of the layers that compute the neurons
    output: str               # pattern of the layer that reads them out
    width: dict               # stack ("*": any) -> config field holding the number of neurons


FFN = {
    "bert": FFNLayout(("intermediate.dense",), "output.dense", {"*": "intermediate_size"}),
    "gpt2": FFNLayout(("mlp.c_fc",), "mlp.c_proj", {"*": "n_inner"}),
    "llama": FFNLayout(("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj", {"*": "intermediate_size"}),
    "t5": FFNLayout(tuple(f"layer.*.DenseReluDense.{n}" for n in ("wi", "wi_0", "wi_1")),
                    "layer.*.DenseReluDense.wo", {"*": "d_ff"}),
    "whisper": FFNLayout(("fc1",), "fc2", {"encoder": "encoder_ffn_dim", "decoder": "decoder_ffn_dim"}),
}
HEADS = {"llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")}
NO_HEADS = {
    "t5": "T5 adds one relative position bias, computed by the first layer of a stack, to every layer's "
          "heads, so layers cannot keep different heads",
}


@dataclass(frozen=True)
class Unit:
    """The prunable units of one module of one block."""
    kind: str                  # "ffn" or "heads"
    stack: str
    block: str                 # model path of the block
    inputs: tuple[str, ...]    # model paths of the layers whose output rows compute the units
    output: str                # model path of the layer whose input columns read them
    n: int                     # units in the module
    size: int                  # columns per unit: 1 for a neuron, head_dim for a head
    groups: int                # units are removed evenly within this many groups (GQA: one per KV head)
    params: int                # prunable parameters per unit


def _matrix_shape(module) -> tuple[int, int]:
    """(outputs, inputs) of a linear / Conv1D layer, also on the meta device."""
    shape = tuple(module.weight.shape)
    return shape if input_dim(module) == 1 else shape[::-1]


def ffn_units(model) -> list[Unit]:
    layout = FFN.get(model.config.model_type)
    if layout is None:
        raise SparsescopeError(f"structured FFN pruning knows {', '.join(FFN)} models, not "
                               f"{model.config.model_type!r}")
    units = []
    for stack, path, blocks in block_stacks(model):
        for i, block in enumerate(blocks):
            names = [n for n, _ in block.named_modules()]
            out = [n for n in names if fnmatch.fnmatchcase(n, layout.output)]
            ins = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in layout.inputs)]
            if len(out) != 1 or not ins:
                raise SparsescopeError(f"{path}.{i} of {type(model).__name__} has no FFN named like "
                                       f"{layout.output}: its module names differ from the ones this suite "
                                       "knows")
            n = _matrix_shape(block.get_submodule(out[0]))[1]
            params = sum(_matrix_shape(block.get_submodule(m))[1] for m in ins) + \
                _matrix_shape(block.get_submodule(out[0]))[0]
            units.append(Unit("ffn", stack, f"{path}.{i}", tuple(f"{path}.{i}.{m}" for m in ins),
                              f"{path}.{i}.{out[0]}", n, 1, 1, params))
    return units


def head_units(model) -> list[Unit]:
    config, kind = model.config, model.config.model_type
    if kind not in HEADS:
        reason = NO_HEADS.get(kind, f"transformers builds {type(model).__name__}'s attention with head "
                                    "size = hidden size / number of heads and reads no pruned_heads")
        raise SparsescopeError(f"heads: {reason}, so a {kind} model with fewer heads cannot be described by "
                               "its config; prune its FFN neurons instead (ffn_magnitude, ffn_activation)")
    q_name, k_name, v_name, o_name = HEADS[kind]
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    inputs = (q_name, k_name, v_name) if kv == heads else (q_name,)  # grouped: the KV heads stay
    units = []
    for stack, path, blocks in block_stacks(model):
        for i, block in enumerate(blocks):
            hidden_in = _matrix_shape(block.get_submodule(q_name))[1]
            hidden_out = _matrix_shape(block.get_submodule(o_name))[0]
            units.append(Unit("heads", stack, f"{path}.{i}", tuple(f"{path}.{i}.{n}" for n in inputs),
                              f"{path}.{i}.{o_name}", heads, head_dim, 1 if kv == heads else kv,
                              (len(inputs) * hidden_in + hidden_out) * head_dim))
    return units


def removed_per_group(units: list[Unit], share: float, n_prunable: int, label: str) -> int:
    """Units each group of each module loses so that about `share` of the prunable parameters go."""
    step = sum(u.groups * u.params for u in units)  # parameters that one unit less per group removes
    r = round(share * n_prunable / step)
    most = min(u.n // u.groups for u in units) - 1   # keep one unit per group
    if r > most:
        can = most * step / n_prunable
        what = "query heads per KV group" if units[0].kind == "heads" and units[0].groups > 1 else (
            "heads" if units[0].kind == "heads" else "FFN neurons")
        raise SparsescopeError(f"{label} would remove {r} {what} of {units[0].n // units[0].groups} in "
                               f"every module; keeping one, at most {can:.1%} of the prunable parameters can "
                               f"go this way: choose a share of at most {can:.3f}")
    return r


def keep_best(unit: Unit, scores: torch.Tensor, r: int) -> torch.Tensor:
    """Indices (ascending) of the units kept: the best n/groups - r of each group's consecutive units."""
    per = unit.n // unit.groups
    kept = []
    for g in range(unit.groups):
        top = torch.argsort(scores[g * per:(g + 1) * per], descending=True, stable=True)[:per - r]
        kept.append(g * per + top)
    return torch.sort(torch.cat(kept)).values


def columns(unit: Unit, kept: torch.Tensor) -> torch.Tensor:
    """The output projection's input columns (and the input layers' output rows) of the kept units."""
    return (kept.reshape(-1, 1) * unit.size + torch.arange(unit.size)).reshape(-1)


def cuts(model, unit: Unit, kept: torch.Tensor) -> dict[str, tuple[int, torch.Tensor]]:
    """Stored-layout slices of the smaller model: model parameter name -> (dimension, indices kept)."""
    index = columns(unit, kept)
    out = {}
    for path in unit.inputs:  # output rows: dim 0 of nn.Linear's weight, dim 1 of Conv1D's
        module = model.get_submodule(path)
        out[f"{path}.weight"] = (1 - input_dim(module), index)
        if getattr(module, "bias", None) is not None:
            out[f"{path}.bias"] = (0, index)
    module = model.get_submodule(unit.output)
    out[f"{unit.output}.weight"] = (input_dim(module), index)
    return out


def smaller_config(model, units: list[Unit], r: int) -> dict:
    """The config fields that describe the smaller model."""
    config, unit = model.config, units[0]
    if unit.kind == "heads":
        kept = (unit.n // unit.groups - r) * unit.groups
        grouped = len(unit.inputs) == 1  # only the query rows go: every KV head stays
        return {"num_attention_heads": kept, "num_key_value_heads": unit.groups if grouped else kept,
                "head_dim": unit.size}
    fields = FFN[config.model_type].width
    return {fields.get(u.stack, fields.get("*")): u.n - r for u in units}


def matrix(module, tensor: torch.Tensor) -> torch.Tensor:
    """A stored weight of `module` as (outputs x inputs)."""
    return tensor if input_dim(module) == 1 else tensor.t()

