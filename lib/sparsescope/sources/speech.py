"""Speech for the Whisper stand-in: sentences spoken by espeak-ng, cached by text, as Whisper features."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import uuid
import warnings
from math import gcd
from pathlib import Path

import numpy as np

from ..artifacts import cache_dir
from ..errors import SparsescopeError

SAMPLE_RATE = 16000


def speak(text: str) -> np.ndarray:
    """16 kHz mono float audio of `text` spoken by espeak-ng, cached by text."""
    import scipy.io.wavfile
    import scipy.signal
    if shutil.which("espeak-ng") is None:
        raise SparsescopeError("speech needs espeak-ng: run `make setup` or apt-get install espeak-ng")
    path = cache_dir("speech") / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.npy"
    if not path.exists():
        wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
        with warnings.catch_warnings():  # a WAV streamed to stdout carries no final length
            warnings.simplefilter("ignore")
            rate, pcm = scipy.io.wavfile.read(io.BytesIO(wav))
        g = gcd(SAMPLE_RATE, rate)
        clip = scipy.signal.resample_poly(pcm.astype(np.float32) / 32768, SAMPLE_RATE // g, rate // g)
        # a name of this process's own: tasks beside it speak the same texts; the rename is atomic and they
        # all write the same clip, so whichever lands last is as good as the first
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy")
        np.save(tmp, clip.astype(np.float32))
        os.replace(tmp, path)
    return np.load(path)


def spoken_features(processor_folder: Path, texts: list[str]):
    """Whisper log-mel features of `texts` spoken by espeak-ng."""
    from transformers import WhisperFeatureExtractor
    extractor = WhisperFeatureExtractor.from_pretrained(processor_folder)
    return extractor([speak(t) for t in texts], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features


def whisper_prefix(model, tokenizer) -> list[int]:
    """The decoder prompt of an English-only Whisper transcription: start of transcript, no timestamps."""
    start = model.generation_config.decoder_start_token_id
    return [start, tokenizer.convert_tokens_to_ids("<|notimestamps|>")]
