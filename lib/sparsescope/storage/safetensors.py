"""The one safetensors writer (tensor by tensor, no second copy of a shard in memory); the header reader
lives with the other readers (sources/weights.py) and is re-exported here."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..sources.weights import SAFETENSORS_DTYPES, read_safetensors_header

__all__ = ["SAFETENSORS_NAMES", "read_safetensors_header", "write_safetensors"]

SAFETENSORS_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file tensor by tensor (no second copy of the whole shard in memory)."""
    header, offset = {"__metadata__": metadata}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": SAFETENSORS_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for t in tensors.values():
            if t.numel():
                f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
