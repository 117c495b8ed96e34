"""Dress rehearsal of the seed profile without the hub: `make report PROFILE=seed` on real-size files laid out
exactly as the hub ships them (tests/hub_layouts.py: real configs, random weights, tokenizers of the same
formats), read from an offline Hugging Face cache with HF_HUB_OFFLINE=1.

    python bench/seed_rehearsal.py [--root DIR] [--results DIR] [--models ...] [--methods ...] [--sparsities 0.5]
                                   [--nm 2:4] [--nm-methods nm_magnitude] [--n-tokens 1024] [--batch-sizes 1] [--repeats 3]
                                   [--keep-checkpoints]
                                   [--csv bench/seed_rehearsal.csv]

It builds the cache once (~19 GB: gpt2-xl 6.4 GB safetensors, bert-large-uncased 1.3 GB, t5-v1_1-xl 11.4 GB
pickle; tensors generated one at a time), runs `make report PROFILE=seed` with the reduced knobs given, and
samples the whole process tree every half second: resident memory in all and its anonymous part (RSS minus
file-backed pages: what reading checkpoints through the page cache does not cost). Each task line that
`make report` prints ("[model] prune wanda-0.5: running" ... "done in"; likewise the notebooks,
"evaluate ..." and "runtime") bounds a task; per task and model the CSV gets wall time, peak total and anonymous memory, and the
disk its stage's results take, rewritten after every task. Each model's pruned checkpoint weights are deleted
once its benchmarks are complete (the report reads only the CSVs and figures), so the disk holds one model's
checkpoints at a time; `--keep-checkpoints` keeps them. The per-run rows of each
pruning.csv (seconds, peak memory, calibration budget) are copied to a second CSV beside the first.

One stage again, on the same offline cache (how T5-XL's runtime was measured again after its fix):

    export HF_HUB_OFFLINE=1 HF_HUB_CACHE=~/.cache/sparsescope/rehearsal/hub
    .venv/bin/python -m sparsescope prune t5-v1_1-xl --results /tmp/t5 --methods global_magnitude \
        --sparsities 0.5 --nm None
    .venv/bin/python -c "from sparsescope.evaluation.runtime import runtime_results; runtime_results(
        't5-v1_1-xl', '/tmp/t5/t5-v1_1-xl/pruning', '/tmp/t5/t5-v1_1-xl/benchmarks', batch_sizes=(1,), repeats=3)"
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # hub_layouts is a test fixture, kept with the tests
import hub_layouts  # noqa: E402

from sparsescope.artifacts import cache_dir, results_path  # noqa: E402

MODELS = ("bert-large", "gpt2-xl", "t5-v1_1-xl")      # the registry's seed profile
# the task lines `make report` prints: "[model] <task>: running" ... "[model] <task>: done in 1m02s"
TASK_LINE = re.compile(r"^\[(?P<model>[^\]]+)\] (?P<task>01_distribution\.ipynb|02_pruning\.ipynb|03_benchmarks\.ipynb|"
                       r"prune \S+|evaluate \S+|runtime): (?P<what>running|done|complete)")


def stage_of(task: str) -> str:
    """The results folder a task writes into: distribution, pruning or benchmarks."""
    if task.startswith(("01_", "02_", "03_")):
        return {"01": "distribution", "02": "pruning", "03": "benchmarks"}[task[:2]]
    return "pruning" if task.startswith("prune") else "benchmarks"


def build_cache(root: Path) -> None:
    """The three seed repos at real size, once; a repo counts as built when its refs/main exists."""
    for name in MODELS:
        layout = hub_layouts.LAYOUTS[name]
        if (hub_layouts.repo_folder(root, layout.repo_id) / "refs" / "main").exists():
            print(f"cache: {layout.repo_id} already built", flush=True)
            continue
        info = hub_layouts.write_repo(root, name)
        print(f"cache: {layout.repo_id} written in {info.seconds:.0f} s, peak RSS "
              f"{info.peak_rss_bytes / 2 ** 30:.2f} GB", flush=True)


def tree_memory(root_pid: int) -> tuple[int, int]:
    """(resident, anonymous) bytes of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total = anonymous = 0
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in status:
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anonymous += int(line.split()[1]) * 1024
    return total, anonymous


def disk_bytes(path: Path) -> int:
    """Bytes on disk under `path`, as du counts them: a hub cache's snapshot links and the hard links between a
    repo's old and new names (gpt2-xl, openai-community/gpt2-xl) point at one blob, counted once."""
    seen = {}
    for p in path.rglob("*") if path.exists() else []:
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def drop_checkpoint_weights(pruning_dir: Path) -> int:
    """Delete the weight files of every pruned checkpoint (keeps their CSVs, JSON and figures)."""
    freed = 0
    for path in list(pruning_dir.rglob("*.safetensors")):
        freed += path.stat().st_size
        path.unlink()
    return freed


