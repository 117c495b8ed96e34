"""Pruned checkpoints that really shrink: each pruned matrix as its kept values plus a compact index.

Format "sparsescope-sparse" v1, a safetensors checkpoint:
- untouched tensors are stored as they were, under their own names;
- a sparse matrix `W` is stored as `W::values` (the kept entries in row-major order, original dtype)
  and `W::index` (uint8), described in the file's metadata (key "sparsescope": shape, dtype, coding);
- `index` is either a bitmask (numpy.packbits, little bit order, over the flattened matrix — the
  compressed-tensors layout) or, when smaller, the gaps between kept entries in Rice code (a Golomb code,
  optimal for the geometric gaps of a random mask, so it tracks the mask entropy at high sparsity);
- config.json carries `"sparsescope": {"format": "sparsescope-sparse", "version": 1, ...}`.

"Kept" means "bit pattern not all zero": -0.0 is kept as a value, so a round trip is bit-exact.
`load_pruned(folder)` returns a normal transformers model; `export_dense` writes a plain checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numba
import numpy as np
import torch

from .artifacts import write_json
from .errors import SparsescopeError
from .sources.layouts import assign_weights, build_layout, copy_weights, tie_missing
from .sources.registry import empty_model
from .sources.weights import SAFETENSORS_DTYPES, CheckpointReader, read_safetensors_header, tag, weight_files

FORMAT = "sparsescope-sparse"
VERSION = 1
META_KEY = "sparsescope"
SHARD_BYTES = 512 << 20  # pruned tensors wait in memory until their shard is written
INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


# --------------------------------------------------------------------------------- index codes
def kept_mask(w: torch.Tensor) -> np.ndarray:
    """True where the stored bit pattern is not +0.0."""
    flat = w.detach().contiguous().reshape(-1)
    return (flat.view(INT_VIEW[flat.element_size()]) != 0).numpy()


def rice_bits(gaps: np.ndarray, k: int) -> int:
    return int(gaps.size * (1 + k) + (gaps >> k).sum())


def best_rice_parameter(gaps: np.ndarray) -> tuple[int, int]:
    sizes = [(rice_bits(gaps, k), k) for k in range(0, 32)]
    return min(sizes)


@numba.njit(cache=True)
def _rice_encode(gaps, k, n_bytes):
    out = np.zeros(n_bytes, np.uint8)
    pos = 0
    low = (1 << k) - 1
    for g in gaps:
        q = g >> k
        for _ in range(q):              # unary quotient: q ones ...
            out[pos >> 3] |= 1 << (pos & 7)
            pos += 1
        pos += 1                        # ... then a zero
        r = g & low
        for b in range(k):              # remainder, least significant bit first
            if (r >> b) & 1:
                out[pos >> 3] |= 1 << (pos & 7)
            pos += 1
    return out


@numba.njit(cache=True)
def _rice_decode(code, k, n_kept, numel):
    positions = np.empty(n_kept, np.int64)
    pos = 0
    last = -1
    for i in range(n_kept):
        q = 0
        while (code[pos >> 3] >> (pos & 7)) & 1:
            q += 1
            pos += 1
        pos += 1
        r = 0
        for b in range(k):
            r |= ((code[pos >> 3] >> (pos & 7)) & 1) << b
            pos += 1
        last = last + 1 + ((q << k) | r)
        if last >= numel:
            raise ValueError("corrupt Rice index: position past the end of the matrix")
        positions[i] = last
    return positions


def encode_sparse(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(values, index bytes, description) of a matrix, with the smaller of the two index codes."""
    mask = kept_mask(w)
    positions = np.flatnonzero(mask)
    values = w.detach().contiguous().reshape(-1)[torch.from_numpy(positions)]
    bitmask_bits = mask.size
    gaps = np.diff(positions, prepend=-1) - 1
    rice_size, k = best_rice_parameter(gaps) if positions.size else (0, 0)
    info = {"shape": list(w.shape), "dtype": str(w.dtype).replace("torch.", ""), "nnz": int(positions.size)}
    if rice_size < bitmask_bits:
        index = _rice_encode(gaps.astype(np.int64), k, (rice_size + 7) // 8)
        info.update(coding="rice", k=int(k))
    else:
        index = np.packbits(mask, bitorder="little")
        info.update(coding="bitmask")
    return values, torch.from_numpy(index), info


def decode_sparse(values: torch.Tensor, index: torch.Tensor, info: dict) -> torch.Tensor:
    numel = math.prod(info["shape"])
    if values.numel() != info["nnz"]:
        raise SparsescopeError(f"sparse tensor holds {values.numel()} values but its index says "
                               f"{info['nnz']}")
    code = index.numpy()
    if info["coding"] == "bitmask":
        positions = np.flatnonzero(np.unpackbits(code, count=numel, bitorder="little"))
    elif info["coding"] == "rice":
        positions = _rice_decode(code, int(info["k"]), int(info["nnz"]), numel)
    else:
        raise SparsescopeError(f"unknown sparse index coding {info['coding']!r}")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(positions)] = values
    return dense.reshape(info["shape"])


