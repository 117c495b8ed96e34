"""Where a stage runs: "auto" (CUDA when torch sees a GPU, else the CPU), "cpu", "cuda" or "cuda:N".

Models and tensors reach the device only through `to_device`, so tests can drive the CUDA paths on a
machine without a GPU."""
from __future__ import annotations

import torch

from ..errors import SparsescopeError

DEVICE_CHOICES = "'auto' (CUDA when torch sees a GPU, else the CPU), 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device a stage runs on: "auto" is CUDA when torch sees a GPU, else the CPU; "cpu", "cuda"
    and "cuda:N" are taken as asked once checked to exist. Anything else: one SparsescopeError line."""
    spec = str(device).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise SparsescopeError(f"unknown device {device!r}: use {DEVICE_CHOICES}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SparsescopeError(f"device {device!r} needs CUDA, but torch {torch.__version__} sees no "
                                   "GPU: use device='cpu' or 'auto', or install a CUDA build of torch")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise SparsescopeError(f"device {device!r} does not exist: torch sees {count} GPU(s), "
                                   f"cuda:0 to cuda:{count - 1}; pick one of those or 'auto'")
    return resolved


def device_name(device: str | torch.device = "auto") -> str:
    """The device as results name it: the GPU's model, or the CPU with the threads torch uses."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def to_device(x, device: torch.device):
    """x.to(device), for a model or a tensor: the one door to the device (tests replace it to run the
    CUDA paths on a CPU-only machine)."""
    return x.to(device)
