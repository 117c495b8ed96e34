"""Are two runs of the suite the same? Compares two results folders table by table, and two reports word by
word — what a reader needs to trust a rerun, a refactoring or another machine.

    python bench/compare_results.py tables RESULTS_A RESULTS_B
    python bench/compare_results.py text REPORT_A.html REPORT_B.html

`tables`: every CSV under each model's distribution/, pruning/ and benchmarks/ (the rows/ caches aside),
row for row, after dropping the columns that are measured time or memory (they differ between any two runs)
and taking checkpoint paths relative to their results folder. Numbers compare exactly; a difference is
printed with the largest relative gap. `text`: the reports' words (tags, images and styles removed) line by
line. Exit status 1 when anything differs, so a script can rely on it.
"""

from __future__ import annotations

import argparse
import difflib
import html
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# measured time or memory, or decided from timings (the crossovers): they differ between any two runs
TIMED = {
    "pruning.csv": {"seconds", "peak_rss_bytes", "peak_anon_bytes"},
    "runtime.csv": {"dense_ms", "sparse_ms", "dense_iqr_ms", "sparse_iqr_ms", "speedup", "speedup_lo",
                    "speedup_hi"},
    "crossovers.csv": {"crossover_sparsity", "interpolated_crossover", "rule"},
}


def tables(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.glob("*/*/**/*.csv")) if "rows" not in p.parts}


def comparable(path: Path, root: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame.drop(columns=[c for c in TIMED.get(path.name, ()) if c in frame])
    if "checkpoint" in frame:  # absolute paths name the results folder itself
        frame["checkpoint"] = [str(Path(c).relative_to(root)) if c and Path(c).is_absolute() and
                               Path(c).is_relative_to(root) else c for c in frame["checkpoint"]]
    return frame


def table_differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} against {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{len(a)} rows against {len(b)}"]
    out = []
    for col in a.columns:
        x, y = a[col], b[col]
        if x.equals(y):
            continue
        xs, ys = pd.to_numeric(x, errors="coerce"), pd.to_numeric(y, errors="coerce")
        if xs.notna().all() and ys.notna().all():
            gap = np.abs(xs - ys) / np.maximum(np.abs(xs), 1e-300)
            out.append(f"{col}: {int((xs != ys).sum())} of {len(x)} values differ, largest relative gap "
                       f"{gap.max():.3g}")
        else:
            rows = [i for i, (u, v) in enumerate(zip(x, y)) if u != v]
            out.append(f"{col}: rows {rows[:5]} differ, e.g. {x.iloc[rows[0]]!r} against {y.iloc[rows[0]]!r}")
    return out


def compare_tables(a: Path, b: Path) -> int:
    ta, tb = tables(a), tables(b)
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print(f"{name}: only in {a if name in ta else b}")
            bad += 1
            continue
        found = table_differences(comparable(ta[name], a), comparable(tb[name], b))
        bad += bool(found)
        rows = len(pd.read_csv(ta[name]))
        print(f"{name}: {'DIFFERS' if found else 'same'} ({rows} rows)" + "".join(f"\n    {d}" for d in found))
    print(f"{len(set(ta) | set(tb))} tables, {bad} differ")
    return int(bad > 0)


def words(path: Path) -> list[str]:
    """The report's text, one line a paragraph, cell or heading: no tags, images, styles or scripts."""
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", path.read_text(), flags=re.S)
    text = re.sub(r"</(p|li|h[1-6]|td|th|figcaption|tr|div)>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text)).replace("¶", "").replace("\u200b", "")
    text = text.replace("\u2060", "")
    return [line for line in (" ".join(raw.split()) for raw in text.splitlines()) if line]


def compare_text(a: Path, b: Path) -> int:
    wa, wb = words(a), words(b)
    diff = list(difflib.unified_diff(wa, wb, str(a), str(b), lineterm="", n=1))
    print("\n".join(diff) if diff else f"same text: {len(wa)} lines, {sum(map(len, wa)):,} characters")
    return int(bool(diff))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("tables", "text"))
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    for p in (args.a, args.b):
        if not p.exists():
            sys.exit(f"{p} does not exist: give two results folders (tables) or two report HTML files (text)")
    return compare_tables(args.a, args.b) if args.what == "tables" else compare_text(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
