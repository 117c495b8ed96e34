"""How a checkpoint's stored names map onto its model's parameters, for the layouts the hub really ships.

The hub's files are not what `save_pretrained` writes: GPT-2 repos store bare names (`h.0.attn.c_attn.weight`,
no `transformer.` prefix) beside causal-mask buffers and no `lm_head`; BERT repos keep the legacy
`LayerNorm.gamma` / `LayerNorm.beta` and heads a masked-LM class does not use (pooler, next-sentence head);
T5 v1.1 pickles store `encoder.embed_tokens` and `decoder.embed_tokens` as aliases of `shared`.
`checkpoint_layout(folder)` applies the rules `from_pretrained` applies (transformers' legacy renames and
its base-model prefix added or dropped) once, and says which stored tensors the model class leaves unused.
The stored names are never rewritten: pruned checkpoints keep their source's layout.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import SparsescopeError
from .registry import empty_model
from .weights import list_tensors, tensor_aliases

# transformers' "legacy" renames (conversion_mapping.py), applied to every model when loading
LEGACY_RENAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))


@dataclass(frozen=True)
class Layout:
    """Stored name -> model name, and what the mapping needed."""
    model_class: str
    to_model: dict[str, str]          # every stored name the model uses (aliases included) -> its model name
    unused: tuple[str, ...]           # stored tensors this model class has no place for
    unfilled: tuple[str, ...]         # model parameters no stored tensor fills: tied (lm_head) or missing
    aliases: dict[str, str]           # stored alias -> the stored name whose storage it shares
    rules: tuple[str, ...]            # the renaming rules that fired, in words

    @functools.cached_property
    def to_checkpoint(self) -> dict[str, str]:
        """model name -> stored name (an alias's target where the model names both)."""
        out: dict[str, str] = {}
        for stored, model_name in self.to_model.items():
            out.setdefault(model_name, self.aliases.get(stored, stored))
        return out


def rename(name: str, model_keys: set[str], prefix: str) -> tuple[str, list[str]]:
    """The model name of a stored name by from_pretrained's rules, and which rules fired."""
    fired = []
    for old, new in LEGACY_RENAMES:
        if old in name:
            name, _ = name.replace(old, new), fired.append("legacy LayerNorm.gamma/beta read as weight/bias")
    if name not in model_keys and prefix:
        if name.startswith(f"{prefix}.") and name[len(prefix) + 1:] in model_keys:
            name, _ = name[len(prefix) + 1:], fired.append(f"'{prefix}.' prefix dropped")
        elif f"{prefix}.{name}" in model_keys:
            name, _ = f"{prefix}.{name}", fired.append(f"bare names read with the '{prefix}.' prefix")
    return name, fired


def build_layout(model, stored: dict[str, tuple[int, ...]], aliases: dict[str, str],
                 where: str = "") -> Layout:
    """The layout of stored tensors (name -> shape; aliases: alias -> stored name) against `model`."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    to_model, unused, rules = {}, [], []
    for name in [*stored, *aliases]:
        key, fired = rename(name, set(shapes), model.base_model_prefix)
        if key not in shapes:
            unused.append(name)
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
    return Layout(type(model).__name__, to_model, tuple(unused), unfilled, dict(aliases), tuple(rules))


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