class Sampler:
    """Peak memory of the process tree, per stage currently running."""

    def __init__(self, pid: int):
        self.pid, self.current = pid, None
        self.peaks: dict[tuple[str, str], list[int]] = {}
        self.overall = [0, 0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            total, anonymous = tree_memory(self.pid)
            self.overall = [max(self.overall[0], total), max(self.overall[1], anonymous)]
            if self.current is not None:
                peak = self.peaks.setdefault(self.current, [0, 0])
                peak[0], peak[1] = max(peak[0], total), max(peak[1], anonymous)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=cache_dir("rehearsal") / "hub")
    parser.add_argument("--results", type=Path, default=cache_dir("rehearsal") / "results")
    parser.add_argument("--report-dir", type=Path, default=cache_dir("rehearsal") / "report")
    parser.add_argument("--models", default=" ".join(MODELS), help="seed models, in the order to run them")
    parser.add_argument("--methods", default="global_magnitude nm_magnitude wanda sparsegpt")
    parser.add_argument("--sparsities", default="0.5")
    parser.add_argument("--nm", default="2:4")
    parser.add_argument("--nm-methods", default="nm_magnitude", help="methods that get the N:M run")
    parser.add_argument("--n-tokens", default="1024", help="quality budget per model (the default is 4096)")
    parser.add_argument("--batch-sizes", default="1", help="end-to-end runtime batch sizes (the default is 1 8)")
    parser.add_argument("--repeats", default="3", help="interleaved runtime repeats (the default is 5)")
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument("--csv", type=Path, default=REPO / "bench" / "seed_rehearsal.csv")
    args = parser.parse_args()

    started = time.time()
    build_cache(args.root)
    cache_seconds = time.time() - started
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(args.root),
           "HF_HOME": str(args.root.parent / "hf_home"), "PYTHONUNBUFFERED": "1"}
    command = ["make", "--no-print-directory", "report", "PROFILE=seed", f"RESULTS={args.results}",
               f"REPORT_DIR={args.report_dir}", f"MODELS={args.models}", f"METHODS={args.methods}", f"SPARSITIES={args.sparsities}",
               f"NM={args.nm}", f"NM_METHODS={args.nm_methods}", f"N_TOKENS={args.n_tokens}",
               f"BATCH_SIZES={args.batch_sizes}", f"REPEATS={args.repeats}"]
    print("running:", " ".join(command), flush=True)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    sampler = Sampler(process.pid).start()
    rows, began = [], {}
    for line in process.stdout:
        print(line, end="", flush=True)
        found = TASK_LINE.match(line.strip())
        if not found:
            continue
        model, task = found.group("model"), found.group("task")
        stage = stage_of(task)
        if found.group("what") == "running":
            began[(model, task)] = time.time()
            sampler.current = (model, task)
            continue
        seconds = time.time() - began.pop((model, task), time.time())
        sampler.current = None
        peak = sampler.peaks.get((model, task), [0, 0])
        folder = results_path(args.results, model, stage)
        rows.append({"model": model, "stage": stage, "task": task, "seconds": round(seconds, 1),
                     "peak_rss_gb": round(peak[0] / 2 ** 30, 2), "peak_anon_gb": round(peak[1] / 2 ** 30, 2),
                     "disk_gb": round(disk_bytes(folder) / 1e9, 2),
                     "status": "ran" if found.group("what") == "done" else "reused"})
        write_csv(args.csv, rows)  # after every task: a rehearsal stopped early keeps what it measured
        if task.startswith("03_") and not args.keep_checkpoints:
            freed = drop_checkpoint_weights(results_path(args.results, model, "pruning"))
            print(f"rehearsal: {model}: deleted {freed / 1e9:.1f} GB of pruned checkpoint weights", flush=True)
    code = process.wait()
    sampler.stop()
    total = time.time() - started
    rows.append({"model": "all", "stage": "make report (without the cache build)",
                 "seconds": round(total - cache_seconds, 1), "peak_rss_gb": round(sampler.overall[0] / 2 ** 30, 2),
                 "peak_anon_gb": round(sampler.overall[1] / 2 ** 30, 2),
                 "disk_gb": round(disk_bytes(args.results) / 1e9, 2), "status": f"exit {code}"})
    rows.append({"model": "all", "stage": "offline hub cache build", "seconds": round(cache_seconds, 1),
                 "peak_rss_gb": "", "peak_anon_gb": "", "disk_gb": round(disk_bytes(args.root) / 1e9, 2),
                 "status": "built" if cache_seconds > 60 else "reused"})
    write_csv(args.csv, rows)
    runs = []
    for model in MODELS:
        table = results_path(args.results, model, "pruning") / "pruning.csv"
        if table.exists():
            with open(table) as f:
                runs += [{"model": model, **row} for row in csv.DictReader(f)]
    write_csv(args.csv.with_name(args.csv.stem + "_runs.csv"), runs)
    print(f"rehearsal: exit {code} after {total / 3600:.2f} h; {args.csv}", flush=True)
    return code


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
