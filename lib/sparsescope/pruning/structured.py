"""Structured one-shot pruning: whole FFN neurons or attention heads removed, leaving a smaller dense model
that runs faster on any hardware (units.py: what a unit is, how many go, the smaller config).

- ffn_magnitude (baseline, no calibration): every FFN drops the neurons whose weights — the rows that
  compute a neuron and the column that reads it out — have the smallest L2 norm, read from the checkpoint.
- ffn_activation: block by block on calibration text with one block in memory (the loop Wanda and SparseGPT
  use), each neuron is scored by the output energy it contributes on the calibration inputs (FLAP's
  fluctuation where a bias can absorb the mean), the lowest go, and the output projection is refit by least
  squares with bias compensation (repair.py). Later blocks calibrate on the pruned blocks' outputs.
- heads: the same for attention heads — the query heads of least output energy go, evenly within each KV
  group, and the attention output projection is refit.

The share removed (PruneSpec.sparsity) is a share of the prunable parameters (2-D weights inside blocks).
The result is a plain safetensors checkpoint under the source's stored names, with a smaller config.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..artifacts import write_json
from ..errors import SparsescopeError
from ..sources.devices import resolve_device
from ..sources.anatomy import block_stacks, model_anatomy
from ..sources.layouts import checkpoint_layout, tie_missing
from ..sources.registry import empty_model
from ..sources.weights import CheckpointReader
from .calibration import calibration_inputs, calibration_summary, prune_blockwise
from .repair import OutputRepair
from .streaming import BlockStreamer
from .units import columns, cuts, keep_best, matrix, removed_per_group, smaller_config, units

STRUCTURED = ("ffn_magnitude", "ffn_activation", "heads")


def streamed_calibration(model, folder: Path, work_dir: Path, device, n_samples: int, seqlen: int, seed: int):
    """For `model` on the meta device (empty_model): its layout, the block streamer and the calibration inputs
    on `device`, with the non-block weights loaded — what the block-by-block loop needs, no block in memory
    yet."""
    device = resolve_device(device)
    layout = checkpoint_layout(folder)
    streamer = BlockStreamer(model, folder, layout, work_dir / "blocks", device)
    block_paths = tuple(f"{path}." for _, path, _ in block_stacks(model))
    streamer.load(lambda name: not name.startswith(block_paths))  # embeddings, final norms, heads
    tie_missing(model)  # embeddings the checkpoint stores once (T5's encoder/decoder copies of `shared`)
    inputs = calibration_inputs(model, folder, n_samples, seqlen, seed)
    return layout, streamer, {k: v.to(device) for k, v in inputs.items()}


def structured_units(anatomy, spec, n_prunable: int):
    """(the units `spec` removes, how many each group loses), or one line saying why it cannot apply here."""
    found = units(anatomy, spec.method)
    return found, removed_per_group(found, spec.sparsity, n_prunable, spec.label)


class _Ignored:
    """The pruner of a linear layer structured pruning leaves alone (the loop hooks every layer)."""

    def add_batch(self, inputs) -> None:
        pass


class StructuredPruner:
    """prune(stored name, tensor) -> the smaller model's tensor, for the run's writer; `touched` names every
    stored tensor that changes; `finish(folder)` writes the smaller config."""

    def __init__(self, run):
        spec = run.spec
        model, self.layout, self.streamer = empty_model(run.folder), checkpoint_layout(run.folder), None
        anatomy = model_anatomy(run.folder)
        # refused here, before any calibration
        self.units, self.removed = structured_units(anatomy, spec, run.targets.n_weights)
        self.kept: dict[str, torch.Tensor] = {}  # output projection -> kept units
        if spec.method == "ffn_magnitude":
            self._by_magnitude(model, run.folder)
        else:
            _, self.streamer, inputs = streamed_calibration(model, run.folder, run.work_dir, run.device,
                                                            run.budget["n_samples"], spec.seqlen, spec.seed)
            self._by_activation(model, inputs, run.progress)
        missed = [u.output for u in self.units if u.output not in self.kept]
        if missed:
            raise SparsescopeError(f"{run.model}: calibration never reached {missed[:2]}: they are not "
                                   "inside a block of the model's own class")
        self.cuts = {}
        for u in self.units:
            self.cuts.update(cuts(model, u, self.kept[u.output]))
        changed = set(self.cuts)
        if self.streamer is not None:  # the refit output projections and their biases
            changed |= {f"{u.output}.{leaf}" for u in self.units for leaf in ("weight", "bias")}
        self.touched = {self.layout.to_checkpoint[n] for n in changed if n in self.layout.to_checkpoint}
        self.config = smaller_config(anatomy, self.units, self.removed)
        self.before = smaller_config(anatomy, self.units, 0)
        self.provenance = {"source": run.model, "method": spec.method, "sparsity": spec.sparsity}

    def _by_magnitude(self, model, folder: Path) -> None:
        reader = CheckpointReader(folder)

        def squares(path: str, axis: int) -> torch.Tensor:
            module = model.get_submodule(path)
            w = matrix(module, reader.get(self.layout.to_checkpoint[f"{path}.weight"])).float()
            return (w * w).sum(axis)
        for u in self.units:
            # per neuron: its column of the output projection, its row of every input part
            rows = sum(squares(p, 1).reshape(parts, -1).sum(0) for p, parts in u.inputs)
            norms = squares(u.output, 0) + rows
            self.kept[u.output] = keep_best(u, norms.reshape(u.n, u.size).sum(1), self.removed)

    def _by_activation(self, model, inputs: dict, progress: bool) -> None:
        unit_of = {id(model.get_submodule(u.output)): u for u in self.units}

        def make_pruner(layer):
            unit = unit_of.get(id(layer))
            if unit is None:
                return _Ignored()
            pruner = OutputRepair(layer)
            pruner.unit = unit
            return pruner

        def prune_layer(pruner) -> None:
            if isinstance(pruner, OutputRepair):
                u = pruner.unit
                self.kept[u.output] = keep_best(u, pruner.energy(u.size), self.removed)
                pruner.remove(columns(u, self.kept[u.output]), repair=True)
        self.calibration = calibration_summary(
            prune_blockwise(model, inputs, make_pruner, prune_layer, progress, self.streamer), inputs)

    def __call__(self, name: str, w: torch.Tensor) -> torch.Tensor:
        if self.streamer is not None:  # the block as calibration left it (refit output projection)
            w = self.streamer.stored(name)
        cut = self.cuts.get(self.layout.to_model.get(name))
        return w if cut is None else w.index_select(cut[0], cut[1]).contiguous()

    def describe(self) -> str:
        """The change in words, e.g. 'intermediate_size 1536 -> 922'."""
        return "; ".join(f"{k} {self.before[k]} -> {v}" for k, v in self.config.items()
                         if self.before[k] != v)

    def finish(self, folder: Path) -> None:
        """Rewrite the copied config.json of the checkpoint in `folder` with the smaller widths."""
        path = Path(folder) / "config.json"
        config = json.loads(path.read_text())
        config.update(self.config)
        config["sparsescope"] = {**self.provenance, "structured": self.describe(),
                                 "removed_per_group": self.removed}
        write_json(config, path)
