"""Pruned checkpoints that really shrink: each pruned matrix as its kept values plus a compact index.

Format "sparsescope-sparse" v2 (v1 checkpoints read as before), a safetensors checkpoint:
- untouched tensors are stored as they were, under their own names;
- a sparse matrix `W` is stored as `W::values` (the stored entries in row-major order, original dtype)
  and `W::index` (uint8), described in the file's metadata (key "sparsescope": version, and per tensor
  shape, dtype, nnz = number of stored values, coding);
- `index` is one of three codings, the smallest that applies:
  - "bitmask": numpy.packbits, little bit order, over the flattened matrix (the compressed-tensors layout);
  - "rice": the gaps between kept entries in Rice code (a Golomb code, optimal for the geometric gaps of a
    random mask, so it tracks the mask entropy at high sparsity), parameter `k`;
  - "nm" (v2, N:M runs only): for every group of `m` consecutive inputs of one output — along dimension
    `in_dim` of the stored matrix (0 for GPT-2's Conv1D, which stores [in, out]) — the rank of the kept
    `n`-subset among the subsets of range(m) in lexicographic order (itertools.combinations order), in
    ceil(log2 C(m, n)) bits, least significant bit first, groups packed back to back in little bit order
    (output by output, inputs ascending); `n` values are stored per group. A group with fewer than `n`
    kept entries stores the subset completed by its lowest-index unkept positions (their +0.0 values
    stored), so it decodes bit-exactly. 2:4 costs 3 bits per 4 weights: 0.75 bit per weight;
- config.json carries `"sparsescope": {"format": "sparsescope-sparse", "version": 2, ...}`.

"Kept" means "bit pattern not all zero": -0.0 is kept as a value, so a round trip is bit-exact.
`load_pruned(folder)` returns a normal transformers model class, loaded by this module (transformers'
own `from_pretrained` cannot read the compressed tensors); `export_dense` writes a plain checkpoint that
`from_pretrained` opens.
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
from .sources.anatomy import model_anatomy
from .sources.weights import SAFETENSORS_DTYPES, CheckpointReader, read_safetensors_header, weight_files

FORMAT = "sparsescope-sparse"
VERSION = 2                 # what this code writes
READABLE_VERSIONS = (1, 2)  # v1: bitmask and rice; v2 adds nm
CODINGS = ("bitmask", "rice", "nm")
META_KEY = "sparsescope"
SHARD_BYTES = 512 << 20  # pruned tensors wait in memory until their shard is written
INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# what a pruned checkpoint needs beside its weights: config, generation config, tokenizer, feature extractor
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
               "tokenizer.model", "added_tokens.json", "normalizer.json", "chat_template.jinja",
               "preprocessor_config.json")


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


# N:M ranks fit in an int64 (and so do the partial sums of the binomials that make them)
MAX_NM_SUBSETS = 1 << 62


def nm_code_bits(n: int, m: int) -> int:
    """Bits of one group's code: ceil(log2 C(m, n)) (0 when there is only one subset)."""
    return (math.comb(m, n) - 1).bit_length()


def _binomials(m: int) -> np.ndarray:
    """C(a, b) for a, b <= m as int64, capped where it cannot matter (entries above a valid rank)."""
    return np.array([[min(math.comb(a, b), MAX_NM_SUBSETS) for b in range(m + 1)] for a in range(m + 1)],
                    np.int64)


