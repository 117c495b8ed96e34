"""The report's words, tables and figures, section by section, computed from saved results. Numbers and the
conditions behind every conclusion come from facts/; prose comes from the Markdown templates in templates/;
each section returns its parts in order, ("md", text) or ("html", figure or table).

Layout: sections/ holds one module per section (summary, models, structure, sparsification, benchmarks,
quality, frontier, challenges) on a shared base; Report joins them. The names notebooks and tests import
from here (Report, show, caveat, PUBLISHED, ...) stay importable from this module.
"""

from __future__ import annotations

from .html import pack
from .sections.base import CORPORA, TEXT_LOSSES, UNIFORM, Parts, after_colon, caveat, load_results, runs_at
from .sections.benchmarks import Benchmarks
from .sections.challenges import Challenges
from .sections.frontier import Frontier
from .sections.literature import (LITERATURE, PUBLISHED, PUBLISHED_SETTING, SEED_MODELS, SOURCES, SPARSEGPT,
                                  WANDA, WANDA_LLAMA)
from .sections.models import ModelSelection
from .sections.quality import Quality
from .sections.sparsification import METHODS, Sparsification
from .sections.structure import Structure
from .sections.summary import SECTIONS, Summary

__all__ = ["CORPORA", "LITERATURE", "METHODS", "PUBLISHED", "PUBLISHED_SETTING", "SECTIONS",
           "SEED_MODELS", "SOURCES", "SPARSEGPT", "TEXT_LOSSES", "UNIFORM", "WANDA", "WANDA_LLAMA", "Parts",
           "Report", "after_colon", "caveat", "load_results", "runs_at", "show"]


def show(parts: Parts) -> None:
    """Display a section's parts in a notebook, each lead-in kept with the figure or table it introduces."""
    from IPython.display import HTML, Markdown, display

    for kind, body in pack(parts):
        display(Markdown(body) if kind == "md" else HTML(body))


class Report(Summary, ModelSelection, Structure, Sparsification, Benchmarks, Quality, Frontier, Challenges):
    """The report of some models' results: each section method returns its parts in reading order."""
