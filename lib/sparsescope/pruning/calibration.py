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
from ..sources.speech import spoken_features, whisper_prefix
from ..sources.anatomy import block_stacks, is_linear

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
        words = split_text("calibration").split()
        rng = random.Random(seed)
        texts = []
        for _ in range(n_samples):  # ~40 words: about 15 s of espeak speech, inside Whisper's 30 s window
            s = rng.randrange(0, len(words) - 40)
            texts.append(" ".join(words[s:s + 40]))
        tokens = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        length = min(min(len(t) for t in tokens), seqlen)
        prefix = whisper_prefix(model, tokenizer)
        return {"input_features": spoken_features(folder, texts),
                "decoder_input_ids": torch.tensor([prefix + t[:length] for t in tokens])}
    windows = token_windows(tokenizer, n_samples, seqlen, seed)
    if config.is_encoder_decoder:  # T5-style: the decoder reads the window that follows
        start_id = next(i for i in (getattr(model.generation_config, "decoder_start_token_id", None),
                                    getattr(config, "decoder_start_token_id", None), config.pad_token_id, 0)
                        if i is not None)
        start = torch.full((n_samples, 1), start_id)
        return {"input_ids": windows[:, :seqlen],
                "decoder_input_ids": torch.cat([start, windows[:, seqlen:-1]], 1)}
    return {"input_ids": windows[:, :seqlen]}


# --------------------------------------------------------------------------------- the loop
class _Stop(Exception):
    pass


def prune_blockwise(model, inputs: dict, make_pruner, prune_layer, progress: bool = True,
                    streamer=None) -> None:
    """Prune every linear layer inside every block, in one forward of the model on calibration inputs.

    make_pruner(layer) -> object with add_batch(inputs); prune_layer(pruner) prunes that layer. Hooks do the
    work while the forward runs: entering a block, they attach the collectors to its linear layers (with a
    streamer, a model on the meta device, they first materialise the block); the block's own call then
    feeds the collectors; leaving it, they prune the block, recompute its output with the pruned weights and
    hand that to the next block instead of the dense output (spilling and releasing the block with a
    streamer). So every block calibrates on what the pruned blocks before it produce — an encoder-decoder's
    decoder on the pruned encoder — with two passes per block and none over the head."""
    order = [(f"{path}.{i}", block) for _, path, blocks in block_stacks(model)
             for i, block in enumerate(blocks)]
    bar = tqdm(total=len(order), desc="pruning blocks", disable=not progress)
    working: dict = {}
    done: list = []

    def enter(path):
        def hook(block, args, kwargs):
            if streamer is not None:
                streamer.load(lambda name: name.startswith(f"{path}."))
            pruners = {name: make_pruner(m) for name, m in block.named_modules() if is_linear(m)}
            hooks = [m.register_forward_hook(lambda mod, a, out, p=pruners[name]: p.add_batch(a[0]))
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
