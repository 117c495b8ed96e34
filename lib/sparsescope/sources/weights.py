"""Weights straight from checkpoint files, one tensor at a time.

`iter_tensors(folder)` never builds the model: it maps each tensor of each safetensors shard on its
own (copy-on-write, so nothing is copied until written) and the mapping goes when the tensor does, so
memory holds about one tensor whatever the model size. What each tensor is comes from the model's anatomy
(anatomy.py, through the checkpoint's layout: layouts.stored_tagger).
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..errors import SparsescopeError

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


# ---------------------------------------------------------------------------------------- files
def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint files of an HF folder: safetensors shards if any, else pickle shards."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SparsescopeError(f"{folder} is not a folder: pass an HF model folder or a registry name")
    for index_name, suffix in (("model.safetensors.index.json", ".safetensors"),
                               ("pytorch_model.bin.index.json", ".bin")):
        index = folder / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (folder / s).exists()]
            if missing:
                raise SparsescopeError(f"{index} lists shards that are missing: {', '.join(missing)}; "
                                       "download the whole checkpoint again")
            return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors")) or sorted(
        p for p in folder.iterdir()
        if p.suffix in PICKLE_SUFFIXES and p.name.startswith(("pytorch_model", "model")))
    if not files:
        raise SparsescopeError(f"{folder} holds no *.safetensors or pytorch_model*.bin file: "
                               "pass a folder written by save_pretrained")
    return files


def model_source_files(folder: Path) -> list[Path]:
    """The files of a model folder that scores and timings depend on: weights, configs, tokenizer."""
    folder = Path(folder)
    small = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in (".json", ".txt", ".model")]
    return sorted(set(weight_files(folder)) | set(small))


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int


def read_safetensors_header(path: str | os.PathLike) -> tuple[list[TensorInfo], dict]:
    """Parse and validate a safetensors header; every problem names the file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SparsescopeError(f"corrupt safetensors file {path}: shorter than its 8-byte header length")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise SparsescopeError(f"corrupt or truncated safetensors file {path}: header of {header_len} "
                                   "bytes "
                                   f"does not fit in a {size}-byte file")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SparsescopeError(f"corrupt safetensors file {path}: header is not JSON ({err})") from None
    metadata = header.pop("__metadata__", None) or {}
    data_start, data_len = 8 + header_len, size - 8 - header_len
    infos = []
    for name, spec in header.items():
        try:
            dtype = SAFETENSORS_DTYPES[spec["dtype"]]
            shape = tuple(int(d) for d in spec["shape"])
            begin, end = (int(x) for x in spec["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SparsescopeError(f"corrupt safetensors file {path}: bad entry for tensor "
                                   f"{name!r}") from None
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * dtype.itemsize or begin < 0:
            raise SparsescopeError(f"corrupt safetensors file {path}: tensor {name!r} has {end - begin} "
                                   "bytes "
                                   f"for shape {list(shape)} of {spec['dtype']}")
        if end > data_len:
            raise SparsescopeError(f"truncated safetensors file {path}: tensor {name!r} ends at byte "
                                   f"{data_start + end} but the file has {size}; download it again")
        infos.append(TensorInfo(name, dtype, shape, data_start + begin, end - begin))
    infos.sort(key=lambda t: t.start)
    return infos, metadata


def map_tensor(f, info: TensorInfo) -> torch.Tensor:
    """One tensor of an open safetensors file, mapped from the page cache; unmapped when freed."""
    if info.nbytes == 0:
        return torch.empty(info.shape, dtype=info.dtype)
    offset = info.start - info.start % mmap.ALLOCATIONGRANULARITY
    mapped = mmap.mmap(f.fileno(), info.start + info.nbytes - offset, offset=offset, access=mmap.ACCESS_COPY)
    mapped.madvise(mmap.MADV_WILLNEED)  # start read-ahead when the file is not cached yet
    raw = torch.frombuffer(mapped, dtype=torch.uint8, count=info.nbytes, offset=info.start - offset)
    return raw.view(info.dtype).reshape(info.shape)


def load_pickle_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise SparsescopeError(f"cannot read pickle checkpoint {path} with weights_only=True "
                               f"({type(err).__name__}: {str(err).splitlines()[0][:120]}); sparsescope never "
                               "unpickles arbitrary code: convert it to safetensors") from None


def pickle_aliases(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Names whose tensor is the same view of the same storage as an earlier name's: a pickle saves tied
    weights once (T5 v1.1's `encoder.embed_tokens.weight` is `shared.weight`). alias -> first name."""
    seen, aliases = {}, {}
    for name, t in state.items():
        if t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def tensor_aliases(folder: str | os.PathLike) -> dict[str, str]:
    """alias -> stored name, for every tensor a checkpoint stores as another's storage (pickles only)."""
    out = {}
    for path in weight_files(folder):
        if path.suffix != ".safetensors":
            out.update(pickle_aliases(load_pickle_state_dict(path)))
    return out


def list_tensors(folder: str | os.PathLike) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
    """(name, dtype, shape) of every stored tensor, aliases left out; from headers where the format allows."""
    out = []
    for path in weight_files(folder):
        if path.suffix == ".safetensors":
            out += [(t.name, t.dtype, t.shape) for t in read_safetensors_header(path)[0]]
        else:
            state = load_pickle_state_dict(path)
            aliases = pickle_aliases(state)
            out += [(n, t.dtype, tuple(t.shape)) for n, t in state.items() if n not in aliases]
    return out


def iter_file_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of one checkpoint file, one at a time; a pickle's aliases are left out."""
    if path.suffix == ".safetensors":
        infos, _ = read_safetensors_header(path)
        with open(path, "rb") as f:
            for info in infos:
                yield info.name, map_tensor(f, info)
    else:
        state = load_pickle_state_dict(path)
        aliases = pickle_aliases(state)
        for name in list(state):
            tensor = state.pop(name)
            if name not in aliases:
                yield name, tensor.contiguous()


def iter_tensors(folder: str | os.PathLike) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for every stored tensor of the checkpoint, one at a time, aliases left out."""
    for path in weight_files(folder):
        yield from iter_file_tensors(path)


class CheckpointReader:
    """Any tensor of a checkpoint by name, mapped from the page cache when asked for (pickles: memory-mapped
    by torch.load), so holding a reader costs no memory."""

    def __init__(self, folder: str | os.PathLike):
        self.safetensors: dict[str, tuple[Path, TensorInfo]] = {}
        self.pickled: dict[str, torch.Tensor] = {}      # aliases left out ...
        self.aliases: dict[str, str] = {}               # ... and resolved by get()
        for path in weight_files(folder):
            if path.suffix == ".safetensors":
                self.safetensors.update({t.name: (path, t) for t in read_safetensors_header(path)[0]})
            else:
                state = load_pickle_state_dict(path)
                aliases = pickle_aliases(state)
                self.aliases.update(aliases)
                self.pickled.update({n: t for n, t in state.items() if n not in aliases})

    def __contains__(self, name: str) -> bool:
        return name in self.safetensors or name in self.pickled or name in self.aliases

    def shape(self, name: str) -> tuple[int, ...]:
        name = self.aliases.get(name, name)
        if name in self.pickled:
            return tuple(self.pickled[name].shape)
        return self.safetensors[name][1].shape

    def get(self, name: str) -> torch.Tensor:
        name = self.aliases.get(name, name)
        if name in self.pickled:
            return self.pickled[name]
        path, info = self.safetensors[name]
        with open(path, "rb") as f:
            return map_tensor(f, info)
