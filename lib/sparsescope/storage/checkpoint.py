"""Pruned checkpoints written (shards of bounded size, sparse matrices compressed) and read back as normal
transformers models (`load_pruned`) or exported as plain ones (`export_dense`)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..artifacts import write_json
from ..errors import SparsescopeError
from ..sources.anatomy import model_anatomy
from ..sources.layouts import assign_weights, build_layout, copy_weights, tie_missing
from ..sources.registry import empty_model
from ..sources.weights import CheckpointReader, read_safetensors_header, weight_files
from .codecs import decode_sparse, encode_sparse
from .safetensors import write_safetensors

FORMAT = "sparsescope-sparse"
VERSION = 2                 # what this code writes
READABLE_VERSIONS = (1, 2)  # v1: bitmask and rice; v2 adds nm
META_KEY = "sparsescope"
SHARD_BYTES = 512 << 20  # pruned tensors wait in memory until their shard is written
# what a pruned checkpoint needs beside its weights: config, generation config, tokenizer, feature extractor
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
               "tokenizer.model", "added_tokens.json", "normalizer.json", "chat_template.jinja",
               "preprocessor_config.json")



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

    def add_sparse(self, name: str, tensor: torch.Tensor, nm: tuple[int, int, int] | None = None) -> None:
        """Store compressed if that is smaller, else dense; `nm` = (n, m, input dimension) of an N:M run."""
        values, index, info = encode_sparse(tensor, nm)
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



def copy_model_files(src: str | os.PathLike, dst: str | os.PathLike,
                     extra_config: dict | None = None) -> None:
    """The files of an HF folder a pruned model needs beside its weights (MODEL_FILES: config, generation
    config, tokenizer, feature extractor) — never other weights (.h5, .msgpack, .onnx, .gguf) or anything
    else; config gains `extra_config`."""
    src, dst = Path(src), Path(dst)
    for name in MODEL_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
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
                self.sparse.update(sparse_descriptions(path, read_safetensors_header(path)[1]))
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
    anatomy = model_anatomy(folder)
    misplaced = [n for n in layout.unused if anatomy.in_block_list(layout.unused_as[n])
                 and anatomy.tag(layout.unused_as[n], stored.shapes.get(n, ())).component != "buffer"]
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



def sparse_descriptions(path: Path, metadata: dict) -> dict[str, dict]:
    """The sparse tensors' descriptions in a shard's metadata ({} for a plain shard)."""
    raw = metadata.get(META_KEY)
    if not raw:
        return {}
    meta = json.loads(raw)
    if meta.get("version") not in READABLE_VERSIONS:
        raise SparsescopeError(f"{path} is in {FORMAT} format version {meta.get('version')}; this "
                               f"sparsescope reads versions {', '.join(map(str, READABLE_VERSIONS))}: "
                               "upgrade sparsescope")
    return meta["tensors"]
