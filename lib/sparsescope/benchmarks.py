"""Notebook 03's size and runtime parts: what every pruned checkpoint costs on disk, and what runs faster."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from .errors import SparsescopeError
from .runs import atomic_write_text, write_json
from .sources import load_model
from .storage import load_pruned, size_breakdown

KERNEL_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
KERNEL_TOKENS = (1, 16, 128, 512)


def read_pruning(pruning_dir) -> pd.DataFrame:
    path = Path(pruning_dir) / "pruning.csv"
    if not path.exists():
        raise SparsescopeError(f"{pruning_dir} holds no pruning.csv: pass the out_dir of notebook 02 as pruning_dir")
    return pd.read_csv(path, keep_default_na=False)


def size_results(pruning_dir) -> pd.DataFrame:
    """Per run: bytes dense vs saved, bits per prunable weight, the entropy bound and the ratio to it; for the
    global-magnitude run nearest 50%, also the bytes of that pruned model saved the seed's way (dense)."""
    import tempfile
    from .storage import checkpoint_bytes, export_dense
    runs = read_pruning(pruning_dir)
    probe = pick_run(runs, "global_magnitude", 0.5)
    dense_save = None
    if probe is not None:
        with tempfile.TemporaryDirectory(dir=Path(pruning_dir)) as tmp:
            dense_save = checkpoint_bytes(export_dense(probe["checkpoint"], Path(tmp) / "dense"))
    rows = []
    for run in runs.itertuples():
        sizes = size_breakdown(run.checkpoint)
        rows.append({"method": run.method, "target_sparsity": run.target_sparsity, "nm": run.nm,
                     "achieved_sparsity": run.achieved_sparsity, "dense_bytes": run.dense_bytes,
                     "saved_bytes": run.saved_bytes, "saved_over_dense": run.saved_bytes / run.dense_bytes,
                     "bits_per_weight": sizes["bits_per_weight"], "bound_bits_per_weight": sizes["bound_bits_per_weight"],
                     "ratio_to_bound": sizes["ratio_to_bound"],
                     "dense_save_bytes": dense_save if probe is not None and run.checkpoint == probe["checkpoint"] else ""})
    return pd.DataFrame(rows)


def input_maker(model, seqlen: int, seed: int = 0):
    """Random inputs of the model's kind, batch size b -> kwargs (latency does not depend on content)."""
    config = model.config
    vocab = config.vocab_size

    def make(b: int) -> dict:
        g = torch.Generator().manual_seed(seed + b)
        if config.model_type == "whisper":
            return {"input_features": torch.randn(b, config.num_mel_bins, 3000, generator=g),
                    "decoder_input_ids": torch.randint(0, vocab, (b, 16), generator=g)}
        ids = {"input_ids": torch.randint(0, vocab, (b, seqlen), generator=g)}
        if config.is_encoder_decoder:
            ids["decoder_input_ids"] = torch.randint(0, vocab, (b, 16), generator=g)
        return ids
    return make


def prunable_shapes(model) -> list[tuple[int, int]]:
    """Distinct (outputs, inputs) shapes of the prunable linear layers."""
    from .layers import LinearView, is_linear
    from .weights import tag
    shapes = set()
    for name, module in model.named_modules():
        if is_linear(module) and tag(f"{name}.weight", tuple(module.weight.shape)).prunable:
            shapes.add(tuple(LinearView(module).weight().shape))
    return sorted(shapes)


def pick_run(runs: pd.DataFrame, method: str, target: float | None = None):
    """The unstructured run of `method` nearest `target` (highest sparsity when target is None)."""
    candidates = runs[(runs["method"] == method) & (runs["nm"] == "")]
    if not len(candidates):
        return None
    if target is None:
        return candidates.loc[candidates["target_sparsity"].idxmax()]
    return candidates.iloc[(candidates["target_sparsity"] - target).abs().argsort().iloc[0]]


def runtime_results(model: str, pruning_dir, out_dir, batch_sizes=(1, 8), seqlen: int = 128,
                    sparsities=KERNEL_SPARSITIES, tokens=KERNEL_TOKENS, repeats: int = 5) -> pd.DataFrame:
    """Measure (or reuse) runtime.csv: dense-kernel and sparse-kernel latencies, and GPU 2:4 where CUDA is."""
    from .runtime import (crossovers, device_name, end_to_end, kernel_sweep, semi_structured_sweep,
                          sparsify_linears)
    out_dir = Path(out_dir)
    settings = {"model": model, "batch_sizes": list(batch_sizes), "seqlen": seqlen, "sparsities": list(sparsities),
                "tokens": list(tokens), "repeats": repeats, "device": device_name()}
    done = out_dir / "runtime_settings.json"
    if (out_dir / "runtime.csv").exists() and done.exists() and json.loads(done.read_text()) == settings:
        return pd.read_csv(out_dir / "runtime.csv")
    runs = read_pruning(pruning_dir)
    torch.manual_seed(0)
    dense = load_model(model, dtype=torch.float32)
    make_inputs = input_maker(dense, seqlen)
    rows = []
    half = pick_run(runs, "global_magnitude", 0.5)
    if half is not None:  # 1. the seed's observation: zeros in dense kernels cost the same
        rows += end_to_end(dense, load_pruned(half["checkpoint"], dtype=torch.float32), make_inputs, batch_sizes,
                           "dense-kernels", model, float(half["achieved_sparsity"]), repeats)
    shapes = prunable_shapes(dense)
    rows += kernel_sweep(shapes, sparsities, tokens, repeats=repeats)  # 2. CPU sparse kernels
    cross = pd.DataFrame(crossovers(rows))
    e2e_tokens = min(tokens, key=lambda n: abs(n - seqlen))
    at = cross[(cross["kind"] == "kernel-csr") & (cross["tokens"] == e2e_tokens)]["crossover_sparsity"]
    threshold = float(at.max()) if len(at) and at.notna().all() else None
    top = pick_run(runs, "layer_magnitude")  # uniform per matrix: every layer sits at the same sparsity
    if threshold is not None and top is not None and top["achieved_sparsity"] >= threshold:
        sparse_model = load_pruned(top["checkpoint"], dtype=torch.float32)
        swapped = sparsify_linears(sparse_model, threshold)
        rows += [{**r, "swapped_layers": swapped} for r in
                 end_to_end(dense, sparse_model, make_inputs, batch_sizes, "sparse-kernels-e2e", model,
                            float(top["achieved_sparsity"]), repeats)]
    if torch.cuda.is_available():  # 3. 2:4 tensor cores
        rows += semi_structured_sweep([s for s in shapes if s[1] % 64 == 0])
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "crossovers.csv", cross.to_csv(index=False))
    atomic_write_text(out_dir / "runtime.csv", table.to_csv(index=False))
    write_json(settings, done)
    return table

