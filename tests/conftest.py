"""Tiny random-config models of every architecture the suite tags, saved once per session; and the seed
models' hub layouts (tests/hub_layouts.py) in tiny sizes, in an offline Hugging Face cache."""
from __future__ import annotations

import importlib.util
import shutil
import sys
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


# ------------------------------------------------------------------ architectures the suite never names
# Each as a user meets it: written by save_pretrained, with a real tokenizer (SmolLM2's BPE for text
# generators, MiniLM's WordPiece for encoders). Sizes make every FFN hold over half of the prunable weights
# (ffn_activation at 30% must fit) and give attention more than one head.
V = 49152  # SmolLM2's vocabulary
ANY = {
    "opt": ("OPTForCausalLM", "OPTConfig", dict(vocab_size=V, hidden_size=32, word_embed_proj_dim=32, num_hidden_layers=2,
                                                 ffn_dim=128, num_attention_heads=2, max_position_embeddings=512)),
    "roberta": ("RobertaForMaskedLM", "RobertaConfig", dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                                             num_attention_heads=2, intermediate_size=128,
                                                             max_position_embeddings=514)),
    "distilbert": ("DistilBertForMaskedLM", "DistilBertConfig", dict(vocab_size=30522, dim=32, n_layers=2, n_heads=2,
                                                                      hidden_dim=128, max_position_embeddings=512)),
    "electra": ("ElectraForMaskedLM", "ElectraConfig", dict(vocab_size=30522, embedding_size=16, hidden_size=32,
                                                             num_hidden_layers=2, num_attention_heads=2,
                                                             intermediate_size=128, max_position_embeddings=512)),
    "bart": ("BartForConditionalGeneration", "BartConfig", dict(vocab_size=V + 1, d_model=32, encoder_layers=2, decoder_layers=2,
                                                                 encoder_attention_heads=2, decoder_attention_heads=2,
                                                                 encoder_ffn_dim=128, decoder_ffn_dim=96,
                                                                 max_position_embeddings=512)),
    "t5-relu": ("T5ForConditionalGeneration", "T5Config", dict(vocab_size=V + 100, d_model=32, d_ff=128, d_kv=16, num_layers=2,
                                                               num_decoder_layers=2, num_heads=2, feed_forward_proj="relu",
                                                               tie_word_embeddings=False)),
    "gpt-neox": ("GPTNeoXForCausalLM", "GPTNeoXConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                                              num_attention_heads=2, intermediate_size=128,
                                                              max_position_embeddings=512)),
    "gptj": ("GPTJForCausalLM", "GPTJConfig", dict(vocab_size=V, n_embd=32, n_layer=2, n_head=2, rotary_dim=8,
                                                   n_positions=512)),
    "falcon": ("FalconForCausalLM", "FalconConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                                          num_attention_heads=2, new_decoder_architecture=False)),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", dict(vocab_size=V, hidden_size=32, intermediate_size=96,
                                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                       max_position_embeddings=512, tie_word_embeddings=True)),
    "mistral": ("MistralForCausalLM", "MistralConfig", dict(vocab_size=V, hidden_size=32, intermediate_size=96,
                                                             num_hidden_layers=2, num_attention_heads=4,
                                                             num_key_value_heads=2, head_dim=8, max_position_embeddings=512)),
    "phi3": ("Phi3ForCausalLM", "Phi3Config", dict(vocab_size=V, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                                    num_attention_heads=4, num_key_value_heads=2,
                                                    max_position_embeddings=512, pad_token_id=0)),
    "gemma": ("GemmaForCausalLM", "GemmaConfig", dict(vocab_size=V, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                                       num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                                                       max_position_embeddings=512)),
}
ANY_DTYPE = {"qwen2": torch.bfloat16}   # Qwen2 ships in bfloat16
ENCODER_TOKENIZER = ("roberta", "distilbert", "electra")


def build_any(name: str):
    import transformers
    model_class, config_class, kwargs = ANY[name]
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**kwargs)).eval()
    return model.to(ANY_DTYPE.get(name, torch.float32))