@numba.njit(cache=True)
def _nm_encode(groups, n, bits, binom):
    """Each row of `groups` (kept flags of m inputs) -> the lexicographic rank of its n-subset (kept
    positions, completed by the lowest unkept ones), packed in `bits` bits; and the subsets as flags."""
    n_groups, m = groups.shape
    out = np.zeros((n_groups * bits + 7) // 8, np.uint8)
    chosen = np.zeros((n_groups, m), np.bool_)
    for g in range(n_groups):
        fill = n
        for j in range(m):
            fill -= groups[g, j]
        rank = 0
        i = 0
        prev = -1
        for j in range(m):
            if groups[g, j]:
                take = True
            elif fill > 0:
                take = True
                fill -= 1
            else:
                take = False
            if take:
                for v in range(prev + 1, j):    # subsets whose i-th element is smaller come first
                    rank += binom[m - 1 - v, n - 1 - i]
                prev = j
                i += 1
                chosen[g, j] = True
        pos = g * bits
        for b in range(bits):
            if (rank >> b) & 1:
                out[(pos + b) >> 3] |= 1 << ((pos + b) & 7)
    return out, chosen


@numba.njit(cache=True)
def _nm_decode(code, n_groups, m, n, bits, binom, n_subsets):
    chosen = np.zeros((n_groups, m), np.bool_)
    for g in range(n_groups):
        pos = g * bits
        rank = 0
        for b in range(bits):
            rank |= np.int64((code[(pos + b) >> 3] >> ((pos + b) & 7)) & 1) << b
        if rank >= n_subsets:
            raise ValueError("corrupt N:M index: a group's code is not the rank of a subset")
        v = 0
        for i in range(n):
            while rank >= binom[m - 1 - v, n - 1 - i]:
                rank -= binom[m - 1 - v, n - 1 - i]
                v += 1
            chosen[g, v] = True
            v += 1
    return chosen


def _nm_groups(mask: np.ndarray, shape, m: int, in_dim: int) -> np.ndarray:
    """Kept flags of a matrix as [groups, m]: output by output, m consecutive inputs per group."""
    grid = mask.reshape(shape)
    return np.ascontiguousarray(grid.T if in_dim == 0 else grid).reshape(-1, m)


def _nm_positions(chosen: np.ndarray, shape, in_dim: int) -> np.ndarray:
    """Row-major positions in the stored matrix of the groups' chosen entries."""
    grid = chosen.reshape((shape[1], shape[0]) if in_dim == 0 else tuple(shape))
    return np.flatnonzero(grid.T if in_dim == 0 else grid)


def nm_applies(shape, nm) -> bool:
    """Whether an "nm" index can describe a matrix of this shape: a 2-D matrix whose input dimension
    divides into groups of m, with a subset rank that fits in 62 bits."""
    if nm is None:
        return False
    n, m, in_dim = nm
    return (len(shape) == 2 and in_dim in (0, 1) and 0 < n <= m and shape[in_dim] % m == 0
            and math.comb(m, n) <= MAX_NM_SUBSETS)


def encode_sparse(w: torch.Tensor, nm: tuple[int, int, int] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(values, index bytes, description) of a matrix, with the smallest index code that applies.
    `nm` = (n, m, input dimension) for a matrix pruned N:M: the "nm" code is a candidate when every group
    of m inputs holds at most n kept entries."""
    mask = kept_mask(w)
    flat = w.detach().contiguous().reshape(-1)
    positions = np.flatnonzero(mask)
    bitmask_bits = mask.size
    gaps = np.diff(positions, prepend=-1) - 1
    rice_size, k = best_rice_parameter(gaps) if positions.size else (0, 0)
    info = {"shape": list(w.shape), "dtype": str(w.dtype).replace("torch.", ""), "nnz": int(positions.size)}
    coding = "rice" if rice_size < bitmask_bits else "bitmask"
    if nm_applies(w.shape, nm):
        n, m, in_dim = nm
        groups = _nm_groups(mask, w.shape, m, in_dim)
        if groups.size and groups.sum(axis=1).max() <= n:
            n_groups, bits = groups.shape[0], nm_code_bits(n, m)
            usual = positions.size * flat.element_size() + ((rice_size if coding == "rice" else bitmask_bits)
                                                             + 7) // 8
            if n_groups * n * flat.element_size() + (n_groups * bits + 7) // 8 <= usual:
                index, chosen = _nm_encode(groups, n, bits, _binomials(m))
                positions = _nm_positions(chosen, w.shape, in_dim)
                info.update(nnz=int(positions.size), coding="nm", n=int(n), m=int(m), in_dim=int(in_dim))
                coding = "nm"
    if coding == "rice":
        index = _rice_encode(gaps.astype(np.int64), k, (rice_size + 7) // 8)
        info.update(coding="rice", k=int(k))
    elif coding == "bitmask":
        index = np.packbits(mask, bitorder="little")
        info.update(coding="bitmask")
    values = flat[torch.from_numpy(positions)]
    return values, torch.from_numpy(index), info


def decode_sparse(values: torch.Tensor, index: torch.Tensor, info: dict) -> torch.Tensor:
    numel = math.prod(info["shape"])
    if values.numel() != info["nnz"]:
        raise SparsescopeError(f"sparse tensor holds {values.numel()} values but its index says "
                               f"{info['nnz']}")
    code = index.numpy()
    try:
        if info["coding"] == "bitmask":
            positions = np.flatnonzero(np.unpackbits(code, count=numel, bitorder="little"))
        elif info["coding"] == "rice":
            positions = _rice_decode(code, int(info["k"]), int(info["nnz"]), numel)
        elif info["coding"] == "nm":
            positions = _decode_nm(code, info)
        else:
            raise SparsescopeError(f"unknown sparse index coding {info['coding']!r}: this sparsescope reads "
                                   f"{', '.join(CODINGS)}")
    except ValueError as err:
        raise SparsescopeError(f"sparse tensor of shape {info['shape']}: {err}") from None
    if positions.size != values.numel():
        raise SparsescopeError(f"sparse tensor holds {values.numel()} values but its index marks "
                               f"{positions.size} positions")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(positions)] = values
    return dense.reshape(info["shape"])


def _decode_nm(code: np.ndarray, info: dict) -> np.ndarray:
    missing = [key for key in ("n", "m", "in_dim") if key not in info]
    if missing:
        raise ValueError(f"its N:M index description lacks {', '.join(missing)}")
    shape, n, m, in_dim = info["shape"], int(info["n"]), int(info["m"]), int(info["in_dim"])
    if not nm_applies(shape, (n, m, in_dim)):
        raise ValueError(f"an N:M index of {n}:{m} along dimension {in_dim} does not fit this shape")
    n_groups, bits = math.prod(shape) // m, nm_code_bits(n, m)
    if code.size != (n_groups * bits + 7) // 8:
        raise ValueError(f"its N:M index holds {code.size} bytes, {n_groups} groups of {bits} bits need "
                         f"{(n_groups * bits + 7) // 8}")
    chosen = _nm_decode(code, n_groups, m, n, bits, _binomials(m), math.comb(m, n))
    return _nm_positions(chosen, shape, in_dim)


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


def index_bound_bits(numel: int, nnz: int, nm: tuple[int, int] | None = None) -> float:
    """The fewest bits any index can take on average over i.i.d. masks of density nnz/numel, n·H(s) (not a
    bound for this one mask, whose structure a code could exploit: ratios near or under 1.0 are possible);
    for an N:M mask, one of C(M, N) subsets per group of M, log2 C(M, N) / M per weight."""
    if nm is not None:
        n, m = nm
        return numel * math.log2(math.comb(m, n)) / m
    return numel * float(binary_entropy(nnz / numel)) if numel else 0.0


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


def checkpoint_bytes(folder: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in weight_files(folder))


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
