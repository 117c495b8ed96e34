"""Calibration: inputs from the corpus's calibration split, and the block-by-block pruning loop.

The loop (as in the Wanda and SparseGPT code): one forward of the model records the arguments each
transformer block of a stack receives; then block after block, hooks on its linear layers collect
input statistics, the block is pruned, and its pruned outputs become the next block's inputs. An
encoder-decoder model does its encoder stack first, then records the decoder's arguments again so the
decoder calibrates on the pruned encoder's outputs.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import SparsescopeError
from ..sources.corpus import split_text
from ..sources.anatomy import block_stacks, is_linear, matrix_shape
from ..sources.speech import SAMPLE_RATE, speak, spoken_features, whisper_prefix

DEFAULT_SAMPLES, DEFAULT_SEQLEN = 16, 128      # CPU-friendly; the papers use 128 x 2048


def calibration_budget(n_samples: int | None, seqlen: int, widest: int) -> dict:
    """Windows, tokens and a warning. SparseGPT's Hessian X Xᵀ of a layer with `widest` inputs is singular
    with fewer calibration tokens than that, so by default (n_samples None) enough windows are taken to
    cover the widest layer, and never fewer than DEFAULT_SAMPLES."""
    n = n_samples if n_samples is not None else max(DEFAULT_SAMPLES, math.ceil(widest / seqlen))
    tokens = n * seqlen
    note = "" if tokens >= widest else (
        f"{n} x {seqlen} = {tokens} calibration tokens are fewer than the {widest} inputs of the widest "
        "layer: "
        "its Hessian is singular and only the 1% dampening keeps SparseGPT's update defined")
    return {"n_samples": n, "tokens": tokens, "note": note}


# ------------------------------------------------------------------------------------- inputs
def token_windows(tokenizer, n_samples: int, seqlen: int, seed: int) -> torch.Tensor:
    """n seeded windows of 2*seqlen tokens, each from a random place in the calibration split.
    Only a slice around each place is tokenised: the split is 10 M characters."""
    text = split_text("calibration")
    rng = random.Random(seed)
    span = 16 * 2 * seqlen  # characters; English BPE runs at about 4 per token
    if len(text) < 2 * span:
        raise SparsescopeError(f"the calibration text ({len(text)} characters) is too short for windows of "
                               f"{seqlen} tokens: lower the sequence length")
    windows = []
    for _ in range(n_samples):
        start = rng.randrange(0, len(text) - span)
        ids = tokenizer(text[start:start + span], add_special_tokens=False, verbose=False).input_ids
        if len(ids) < 2 * seqlen + 1:
            raise SparsescopeError(f"{type(tokenizer).__name__} made only {len(ids)} tokens of {span} "
                                   "characters: "
                                   "does the model folder hold its tokenizer?")
        windows.append(torch.tensor(ids[1:2 * seqlen + 1]))  # skip a token that may be a cut word
    return torch.stack(windows)


def calibration_inputs(model, folder: Path, n_samples: int = DEFAULT_SAMPLES, seqlen: int = DEFAULT_SEQLEN,
                       seed: int = 0) -> dict[str, torch.Tensor]:
    """Model inputs for one calibration forward, by architecture."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = model.config
    if config.model_type == "whisper":
        return whisper_calibration(model, folder, tokenizer, n_samples, seqlen, seed)
    windows = token_windows(tokenizer, n_samples, seqlen, seed)
    if config.is_encoder_decoder:  # T5-style: the decoder reads the window that follows
        start_id = next(i for i in (getattr(model.generation_config, "decoder_start_token_id", None),
                                    getattr(config, "decoder_start_token_id", None), config.pad_token_id, 0)
                        if i is not None)
        start = torch.full((n_samples, 1), start_id)
        return {"input_ids": windows[:, :seqlen],
                "decoder_input_ids": torch.cat([start, windows[:, seqlen:-1]], 1)}
    return {"input_ids": windows[:, :seqlen]}


WHISPER_WORDS, WHISPER_SECONDS, MAX_CLIPS = 55, 28.0, 512  # ~20 s of espeak speech, inside the 30 s window


def widest_input(model, stack: str) -> int:
    """The most inputs any linear layer in the blocks of `stack` has (0 if the model has no such stack)."""
    return max((matrix_shape(m)[1] for s, _, blocks in block_stacks(model) if s == stack
                for m in blocks.modules() if is_linear(m)), default=0)