def binary_entropy(p):
    """H(p) in bits, elementwise; 0 at p = 0 and p = 1."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.where((p <= 0) | (p >= 1), 0.0, h)


def entropy_bound_bits(numel: int, nnz: int, value_bits: int) -> float:
    """H(s) per weight for the mask plus the kept values' bits: what any lossless code must spend
    on an i.i.d. mask of this density."""
    if numel == 0:
        return 0.0
    return numel * float(binary_entropy(nnz / numel)) + nnz * value_bits


# ------------------------------------------------------------------------------------- writer
class CheckpointWriter:
    """Writes tensors into safetensors shards of bounded size, sparse ones compressed."""

    def __init__(self, out_dir: str | os.PathLike, max_shard_bytes: int = SHARD_BYTES):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_shard_bytes = max_shard_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_meta: dict[str, dict] = {}
        self.pending_bytes = 0
        self.shards: list[tuple[str, list[str]]] = []

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self._put({name: tensor.contiguous()}, {})

    def add_sparse(self, name: str, tensor: torch.Tensor) -> None:
        """Store compressed if that is smaller, else dense."""
        values, index, info = encode_sparse(tensor)
        if values.numel() * values.element_size() + index.numel() >= tensor.numel() * tensor.element_size():
            self.add(name, tensor)
        else:
            self._put({f"{name}::values": values, f"{name}::index": index}, {name: info})

    def _put(self, tensors: dict, meta: dict) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if self.pending and self.pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self.pending.update(tensors)
        self.pending_meta.update(meta)
        self.pending_bytes += size

    def _flush(self) -> None:
        if not self.pending:
            return
        fname = f"model-{len(self.shards) + 1:05d}.safetensors"
        metadata = {"format": "pt"}
        if self.pending_meta:
            metadata[META_KEY] = json.dumps({"version": VERSION, "tensors": self.pending_meta})
        write_safetensors(self.out_dir / fname, self.pending, metadata)
        self.shards.append((fname, list(self.pending)))
        self.pending, self.pending_meta, self.pending_bytes = {}, {}, 0

    def close(self) -> None:
        self._flush()
        if len(self.shards) == 1:
            (self.out_dir / self.shards[0][0]).rename(self.out_dir / "model.safetensors")
        else:
            weight_map = {}
            for fname, names in self.shards:
                for n in names:
                    weight_map[n.split("::")[0]] = fname
            index = {"metadata": {}, "weight_map": weight_map}
            write_json(index, self.out_dir / "model.safetensors.index.json")


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


def copy_model_files(src: str | os.PathLike, dst: str | os.PathLike,
                     extra_config: dict | None = None) -> None:
    """Config, tokenizer and other non-weight files of an HF folder; config gains `extra_config`."""
    src, dst = Path(src), Path(dst)
    for path in src.iterdir():
        weights = path.name.endswith(WEIGHT_SUFFIXES) or path.name.endswith(".index.json")
        if path.is_file() and not weights:
            shutil.copy(path, dst / path.name)
    if extra_config is not None:
        config = json.loads((dst / "config.json").read_text())
        config[META_KEY] = extra_config
        write_json(config, dst / "config.json")


# ------------------------------------------------------------------------------------- reader
class StoredTensors:
    """Every tensor of a plain or compressed checkpoint by its stored name, in file order; a sparse one is
    decoded when asked for, a plain one mapped from the page cache. Holding it costs no memory."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.reader = CheckpointReader(folder)
        self.sparse: dict[str, dict] = {}
        for path in weight_files(folder):
            if path.suffix == ".safetensors":
                raw = read_safetensors_header(path)[1].get(META_KEY)
                self.sparse.update(json.loads(raw)["tensors"] if raw else {})
        self.shapes: dict[str, tuple[int, ...]] = {}
        for name in [*self.reader.safetensors, *self.reader.pickled]:
            base, _, part = name.partition("::")
            if not part:
                self.shapes[name] = tuple(self.reader.shape(name))
            elif base not in self.sparse:
                raise SparsescopeError(f"{folder}: {base} has sparse parts but no description in the "
                                       "metadata")
            else:
                self.shapes[base] = tuple(self.sparse[base]["shape"])
        aliases = json.loads((self.folder / "config.json").read_text()).get(META_KEY, {}).get("aliases", {}) \
            if (self.folder / "config.json").exists() else {}
        self.aliases = {**self.reader.aliases, **aliases}

    def get(self, name: str) -> torch.Tensor:
        if name in self.sparse:
            return decode_sparse(self.reader.get(f"{name}::values"), self.reader.get(f"{name}::index"),
                                 self.sparse[name])
        return self.reader.get(name)

    def items(self):
        for name in self.shapes:
            yield name, self.get(name)


