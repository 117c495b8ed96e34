"""SparseGPT (Frantar & Alistarh, 2023): one-shot pruning with OBS weight reconstruction.

For one linear layer W (rows = outputs, columns = inputs) and calibration inputs X, it keeps the
Hessian H = 2 X Xᵀ / n of the layer-wise squared error, dampens it (1% of its mean diagonal), and walks
the columns left to right in blocks: inside a block the mask is chosen adaptively by the OBS saliency
w² / U²_jj = w² / [H_F⁻¹]_jj (U the upper Cholesky factor of H⁻¹, F the columns not yet done), each
pruned weight's error is spread over the remaining columns of the block through U, and the block's
accumulated error updates all later columns at once (lazy batch update). With N:M, every M columns
the M-N least salient weights of each row are chosen.

Written after the reference implementation (IST-DASLab/sparsegpt, `fasterprune`); the Cholesky rows
equal the OBS quantities: U[j, j:] = [H_F^-1]_{j, F} / sqrt([H_F^-1]_jj), F = columns j.. still free.
"""
from __future__ import annotations

import math

import torch

from ..errors import SparsescopeError
from .layers import LinearView


class SparseGPT:
    def __init__(self, layer: torch.nn.Module):
        self.layer = LinearView(layer)
        self.columns = self.layer.columns
        self.H = torch.zeros(self.columns, self.columns, dtype=torch.float32, device=layer.weight.device)
        self.n_samples = 0

    def add_batch(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, self.columns).float()
        n = x.shape[0]
        self.H *= self.n_samples / (self.n_samples + n)
        self.n_samples += n
        x = math.sqrt(2 / self.n_samples) * x
        self.H += x.t() @ x

    def prune(self, sparsity: float, prune_n: int = 0, prune_m: int = 0, block_size: int = 128,
              damp: float = 0.01) -> None:
        if prune_n and self.columns % prune_m:
            raise SparsescopeError(f"N:M with M={prune_m} needs the input dimension ({self.columns}) of "
                                   "every pruned matrix to be a multiple of M")
        if prune_n:  # groups of M counted from each block's start: blocks must hold whole groups
            block_size = max(block_size // prune_m, 1) * prune_m
        W = self.layer.weight().float().clone()
        H = self.H
        self.H = None
        dead = torch.diag(H) == 0        # inputs never active: their weights cannot matter
        H[dead, dead] = 1
        W[:, dead] = 0
        H += damp * torch.mean(torch.diag(H)) * torch.eye(self.columns, device=H.device)
        H_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)

        for start in range(0, self.columns, block_size):
            end = min(start + block_size, self.columns)
            W1, Hinv1 = W[:, start:end].clone(), H_inv[start:end, start:end]
            Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
            d = torch.diag(Hinv1)
            if prune_n == 0:             # adaptive mask for the whole block, by OBS saliency
                saliency = W1 ** 2 / d.reshape(1, -1) ** 2
                k = round(saliency.numel() * sparsity)
                mask1 = torch.zeros_like(W1, dtype=torch.bool).reshape(-1)
                if k:
                    mask1[torch.topk(saliency.reshape(-1), k, largest=False).indices] = True
                mask1 = mask1.reshape(W1.shape)
            else:
                mask1 = torch.zeros_like(W1, dtype=torch.bool)
            for i in range(end - start):
                if prune_n and i % prune_m == 0:
                    saliency = W1[:, i:i + prune_m] ** 2 / d[i:i + prune_m].reshape(1, -1) ** 2
                    weakest = torch.topk(saliency, prune_m - prune_n, dim=1, largest=False).indices
                    mask1.scatter_(1, i + weakest, True)
                w = W1[:, i]
                q = w.masked_fill(mask1[:, i], 0)
                Q1[:, i] = q
                err = (w - q) / d[i]
                W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
                Err1[:, i] = err
            W[:, start:end] = Q1
            W[:, end:] -= Err1 @ H_inv[start:end, end:]
        self.layer.set_weight(W)
