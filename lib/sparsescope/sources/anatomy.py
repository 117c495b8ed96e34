"""A model's anatomy, read from the model itself (its modules, built on the meta device) and its config —
never from a table of model types — so that any transformer transformers builds is understood the same way.

- Blocks: every ModuleList of containers holding linear layers (nn.Linear or GPT-2's Conv1D), outermost
  only (T5's `block.N.layer` list sits inside a block), encoder stack first.
- Matrices: every linear layer inside a block, with its stack, block, input axis, component (attention when a
  module around it inside the block is an attention class, else mlp) and role (q, k, v, qkv, o, 'cross …';
  gate, up, gate_up, down).
- FFN units: which config field holds the FFN width is found by asking the model: the config is rebuilt on the
  meta device with one candidate field changed, and the field whose change moves exactly the FFN matrices'
  unit axis (down's inputs; up's, gate's and a fused gate_up's outputs, k × width for k fused parts) is the
  width.
  So `intermediate_size`, `ffn_dim`, `hidden_dim`, `d_ff`, `encoder_ffn_dim` / `decoder_ffn_dim` and GPT-2's
  `n_inner` (None: 4 × hidden) are all found without naming them.
- Attention heads, the same way: fewer query heads (one per KV group) with the head size held in `head_dim`;
  where the model then keeps its head size (heads = hidden / count) or other tensors change shape (T5's shared
  relative position bias), the config cannot describe fewer heads, and the reason says which.

Everything that needs to know what a tensor is — the statistics' tags, the pruning methods, structured
pruning, the report's role names — asks this module.
"""
from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import SparsescopeError

ATTENTION_CLASS = re.compile(r"attention|attn", re.IGNORECASE)
CROSS = re.compile(r"cross|encdec|encoder_attn", re.IGNORECASE)
# role of an attention projection by its leaf name (q_proj, query, q_lin, q, c_attn, query_key_value, ...);
# the output projection is the one linear layer of its attention module that none of these names
_ATTENTION_LEAF = [("qkv", re.compile(r"qkv|query_key_value|c_attn|w_pack|in_proj", re.IGNORECASE)),
                   ("q", re.compile(r"^(q|query)(_|$)", re.IGNORECASE)),
                   ("k", re.compile(r"^(k|key)(_|$)", re.IGNORECASE)),
                   ("v", re.compile(r"^(v|value)(_|$)", re.IGNORECASE))]
ROLES = ("q", "k", "v", "qkv", "o", "cross q", "cross k", "cross v", "cross qkv", "cross o", "gate", "up",
         "gate_up", "down")
WIDTH_STEP = 8   # how much a candidate field is widened when probing what it controls


