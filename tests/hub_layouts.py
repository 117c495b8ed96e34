"""The three seed models laid out exactly as the Hugging Face hub ships them, rebuilt offline (a fixture).

The suite must run on `openai-community/gpt2-xl`, `google-bert/bert-large-uncased` (alias
`bert-large-uncased`) and `google/t5-v1_1-xl` as the hub stores them, which is *not* what `save_pretrained`
writes today. This module writes one such repo, with random weights, into an offline Hugging Face cache (the
folder `HF_HUB_CACHE` points at), so that with `HF_HUB_OFFLINE=1` both `snapshot_download(repo_id)` and
`AutoModel*.from_pretrained(repo_id)` resolve it without any network. Sources for every layout fact are in
`/work/notes/hub_layouts.md`; in short:

- gpt2-xl (`kind="gpt2-safetensors"`): one fp32 `model.safetensors`, bare names (`wte.weight`,
  `h.N.attn.c_attn.weight`, `ln_f.bias`; no `transformer.` prefix), Conv1D weights stored `[in, out]`, a
  causal mask buffer `h.N.attn.bias` `[1, 1, n_ctx, n_ctx]` (0/1 floats, lower triangular) per block, no
  `h.N.attn.masked_bias` (the real header holds 1,607,942,848 elements = 1,557,611,200 parameters + 48
  masks), no `lm_head.weight` (tied).
- bert-large-uncased (`kind="bert-legacy-safetensors"`): one fp32 `model.safetensors`, `BertForPreTraining`
  names: `bert.` prefix, legacy `LayerNorm.gamma` / `LayerNorm.beta`, `cls.predictions.*` with
  `cls.predictions.bias` but no `cls.predictions.decoder.*` (tied), the NSP head `cls.seq_relationship.*`, the
  pooler. `bert.embeddings.position_ids` (int64) is optional and off by default.
- t5-v1_1-xl (`kind="t5-pickle"`): one fp32 pickle `pytorch_model.bin` (torch zip format) where
  `encoder.embed_tokens.weight` and `decoder.embed_tokens.weight` alias `shared.weight` (one storage, stored
  once), an untied `lm_head.weight`, `relative_attention_bias` only in block 0 of each stack. `sharded=True`
  writes `pytorch_model-0000i-of-0000N.bin` + `pytorch_model.bin.index.json` instead.

Weights are random (`randn * 0.02`, norm gains `1 + 0.02 * randn`), made one tensor at a time from a seed and
the tensor's name, and streamed to disk: the model exists only on `torch.device("meta")` (names and shapes),
so the real 6.4 GB / 11.4 GB files need about two tensors of memory. The file writers and the tokenizer
substitutes (same formats, same ids for GPT-2 and BERT; a `spiece.model` trained here for T5) are in
tests/hub_files.py.

CLI:  python tests/hub_layouts.py --root DIR [--tiny] [--repos gpt2-xl bert-large t5-v1_1-xl] [--sharded]
      python tests/hub_layouts.py --counts          # real-size counts from shapes only, writes nothing
Then: HF_HUB_OFFLINE=1 HF_HUB_CACHE=DIR python -c "from transformers import AutoModelForCausalLM as M; \\
      M.from_pretrained('openai-community/gpt2-xl')"
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from sparsescope.sources.layouts import stored_tagger
from sparsescope.sources.weights import (PICKLE_SUFFIXES, iter_file_tensors, list_tensors,
                                         load_pickle_state_dict, weight_files)
from sparsescope.storage import SAFETENSORS_NAMES
from sparsescope.storage.safetensors import read_safetensors_header

# the tests reach the file writers and tokenizer pieces as hub_layouts.<name>, so they are re-exported
from hub_files import (TensorSpec, bert_tokenizer_files, gpt2_tokenizer_files, shard_specs,  # noqa: F401
                       t5_tokenizer_files, train_t5_spiece, write_safetensors_streaming,
                       write_torch_pickle_streaming)

# ----------------------------- the seed repos: ids, classes, their real config.json (sources in the notes)
GPT2_XL_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 1600, "n_head": 25,
    "n_layer": 48, "n_positions": 1024, "output_past": True, "resid_pdrop": 0.1, "summary_activation": None,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True,
                                                                          "max_length": 50}},
    "vocab_size": 50257,
}
BERT_LARGE_UNCASED_CONFIG = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 1024,
    "initializer_range": 0.02, "intermediate_size": 4096, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 16, "num_hidden_layers": 24,
    "pad_token_id": 0, "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}
T5_V1_1_XL_CONFIG = {
    "architectures": ["T5ForConditionalGeneration"], "d_ff": 5120, "d_kv": 64, "d_model": 2048,
    "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0, "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06, "model_type": "t5",
    "num_decoder_layers": 24, "num_heads": 32, "num_layers": 24, "output_past": True, "pad_token_id": 0,
    "relative_attention_num_buckets": 32, "tie_word_embeddings": False, "vocab_size": 32128,
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
    aliases: tuple[str, ...]      # other ids of the same repo (hub redirects; the suite's registry)
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
                                                "eos_token_id": 50256,
                                                "transformers_version": "4.26.0.dev0"}},
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


# ------------------------ tensor specs: the hub file's names, shapes, dtypes and aliases, from a meta model
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


# norm gains (initialised near 1) by name: the anatomy's first-match components call an embedding's
# LayerNorm an embedding
_GAIN = re.compile(r"(LayerNorm\.(weight|gamma)|ln_\d\.weight|ln_f\.weight|layer_norm\.weight)$")


def _param(name: str, shape: tuple[int, ...], prunable: set[str], key: str, alias: str | None = None):
    return TensorSpec(name, shape, torch.float32, "param", "gain" if _GAIN.search(name) else "normal",
                      alias_of=alias, prunable=key in prunable)


def hub_tensor_specs(name: str, config: dict | None = None, *, masked_bias: bool = False,
                     position_ids: bool = False, t5_cross_attention_bias: bool = False) -> list[TensorSpec]:
    """Every tensor of the hub file of `name`, in file order, for `config` (default: the real one).

    `masked_bias` (GPT-2: a scalar `h.N.attn.masked_bias` per block, as GPT-2 files saved by transformers
    2.x-4.x hold; not in gpt2-xl's file), `position_ids` (BERT: int64 `bert.embeddings.position_ids`, as BERT
    files saved by transformers 3.x-4.30 hold; not believed to be in bert-large-uncased's file) and
    `t5_cross_attention_bias` (T5: `decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight`,
    which transformers < 4.0 saved; not counted in the expected total) reproduce layouts of other hub repos.
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
            specs.append(_param(key.removeprefix("transformer."), shape, prunable, key))
            m = re.match(r"^h\.(\d+)\.ln_1\.bias$", specs[-1].name)
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
            specs.append(_param(re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", hub), shape, prunable, key))
            if position_ids and specs[-1].name == "bert.embeddings.LayerNorm.beta":
                ids = (1, int(config["max_position_embeddings"]))
                specs.append(TensorSpec("bert.embeddings.position_ids", ids, torch.int64, "buffer", "arange"))
    elif layout.kind == "t5-pickle":
        shapes, prunable = _meta_state_shapes("T5ForConditionalGeneration", config)
        tied_head = bool(config.get("tie_word_embeddings", True))
        for key, shape in shapes.items():
            alias = None
            if key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") or (
                    key == "lm_head.weight" and tied_head):
                alias = "shared.weight"
            specs.append(_param(key, shape, prunable, key, alias))
            if t5_cross_attention_bias and key == "decoder.block.0.layer.1.EncDecAttention.o.weight":
                bias = shapes["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
                cross = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
                specs.append(TensorSpec(cross, bias, f32, "param", "normal"))
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
        d, L, V, I = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["intermediate_size"]
        P, T = c["max_position_embeddings"], c["type_vocab_size"]
        mats = 4 * d * d + 2 * d * I
        block = mats + 4 * d + I + d + 2 * 2 * d
        embeddings = (V + P + T) * d + 2 * d
        pooler = d * d + d
        mlm = d * d + d + 2 * d + V      # transform.dense, transform.LayerNorm, bias (decoder tied)
        nsp = 2 * d + 2
        return embeddings + L * block + pooler + mlm + nsp, L * mats
    if name == "t5-v1_1-xl":
        d, f, h, kv, V = c["d_model"], c["d_ff"], c["num_heads"], c["d_kv"], c["vocab_size"]
        Le, Ld = c["num_layers"], c.get("num_decoder_layers") or c["num_layers"]
        B = c["relative_attention_num_buckets"]
        gated = c["feed_forward_proj"].startswith("gated")
        attn = 4 * d * h * kv
        ff = (3 if gated else 2) * d * f
        enc_block, dec_block = attn + ff + 2 * d, 2 * attn + ff + 3 * d
        head = 0 if c.get("tie_word_embeddings", True) else V * d
        total = V * d + head + Le * enc_block + Ld * dec_block + 2 * B * h + 2 * d
        return total, Le * (attn + ff) + Ld * (2 * attn + ff)
    raise ValueError(name)


# -------------------------------------------------------- random tensors, one at a time, from (seed, name)
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


# ------------------------------------------------------------------------------------- the offline HF cache
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
    """Writes files into `blobs/` (LFS files named by sha256, others by git blob sha1, as the hub cache names
    them) and links them from `snapshots/<commit>/` with relative symlinks."""

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

    def add_file(self, name: str, path: Path) -> None:
        """Move a big written file into blobs/ (LFS-style: named by its sha256)."""
        sha = _sha256_file(path)
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


def _write_weights(writer: _RepoWriter, layout: Layout, specs: list[TensorSpec], make, sharded: bool,
                   shard_bytes: int) -> None:
    """The weights file(s) of `layout`, written in a temporary folder beside the blobs and moved in."""
    with tempfile.TemporaryDirectory(dir=writer.folder) as tmp:
        tmp = Path(tmp)
        if layout.kind in ("gpt2-safetensors", "bert-legacy-safetensors"):
            write_safetensors_streaming(tmp / layout.weights, specs, make)
            writer.add_file(layout.weights, tmp / layout.weights)
        elif not sharded:
            write_torch_pickle_streaming(tmp / layout.weights, specs, make)
            writer.add_file(layout.weights, tmp / layout.weights)
        else:
            shards = shard_specs(specs, shard_bytes)
            weight_map, total = {}, 0
            for i, part in enumerate(shards, 1):
                fname = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
                write_torch_pickle_streaming(tmp / fname, part, make)
                writer.add_file(fname, tmp / fname)
                weight_map.update({s.name: fname for s in part})
                total += sum(s.nbytes for s in part if not s.alias_of)
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
            writer.add_bytes("pytorch_model.bin.index.json", (json.dumps(index, indent=2) + "\n").encode())


def _tokenizer_files(layout: Layout, spiece: bytes | None, spm_vocab_size: int,
                     spm_max_chars: int | None) -> dict[str, bytes]:
    if layout.kind == "gpt2-safetensors":
        return gpt2_tokenizer_files()
    if layout.kind == "bert-legacy-safetensors":
        return bert_tokenizer_files()
    if spiece is None:
        spiece = train_t5_spiece(vocab_size=spm_vocab_size, max_chars=spm_max_chars)
    return t5_tokenizer_files(spiece)


def write_repo(root: str | os.PathLike, name: str, config=None, *, tiny: bool = False,
               seed: int = 0, sharded: bool = False, shard_bytes: int = 10 * 10**9,
               repo_id: str | None = None, aliases: bool = True, tokenizer: bool = True,
               spiece: bytes | None = None, spm_vocab_size: int = 32000, spm_max_chars: int | None = None,
               masked_bias: bool = False, position_ids: bool = False, t5_cross_attention_bias: bool = False,
               tree_cache: bool = True) -> RepoInfo:
    """Write seed repo `name` into the offline HF cache `root`, in the hub's layout, with random weights.

    `config`: a config.json dict or a transformers config object (default: the real one, or
    `tiny_config(name)` with `tiny=True`). `sharded`: T5 only, `pytorch_model-0000i-of-0000N.bin` shards of at
    most `shard_bytes` + `pytorch_model.bin.index.json`. `aliases`: also write the repo under its alias ids
    (e.g. `bert-large-uncased`), sharing the blobs by hard links. `spiece`: a ready `spiece.model` (default:
    `train_t5_spiece(vocab_size=spm_vocab_size, max_chars=spm_max_chars)` on the SOTU calibration text).
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
    writer.add_bytes("config.json", (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    for fname, content in layout.extra_files.items():
        writer.add_bytes(fname, (json.dumps(content, indent=2) + "\n").encode())
    _write_weights(writer, layout, specs, lambda s: make_tensor(s, seed), sharded, shard_bytes)
    if tokenizer:
        for fname, data in _tokenizer_files(layout, spiece, spm_vocab_size, spm_max_chars).items():
            writer.add_bytes(fname, data)
    writer.finish(tree_cache)
    written = []
    if aliases and repo_id == layout.repo_id:
        for alias in layout.aliases:
            _link_alias(Path(root), writer, alias, tree_cache)
            written.append(alias)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return RepoInfo(repo_id, commit, writer.snapshot, writer.files, tuple(written),
                    time.perf_counter() - start, peak_rss)


def _link_alias(root: Path, source: _RepoWriter, alias: str, tree_cache: bool) -> None:
    """The same snapshot under another repo id: blobs hard-linked (copied where links fail)."""
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


# -------------------------------- reading back, through the library's readers (no weights held in memory)
def safetensors_header(path: str | os.PathLike) -> dict:
    """`{"__metadata__": ..., name: {"dtype": "F32", "shape": [...]}, ...}`, tensors in file order."""
    infos, metadata = read_safetensors_header(path)
    return {"__metadata__": metadata,
            **{t.name: {"dtype": SAFETENSORS_NAMES[t.dtype], "shape": list(t.shape)} for t in infos}}


def file_tensors(snapshot: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a snapshot's weight files, aliases included: mapped (safetensors) or mmap-loaded
    (pickle)."""
    out: dict[str, torch.Tensor] = {}
    for path in weight_files(snapshot):
        pickled = path.suffix in PICKLE_SUFFIXES
        out.update(load_pickle_state_dict(path) if pickled else iter_file_tensors(path))
    return out


def count_file_weights(snapshot: str | os.PathLike) -> tuple[int, int]:
    """(floating weights, prunable weights) of the files on disk: aliases once, buffers (GPT-2 `attn.bias` /
    `attn.masked_bias`, BERT `position_ids`) excluded, as the suite's anatomy tags them through the snapshot's
    layout."""
    tag = stored_tagger(snapshot)
    total = pruned = 0
    for name, dtype, shape in list_tensors(snapshot):  # aliases left out
        what = tag(name, shape)
        if dtype.is_floating_point and what.component != "buffer":
            total += math.prod(shape)
            pruned += math.prod(shape) if what.prunable else 0
    return total, pruned


# ------------------------------------------------------------------------------------------------------ CLI
def _print_counts(names: list[str]) -> None:
    for name in names:
        layout = LAYOUTS[name]
        specs = hub_tensor_specs(name)
        got, formula = count_weights(specs), expected_counts(name, layout.config)
        file_bytes = sum(s.nbytes for s in specs if not s.alias_of)
        ok = got == formula == (layout.expected_total, layout.expected_prunable)
        print(f"{name:11s} {layout.repo_id:32s} tensors {len(specs):4d}  weights {got[0]:,}  prunable "
              f"{got[1]:,}  formula {formula[0]:,}/{formula[1]:,}  expected {layout.expected_total:,}/"
              f"{layout.expected_prunable:,}  data {file_bytes / 1e9:.2f} GB  {'OK' if ok else 'MISMATCH'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="offline HF cache to write (use as HF_HUB_CACHE)")
    parser.add_argument("--tiny", action="store_true",
                        help="small configs (real vocabularies, 2 layers, width 64)")
    parser.add_argument("--repos", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--sharded", action="store_true",
                        help="T5 as pytorch_model-0000i-of-0000N.bin + index")
    parser.add_argument("--shard-gb", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spm-vocab", type=int, default=None,
                        help="spiece.model pieces asked for (default 32000 on all SOTU text; 2000 on 0.5 M "
                             "characters with --tiny)")
    parser.add_argument("--no-tokenizer", action="store_true")
    parser.add_argument("--counts", action="store_true",
                        help="print real-size counts from shapes; write nothing")
    args = parser.parse_args(argv)
    if args.counts:
        _print_counts(args.repos)
        return 0
    if not args.root:
        parser.error("--root is required (or --counts)")
    for name in args.repos:
        info = write_repo(args.root, name, tiny=args.tiny, seed=args.seed,
                          sharded=args.sharded and name == "t5-v1_1-xl", shard_bytes=int(args.shard_gb * 1e9),
                          tokenizer=not args.no_tokenizer, spm_vocab_size=args.spm_vocab or (
                              2000 if args.tiny else 32000), spm_max_chars=500_000 if args.tiny else None)
        size = sum(f["size"] for f in info.files.values())
        print(f"{info.repo_id} -> {info.snapshot} ({len(info.files)} files, {size / 1e9:.2f} GB, "
              f"{info.seconds:.1f} s, peak RSS {info.peak_rss_bytes / 1e9:.2f} GB)"
              + (f"; also as {', '.join(info.aliases)}" if info.aliases else ""), flush=True)
    print(f"use: HF_HUB_OFFLINE=1 HF_HUB_CACHE={Path(args.root).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
