"""sparsescope: weight sparsity in transformers.

The package follows the pipeline, and a stage only imports the stages before it:
errors, artifacts → sources → storage → analysis → pruning → evaluation → stages (one function per notebook
step) → report (facts, figures, templates, HTML/PDF) → run (knobs, markers, papermill, the Dask grid).
"""
from .errors import SparsescopeError
from .sources.registry import PROFILES, REGISTRY, describe, load_model, model_folder, resolve
from .storage import export_dense, load_pruned

__all__ = ["SparsescopeError", "PROFILES", "REGISTRY", "describe", "load_model", "model_folder", "resolve",
           "load_pruned", "export_dense"]