def is_linear(module: torch.nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D
    return isinstance(module, (torch.nn.Linear, Conv1D))


def input_dim(module: torch.nn.Module) -> int:
    """Which dimension of `module.weight` indexes the inputs: 1 for nn.Linear, 0 for Conv1D."""
    return 1 if isinstance(module, torch.nn.Linear) else 0


def matrix_shape(module) -> tuple[int, int]:
    """(outputs, inputs) of a linear / Conv1D layer, also on the meta device."""
    shape = tuple(module.weight.shape)
    return shape if input_dim(module) == 1 else shape[::-1]


# ----------------------------------------------------------------------------------------------- blocks
def stack_of(model, path: str) -> str:
    """encoder or decoder: from the path where it says, else from what the model is."""
    for stack in ("decoder", "encoder"):
        if f".{stack}." in f".{path}.":
            return stack
    causal = any(word in type(model).__name__ for word in ("CausalLM", "LMHead"))
    return "decoder" if getattr(model.config, "is_decoder", False) or causal else "encoder"


def block_stacks(model) -> list[tuple[str, str, torch.nn.ModuleList]]:
    """(stack, path, blocks) for every ModuleList of transformer blocks, encoder first: a list of containers
    (not of bare linear layers) holding linear layers, not inside another such list."""
    found = []
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or not len(module) or is_linear(module[0]):
            continue
        if any(path.startswith(f"{p}.") for _, p, _ in found):  # T5's block.N.layer list
            continue
        if any(is_linear(m) for m in module[0].modules()):
            found.append((stack_of(model, path), path, module))
    return sorted(found, key=lambda x: x[0] != "encoder")


@dataclass(frozen=True)
class Matrix:
    """One prunable matrix: a linear layer inside a block."""
    name: str                 # model name of its weight, e.g. model.layers.3.mlp.up_proj.weight
    module: str               # model path of the layer
    stack: str                # encoder / decoder
    block: int                # index in its stack
    block_path: str           # model path of the block
    component: str            # attention / mlp
    role: str                 # q k v qkv o ('cross …'), gate up gate_up down, or the layer's own name
    input_dim: int            # 1 for nn.Linear, 0 for Conv1D
    shape: tuple[int, int]    # (outputs, inputs)


@dataclass(frozen=True)
class Unit:
    """The prunable units (FFN neurons or attention heads) of one module of one block."""
    kind: str                  # "ffn" or "heads"
    stack: str
    block: str                 # model path of the block
    inputs: tuple[tuple[str, int], ...]  # (model path, fused parts) of the layers whose rows compute them
    output: str                # model path of the layer whose input columns read them
    n: int                     # units in the module
    size: int                  # columns per unit: 1 for a neuron, head_dim for a head
    groups: int                # units are removed evenly within this many groups (GQA: one per KV head)
    params: int                # prunable parameters per unit


@dataclass(frozen=True)
class Structure:
    """Units of one kind across the model, with the config fields that describe their count, or why not."""
    units: tuple[Unit, ...] = ()
    fields: dict = field(default_factory=dict)   # stack ("*": every stack) -> config field of the count
    refusal: str = ""


# ---------------------------------------------------------------------------------------- the probe
def _config_fields(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if not isinstance(v, bool) and (
        isinstance(v, int) or v is None)}


def _probe(model, changes: dict) -> dict[str, tuple[int, ...]] | None:
    """Parameter shapes of the model's class built on the meta device from its config with `changes`; None
    when the config refuses them or the model cannot be built so."""
    from accelerate import init_empty_weights
    config = copy.deepcopy(model.config)
    try:
        for key, value in changes.items():
            setattr(config, key, value)
        with init_empty_weights(include_buffers=True):
            probe = type(model)._from_config(config)
    except Exception:  # a config's own checks (divisibility, validation) reject the change: not this field
        return None
    return {k: tuple(v.shape) for k, v in probe.state_dict().items()}


def _changed(before: dict, after: dict) -> dict[str, tuple[tuple, tuple]]:
    return {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


class Anatomy:
    """What every part of a model is (see the module's docstring). `model` may live on the meta device."""

    def __init__(self, model):
        self.model = model
        self.model_class = type(model).__name__
        self.model_type = model.config.model_type
        self.stacks = block_stacks(model)
        self.block_paths = {f"{path}.{i}": (stack, i) for stack, path, blocks in self.stacks
                            for i in range(len(blocks))}
        self.shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        self.linears = {}          # module path -> (block path, attention module path or None)
        for block_path in self.block_paths:
            block = model.get_submodule(block_path)
            attention_of = {}
            for name, module in block.named_modules():
                parent = name.rpartition(".")[0] if "." in name else ""
                outer = attention_of.get(parent)
                if outer is None and name and ATTENTION_CLASS.search(type(module).__name__ + "." +
                                                                     name.rpartition(".")[2]):
                    outer = name
                attention_of[name] = outer
                if is_linear(module):
                    self.linears[f"{block_path}.{name}"] = (block_path, outer and f"{block_path}.{outer}")

    # ------------------------------------------------------------------------------------ matrices
    @functools.cached_property
    def matrices(self) -> dict[str, Matrix]:
        """Every prunable matrix by the model name of its weight, in module order."""
        ffn_roles = self._ffn_roles()
        named = {path: next((r for r, rule in _ATTENTION_LEAF if rule.search(path.rpartition(".")[2])), None)
                 for path, (_, attention) in self.linears.items() if attention}
        unnamed = {}  # attention module -> its projections no q/k/v name fits: one is the output projection
        for path, role in named.items():
            if role is None:
                unnamed.setdefault(self.linears[path][1], []).append(path)
        out = {}
        for path, (block_path, attention) in self.linears.items():
            module = self.model.get_submodule(path)
            leaf = path.rpartition(".")[2]
            if attention:
                role = named[path] or ("o" if len(unnamed[attention]) == 1 else leaf)
                kind = type(self.model.get_submodule(attention)).__name__
                where = attention.removeprefix(block_path) + kind
                if CROSS.search(where) and role in ("q", "k", "v", "qkv", "o"):
                    role = f"cross {role}"
            else:
                role = ffn_roles.get(path, leaf)
            stack, block = self.block_paths[block_path]
            out[f"{path}.weight"] = Matrix(f"{path}.weight", path, stack, block, block_path,
                                           "attention" if attention else "mlp", role, input_dim(module),
                                           matrix_shape(module))
        return out

    def _ffn_roles(self) -> dict[str, str]:
        roles = {}
        for unit in self.ffn.units:
            roles[unit.output] = "down"
            singles = [p for p, parts in unit.inputs if parts == 1]
            for path, parts in unit.inputs:
                leaf = path.rpartition(".")[2].lower()
                # a gated FFN (Llama gate_proj/up_proj, T5 wi_0/wi_1, Mixtral w1/w3) defines its gate first
                gate = "gate" in leaf or (len(singles) == 2 and path == singles[0] and "up" not in leaf)
                roles[path] = "gate_up" if parts == 2 else "gate" if gate else "up"
        return roles

    def in_block_list(self, model_name: str) -> bool:
        """Whether a name lies inside a list of blocks, also at an index this model does not have."""
        return any(model_name.startswith(f"{path}.") for _, path, _ in self.stacks)

    def block_of(self, model_name: str) -> tuple[str, int] | None:
        """(stack, block index) of a model name inside a block, else None."""
        parts = model_name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            found = self.block_paths.get(".".join(parts[:i]))
            if found:
                return found
        return None

    # ------------------------------------------------------------------------------------ FFN units
    @functools.cached_property
    def ffn(self) -> Structure:
        """FFN neurons of every block, and the config field(s) holding the FFN width; or why not."""
        non_attention = {p: self.model.get_submodule(p) for p, (_, att) in self.linears.items() if not att}
        bare = [b for b in self.block_paths if not any(owner == b for owner, _ in (
            self.linears[p] for p in non_attention))]
        if bare:  # e.g. a mixture of experts holding its FFNs as 3-D tensors, not linear layers
            return Structure(refusal=f"{self.model_class}'s block {bare[0]} has no FFN made of linear layers "
                                     "(its MLP holds its weights otherwise, e.g. experts as 3-D tensors), so "
                                     "no FFN neurons can be cut")
        widths = {matrix_shape(m)[1] for m in non_attention.values()}
        fields = _config_fields(self.model.config)
        tries = [(k, {k: v + WIDTH_STEP}) for k, v in fields.items() if v in widths]
        tries += [(k, {k: w + WIDTH_STEP}) for k, v in fields.items() if v is None for w in sorted(widths)]
        controlled: dict[str, tuple[str, Unit]] = {}   # block path -> (field, unit)
        reasons = []
        for key, change in tries:
            if all(b in controlled for b in self.block_paths):
                break
            found, why = self._ffn_probe(key, change)
            if why and "attention" not in why:  # a field that also sizes attention is no FFN width anyway
                reasons.append(why)
            for unit in found:
                controlled.setdefault(unit.block, (key, unit))
        missing = [b for b in self.block_paths if b not in controlled]
        if missing:
            detail = f" ({reasons[0]})" if reasons else ""
            return Structure(refusal=f"no field of {type(self.model.config).__name__} holds the FFN width of "
                                     f"{self.model_class}'s block {missing[0]}{detail}, so a narrower FFN "
                                     "cannot be written in its config")
        fields_by_stack: dict[str, set] = {}
        for block, (key, _) in controlled.items():
            fields_by_stack.setdefault(self.block_paths[block][0], set()).add(key)
        if any(len(keys) > 1 for keys in fields_by_stack.values()):
            return Structure(refusal=f"{self.model_class}'s FFN widths come from several config fields per "
                                     f"stack ({fields_by_stack})")
        by_stack = {stack: keys.pop() for stack, keys in fields_by_stack.items()}
        units = tuple(controlled[b][1] for b in self.block_paths)
        return Structure(units, by_stack)

    def _ffn_probe(self, key: str, change: dict) -> tuple[list[Unit], str]:
        after = _probe(self.model, change)
        if after is None:
            return [], ""
        changed = _changed(self.shapes, after)
        if not changed:
            return [], ""
        old = getattr(self.model.config, key)
        new = change[key]
        units, claimed = [], set()
        for block_path, (stack, _) in self.block_paths.items():
            inputs, outputs = [], []
            for path, (owner, attention) in self.linears.items():
                if owner != block_path or f"{path}.weight" not in changed:
                    continue
                (o1, i1), (o2, i2) = self._oriented(path, changed[f"{path}.weight"])
                if attention:
                    return [], f"changing {key} also changes attention's {path}"
                if i1 != i2 and o1 == o2:
                    outputs.append(path)
                    width, width2 = i1, i2
                elif o1 != o2 and i1 == i2 and (o2 - o1) % WIDTH_STEP == 0:
                    inputs.append((path, (o2 - o1) // WIDTH_STEP))
                else:
                    return [], f"changing {key} reshapes {path} {changed[f'{path}.weight']}"
                claimed.add(f"{path}.weight")
                if f"{path}.bias" in changed:
                    claimed.add(f"{path}.bias")
            if not outputs and not inputs:
                continue
            if len(outputs) != 1 or not inputs or width2 - width != WIDTH_STEP or (
                    old is not None and width != old) or any(p * width != matrix_shape(
                        self.model.get_submodule(q))[0] for q, p in inputs):
                return [], (f"changing {key} reshapes {[p for p, _ in inputs] + outputs} of {block_path}, "
                            "not one FFN's neurons")
            down = self.model.get_submodule(outputs[0])
            params = sum(parts * matrix_shape(self.model.get_submodule(p))[1] for p, parts in inputs) + \
                matrix_shape(down)[0]
            units.append(Unit("ffn", stack, block_path, tuple(inputs), outputs[0], width, 1, 1, params))
        stray = [k for k in changed if k not in claimed]
        if stray:  # e.g. an FFN-internal norm, or experts stored as 3-D tensors
            return [], f"changing {key} (the FFN width?) also reshapes {stray[0]} {changed[stray[0]]}"
        return units, ""

    def _oriented(self, path: str, shapes) -> tuple[tuple[int, int], tuple[int, int]]:
        flip = input_dim(self.model.get_submodule(path)) == 0
        return tuple(tuple(s[::-1]) if flip else tuple(s) for s in shapes)

    # ------------------------------------------------------------------------------------ heads
    @functools.cached_property
    def heads(self) -> Structure:
        """Query heads of every attention module, removable evenly within each KV group; or why not."""
        config = self.model.config
        heads = getattr(config, "num_attention_heads", None)
        if not isinstance(heads, int):
            return Structure(refusal=f"{type(config).__name__} has no num_attention_heads")
        kv = getattr(config, "num_key_value_heads", None) or heads
        attentions = [m for m in self.matrices.values() if m.component == "attention" and m.role == "o"]
        if not attentions:
            return Structure(refusal=f"{self.model_class} has no attention output projection")
        hidden_in = matrix_shape(self.model.get_submodule(attentions[0].module))[1]
        head_dim = getattr(config, "head_dim", None) or hidden_in // heads
        # fewer query heads: one less per KV group; where a count does not divide the width, a smaller one
        counts = [heads - kv, kv] if kv < heads else [heads - 1, heads // 2, 1]
        after = None
        for fewer in [c for c in counts if 0 < c < heads]:
            change = {"num_attention_heads": fewer, "head_dim": head_dim}
            if kv == heads and getattr(config, "num_key_value_heads", None):
                change["num_key_value_heads"] = fewer
            after = _probe(self.model, change)
            if after is not None:
                break
        cannot = f"so {self.model_class} with fewer heads cannot be described by its config"
        if after is None:
            return Structure(refusal=f"{self.model_class} cannot be built with {fewer} heads of {head_dim} "
                                     f"({cannot})")
        changed = _changed(self.shapes, after)
        units, claimed = [], set()
        grouped = kv < heads
        for m in attentions:
            attention = self.linears[m.module][1]
            ins = []
            for path, (_, att) in self.linears.items():
                if att != attention or f"{path}.weight" not in changed or path == m.module:
                    continue
                (o1, i1), (o2, i2) = self._oriented(path, changed[f"{path}.weight"])
                if i1 != i2 or o1 != heads * head_dim or o2 != fewer * head_dim:
                    return Structure(refusal=f"with fewer heads {path} changes {changed[f'{path}.weight']}: "
                                             f"its rows are not whole query heads (fused?), {cannot}")
                ins.append((path, 1))
                claimed |= {f"{path}.weight", f"{path}.bias"}
            out_shapes = changed.get(m.name)
            if not ins or out_shapes is None:
                return Structure(refusal=f"{self.model_class} builds its attention with head size = hidden "
                                         f"size / number of heads and reads no head_dim: with fewer heads "
                                         f"each head would grow, {cannot}")
            claimed.add(m.name)
            expected = 1 if grouped else 3  # the query rows alone; without grouping q, k and v
            if len(ins) != expected:
                return Structure(refusal=f"{attention}: {len(ins)} projections change with the head count, "
                                         f"expected {expected}; {cannot}")
            n_in = sum(matrix_shape(self.model.get_submodule(p))[1] for p, _ in ins)
            n_out = matrix_shape(self.model.get_submodule(m.module))[0]
            units.append(Unit("heads", m.stack, m.block_path, tuple(ins), m.module, heads, head_dim,
                              kv if grouped else 1, (n_in + n_out) * head_dim))
        stray = [k for k in changed if k not in claimed]
        if stray:
            return Structure(refusal=f"with fewer heads {stray[0]} changes shape too ({changed[stray[0]]}): "
                                     f"it is shared by every head of a layer or stack, {cannot}")
        fields = {"num_attention_heads": None, "head_dim": head_dim}
        if getattr(config, "num_key_value_heads", None):
            fields["num_key_value_heads"] = None
        return Structure(tuple(units), fields)

    # ------------------------------------------------------------------------------------ tags
    def tag(self, model_name: str, shape: tuple[int, ...], family: str | None = None,
            floating: bool = True, stored_name: str | None = None) -> "Tag":
        """Where a tensor (by its model name; `stored_name` as the checkpoint says it) sits, what it is, and
        whether one-shot pruning touches it: exactly the weights of linear layers inside blocks."""
        name = stored_name or model_name
        matrix = self.matrices.get(model_name)
        if matrix is not None:
            return Tag(name, matrix.stack, matrix.block, matrix.component, True, matrix.role)
        where = self.block_of(model_name)
        if where is None:
            m = _STACK.match(model_name)
            where = (m.group(1) if m else FAMILY_DEFAULT_STACK.get(family or "", "shared"), None)
        component = "buffer" if not floating else next(
            (c for c, rule in _COMPONENT_RULES if rule.search(model_name)), "other")
        return Tag(name, where[0], where[1], component, False, "")


@dataclass(frozen=True)
class Tag:
    """Where a tensor sits. stack: encoder/decoder/shared; block: index or None outside blocks."""
    name: str
    stack: str
    block: int | None
    component: str
    prunable: bool
    role: str = ""


_STACK = re.compile(r"^(?:[A-Za-z_]+\.)?(encoder|decoder)\.")
# Tensors that are not prunable matrices, by name; first match wins: a LayerNorm inside attention is a norm.
_COMPONENT_RULES = [
    ("buffer", re.compile(r"(?:^|\.)attn\.(?:masked_)?bias$|position_ids$|\.num_batches_tracked$")),
    ("position", re.compile(r"position|relative_attention_bias|(?:^|\.)wpe\.")),
    ("embedding", re.compile(r"embed|(?:^|\.)wte\.|word_embeddings|token_type|(?:^|\.)shared\.weight$")),
    ("norm", re.compile(r"norm|(?:^|\.)ln_|layer_norm", re.IGNORECASE)),
    ("conv", re.compile(r"(?:^|\.)conv\d*\.")),
    ("head", re.compile(r"lm_head|proj_out|(?:^|\.)cls\.|pooler|classifier|(?:^|\.)score\.|embed_out|"
                        r"vocab_(?:transform|projector)|generator_")),
    ("bias", re.compile(r"(?:\.bias|\.beta)$")),
]
FAMILY_DEFAULT_STACK = {"encoder-only": "encoder", "decoder-only": "decoder", "encoder-decoder": "shared"}


@functools.lru_cache(maxsize=8)
def _folder_anatomy(folder: str, stamp: tuple) -> Anatomy:
    from .registry import empty_model
    return Anatomy(empty_model(folder))


def model_anatomy(folder: str | os.PathLike) -> Anatomy:
    """The anatomy of an HF folder's model class (cached per folder and its config)."""
    folder = Path(folder).resolve()
    config = folder / "config.json"
    if not config.exists():
        raise SparsescopeError(f"{folder} has no config.json: pass a folder written by save_pretrained")
    stat = config.stat()
    return _folder_anatomy(str(folder), (stat.st_size, stat.st_mtime_ns))


def units_or_refusal(anatomy: Anatomy, kind: str) -> tuple[Unit, ...]:
    """The units of `kind` ("ffn" or "heads"), or one line saying why this model has none."""
    structure = anatomy.heads if kind == "heads" else anatomy.ffn
    if structure.refusal:
        other = "; prune its FFN neurons instead (ffn_magnitude, ffn_activation)" if kind == "heads" else ""
        raise SparsescopeError(f"{kind}: {structure.refusal}{other}")
    return structure.units