def read_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every stored tensor of a checkpoint, sparse ones decompressed, as independent copies."""
    return {name: tensor.clone() for name, tensor in StoredTensors(folder).items()}


def load_pruned(folder: str | os.PathLike, dtype: torch.dtype | None = None):
    """A normal transformers model from a compressed (or plain) checkpoint in any layout its source had: hub
    names (bare GPT-2, BERT gamma/beta), aliases and unused heads are resolved as from_pretrained does."""
    folder = Path(folder)
    model = empty_model(folder)
    stored = StoredTensors(folder)
    layout = build_layout(model, stored.shapes, stored.aliases, str(folder))
    misplaced = [n for n in layout.unused if tag(n, stored.shapes.get(n, ())).block is not None
                 and tag(n, stored.shapes.get(n, ())).component != "buffer"]
    if misplaced:
        raise SparsescopeError(f"{folder}: the checkpoint has block weights this {type(model).__name__} "
                               "lacks: "
                               f"{misplaced[:3]}; is config.json the one it was saved with?")
    assign_weights(model, layout, stored.get, dtype=dtype)
    tie_missing(model)
    still_empty = [n for n, p in model.named_parameters() if p.is_meta]
    if still_empty:
        raise SparsescopeError(f"{folder}: the checkpoint lacks weights {still_empty[:3]}")
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def copy_weights_into(model, folder: str | os.PathLike) -> None:
    """Overwrite a loaded model's weights in place with those of a plain or compressed checkpoint of the same
    architecture, tensor by tensor (one model's memory, whatever the checkpoint's layout)."""
    stored = StoredTensors(folder)
    copy_weights(model, build_layout(model, stored.shapes, stored.aliases, str(folder)), stored.get)


def export_dense(folder: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """A plain safetensors checkpoint (zeros stored) under the stored names, written tensor by tensor, that
    transformers' from_pretrained opens as it opens the source."""
    out_dir = Path(out_dir)
    writer = CheckpointWriter(out_dir)
    for name, tensor in StoredTensors(folder).items():
        writer.add(name, tensor)
    writer.close()
    copy_model_files(folder, out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    config.pop(META_KEY, None)
    write_json(config, out_dir / "config.json")
    return out_dir


def checkpoint_bytes(folder: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in weight_files(folder))


def size_breakdown(folder: str | os.PathLike) -> dict:
    """From the headers of a compressed checkpoint: bits spent on its sparse matrices against the
    entropy bound (mask entropy H(s) plus the kept values' bits) of the same matrices."""
    numel = nnz = spent = bound = 0
    for path in weight_files(folder):
        infos, metadata = read_safetensors_header(path)
        sizes = {t.name: t.nbytes for t in infos}
        for name, info in json.loads(metadata.get(META_KEY, '{"tensors": {}}'))["tensors"].items():
            n = math.prod(info["shape"])
            value_bits = 8 * torch.empty(0, dtype=getattr(torch, info["dtype"])).element_size()
            numel += n
            nnz += info["nnz"]
            spent += 8 * (sizes[f"{name}::values"] + sizes[f"{name}::index"])
            bound += entropy_bound_bits(n, info["nnz"], value_bits)
    return {"sparse_weights": numel, "sparse_nnz": nnz, "bits_per_weight": spent / max(numel, 1),
            "bound_bits_per_weight": bound / max(numel, 1),
            "ratio_to_bound": spent / bound if bound else float("nan"),
            "file_bytes": checkpoint_bytes(folder)}
