"""What reading a model's anatomy costs on the seed models' real configs: the model built on the meta device,
then its matrices with roles, FFN units and head units (each candidate config field one more meta build).

    .venv/bin/python bench/anatomy_probe.py          # prints one CSV row per model, 3 repeats each
"""
from __future__ import annotations

import statistics
import time

import transformers
from accelerate import init_empty_weights

from sparsescope.sources.anatomy import Anatomy

SEED_CONFIGS = {  # the hub repos' config.json values that shape the model
    "gpt2-xl": (transformers.GPT2LMHeadModel, transformers.GPT2Config(n_embd=1600, n_layer=48, n_head=25)),
    "bert-large": (transformers.BertForMaskedLM, transformers.BertConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)),
    "t5-v1_1-xl": (transformers.T5ForConditionalGeneration, transformers.T5Config(
        d_model=2048, d_ff=5120, num_layers=24, num_heads=32, d_kv=64, feed_forward_proj="gated-gelu")),
}


def main() -> None:
    print("model,seconds_median,seconds_min,seconds_max,matrices,ffn_fields,heads")
    for name, (cls, config) in SEED_CONFIGS.items():
        times = []
        for _ in range(3):
            with init_empty_weights(include_buffers=False):
                model = cls(config)
            started = time.perf_counter()
            anatomy = Anatomy(model)
            found = (len(anatomy.matrices), anatomy.ffn.fields, "yes" if anatomy.heads.units else "refused")
            times.append(time.perf_counter() - started)
        fields = " ".join(f"{k}={v}" for k, v in found[1].items())
        print(f"{name},{statistics.median(times):.2f},{min(times):.2f},{max(times):.2f},{found[0]},{fields},"
              f"{found[2]}")


if __name__ == "__main__":
    main()
