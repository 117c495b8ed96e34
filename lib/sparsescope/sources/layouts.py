"""How a checkpoint's stored names map onto its model's parameters, by the rules from_pretrained itself uses.

The hub's files are not what `save_pretrained` writes: GPT-2 repos store bare names (`h.0.attn.c_attn.weight`,
no `transformer.` prefix) beside causal-mask buffers and no `lm_head`; BERT repos keep the legacy
`LayerNorm.gamma` / `LayerNorm.beta` and heads a masked-LM class does not use (pooler, next-sentence head);
GPT-NeoX stores `embed_out` for the model's `lm_head`; EXAONE 3 stores GPT-2-style names for a Llama model;
T5 v1.1 pickles store `encoder.embed_tokens` and `decoder.embed_tokens` as aliases of `shared`.
`checkpoint_layout(folder)` asks transformers for the model class's conversion mapping (the renamings of its
model type and class, and the legacy ones) and applies it with transformers' own `rename_source_key`, which
also adds or drops the base-model prefix; it says which stored tensors the model class leaves unused. The
stored names are never rewritten: pruned checkpoints keep their source's layout.

A stored tensor that transformers does not rename but converts (merged or split, e.g. Mixtral's per-expert
matrices stacked into one tensor) has no one-to-one model name: the layout refuses it in one line.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import SparsescopeError
from .anatomy import model_anatomy
from .registry import empty_model
from .weights import list_tensors, tensor_aliases


@dataclass(frozen=True)
class Layout:
    """Stored name -> model name, and what the mapping needed."""
    model_class: str
    to_model: dict[str, str]          # every stored name the model uses (aliases included) -> its model name
    unused: tuple[str, ...]           # stored tensors this model class has no place for
    unfilled: tuple[str, ...]         # model parameters no stored tensor fills: tied (lm_head) or missing
    aliases: dict[str, str]           # stored alias -> the stored name whose storage it shares
    rules: tuple[str, ...]            # the renaming rules that fired, in words
    unused_as: dict[str, str] = field(default_factory=dict)  # unused stored name -> the name it was read as

    @functools.cached_property
    def to_checkpoint(self) -> dict[str, str]:
        """model name -> stored name (an alias's target where the model names both)."""
        out: dict[str, str] = {}
        for stored, model_name in self.to_model.items():
            out.setdefault(model_name, self.aliases.get(stored, stored))
        return out


class Renamer:
    """A stored name -> (model name, the rules that fired), as from_pretrained renames it for `model`."""

    def __init__(self, model):
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming
        mapping = get_model_conversion_mapping(model)
        self.renamings = [t for t in mapping if isinstance(t, WeightRenaming)]
        self.converters = [t for t in mapping if isinstance(t, WeightConverter)]
        self.prefix = model.base_model_prefix or None
        self.meta = {k: True for k in model.state_dict()}   # rename_source_key only asks membership
        self.model_class = type(model).__name__

    def __call__(self, name: str) -> tuple[str, list[str]]:
        from transformers.core_model_loading import rename_source_key
        key, converted = rename_source_key(name, self.renamings, self.converters, self.prefix, self.meta)
        if key not in self.meta and name in self.meta:  # as from_pretrained: a name the model has stays
            key, converted = rename_source_key(name, [], [], self.prefix, self.meta)
        if converted is not None:
            raise SparsescopeError(f"transformers converts the stored tensor {name} (pattern {converted!r}) "
                                   f"into {self.model_class}'s {key} instead of renaming it (tensors merged "
                                   "or split): sparsescope maps stored tensors one to one, so it cannot read "
                                   "this checkpoint; save it again with save_pretrained from the loaded "
                                   "model")
        if key == name:
            return key, []
        if self.prefix and key == f"{self.prefix}.{name}":
            return key, [f"bare names read with the '{self.prefix}.' prefix"]
        if self.prefix and name == f"{self.prefix}.{key}":
            return key, [f"'{self.prefix}.' prefix dropped"]
        return key, [f"{name} read as {key}"]


def build_layout(model, stored: dict[str, tuple[int, ...]], aliases: dict[str, str],
                 where: str = "") -> Layout:
    """The layout of stored tensors (name -> shape; aliases: alias -> stored name) against `model`."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    from transformers.core_model_loading import dot_natural_key
    rename = Renamer(model)
    to_model, unused, unused_as, rules = {}, [], {}, []
    # in from_pretrained's order: some renamings act on the keys after one that matched (GroupWeightRename)
    for name in sorted([*stored, *aliases], key=dot_natural_key):
        key, fired = rename(name)
        if key not in shapes:
            unused.append(name)
            unused_as[name] = key
            continue
        shape = tuple(stored[name] if name in stored else stored[aliases[name]])
        if shape != shapes[key]:
            raise SparsescopeError(f"{where}: stored tensor {name} has shape {list(shape)} but "
                                   f"{type(model).__name__}.{key} needs {list(shapes[key])}: the checkpoint "
                                   "does not match its config.json")
        to_model[name] = key
        rules += [r for r in fired if r not in rules]
    filled = set(to_model.values())
    unfilled = tuple(k for k, _ in model.named_parameters(remove_duplicate=False) if k not in filled)
    return Layout(type(model).__name__, to_model, tuple(unused), unfilled, dict(aliases), tuple(rules),
                  unused_as)


@functools.lru_cache(maxsize=8)
def _layout(folder: str, stamp: tuple) -> Layout:
    stored = {name: shape for name, _, shape in list_tensors(folder)}
    return build_layout(empty_model(folder), stored, tensor_aliases(folder), folder)


def checkpoint_layout(folder: str | os.PathLike) -> Layout:
    """The layout of an HF folder's checkpoint against its own model class (cached per folder and files)."""
    folder = Path(folder).resolve()
    stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                         for p in folder.iterdir() if p.is_file()))
    return _layout(str(folder), stamp)


