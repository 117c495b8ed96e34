"""sparsescope: weight sparsity in transformers — distributions, pruning, storage, benchmarks, report."""
from .errors import SparsescopeError
from .sources import PROFILES, REGISTRY, describe, load_model, model_folder, resolve
from .statistics import analyze_folder
from .weights import iter_tensors, tag

__all__ = ["SparsescopeError", "PROFILES", "REGISTRY", "describe", "load_model", "model_folder", "resolve",
           "analyze_folder", "iter_tensors", "tag"]
