"""One-shot pruning of a checkpoint into a new checkpoint, by any of five methods.

- global_magnitude: one threshold over all prunable weights (the seed's semantics), streamed exactly:
  three reads of the checkpoint, never the model in memory;
- layer_magnitude: the same fraction zeroed in every prunable matrix, streamed;
- nm_magnitude: N:M along the input dimension (default 2:4), streamed;
- wanda, sparsegpt: calibration-based, block by block on the loaded model (sparsegpt also N:M);
- ffn_magnitude, ffn_activation, heads: structured (structured.py): whole FFN neurons or attention heads
  removed, written as a smaller dense model whose config says so; the sparsity is the share of prunable
  parameters removed.

Every run writes one folder (compressed and/or dense checkpoint, per-tensor sparsity, run info) under a
temporary name renamed when complete; a finished run is reused, a folder of a different run refused.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..artifacts import (PeakAnonymous, atomic_dir, atomic_write_text, manifest, peak_rss_bytes,
                         reset_peak_rss, write_json)
from ..errors import SparsescopeError
from ..sources.anatomy import input_dim, is_linear, model_anatomy
from ..sources.layouts import checkpoint_layout, stored_tagger
from ..sources.devices import resolve_device
from ..sources.registry import describe, empty_model, load_model
from ..sources.weights import iter_tensors, list_tensors, tensor_aliases, weight_files
from ..storage import FORMAT, VERSION, CheckpointWriter, checkpoint_bytes, copy_model_files
from .calibration import DEFAULT_SEQLEN, calibration_budget, calibration_summary, prune_blockwise
from .magnitude import (Threshold, apply_threshold, check_sparsity, global_threshold, n_to_prune,
                        nm_magnitude, parse_nm, prune_smallest, torch_prune_global)
from .sparsegpt import SparseGPT
from .structured import STRUCTURED, StructuredPruner, streamed_calibration, structured_units
from .wanda import Wanda

METHODS = ("global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt", *STRUCTURED)
# the default grid (methods=None): every unstructured method and one structured one; a default run that
# cannot apply to a model is skipped with one line (applicable_runs), a method asked for by name refuses
DEFAULT_METHODS = ("global_magnitude", "layer_magnitude", "nm_magnitude", "wanda", "sparsegpt",
                   "ffn_activation")
SAVE_FORMATS = ("compressed", "dense", "both")
CALIBRATED = ("wanda", "sparsegpt", "ffn_activation", "heads")
NM_METHODS = ("nm_magnitude", "wanda", "sparsegpt")
STRUCTURED_SPARSITIES = (0.3, 0.5)   # shares of the prunable parameters removed by the FFN methods
HEAD_SPARSITIES = (0.05, 0.1)        # ... and by heads (attention holds a quarter to a third of them)
EXTRA_COMPONENTS = ("embedding", "head")  # pruned only with include_embeddings


@dataclass(frozen=True)
class PruneSpec:
    method: str
    sparsity: float | None = None          # unstructured target (structured: share removed); None with nm
    nm: str | None = None                  # "N:M" for nm_magnitude and N:M wanda/sparsegpt
    include_embeddings: bool = False
    n_samples: int | None = None           # None: enough windows to cover the widest layer's inputs
    seqlen: int = DEFAULT_SEQLEN
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise SparsescopeError(f"unknown pruning method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.method == "nm_magnitude" and not self.nm:
            object.__setattr__(self, "nm", "2:4")
        if self.method in STRUCTURED and (self.nm or self.include_embeddings):
            raise SparsescopeError(f"{self.method} removes whole neurons or heads inside blocks: drop nm and "
                                   "include_embeddings")
        if self.nm:
            if self.method in ("global_magnitude", "layer_magnitude"):
                raise SparsescopeError(f"{self.method} is unstructured: drop nm, or use nm_magnitude for N:M")
            n, m = parse_nm(self.nm)
            object.__setattr__(self, "sparsity", 1 - n / m)
        else:
            check_sparsity(self.sparsity)
        if self.method in CALIBRATED and self.include_embeddings:
            raise SparsescopeError("include_embeddings applies to the magnitude methods; the calibrated "
                                   "methods prune the linear layers inside blocks only")
        too_few = self.n_samples is not None and self.n_samples < 1
        if self.method in CALIBRATED and (too_few or self.seqlen < 8):
            raise SparsescopeError(f"calibration needs at least 1 sample of 8 tokens, got {self.n_samples} x "
                                   f"{self.seqlen}")

    @property
    def label(self) -> str:
        """Folder name of this run."""
        if self.nm:
            return f"{self.method}-{self.nm.replace(':', 'of')}"
        return f"{self.method}-{self.sparsity:g}"


@dataclass
class PrunableSet:
    """Names of the tensors a run prunes, with their input dimension and tags."""
    names: dict[str, int] = field(default_factory=dict)   # name -> input dimension
    tags: dict = field(default_factory=dict)
    n_weights: int = 0                                    # elements in the pruned tensors
    widest: int = 0                                       # most input columns of any pruned matrix


def input_dims(folder: Path) -> dict[str, int]:
    """Which dimension of each stored linear weight indexes the inputs (0 for GPT-2's Conv1D), from the
    model's module types (built on the meta device) mapped onto the stored names."""
    model = empty_model(folder)
    dims = {f"{n}.weight": input_dim(m) for n, m in model.named_modules() if is_linear(m)}
    return {stored: dims[name] for stored, name in checkpoint_layout(folder).to_model.items() if name in dims}


def prunable_set(folder: Path, family: str, include_embeddings: bool) -> PrunableSet:
    """Prunable tensors of a checkpoint (the model's block matrices), with their input dimension."""
    in_dims = input_dims(folder)
    tag = stored_tagger(folder, family)
    out = PrunableSet()
    for name, dtype, shape in list_tensors(folder):
        t = tag(name, shape, floating=dtype.is_floating_point)
        out.tags[name] = t
        if t.prunable or (include_embeddings and len(shape) == 2 and t.component in EXTRA_COMPONENTS):
            out.names[name] = in_dims.get(name, 1)
            out.n_weights += math.prod(shape)
            out.widest = max(out.widest, shape[out.names[name]])
    if not out.names:
        raise SparsescopeError(f"{folder} has no prunable matrices (2-D linear weights inside blocks)")
    return out


def seed_global_magnitude(model: str, sparsity: float):
    """The seed's reference path on a loaded model: torch.nn.utils.prune.global_unstructured over every
    prunable linear weight, then prune.remove. Needs ~13x the fp32 model size in RAM: small models only."""
    check_sparsity(sparsity)
    loaded = load_model(model)
    matrices = model_anatomy(describe(model)["folder"]).matrices
    params = [(m, "weight") for n, m in loaded.named_modules() if f"{n}.weight" in matrices]
    torch_prune_global(loaded, params, sparsity)
    return loaded


@dataclass
class RunContext:
    """What a pruning method needs to know about the run it serves."""
    model: str
    folder: Path
    spec: PruneSpec
    targets: PrunableSet
    progress: bool
    work_dir: Path                 # inside the run's temporary folder: gone when the run is complete
    device: str = "auto"
    budget: dict = field(default_factory=dict)

    def stream(self, desc: str):
        """The prunable tensors, in checkpoint order, read once more."""
        return (w for name, w in tqdm(iter_tensors(self.folder), desc=desc, total=len(self.targets.tags),
                                      disable=not self.progress) if name in self.targets.names)


class GlobalMagnitude:
    """One exact threshold over every prunable weight; ties at it are zeroed in checkpoint order."""

    def __init__(self, run: RunContext):
        k = n_to_prune(run.spec.sparsity, run.targets.n_weights)
        found = global_threshold(run.stream("threshold: pass 1/2"), run.stream("threshold: pass 2/2"), k)
        self.bits, self.ties_left = found.bits, found.ties

    def __call__(self, name: str, w: torch.Tensor) -> torch.Tensor:
        out, used, _ = apply_threshold(w, Threshold(self.bits, self.ties_left))
        self.ties_left -= used
        return out


def layer_magnitude(run: RunContext):
    return lambda name, w: prune_smallest(w, n_to_prune(run.spec.sparsity, w.numel()))


def nm_magnitude_method(run: RunContext):
    n, m = parse_nm(run.spec.nm)
    return lambda name, w: nm_magnitude(w, n, m, run.targets.names[name])


def calibrated(run: RunContext):
    """Wanda or SparseGPT, block by block, with one block of the model in memory at a time (the rest on the
    meta device); the pruned tensors by stored name, read back from the run's spill files."""
    spec, model = run.spec, empty_model(run.folder)
    _, streamer, inputs = streamed_calibration(model, run.folder, run.work_dir, run.device,
                                               run.budget["n_samples"], spec.seqlen, spec.seed)
    n, m = parse_nm(spec.nm) if spec.nm else (0, 0)
    pruner_cls = {"wanda": Wanda, "sparsegpt": SparseGPT}[spec.method]
    seen = prune_blockwise(model, inputs, pruner_cls, lambda p: p.prune(spec.sparsity, n, m), run.progress,
                           streamer)
    missed = [name for name in run.targets.names if name not in streamer.spilled]
    if missed:
        raise SparsescopeError(f"{run.model}: calibration never reached the prunable matrices {missed[:2]}: "
                               "they are not inside a block of the model's own class")

    def prune(name, w):
        return streamer.stored(name).to(w.dtype)
    prune.calibration = calibration_summary(seen, inputs)  # what the layers really saw, for pruning.csv
    return prune


# method -> a function of the run returning prune(name, tensor) -> pruned tensor, called in checkpoint order
# (structured pruners also say which other tensors they change, and rewrite the config: see StructuredPruner)
PRUNERS = {"global_magnitude": GlobalMagnitude, "layer_magnitude": layer_magnitude,
           "nm_magnitude": nm_magnitude_method, "wanda": calibrated, "sparsegpt": calibrated,
           **{method: StructuredPruner for method in STRUCTURED}}


def run_kind(spec: PruneSpec) -> str:
    """pruning.csv's `kind`: unstructured, nm or structured."""
    return "structured" if spec.method in STRUCTURED else "nm" if spec.nm else "unstructured"


def finished_run(final: Path, run_id: dict) -> dict | None:
    """The row of the run finished in `final` (None: none is), refusing a different run found there."""
    info_path = final / "prune_info.json"
    if not info_path.exists():
        return None
    done = json.loads(info_path.read_text())
    if done["run"] != run_id:
        raise SparsescopeError(f"{final} already holds a different run ({done['run']['model']}, "
                               f"{done['run']['spec']['method']}): pass another out_dir or delete that "
                               "folder")
    return done["row"]


def prune_model(model: str, out_dir: str | os.PathLike, spec: PruneSpec, save_format: str = "compressed",
                progress: bool = True, device: str = "auto") -> dict:
    """Prune `model` by `spec` into out_dir/<spec.label>/; return the run's row for pruning.csv."""
    if save_format not in SAVE_FORMATS:
        raise SparsescopeError(f"unknown save_format {save_format!r}: use one of {', '.join(SAVE_FORMATS)}")
    final = Path(out_dir) / spec.label
    run_id = {"model": model, "spec": asdict(spec), "save_format": save_format}
    done = finished_run(final, run_id)
    if done is not None:
        return done
    reset_peak_rss()
    started = time.time()
    info = describe(model)
    folder = Path(info["folder"])
    calibrated_method = spec.method in CALIBRATED
    targets = prunable_set(folder, info["family"], spec.include_embeddings)
    budget = calibration_budget(spec.n_samples, spec.seqlen, targets.widest) if calibrated_method else {}
    if budget.get("note") and progress:
        print(f"{model}: {budget['note']}", flush=True)
    formats = ["compressed", "dense"] if save_format == "both" else [save_format]
    structured = spec.method in STRUCTURED
    if structured:  # a smaller dense model: nothing to compress, and any tool opens it
        formats = ["dense"]
    per_tensor = []
    with atomic_dir(final) as tmp, PeakAnonymous() as anonymous:
        run = RunContext(model, folder, spec, targets, progress, tmp / ".work", device, budget)
        prune = PRUNERS[spec.method](run)
        writers = {f: CheckpointWriter(tmp / f) for f in formats}
        nm_pattern = parse_nm(spec.nm) if spec.nm else None  # N:M runs get the "nm" index code
        touched = getattr(prune, "touched", set())  # structured runs also cut biases
        fed = {**budget, **getattr(prune, "calibration", {})}  # as fed, where calibration ran
        if fed.get("note") and fed.get("note") != budget.get("note") and progress:
            print(f"{model}: {fed['note']}", flush=True)
        stream = tqdm(iter_tensors(folder), desc="writing", total=len(targets.tags), disable=not progress)
        for name, w in stream:
            if name in targets.names or name in touched:
                n_before = w.numel()
                w = prune(name, w)
                if name in targets.names:
                    t = targets.tags[name]
                    # structured: the weights removed with their rows / columns count as pruned
                    n_zero = n_before - w.numel() if structured else int((w == 0).sum())
                    per_tensor.append({"name": name, "stack": t.stack, "block": t.block,
                                       "component": t.component, "role": t.role, "n": n_before,
                                       "n_zero": n_zero})
            for fmt, writer in writers.items():
                if name in targets.names and fmt == "compressed":
                    writer.add_sparse(name, w, (*nm_pattern, targets.names[name]) if nm_pattern else None)
                else:
                    writer.add(name, w)
        finish, structure = getattr(prune, "finish", None), prune.describe() if structured else ""
        del prune  # its spill files are read until here
        shutil.rmtree(run.work_dir, ignore_errors=True)
        aliases = tensor_aliases(folder)
        for fmt, writer in writers.items():
            writer.close()
            copy_model_files(folder, tmp / fmt, {"format": FORMAT, "version": VERSION, "source": model,
                                                 "aliases": aliases, **asdict(spec)}
                             if fmt == "compressed" else None)
        if finish is not None:
            finish(tmp / "dense")  # the smaller widths into the copied config.json
        pd.DataFrame(per_tensor).to_csv(tmp / "sparsity_by_tensor.csv", index=False)
        n_zeroed = sum(r["n_zero"] for r in per_tensor)
        row = {"method": spec.method, "target_sparsity": spec.sparsity, "nm": spec.nm or "",
               "kind": run_kind(spec), "structure": structure,
               "achieved_sparsity": n_zeroed / targets.n_weights, "n_prunable": targets.n_weights,
               "n_zeroed": n_zeroed, "seconds": time.time() - started, "peak_rss_bytes": peak_rss_bytes(),
               "peak_anon_bytes": max(anonymous.peak, 0),
               "n_samples": fed.get("n_samples", ""), "seqlen": spec.seqlen if calibrated_method else "",
               "calibration_tokens": fed.get("tokens", ""), "calibration_rows": fed.get("rows", ""),
               "calibration_note": fed.get("note", ""),
               "device": str(resolve_device(device)) if calibrated_method else "cpu",
               "dense_bytes": checkpoint_bytes(folder),
               "saved_bytes": checkpoint_bytes(tmp / formats[0]),
               "dense_saved_bytes": checkpoint_bytes(tmp / "dense") if "dense" in formats else "",
               "checkpoint": str(final / formats[0])}
        write_json({"run": run_id, "row": row}, tmp / "prune_info.json")
    return row


def plan_runs(methods: list[str] | None, sparsities: list[float], nm: str | None = "2:4",
              nm_methods: list[str] | tuple[str, ...] = NM_METHODS, include_embeddings: bool = False,
              structured_sparsities=STRUCTURED_SPARSITIES, head_sparsities=HEAD_SPARSITIES,
              **calibration) -> list[PruneSpec]:
    """Unstructured runs at every sparsity for global/layer/wanda/sparsegpt; N:M runs for nm_magnitude and,
    when `nm` is set, for wanda and sparsegpt too; ffn_magnitude / ffn_activation at every share of
    `structured_sparsities`, heads at every share of `head_sparsities`. `nm_methods` narrows which methods
    get the N:M run (e.g. only nm_magnitude). Calibration settings go to the
    calibrated methods, the embeddings option to the unstructured magnitude methods. methods None: the
    default grid (DEFAULT_METHODS)."""
    methods = DEFAULT_METHODS if methods is None else methods
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SparsescopeError(f"unknown pruning method(s) {unknown}: use {', '.join(METHODS)}")
    specs = []
    for method in methods:
        options = calibration if method in CALIBRATED else {} if method in STRUCTURED else {
            "include_embeddings": include_embeddings}
        targets = head_sparsities if method == "heads" else structured_sparsities if method in STRUCTURED \
            else sparsities if method != "nm_magnitude" else []
        specs += [PruneSpec(method, float(s), **options) for s in targets]
        if nm and method in NM_METHODS and method in nm_methods:
            specs.append(PruneSpec(method, nm=nm, **options))
    return specs


def applicable_runs(model: str, specs: list[PruneSpec],
                    skip: bool = False) -> tuple[list[PruneSpec], list[dict]]:
    """(the runs of `specs` that can apply to `model`, the skipped ones with why). A structured run the model
    cannot take (its config cannot describe the smaller model, or the share is more than its units hold)
    refuses in one line before anything runs; with `skip` (the default grid) it is left out instead."""
    structured = [s for s in specs if s.method in STRUCTURED]
    if not structured:
        return list(specs), []
    info = describe(model)
    folder = Path(info["folder"])
    n_weights = prunable_set(folder, info["family"], False).n_weights
    anatomy = model_anatomy(folder)
    kept, skipped = [], []
    for spec in specs:
        if spec.method in STRUCTURED:
            try:
                structured_units(anatomy, spec, n_weights)
            except SparsescopeError as err:
                if not skip:
                    said = str(err)
                    said = said if said.startswith(spec.label) else f"{spec.label} cannot apply: {said}"
                    raise SparsescopeError(f"{model}: {said}") from None
                skipped.append({"run": spec.label, "method": spec.method, "target_sparsity": spec.sparsity,
                                "reason": str(err)})
                continue
        kept.append(spec)
    return kept, skipped


def prune_runs(model: str, out_dir: str | os.PathLike, specs: list[PruneSpec],
               save_format: str = "compressed", progress: bool = True, device: str = "auto",
               skip_inapplicable: bool = False):
    """Every run of `specs` (finished ones reused); writes and returns out_dir/pruning.csv. Runs that cannot
    apply to the model refuse before any runs (skip_inapplicable: they are skipped, each with one printed
    line, and listed in out_dir/skipped.csv)."""
    specs, skipped = applicable_runs(model, specs, skip_inapplicable)
    for row in skipped:
        print(f"{model}: {row['run']} skipped (default grid): {row['reason']}", flush=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    owner = out_dir / "model.txt"
    if owner.exists() and owner.read_text().strip() != model:
        raise SparsescopeError(f"{out_dir} holds pruning runs of {owner.read_text().strip()!r}, not "
                               f"{model!r}: pass another out_dir or delete it")
    atomic_write_text(owner, model + "\n")
    started = time.time()
    rows = []
    for i, spec in enumerate(specs, 1):
        if progress:
            print(f"{model}: run {i}/{len(specs)} {spec.label} ({time.time() - started:.0f} s so far)",
                  flush=True)
        rows.append(prune_model(model, out_dir, spec, save_format, progress, device))
    table = pd.DataFrame(rows)
    skipped_table = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    atomic_write_text(out_dir / "skipped.csv", skipped_table.to_csv(index=False))
    atomic_write_text(out_dir / "pruning.csv", table.to_csv(index=False))
    info = describe(model)
    write_json(manifest(info, weight_files(Path(info["folder"])),
                        {"model": model, "runs": [asdict(s) for s in specs], "save_format": save_format},
                        time.time() - started), out_dir / "manifest.json")
    return table


SKIPPED_COLUMNS = ("run", "method", "target_sparsity", "reason")


def read_skipped(pruning_dir) -> pd.DataFrame:
    """skipped.csv of a notebook-02 out_dir: default-grid runs that could not apply, with why (empty for
    older folders)."""
    path = Path(pruning_dir) / "skipped.csv"
    if not path.exists():
        return pd.DataFrame(columns=SKIPPED_COLUMNS)
    return pd.read_csv(path, keep_default_na=False)


def read_pruning_table(pruning_dir) -> pd.DataFrame:
    """pruning.csv of a notebook-02 out_dir (N:M blank for unstructured runs)."""
    path = Path(pruning_dir) / "pruning.csv"
    if not path.exists():
        raise SparsescopeError(f"{pruning_dir} holds no pruning.csv: pass the out_dir of notebook 02 as "
                               "pruning_dir")
    return pd.read_csv(path, keep_default_na=False)


def read_runs(pruning_dir, labels: list[str]) -> pd.DataFrame:
    """Finished runs of a pruning folder by label, as pruning.csv would hold them (through CSV, so their
    values read back alike), before notebook 02 has written pruning.csv: what one task of the grid scores."""
    rows = []
    for label in labels:
        info = Path(pruning_dir) / label / "prune_info.json"
        if not info.exists():
            raise SparsescopeError(f"{pruning_dir} holds no finished run {label!r}: prune it first "
                                   "(notebook 02, or `python -m sparsescope prune`)")
        rows.append(json.loads(info.read_text())["row"])
    columns = None if rows else ["method", "target_sparsity", "nm", "checkpoint"]
    text = pd.DataFrame(rows, columns=columns).to_csv(index=False)
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def pick_run(table: pd.DataFrame, method: str | None = None, target: float | None = 0.5):
    """The unstructured run (of `method`, if given) whose target is nearest `target` — the highest target
    when `target` is None — or None when there is no such run."""
    runs = table[table["nm"].fillna("").astype(str) == ""]
    if "kind" in runs:  # structured runs are smaller models, not sparse ones
        runs = runs[runs["kind"] != "structured"]
    if method is not None:
        runs = runs[runs["method"] == method]
    if not len(runs):
        return None
    if target is None:
        return runs.loc[runs["target_sparsity"].idxmax()]
    return runs.iloc[(runs["target_sparsity"] - target).abs().argsort(kind="stable").iloc[0]]


def run_label(method: str, target: float, nm: str) -> str:
    """How a run is named in tables and figures: 'wanda 50%', 'sparsegpt 2:4', 'dense'."""
    return "dense" if method == "dense" else f"{method} {nm}" if nm else f"{method} {target:.0%}"


def per_matrix_sparsity(table):
    """Per-matrix sparsity of every run in a pruning.csv table, with a readable run label."""
    frames = []
    for row in table.itertuples():
        df = pd.read_csv(Path(row.checkpoint).parent / "sparsity_by_tensor.csv")
        nm = row.nm if isinstance(row.nm, str) else ""
        frames.append(df.assign(method=row.method, target_sparsity=row.target_sparsity, nm=nm,
                                run=run_label(row.method, row.target_sparsity, nm),
                                sparsity=100.0 * df["n_zero"] / df["n"]))
    return pd.concat(frames, ignore_index=True)
