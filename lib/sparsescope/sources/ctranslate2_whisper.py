"""Convert a CTranslate2 Whisper model (model.bin) into an HF WhisperForConditionalGeneration folder.

model.bin layout (little-endian): u32 version, string spec name, u32 revision, u32 variable count;
per variable: string name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw bytes; then u32
alias count and (alias, target) string pairs. A string is a u16 length (counting a trailing NUL),
then its bytes.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import SparsescopeError

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 = bf16, below
NO_TIMESTAMPS, START_OF_TRANSCRIPT, END_OF_TEXT = 50362, 50257, 50256


def read_ct2_model(path: str | Path) -> dict[str, torch.Tensor]:
    """All variables of a CTranslate2 model.bin, aliases resolved, as torch tensors."""
    path = Path(path)
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        try:
            values = struct.unpack_from("<" + fmt, data, pos)
        except struct.error:
            raise SparsescopeError(f"truncated CTranslate2 model {path} at byte {pos}") from None
        pos += struct.calcsize("<" + fmt)
        return values[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = data[pos:pos + n].rstrip(b"\0").decode()
        pos += n
        return text

    take("I")  # format version
    spec = string()
    take("I")  # spec revision
    count = take("I")
    if spec != "WhisperSpec":
        raise SparsescopeError(f"{path} holds a CTranslate2 {spec}, not a WhisperSpec")
    out: dict[str, torch.Tensor] = {}
    for _ in range(count):
        name = string()
        dims = [take("I") for _ in range(take("B"))]
        dtype_code, nbytes = take("B"), take("I")
        if pos + nbytes > len(data):
            raise SparsescopeError(f"truncated CTranslate2 model {path}: variable {name} is cut short")
        stored = np.dtype(np.uint16 if dtype_code == 5 else CT2_DTYPES[dtype_code])  # bf16 read as raw bits
        raw = np.frombuffer(data, dtype=stored, count=nbytes // stored.itemsize, offset=pos)
        t = torch.from_numpy(raw.copy()).reshape(dims)
        out[name] = t.view(torch.bfloat16) if dtype_code == 5 else t
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        out[alias] = out[target]
    return out


def _layer_count(v: dict, stack: str) -> int:
    layers = re.compile(rf"^{stack}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for k in v if (m := layers.match(k)))


def hf_state_dict(v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename and split CTranslate2 Whisper variables into HF names."""
    sd: dict[str, torch.Tensor] = {}

    def linear(dst: str, src: str, bias: bool = True):
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str):
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def split_rows(src: str, dsts: list[str], with_bias: list[bool]):
        parts_w = v[f"{src}/weight"].chunk(len(dsts), dim=0)
        parts_b = v[f"{src}/bias"].chunk(len(dsts), dim=0)
        for dst, w, b, keep_bias in zip(dsts, parts_w, parts_b, with_bias):
            sd[f"{dst}.weight"] = w.contiguous()
            if keep_bias:
                sd[f"{dst}.bias"] = b.contiguous()

    for stack in ("encoder", "decoder"):
        for i in range(_layer_count(v, stack)):
            src, dst = f"{stack}/layer_{i}", f"model.{stack}.layers.{i}"
            # HF's k_proj has no bias; CT2 stores a zero slice there
            split_rows(f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"],
                       [True, False, True])
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            if stack == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split_rows(f"{src}/attention/linear_1", [f"{dst}.encoder_attn.{p}_proj" for p in "kv"],
                           [False, True])
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
        norm(f"model.{stack}.layer_norm", f"{stack}/layer_norm")
        sd[f"model.{stack}.embed_positions.weight"] = v[f"{stack}/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    return sd


def convert(ct2_dir: str | Path, out_dir: str | Path) -> None:
    """Write an HF Whisper folder (safetensors in the original dtype, config, tokenizer, features)."""
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperTokenizerFast)
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    v = read_ct2_model(ct2_dir / "model.bin")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    sd = hf_state_dict(v)
    embed = sd["model.decoder.embed_tokens.weight"]
    config = WhisperConfig(
        vocab_size=embed.shape[0], d_model=embed.shape[1],
        num_mel_bins=sd["model.encoder.conv1.weight"].shape[1],
        encoder_layers=_layer_count(v, "encoder"), decoder_layers=_layer_count(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        decoder_start_token_id=START_OF_TRANSCRIPT, bos_token_id=END_OF_TEXT, eos_token_id=END_OF_TEXT,
        pad_token_id=END_OF_TEXT, tie_word_embeddings=True,
        dtype=str(embed.dtype).replace("torch.", ""),
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing = set(model.state_dict()) - set(sd) - {"proj_out.weight"}
    if missing:
        raise SparsescopeError(f"{ct2_dir}: conversion left HF weights unset: {sorted(missing)[:3]}")
    model.load_state_dict(sd, strict=False, assign=True)
    model.tie_weights()
    gen = model.generation_config
    gen.decoder_start_token_id = START_OF_TRANSCRIPT
    gen.eos_token_id = gen.pad_token_id = END_OF_TEXT
    gen.no_timestamps_token_id, gen.is_multilingual = NO_TIMESTAMPS, False
    gen.suppress_tokens = ct2_config.get("suppress_ids")
    gen.begin_suppress_tokens = ct2_config.get("suppress_ids_begin")
    gen.forced_decoder_ids = None
    gen.max_length = config.max_target_positions
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(ct2_dir / "tokenizer.json"), predict_timestamps=False)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)
    shutil.copy(ct2_dir / "config.json", out_dir / "ctranslate2_config.json")
