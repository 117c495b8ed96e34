"""Linear layers as (outputs x inputs) matrices, whether nn.Linear or GPT-2's transposed Conv1D."""
from __future__ import annotations

import torch

from ..sources.anatomy import input_dim


class LinearView:
    """Read and write a layer's weight as a float (outputs x inputs) matrix, in its own dtype on disk."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.transposed = input_dim(module) == 0
        self.columns = module.weight.shape[input_dim(module)]

    def weight(self) -> torch.Tensor:
        w = self.module.weight.data
        return w.t() if self.transposed else w

    def set_weight(self, w: torch.Tensor) -> None:
        w = w.t() if self.transposed else w
        self.module.weight.data.copy_(w.to(self.module.weight.dtype))
