"""Evaluation: what pruning buys and costs — size on disk, runtime, quality (notebook 03)."""
