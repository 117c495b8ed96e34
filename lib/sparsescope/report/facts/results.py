"""Loading a model's saved results into tables: blank text columns as "", numeric columns NaN where
older results lack them, per-matrix sparsity beside each run, crossovers read by today's rule."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...analysis.distribution import Distribution, load_distribution
from ...artifacts import results_path
from ...errors import SparsescopeError
from ...evaluation.runtime import crossovers as kernel_crossovers
from ...pruning.runs import run_label

TEXT_COLUMNS = (
    "method",
    "nm",
    "kind",
    "structure",
    "metric",
    "shape_or_model",
    "device",
    "run",
    "checkpoint",
    "calibration_note",
    "index_coding",
    "interleaved",
    "crossover_sparsity",
    "name",
    "stack",
    "component",
)
CALIBRATED = ("wanda", "sparsegpt")
MAGNITUDE = ("global_magnitude", "layer_magnitude")


def read_table(path: Path) -> pd.DataFrame:
    """A results CSV, empty when absent; text columns blank instead of NaN (nm = "" for unstructured)."""
    if not Path(path).exists():
        return pd.DataFrame()
    table = pd.read_csv(path)
    for col in TEXT_COLUMNS:
        if col in table and col != "crossover_sparsity":
            table[col] = table[col].fillna("").astype(str)
    return table


def column(table: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, NaN where blank or absent (older results lack the newer columns)."""
    if name not in table:
        return pd.Series(np.nan, index=table.index, dtype=float)
    return pd.to_numeric(table[name], errors="coerce")


def _json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class ModelResults:
    """Everything saved for one model; a stage that did not run leaves its tables empty."""

    name: str
    dist: Distribution
    pruning: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_matrix: pd.DataFrame = field(default_factory=pd.DataFrame)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)
    runtime: pd.DataFrame = field(default_factory=pd.DataFrame)
    crossovers: pd.DataFrame = field(default_factory=pd.DataFrame)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    transcripts: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)   # default-grid runs that could not apply
    bench_params: dict = field(default_factory=dict)
    prune_params: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.dist.summary["family"]

    @property
    def vocab_size(self) -> int | None:
        """From the summary, or for results written before it was recorded, the model folder's config."""
        from ...sources.registry import vocab_size

        info = self.dist.summary.get("model_info", {})
        if info.get("vocab_size"):
            return int(info["vocab_size"])
        config = Path(info.get("folder", "")) / "config.json"
        return vocab_size(json.loads(config.read_text())) if info.get("folder") and config.exists() else None


def load_model(results_dir: str | os.PathLike, model: str) -> ModelResults:
    folder = results_path(results_dir, model, "distribution")
    if not (folder / "summary.json").exists():
        raise SparsescopeError(
            f"no distribution results for {model!r} in {folder}: run `make report` "
            f"(or notebook 01 with out_dir={folder}) first"
        )
    prune_dir = results_path(results_dir, model, "pruning")
    bench = results_path(results_dir, model, "benchmarks")
    pruning = read_table(prune_dir / "pruning.csv")
    runtime = read_table(bench / "runtime.csv")
    return ModelResults(
        name=model,
        dist=load_distribution(folder),
        pruning=pruning,
        per_matrix=per_matrix_table(pruning, prune_dir),
        sizes=read_table(bench / "size.csv"),
        runtime=runtime,
        crossovers=crossovers_of(runtime, read_table(bench / "crossovers.csv")),
        quality=read_table(bench / "quality.csv"),
        transcripts=read_table(bench / "transcripts.csv"),
        skipped=read_table(prune_dir / "skipped.csv"),
        bench_params=_json(bench / "manifest.json").get("parameters", {}),
        prune_params=_json(prune_dir / "manifest.json").get("parameters", {}),
    )


def skipped_sentence(models: list[ModelResults]) -> str:
    """One sentence naming the default-grid runs left out of a model, and why (empty when none was)."""
    said = []
    for m in models:
        for reason, rows in m.skipped.groupby("reason", sort=False) if len(m.skipped) else []:
            runs = " and ".join(run_label(r.method, float(r.target_sparsity), "") for r in rows.itertuples())
            why = reason.removeprefix("ffn: ").removeprefix("heads: ").rstrip(".")
            said.append(f"{runs} of {m.name} ({why})")
    if not said:
        return ""
    return ("The default grid left out what cannot apply to a model: " + "; ".join(said) + ".")


def crossovers_of(runtime: pd.DataFrame, saved: pd.DataFrame) -> pd.DataFrame:
    """Crossovers recomputed from the kernel rows, so results measured before the rule asked for an interval
    above 1.0 are read by today's rule; the saved crossovers.csv only where no kernel rows exist."""
    kernel = runtime[runtime["kind"].astype(str).str.startswith("kernel-")] if "kind" in runtime else runtime
    return pd.DataFrame(kernel_crossovers(kernel.to_dict("records"))) if len(kernel) else saved


def per_matrix_table(pruning: pd.DataFrame, prune_dir: Path) -> pd.DataFrame:
    """Per-matrix sparsity of every sparse run (structured runs are smaller models: left out). A run folder
    is looked up beside pruning.csv when the recorded checkpoint path has moved (results copied)."""
    frames = []
    for row in pruning.itertuples():
        if getattr(row, "kind", "") == "structured":
            continue
        folder = Path(row.checkpoint).parent
        path = folder / "sparsity_by_tensor.csv"
        if not path.exists():
            path = Path(prune_dir) / folder.name / "sparsity_by_tensor.csv"
        if not path.exists():
            continue
        df = read_table(path)
        frames.append(
            df.assign(
                method=row.method,
                target_sparsity=row.target_sparsity,
                nm=row.nm,
                run=run_label(row.method, row.target_sparsity, row.nm),
                sparsity=df["n_zero"] / df["n"],
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