def whisper_calibration(model, folder: Path, tokenizer, n_samples: int, seqlen: int, seed: int) -> dict:
    """Spoken calibration texts and their transcripts. The decoder reads one row per transcript token, all
    cut to the shortest, so clips are added (beyond n_samples) until the decoder's rows cover its widest
    layer's inputs: fewer rows leave SparseGPT's Hessian singular there. A clip longer than Whisper's 30 s
    window would lose the end of what the decoder reads, so such a text is drawn again."""
    words = split_text("calibration").split()
    rng = random.Random(seed)
    prefix = whisper_prefix(model, tokenizer)
    need = widest_input(model, "decoder")
    texts, tokens = [], []
    while len(texts) < n_samples or len(texts) * (len(prefix) + min(min(map(len, tokens)), seqlen)) < need:
        if len(texts) >= MAX_CLIPS:
            raise SparsescopeError(f"{MAX_CLIPS} clips give the decoder fewer rows than its widest layer's "
                                   f"{need} inputs: raise the calibration seqlen")
        s = rng.randrange(0, len(words) - WHISPER_WORDS)
        text = " ".join(words[s:s + WHISPER_WORDS])
        if len(speak(text)) > WHISPER_SECONDS * SAMPLE_RATE:
            continue
        texts.append(text)
        tokens.append(tokenizer(text, add_special_tokens=False).input_ids)
    length = min(min(map(len, tokens)), seqlen)
    return {"input_features": spoken_features(folder, texts),
            "decoder_input_ids": torch.tensor([prefix + t[:length] for t in tokens])}


# --------------------------------------------------------------------------------- the loop
class _Stop(Exception):
    pass


def prune_blockwise(model, inputs: dict, make_pruner, prune_layer, progress: bool = True,
                    streamer=None) -> dict[str, tuple[int, int]]:
    """Prune every linear layer inside every block, in one forward of the model on calibration inputs.

    make_pruner(layer) -> object with add_batch(inputs); prune_layer(pruner) prunes that layer. Hooks do the
    work while the forward runs: entering a block, they attach the collectors to its linear layers (with a
    streamer, a model on the meta device, they first materialise the block); the block's own call then
    feeds the collectors; leaving it, they prune the block, recompute its output with the pruned weights and
    hand that to the next block instead of the dense output (spilling and releasing the block with a
    streamer). So every block calibrates on what the pruned blocks before it produce — an encoder-decoder's
    decoder on the pruned encoder — with two passes per block and none over the head.

    Returns {layer path: (input rows it saw, its inputs)}: what calibration_summary reads."""
    order = [(f"{path}.{i}", block) for _, path, blocks in block_stacks(model)
             for i, block in enumerate(blocks)]
    bar = tqdm(total=len(order), desc="pruning blocks", disable=not progress)
    working: dict = {}
    done: list = []
    rows: dict[str, list[int]] = {}

    def enter(path):
        def hook(block, args, kwargs):
            if streamer is not None:
                streamer.load(lambda name: name.startswith(f"{path}."))
            pruners = {name: make_pruner(m) for name, m in block.named_modules() if is_linear(m)}

            def collect(name):
                def hook(module, args, output):
                    x = args[0]
                    seen = rows.setdefault(f"{path}.{name}", [0, x.shape[-1]])
                    seen[0] += x.numel() // x.shape[-1]  # one row per position the layer read
                    pruners[name].add_batch(x)
                return hook
            hooks = [m.register_forward_hook(collect(name))
                     for name, m in block.named_modules() if is_linear(m)]
            working[path] = (pruners, hooks)
        return hook

    def leave(path, is_last):
        def hook(block, args, kwargs, output):
            pruners, hooks = working.pop(path)
            for h in hooks:
                h.remove()
            for pruner in pruners.values():
                prune_layer(pruner)
            output = block.forward(*args, **kwargs)  # .forward: no hooks, so no re-entry
            if streamer is not None:
                streamer.spill(path, block)
            done.append(path)
            bar.update()
            if is_last:
                raise _Stop  # nothing after the last block (final norm, head) is needed
            return output
        return hook

    handles = []
    for n, (path, block) in enumerate(order):
        handles.append(block.register_forward_pre_hook(enter(path), with_kwargs=True))
        handles.append(block.register_forward_hook(leave(path, n == len(order) - 1), with_kwargs=True))
    try:
        with torch.no_grad():
            model(**inputs, use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
        bar.close()
    if working or len(done) != len(order):
        raise SparsescopeError(f"calibration forward reached {len(done)} of the {len(order)} blocks of "
                               f"{type(model).__name__}")
    return {name: (n, width) for name, (n, width) in rows.items()}


def calibration_summary(rows: dict[str, tuple[int, int]], inputs: dict) -> dict:
    """pruning.csv's calibration columns as fed: samples, tokens (text tokens, or a speech model's transcript
    tokens), `calibration_rows`, the fewest input rows any calibrated layer saw, and a note naming
    the layers that saw fewer rows than they have inputs (a singular Hessian: only SparseGPT's dampening
    defines its update there)."""
    # Whisper's decoder reads transcripts: their tokens are the text it calibrates on
    ids = inputs["input_ids"] if "input_ids" in inputs else inputs["decoder_input_ids"]
    fed = {"n_samples": int(ids.shape[0]), "tokens": int(ids.numel())}
    if not rows:
        return {**fed, "rows": "", "note": ""}
    short = sorted((n, width, name) for name, (n, width) in rows.items() if n < width)
    note = "" if not short else (
        f"{len(short)} calibrated layers saw fewer input rows than they have inputs (fewest: {short[0][2]}, "
        f"{short[0][0]} rows for {short[0][1]} inputs): their Hessian is singular and only the 1% dampening "
        "keeps SparseGPT's update defined")
    return {**fed, "rows": min(n for n, _ in rows.values()), "note": note}
