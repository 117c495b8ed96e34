"""Random-init checkpoints with real model configs, written shard by shard without holding the model.

Shared by the benchmarks in this folder; cached under $SPARSESCOPE_CACHE/bench.
"""
from __future__ import annotations

from pathlib import Path

import torch

CONFIGS = {
    "gpt2-xl": ("GPT2LMHeadModel", "GPT2Config", dict(n_embd=1600, n_layer=48, n_head=25, vocab_size=50257)),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", dict()),
    "gpt2-medium": ("GPT2LMHeadModel", "GPT2Config", dict(n_embd=1024, n_layer=24, n_head=16)),
    "t5-v1_1-xl": ("T5ForConditionalGeneration", "T5Config",
                   dict(d_model=2048, d_ff=5120, d_kv=64, num_layers=24, num_decoder_layers=24, num_heads=32,
                        vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
}
SHARD_BYTES = 2 << 30


def random_checkpoint(name: str) -> Path:
    """A random-init checkpoint of `name`'s shapes, written shard by shard; the model is only on `meta`."""
    import transformers
    from safetensors.torch import save_file
    from tqdm import tqdm
    from sparsescope.artifacts import atomic_dir, cache_dir, write_json
    final = cache_dir("bench") / f"random-{name}"
    if (final / "model.safetensors.index.json").exists():
        return final
    model_cls, config_cls, kwargs = CONFIGS[name]
    config = getattr(transformers, config_cls)(**kwargs)
    with torch.device("meta"):
        model = getattr(transformers, model_cls)(config)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in tied}
    generator = torch.Generator().manual_seed(0)
    with atomic_dir(final) as tmp:
        shard, size, weight_map, n_shard = {}, 0, {}, 0

        def flush():
            nonlocal shard, size, n_shard
            if shard:
                n_shard += 1
                fname = f"model-{n_shard:05d}.safetensors"
                save_file(shard, tmp / fname, metadata={"format": "pt"})
                weight_map.update({k: fname for k in shard})
                shard, size = {}, 0

        for key, shape in tqdm(shapes.items(), desc=f"writing random {name}", unit="tensor"):
            shard[key] = torch.randn(shape, generator=generator) * 0.02
            size += shard[key].numel() * 4
            if size >= SHARD_BYTES:
                flush()
        flush()
        write_json({"metadata": {}, "weight_map": weight_map}, tmp / "model.safetensors.index.json")
        config.save_pretrained(tmp)
    return final
