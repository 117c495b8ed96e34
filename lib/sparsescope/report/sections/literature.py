"""Published figures the report shows for scale, each with its source, and the seed study's models."""

from __future__ import annotations

import pandas as pd

# Published one-shot WikiText-2 perplexities, shown for scale with their sources. They were measured on
# WikiText-2 (test) with a 2048-token context and 128 × 2048-token C4 calibration windows, not on this
# suite's corpus and windows: compare ratios to dense, never perplexities.
SPARSEGPT, WANDA, WANDA_LLAMA = "[1]", "[2]", "[3]"
SOURCES = {
    SPARSEGPT: "SparseGPT paper (Frantar & Alistarh, ICML 2023, arXiv:2301.00774), OPT results on WikiText-2",
    WANDA: "Wanda paper (Sun et al., ICLR 2024, arXiv:2306.11695), OPT-125M results",
    WANDA_LLAMA: "Wanda paper (Sun et al., ICLR 2024), LLaMA-2 results, as listed in the README of "
    "github.com/locuslab/wanda",
}
PUBLISHED = pd.DataFrame(
    [
        ("OPT-125M", "dense", 0.0, "", 27.66, SPARSEGPT),
        ("OPT-125M", "magnitude 50%", 0.5, "", 193.4, SPARSEGPT),
        ("OPT-125M", "SparseGPT 50%", 0.5, "", 36.7, SPARSEGPT),
        ("OPT-125M", "Wanda 50%", 0.5, "", 39.3, WANDA),
        ("OPT-125M", "magnitude 2:4", 0.5, "2:4", 341.5, SPARSEGPT),
        ("OPT-125M", "SparseGPT 2:4", 0.5, "2:4", 60.7, SPARSEGPT),
        ("OPT-125M", "Wanda 2:4", 0.5, "2:4", 81.6, WANDA),
        ("LLaMA-2-7B", "dense", 0.0, "", 5.12, WANDA_LLAMA),
        ("LLaMA-2-7B", "magnitude 50%", 0.5, "", 14.89, WANDA_LLAMA),
        ("LLaMA-2-7B", "SparseGPT 50%", 0.5, "", 6.51, WANDA_LLAMA),
        ("LLaMA-2-7B", "Wanda 50%", 0.5, "", 6.42, WANDA_LLAMA),
        ("LLaMA-2-7B", "magnitude 2:4", 0.5, "2:4", 54.59, WANDA_LLAMA),
        ("LLaMA-2-7B", "SparseGPT 2:4", 0.5, "2:4", 10.17, WANDA_LLAMA),
        ("LLaMA-2-7B", "Wanda 2:4", 0.5, "2:4", 11.02, WANDA_LLAMA),
    ],
    columns=["model", "setting", "sparsity", "nm", "perplexity", "source"],
)
PUBLISHED_SETTING = "WikiText-2 test set, 2048-token context, calibration on 128 × 2048-token C4 windows"

# One-shot against iterative pruning in the literature, for the question this suite does not measure.
LITERATURE = pd.DataFrame(
    [
        (
            "iterative: prune, retrain, repeat",
            "AlexNet, VGG-16 (ImageNet)",
            "9× (AlexNet) and 13× (VGG-16) fewer parameters without loss of accuracy",
            "Han et al., NeurIPS 2015, arXiv:1506.02626 (abstract)",
        ),
        (
            "gradual pruning with fine-tuning (oBERT), compounded with quantisation",
            "BERT-base",
            "10× smaller model with < 1% accuracy drop",
            "Kurtic et al., EMNLP 2022, arXiv:2203.07259 (abstract)",
        ),
        (
            "one-shot, no retraining (SparseGPT)",
            "OPT-175B, BLOOM-176B",
            "60% unstructured sparsity with negligible increase in perplexity",
            "Frantar & Alistarh, ICML 2023, arXiv:2301.00774 (abstract)",
        ),
    ],
    columns=["how", "models", "reported", "source"],
)

# The seed study's models, whose place the packaged stand-ins take (parameter counts of their model cards).
SEED_MODELS = {
    "encoder-only": ("bert-large-uncased", 336e6),
    "decoder-only": ("gpt2-xl", 1.558e9),
    "encoder-decoder": ("t5-v1_1-xl", 2.85e9),
}
