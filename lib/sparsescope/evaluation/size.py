"""What every pruned checkpoint costs on disk: bytes against dense, and bits per pruned weight — the index
(positions) against its bound, the mask entropy n·H(s) or log2 C(M, N) / M for N:M, and the values
(notebook 03's size part)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from ..artifacts import atomic_write_text
from ..pruning.runs import pick_run, read_pruning_table
from ..storage import checkpoint_bytes, export_dense, size_breakdown

# size_breakdown's index and value figures, as size.csv columns of the same names
INDEX_COLUMNS = ("index_bits_per_weight", "index_bound_bits_per_weight", "index_ratio",
                 "value_bits_per_weight", "index_coding")


def size_results(pruning_dir, out_dir) -> pd.DataFrame:
    """Per run: bytes dense vs saved; bits per pruned weight spent on the index against the index's bound
    (`index_bits_per_weight`, `index_bound_bits_per_weight`, `index_ratio`, `index_coding`) and on the
    values (`value_bits_per_weight`); all bits against the index bound plus the kept values' raw bits
    (`bits_per_weight`, `bound_bits_per_weight`, `ratio_to_bound`); for the global-magnitude run nearest
    50%, also the bytes of that pruned model saved the seed's way (dense). Writes out_dir/size.csv."""
    runs = read_pruning_table(pruning_dir)
    probe = pick_run(runs, "global_magnitude", 0.5)
    dense_save = None
    if probe is not None:
        with tempfile.TemporaryDirectory(dir=Path(pruning_dir)) as tmp:
            dense_save = checkpoint_bytes(export_dense(probe["checkpoint"], Path(tmp) / "dense"))
    rows = []
    for run in runs.itertuples():
        is_probe = probe is not None and run.checkpoint == probe["checkpoint"]
        sizes = size_breakdown(run.checkpoint)
        rows.append({"method": run.method, "target_sparsity": run.target_sparsity, "nm": run.nm,
                     "achieved_sparsity": run.achieved_sparsity, "dense_bytes": run.dense_bytes,
                     "saved_bytes": run.saved_bytes, "saved_over_dense": run.saved_bytes / run.dense_bytes,
                     "bits_per_weight": sizes["bits_per_weight"],
                     "bound_bits_per_weight": sizes["bound_bits_per_weight"],
                     "ratio_to_bound": sizes["ratio_to_bound"],
                     **{key: sizes[key] for key in INDEX_COLUMNS},
                     "dense_save_bytes": dense_save if is_probe else ""})
    table = pd.DataFrame(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "size.csv", table.to_csv(index=False))
    return table
