"""Model registry, packaged-model materialisation and the bad-input messages."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsescope import PROFILES, SparsescopeError, describe, model_folder, resolve
from sparsescope.analysis.distribution import analyze_model


def test_profiles_name_the_interface():
    assert PROFILES["packaged"] == ["minilm-l6", "smollm2-135m", "whisper-tiny-en"]
    assert PROFILES["seed"] == ["bert-large", "gpt2-xl", "t5-v1_1-xl"]
    assert resolve("gpt2-xl").hub_id == "openai-community/gpt2-xl"


def test_unknown_name_is_one_line_naming_profiles_and_folders(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable: the message must say what to do
    with pytest.raises(SparsescopeError) as err:
        model_folder("no-such-model-anywhere")
    msg = str(err.value)
    assert "\n" not in msg
    assert "packaged: minilm-l6" in msg and "seed: bert-large" in msg and "local" in msg


def test_missing_local_folder_is_one_line(tmp_path):
    with pytest.raises(SparsescopeError, match="not a folder"):
        resolve(str(tmp_path / "absent"))


def test_local_folder_family_from_config(tiny_models):
    assert resolve(str(tiny_models["t5"])).family == "encoder-decoder"
    assert resolve(str(tiny_models["gpt2"])).family == "decoder-only"
    assert resolve(str(tiny_models["bert"])).family == "encoder-only"


def test_lib_never_trusts_remote_code():
    lib = Path(__file__).resolve().parents[1] / "lib"
    for path in lib.rglob("*.py"):
        assert "trust_remote_code=True" not in path.read_text(), path


@pytest.mark.slow
def test_minilm_statistics_match_known_counts(tmp_path):
    """Integration on real packaged weights (counts checked independently in shared/FACTS.md)."""
    dist = analyze_model("minilm-l6", tmp_path, progress=False)
    s = dist.summary
    assert s["family"] == "encoder-only"
    assert s["n_params"] == 22_713_216
    assert s["all"]["n_zero"] == 387
    assert s["n_prunable"] == 10_616_832
    assert {"1e-3", "1e-2", "1e-1"} <= set(s["prunable"]["frac_below"])
    assert (tmp_path / "manifest.json").exists()


@pytest.mark.slow
def test_packaged_models_describe():
    info = {name: describe(name) for name in PROFILES["packaged"]}
    assert info["smollm2-135m"]["architecture"] == "LlamaForCausalLM"
    assert "4-bit" in info["smollm2-135m"]["note"]
    assert info["whisper-tiny-en"]["layers"] == "4 + 4"
    assert info["minilm-l6"]["layers"] == "6"


def spoken_clip(text: str) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is missing: `make setup` installs it")
        pytest.skip("espeak-ng is not installed")
    from sparsescope.sources.speech import speak
    return speak(text)


@pytest.mark.slow
def test_converted_whisper_transcribes_like_the_ctranslate2_original():
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration
    from sparsescope.sources.registry import _package_dir, REGISTRY
    folder = model_folder("whisper-tiny-en")
    audio = spoken_clip("The weights of a pruned model are mostly zero. Sparse models can be smaller and faster.")
    features = WhisperFeatureExtractor.from_pretrained(folder)(audio, sampling_rate=16000, return_tensors="pt").input_features
    hf = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    hf_ids = [t for t in hf.generate(features)[0].tolist() if t < 50257]
    original = ctranslate2.models.Whisper(str(_package_dir(REGISTRY["whisper-tiny-en"]) / "model"), device="cpu",
                                          compute_type="float32")
    ct2_ids = original.generate(ctranslate2.StorageView.from_array(features.numpy()), [[50257, 50362]],
                                beam_size=1)[0].sequences_ids[0]
    text = AutoTokenizer.from_pretrained(folder).decode(hf_ids, skip_special_tokens=True)
    assert hf_ids == ct2_ids, text
    assert len(text.split()) >= 10 and "model" in text.lower()