@pytest.fixture(scope="session")
def any_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints of architectures the suite never names, as save_pretrained writes them."""
    root = tmp_path_factory.mktemp("any")
    out = {}
    for name in ANY:
        build_any(name).save_pretrained(root / name)
        if name in ENCODER_TOKENIZER:
            copy_processor_files("minilm-l6", root / name)
        elif name == "t5-relu":
            add_t5_sentinels(model_folder_of("smollm2-135m"), root / name)
        elif name == "bart":  # BART's tokenizers carry a <mask> token for text infilling
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(model_folder_of("smollm2-135m"))
            tokenizer.add_special_tokens({"mask_token": "<mask>"})
            tokenizer.save_pretrained(root / name)
        else:
            copy_processor_files("smollm2-135m", root / name)
        out[name] = root / name
    return out


def model_folder_of(packaged: str) -> Path:
    from sparsescope import model_folder
    return model_folder(packaged)


def linear_weights_in_blocks(model) -> set[str]:
    """Oracle by module type, not by name and not by the suite's anatomy: the weights of Linear/Conv1D layers
    inside a ModuleList (the container of transformer blocks in every architecture here)."""
    from transformers.pytorch_utils import Conv1D
    in_lists = set()
    for list_name, container in model.named_modules():
        if isinstance(container, torch.nn.ModuleList):
            in_lists |= {f"{list_name}.{name}" for name, _ in container.named_modules() if name}
    return {f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D)) and name in in_lists}



# ------------------------------------------------------------------------------ the seed repos' hub layouts
def _bench_module(name: str):
    """A bench/ script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# a plain import: pytest puts tests/ (no __init__.py, default "prepend" import mode) on sys.path
import hub_layouts  # noqa: E402
HAVE_SPM = importlib.util.find_spec("sentencepiece") is not None and importlib.util.find_spec("google.protobuf") is not None
SEED_NAMES = ("gpt2-xl", "bert-large", "t5-v1_1-xl")


@pytest.fixture(scope="session")
def seed_hub(tmp_path_factory) -> Path:
    """A fresh offline HF cache holding the three seed repos in tiny sizes (and the bert/gpt2 alias ids)."""
    root = tmp_path_factory.mktemp("hf_cache")
    for name in SEED_NAMES:
        spiece = None
        if name == "t5-v1_1-xl" and HAVE_SPM:
            spiece = hub_layouts.train_t5_spiece(vocab_size=1000, max_chars=300_000, cache=root.parent / "spm")
        hub_layouts.write_repo(root, name, tiny=True, tokenizer=name != "t5-v1_1-xl" or HAVE_SPM, spiece=spiece)
    return root


def snapshot(root: Path, repo_id: str) -> Path:
    folder = hub_layouts.repo_folder(root, repo_id)
    return folder / "snapshots" / (folder / "refs" / "main").read_text()


def hand_counts(name: str, c: dict) -> tuple[int, int]:
    """Floating weights (aliases once, buffers excluded) and prunable 2-D block weights, by hand."""
    if name == "gpt2-xl":
        d, L = c["n_embd"], c["n_layer"]
        per_block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
        return (c["vocab_size"] + c["n_positions"]) * d + L * per_block + 2 * d, L * 12 * d * d
    if name == "bert-large":
        d, L, i = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
        per_block = 4 * (d * d + d) + (d * i + i) + (i * d + d) + 2 * 2 * d
        embeddings = (c["vocab_size"] + c["max_position_embeddings"] + c["type_vocab_size"]) * d + 2 * d
        heads = (d * d + d) + (d * d + d) + 2 * d + c["vocab_size"] + (2 * d + 2)  # pooler, MLM transform+bias, NSP
        return embeddings + L * per_block + heads, L * (4 * d * d + 2 * d * i)
    d, f, inner = c["d_model"], c["d_ff"], c["num_heads"] * c["d_kv"]
    attn, ff = 4 * d * inner, 3 * d * f  # q, k, v, o; gated: wi_0, wi_1, wo
    enc, dec = c["num_layers"], c["num_decoder_layers"]
    total = 2 * c["vocab_size"] * d + enc * (attn + ff + 2 * d) + dec * (2 * attn + ff + 3 * d) \
        + 2 * c["relative_attention_num_buckets"] * c["num_heads"] + 2 * d
    return total, enc * (attn + ff) + dec * (2 * attn + ff)


@pytest.fixture
def blocks_in_memory(monkeypatch) -> list[int]:
    """How many transformer blocks have real (not meta) weights after each block the streamer loads: the probe
    of calibration holding one block at a time (T5's `.block.N.` names)."""
    from sparsescope.pruning import streaming
    seen: list[int] = []
    load = streaming.BlockStreamer.load

    def counting_load(self, include):
        load(self, include)
        live = {n.split(".block.")[0] + n.split(".block.")[1].split(".")[0]
                for n, p in self.model.named_parameters() if ".block." in n and not p.is_meta}
        seen.append(len(live))
    monkeypatch.setattr(streaming.BlockStreamer, "load", counting_load)
    return seen
