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
from ..sources.weights import BLOCK_LIST_NAMES
from .layers import is_linear

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
def stack_of(model, path: str) -> str:
    """encoder or decoder: from the path where it says, else from what the model is."""
    for stack in ("decoder", "encoder"):
        if f".{stack}." in f".{path}.":
            return stack
    causal = any(word in type(model).__name__ for word in ("CausalLM", "LMHead"))
    return "decoder" if getattr(model.config, "is_decoder", False) or causal else "encoder"


def block_stacks(model) -> list[tuple[str, str, torch.nn.ModuleList]]:
    """(stack, path, blocks) for every ModuleList of transformer blocks, encoder first."""
    found = []
    for path, module in model.named_modules():
        inside_found = any(path.startswith(f"{p}.") for _, p, _ in found)  # T5's block.N.layer list
        is_blocks = isinstance(module, torch.nn.ModuleList) and path.split(".")[-1] in BLOCK_LIST_NAMES
        if is_blocks and len(module) and not inside_found and any(is_linear(m) for m in module[0].modules()):
            found.append((stack_of(model, path), path, module))
    return sorted(found, key=lambda x: x[0] != "encoder")


class _Stop(Exception):
    pass


def record_block_calls(model, inputs: dict, blocks: torch.nn.ModuleList,
                       streamer=None) -> tuple[torch.Tensor, list]:
    """Run the model once; return the hidden states entering blocks[0] and every block's other arguments.

    With a streamer, every block of the model is materialised when the forward reaches it and released after
    (so a decoder is recorded on the pruned encoder, one block in memory at a time)."""
    calls: list = [None] * len(blocks)
    first_hidden: list = []

    def pre_hook(index):
        def hook(module, args, kwargs):
            if args:
                hidden, rest = args[0], args[1:]
            else:
                kwargs = dict(kwargs)
                hidden, rest = kwargs.pop("hidden_states"), ()
            if index == 0:
                first_hidden.append(hidden)
            calls[index] = (rest, {k: v for k, v in kwargs.items() if k != "hidden_states"})
            if index == len(blocks) - 1:
                raise _Stop
        return hook

    handles = [b.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, b in enumerate(blocks)]
    if streamer is not None:  # registered after the recorders: the last block is never materialised here
        for _, path, stack_blocks in block_stacks(model):
            for i, block in enumerate(stack_blocks):
                prefix = f"{path}.{i}."
                handles.append(block.register_forward_pre_hook(
                    lambda m, args, p=prefix: streamer.load(lambda name: name.startswith(p))))
                handles.append(block.register_forward_hook(lambda m, args, out: streamer.release(m)))
    try:
        with torch.no_grad():
            model(**inputs, use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    if not first_hidden or any(c is None for c in calls):
        raise SparsescopeError(f"calibration forward never reached every block of {type(model).__name__}")
    return first_hidden[0], calls


def run_block(block, hidden: torch.Tensor, call) -> torch.Tensor:
    rest, kwargs = call
    out = block(hidden, *rest, **kwargs)
    return out[0] if isinstance(out, (tuple, list)) else out


def prune_blockwise(model, inputs: dict, make_pruner, prune_layer, progress: bool = True,
                    streamer=None) -> None:
    """Prune every linear layer inside every block, block by block, on calibration inputs.

    make_pruner(layer) -> object with add_batch(inputs); prune_layer(pruner) prunes that layer. With a
    streamer (a model on the meta device), each block is materialised before and spilled after."""
    for stack, path, blocks in block_stacks(model):
        hidden, calls = record_block_calls(model, inputs, blocks, streamer)
        for i, block in enumerate(tqdm(blocks, desc=f"pruning {stack} blocks", disable=not progress)):
            if streamer is not None:
                streamer.load(lambda name, p=f"{path}.{i}.": name.startswith(p))
            layers = {name: m for name, m in block.named_modules() if is_linear(m)}
            pruners = {name: make_pruner(m) for name, m in layers.items()}
            hooks = [m.register_forward_hook(lambda mod, args, out, p=pruners[name]: p.add_batch(args[0]))
                     for name, m in layers.items()]
            with torch.no_grad():
                run_block(block, hidden, calls[i])
            for h in hooks:
                h.remove()
            for pruner in pruners.values():
                prune_layer(pruner)
            with torch.no_grad():
                hidden = run_block(block, hidden, calls[i])  # the pruned block's output feeds the next
            if streamer is not None:
                streamer.spill(f"{path}.{i}", block)
