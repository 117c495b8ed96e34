"""What structured pruning removes: the units (FFN neurons, attention heads) of every block as the model's
anatomy finds them (sources/anatomy.py), how many each loses for a share of the prunable parameters, and the
smaller config that describes the result.

A unit is a group of input columns of an output projection (a neuron: one column of an FFN's output layer;
a head: head_dim columns of attention's output layer) together with the output rows of the layers that
compute it (in a fused gate_up matrix, row j of each part: rows j and j + width). Every module loses the same
number of units, so the smaller model has one FFN width (or head count) per stack and opens with a plain
`from_pretrained`.

Heads: grouped-query attention keeps every KV head and drops the same number of query heads inside each KV
group, so `num_attention_heads` stays a multiple of `num_key_value_heads` (a KV head serves several query
heads: dropping one would cost all of them). Without grouping, a head goes with its key and value rows.
"""
from __future__ import annotations

import torch

from ..errors import SparsescopeError
from ..sources.anatomy import Anatomy, Unit, input_dim, units_or_refusal


def units(anatomy: Anatomy, method: str) -> tuple[Unit, ...]:
    """The units a structured method removes, or one line saying why this model has none."""
    return units_or_refusal(anatomy, "heads" if method == "heads" else "ffn")


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
    """The output projection's input columns (and each input part's output rows) of the kept units."""
    return (kept.reshape(-1, 1) * unit.size + torch.arange(unit.size)).reshape(-1)


def cuts(model, unit: Unit, kept: torch.Tensor) -> dict[str, tuple[int, torch.Tensor]]:
    """Stored-layout slices of the smaller model: model parameter name -> (dimension, indices kept)."""
    index = columns(unit, kept)
    width = unit.n * unit.size
    out = {}
    for path, parts in unit.inputs:  # output rows: dim 0 of nn.Linear's weight, dim 1 of Conv1D's
        module = model.get_submodule(path)
        rows = torch.cat([index + p * width for p in range(parts)])
        out[f"{path}.weight"] = (1 - input_dim(module), rows)
        if getattr(module, "bias", None) is not None:
            out[f"{path}.bias"] = (0, rows)
    module = model.get_submodule(unit.output)
    out[f"{unit.output}.weight"] = (input_dim(module), index)
    return out


def smaller_config(anatomy: Anatomy, units: list[Unit], r: int) -> dict:
    """The config fields that describe the smaller model."""
    unit = units[0]
    if unit.kind == "heads":
        kept = (unit.n // unit.groups - r) * unit.groups
        grouped = len(unit.inputs) == 1  # only the query rows go: every KV head stays
        out = {"num_attention_heads": kept, "head_dim": unit.size}
        if "num_key_value_heads" in anatomy.heads.fields:
            out["num_key_value_heads"] = unit.groups if grouped else kept
        return out
    fields = anatomy.ffn.fields
    return {fields[u.stack]: u.n - r for u in units}


def matrix(module, tensor: torch.Tensor) -> torch.Tensor:
    """A stored weight of `module` as (outputs x inputs)."""
    return tensor if input_dim(module) == 1 else tensor.t()
