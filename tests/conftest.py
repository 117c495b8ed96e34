"""Tiny random-config models of every architecture the suite tags, saved once per session."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

TINY = {
    "bert": lambda t: t.BertForMaskedLM(t.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64,
                                                     max_position_embeddings=64)),
    # each carries a real tokenizer (from the packaged models) for calibration and evaluation
    "gpt2": lambda t: t.GPT2LMHeadModel(t.GPT2Config(vocab_size=49152, n_embd=32, n_layer=3, n_head=2, n_positions=256)),
    "t5": lambda t: t.T5ForConditionalGeneration(t.T5Config(vocab_size=49152 + 100, d_model=32, d_ff=64, d_kv=16, num_layers=2,
                                                            num_decoder_layers=2, num_heads=2,
                                                            feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
    "llama": lambda t: t.LlamaForCausalLM(t.LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64,
                                                        num_hidden_layers=2, num_attention_heads=2,
                                                        num_key_value_heads=1, max_position_embeddings=64)),
    "whisper": lambda t: t.WhisperForConditionalGeneration(t.WhisperConfig(
        vocab_size=51864, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=50257, pad_token_id=50256,
        eos_token_id=50256, bos_token_id=50256)),
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    import transformers
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for name, build in TINY.items():
        torch.manual_seed(0)
        model = build(transformers).eval()
        model.save_pretrained(root / name)
        out[name] = root / name
    copy_processor_files("minilm-l6", out["bert"])
    copy_processor_files("smollm2-135m", out["gpt2"])
    add_t5_sentinels(out["gpt2"], out["t5"])
    copy_processor_files("whisper-tiny-en", out["whisper"])
    return out


def add_t5_sentinels(src: Path, dst: Path) -> None:
    """T5's span corruption needs <extra_id_0..99>: the SmolLM2 tokenizer plus those 100 tokens."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.add_special_tokens({"additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)]})
    tokenizer.save_pretrained(dst)


def copy_processor_files(packaged: str, folder: Path) -> None:
    """Tokenizer (and feature extractor) files of a packaged model, so calibration has real text."""
    from sparsescope import model_folder
    src = model_folder(packaged)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                 "preprocessor_config.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)


@pytest.fixture(scope="session")
def tiny_modules(tiny_models):
    """The instantiated tiny models, for oracles that look at module types."""
    import transformers
    return {name: getattr(transformers, TINY_CLASSES[name]).from_pretrained(path) for name, path in tiny_models.items()}


TINY_CLASSES = {"bert": "BertForMaskedLM", "gpt2": "GPT2LMHeadModel", "t5": "T5ForConditionalGeneration",
                "llama": "LlamaForCausalLM", "whisper": "WhisperForConditionalGeneration"}

