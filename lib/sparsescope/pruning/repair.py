"""Least-squares repair of an output projection whose input columns are being removed (structured pruning).

An FFN's (or attention's) output projection W (outputs x inputs) sees calibration inputs X. Removing input
columns R and keeping K, the kept weights are refit so the layer's outputs on X change least:

    min over D of ||X_K D^T - X_R W_R^T||^2 + λ||D||^2   ->   W_K += W_R H_RK (H_KK + λI)^-1,

with H = X^T X / n, the statistic SparseGPT builds, and λ 1% of the mean kept diagonal. (This equals
W H[:, K] (H_KK + λI)^-1 at λ = 0; regularising toward the current weights instead of toward zero leaves a
layer with nothing removed exactly as it was.) When the layer has a bias, X gains a constant column whose
weight is the bias, so the mean of what the removed columns gave moves into the bias (FLAP's bias
compensation) within the same solve.

Importance of a group of columns G (a neuron: one column; a head: head_dim columns) is the output energy it
contributes, tr(W_G C_GG W_G^T), where C is the inputs' second moment — about the mean when a bias can
absorb the mean (FLAP's fluctuation), raw when it cannot.
"""
from __future__ import annotations

import torch

from .layers import LinearView


class OutputRepair:
    def __init__(self, layer: torch.nn.Module):
        self.layer = LinearView(layer)
        self.columns = self.layer.columns
        self.has_bias = getattr(layer, "bias", None) is not None
        size = self.columns + self.has_bias
        # float32 accumulation as in SparseGPT (a GPT2-XL FFN has 6400 inputs); the solve runs in float64
        self.H = torch.zeros(size, size, dtype=torch.float32, device=layer.weight.device)
        self.n_samples = 0

    def add_batch(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, self.columns).float()
        if self.has_bias:
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)
        n = len(x)
        self.H *= self.n_samples / (self.n_samples + n)
        self.n_samples += n
        self.H += (x.t() @ x) / self.n_samples

    def second_moments(self) -> torch.Tensor:
        H = self.H[:self.columns, :self.columns].double()
        if self.has_bias:  # the bias absorbs the mean: what is left to lose is the fluctuation
            mean = self.H[:self.columns, self.columns].double()
            H = H - torch.outer(mean, mean)
        return H

    def energy(self, group_size: int = 1) -> torch.Tensor:
        """Output energy of each consecutive group of `group_size` input columns."""
        W = self.layer.weight().double()
        C = self.second_moments()
        if group_size == 1:
            return torch.diag(C).cpu() * (W * W).sum(0).cpu()
        groups = self.columns // group_size
        out = torch.empty(groups, dtype=torch.float64)
        for g in range(groups):
            cols = slice(g * group_size, (g + 1) * group_size)
            out[g] = float(((W[:, cols] @ C[cols, cols]) * W[:, cols]).sum())
        return out

    def remove(self, kept: torch.Tensor, repair: bool = True, damp: float = 0.01) -> None:
        """Zero every input column not in `kept` and, with `repair`, refit the kept columns (and the bias).
        Zeroed columns make the layer compute what the narrowed layer will, so the block's output that feeds
        the next block during calibration is the pruned model's."""
        H, self.H = self.H, None
        removed = torch.ones(self.columns, dtype=torch.bool)
        removed[kept.cpu()] = False
        if not removed.any():
            return
        W = self.layer.weight().double()
        if self.has_bias:
            W = torch.cat([W, self.layer.module.bias.detach().double().reshape(-1, 1)], 1)
            keep = torch.cat([~removed, torch.tensor([True])])  # the bias column is always kept
        else:
            keep = ~removed
        removed = torch.cat([removed, torch.tensor([False])]) if self.has_bias else removed
        keep, removed = keep.to(W.device), removed.to(W.device)
        if repair:
            H = H.double()
            H_kk = H[keep][:, keep]
            damping = damp * float(torch.diag(H_kk).mean()) or 1e-12  # dead inputs: diagonal all zero
            rhs = W[:, removed] @ H[removed][:, keep]                      # W_R H_RK
            H_kk.diagonal().add_(damping)
            W[:, keep] += torch.linalg.solve(H_kk, rhs.t()).t()           # H_KK symmetric
        W[:, removed] = 0
        if self.has_bias:
            self.layer.module.bias.data.copy_(W[:, -1].to(self.layer.module.bias.dtype))
            W = W[:, :-1]
        self.layer.set_weight(W)