def stored_tagger(folder: str | os.PathLike, family: str | None = None):
    """tag(stored name, shape, floating) -> Tag for the tensors of an HF folder's checkpoint: its layout maps
    each stored name onto the model, whose anatomy says what the tensor is."""
    layout, anatomy = checkpoint_layout(folder), model_anatomy(folder)

    def tag(name: str, shape: tuple[int, ...], floating: bool = True):
        model_name = layout.to_model.get(name) or layout.unused_as.get(name, name)
        return anatomy.tag(model_name, shape, family, floating, stored_name=name)
    return tag


def _owner(model, name: str):
    module_name, _, leaf = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), leaf


def assign_weights(model, layout: Layout, get, include=None, dtype=None, device=None) -> int:
    """Fill the parameters and persistent buffers of `model` (those whose name `include` accepts) from stored
    tensors: `get(stored name)` returns one, mapped or decoded on demand. Tied parameters are left to
    `model.tie_weights()`. Returns how many tensors were assigned."""
    assigned = 0
    tensors = dict(model.named_parameters(prefix="", remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    for name in tensors:
        if name not in layout.to_checkpoint or (include is not None and not include(name)):
            continue
        t = get(layout.to_checkpoint[name])
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        t = t.to(device) if device is not None else t
        owner, leaf = _owner(model, name)
        if leaf in owner._parameters:
            owner._parameters[leaf] = torch.nn.Parameter(t, requires_grad=False)
        else:
            owner._buffers[leaf] = t
        assigned += 1
    return assigned


@torch.no_grad()
def copy_weights(model, layout: Layout, get) -> int:
    """Overwrite, in place, every parameter and persistent buffer of a loaded `model` that a stored tensor
    fills (ties stay tied). Returns how many tensors were copied."""
    copied = 0
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, t in tensors:
        if name in layout.to_checkpoint:
            t.data.copy_(get(layout.to_checkpoint[name]))
            copied += 1
    return copied


def release_weights(module) -> None:
    """Put a module's parameters back on the meta device, freeing their memory."""
    for sub in module.modules():
        for leaf, p in sub._parameters.items():
            if p is not None and not p.is_meta:
                empty = torch.empty_like(p, device="meta")
                sub._parameters[leaf] = torch.nn.Parameter(empty, requires_grad=False)


def tie_missing(model) -> None:
    """Tie what the checkpoint did not store, as from_pretrained does: transformers 5 ties a pair only when
    one side is missing (T5 v1.1 stores an untied lm_head although its config class always says "tie")."""
    missing = {name for name, p in model.named_parameters(remove_duplicate=False) if p.is_meta}
    try:
        model.tie_weights(missing_keys=missing, recompute_mapping=True)
    except TypeError:  # transformers versions whose tie_weights takes no arguments
        model.tie_weights()
