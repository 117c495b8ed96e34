"""A model held on the meta device whose blocks come from the checkpoint one at a time.

Calibrating Wanda or SparseGPT needs a forward pass, but not the whole model in memory: everything outside
the transformer blocks (embeddings, final norms, heads) is loaded once, and each block is materialised from
the checkpoint when the forward reaches it and released after. Pruned blocks are written to spill files in
the run's working folder (in the checkpoint's dtype) and read back from there — by a later stack that runs
through them (T5's decoder calibrates on the pruned encoder) and by the pruning run that writes the result.
Memory: the non-block weights, one block and the activations.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..sources.layouts import Layout, assign_weights, release_weights
from ..sources.weights import CheckpointReader, map_tensor, read_safetensors_header
from ..storage import write_safetensors


class BlockStreamer:
    def __init__(self, model, folder: Path, layout: Layout, spill_dir: Path, device: torch.device):
        self.model, self.layout, self.device = model, layout, device
        self.reader = CheckpointReader(folder)
        self.spill_dir = Path(spill_dir)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self.spilled: dict[str, tuple[Path, object]] = {}  # stored name -> (spill file, its TensorInfo)

    def stored(self, name: str) -> torch.Tensor:
        """A stored tensor as the run now sees it: pruned if its block is done, else from the checkpoint."""
        if name in self.spilled:
            path, info = self.spilled[name]
            with open(path, "rb") as f:
                return map_tensor(f, info)
        return self.reader.get(name)

    def _fetch(self, name: str) -> torch.Tensor:
        # a copy: pruning writes into the weights in place, and a pickle's mapped tensors are shared
        return self.stored(name).to(torch.float32, copy=True)

    def load(self, include) -> None:
        """Materialise the weights whose model name `include` accepts."""
        assign_weights(self.model, self.layout, self._fetch, include, device=self.device)

    def release(self, module) -> None:
        release_weights(module)

    def spill(self, path: str, block) -> None:
        """Write a pruned block's weights (stored names, checkpoint dtype) and release the block."""
        tensors = {}
        for name, p in block.named_parameters(prefix=path):
            stored = self.layout.to_checkpoint.get(name)
            if stored is not None and stored not in tensors:
                tensors[stored] = p.detach().to("cpu", self.reader_dtype(stored)).contiguous()
        file = self.spill_dir / f"{path}.safetensors"
        write_safetensors(file, tensors, {"format": "pt"})
        for info in read_safetensors_header(file)[0]:
            self.spilled[info.name] = (file, info)
        self.release(block)

    def reader_dtype(self, stored: str) -> torch.dtype:
        if stored in self.reader.pickled:
            return self.reader.pickled[stored].dtype
        return self.reader.safetensors[stored][1].dtype
