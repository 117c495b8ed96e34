"""Wanda (Sun et al., 2023): prune by |W_ij| * ||X_j||_2, compared within each output row.

The input-feature norms come from calibration activations gathered by a forward hook; no weight is
updated, only masked.
"""
from __future__ import annotations

import torch

from .layers import LinearView
from .magnitude import nm_prune_scores


class Wanda:
    def __init__(self, layer: torch.nn.Module):
        self.layer = LinearView(layer)
        self.squared_norms = torch.zeros(self.layer.columns, dtype=torch.float64, device=layer.weight.device)
        self.n_samples = 0

    def add_batch(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, self.layer.columns).double()
        self.n_samples += x.shape[0]
        self.squared_norms += (x * x).sum(dim=0)

    def scores(self) -> torch.Tensor:
        return self.layer.weight().abs().double() * self.squared_norms.sqrt().reshape(1, -1)

    def prune(self, sparsity: float, prune_n: int = 0, prune_m: int = 0) -> None:
        w = self.layer.weight()
        if prune_n:
            pruned = nm_prune_scores(w, self.scores(), prune_n, prune_m, in_dim=1)
        else:
            k = round(w.shape[1] * sparsity)  # per output row
            order = torch.argsort(self.scores(), dim=1, stable=True)[:, :k]
            pruned = w.scatter(1, order, 0.0)
        self.layer.set_weight(pruned)
