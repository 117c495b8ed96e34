"""Linear layers as (outputs x inputs) matrices, whether nn.Linear or GPT-2's transposed Conv1D."""
from __future__ import annotations

import torch


def is_linear(module: torch.nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D
    return isinstance(module, (torch.nn.Linear, Conv1D))


def input_dim(module: torch.nn.Module) -> int:
    """Which dimension of `module.weight` indexes the inputs: 1 for nn.Linear, 0 for Conv1D."""
    return 1 if isinstance(module, torch.nn.Linear) else 0


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
