"""Pruning: one-shot methods (magnitude: global, per layer, N:M; Wanda; SparseGPT), the block-by-block
calibration loop they share, and pruning runs that write checkpoints (notebook 02)."""
