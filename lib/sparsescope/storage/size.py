"""What a checkpoint costs on disk: its bytes, and per pruned weight the bits on the index and on the values
against their bounds (what notebook 03 writes to size.csv)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..sources.weights import read_safetensors_header, weight_files
from .checkpoint import META_KEY, sparse_descriptions
from .codecs import CODINGS, index_bound_bits


def checkpoint_bytes(folder: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in weight_files(folder))



def _run_nm(folder: Path) -> tuple[int, int] | None:
    """(N, M) of the N:M run that wrote a compressed checkpoint (config.json), else None."""
    config = folder / "config.json"
    nm = json.loads(config.read_text()).get(META_KEY, {}).get("nm") if config.exists() else None
    return tuple(int(x) for x in nm.split(":")) if nm else None


def size_breakdown(folder: str | os.PathLike) -> dict:
    """From the headers of a compressed checkpoint, over its sparse matrices: bits per weight spent on the
    index (positions) against the index's bound — the mask entropy n·H(s), or log2 C(M, N) / M per weight
    for an N:M run — and on the stored values; and, as before, all bits against that bound plus the kept
    values' raw bits. `index_coding` names the codings used ("none" without sparse matrices)."""
    folder = Path(folder)
    run_nm = _run_nm(folder)
    numel = nnz = index_bits = value_bits = index_bound = bound = 0
    codings = set()
    for path in weight_files(folder):
        infos, metadata = read_safetensors_header(path)
        sizes = {t.name: t.nbytes for t in infos}
        for name, info in sparse_descriptions(path, metadata).items():
            n = math.prod(info["shape"])
            raw_bits = 8 * torch.empty(0, dtype=getattr(torch, info["dtype"])).element_size()
            nm = (int(info["n"]), int(info["m"])) if info["coding"] == "nm" else run_nm
            numel += n
            nnz += info["nnz"]
            index_bits += 8 * sizes[f"{name}::index"]
            value_bits += 8 * sizes[f"{name}::values"]
            tensor_bound = index_bound_bits(n, info["nnz"], nm)
            index_bound += tensor_bound
            bound += tensor_bound + info["nnz"] * raw_bits
            codings.add(info["coding"])
    per_weight = max(numel, 1)
    return {"sparse_weights": numel, "sparse_nnz": nnz,
            "bits_per_weight": (index_bits + value_bits) / per_weight,
            "bound_bits_per_weight": bound / per_weight,
            "ratio_to_bound": (index_bits + value_bits) / bound if bound else float("nan"),
            "index_bits_per_weight": index_bits / per_weight if numel else float("nan"),
            "index_bound_bits_per_weight": index_bound / per_weight if numel else float("nan"),
            "index_ratio": index_bits / index_bound if index_bound else float("nan"),
            "value_bits_per_weight": value_bits / per_weight if numel else float("nan"),
            "index_coding": "+".join(c for c in CODINGS if c in codings) or "none",
            "file_bytes": checkpoint_bytes(folder)}
