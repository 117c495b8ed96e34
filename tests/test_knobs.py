"""One table of knobs (run.knobs.KNOBS): the Makefile, the command line and the README's knob table agree
with it, and the README states each knob's default as its notebook holds it."""
import re
from pathlib import Path

from sparsescope.__main__ import build_parser
from sparsescope.run import KNOBS, STAGES, knob_flag, notebook_defaults
from sparsescope.run.knobs import GRID_OPTIONS, default_text

ROOT = Path(__file__).resolve().parents[1]
# make variables that are not papermill parameters: where things go, what is installed, the task graph
OTHER_VARIABLES = {"PROFILE", "MODELS", "RESULTS", "REPORT_DIR", "TORCH_SPEC", "JOBS", "DASK_SCHEDULER"}


def makefile_knob_line() -> str:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^KNOBS = (.*)$", text, re.M).group(1)


def readme_knob_rows() -> dict[str, str]:
    """make variable -> the README table's default cell for it (a row may hold several: `A`, `B` | `1`, `2`)."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Z_]+`(, `[A-Z_]+`)*", cells[0]):
            names = re.findall(r"`([A-Z_]+)`", cells[0])
            defaults = cells[1].split(", ") if len(names) > 1 else [cells[1]]
            rows.update(zip(names, (d.strip("`") for d in defaults)))
    return rows


def test_the_makefile_passes_every_knob_and_no_other():
    line = makefile_knob_line()
    passed = dict(re.findall(r'(--[a-z-]+) "\$\(([A-Z_]+)\)"', line))
    expected = {knob_flag(name): name.upper() for name in KNOBS}
    expected.update({"--jobs": "JOBS", "--scheduler": "DASK_SCHEDULER"})
    assert passed == expected
    declared = set(re.findall(r"^([A-Z_]+) \?=", (ROOT / "Makefile").read_text(), re.M))
    assert {name.upper() for name in KNOBS} <= declared


def test_the_command_line_has_a_flag_for_every_knob():
    report = build_parser()._subparsers._group_actions[0].choices["report"]
    flags = {s for action in report._actions for s in action.option_strings}
    assert {knob_flag(name) for name in KNOBS} | {f"--{o}" for o in GRID_OPTIONS} <= flags


def test_the_readme_table_lists_every_knob_with_its_notebook_default():
    rows = readme_knob_rows()
    assert set(rows) == {name.upper() for name in KNOBS} | (OTHER_VARIABLES & set(rows))
    for name in KNOBS:
        defaults = {repr(d[name]) for d in map(notebook_defaults, STAGES) if name in d}
        assert len(defaults) == 1, f"{name}: the notebooks disagree on its default: {defaults}"
        value = next(d[name] for d in map(notebook_defaults, STAGES) if name in d)
        assert rows[name.upper()] == default_text(name, value), name


def test_a_default_is_written_as_the_knob_reads_it():
    # independent of the code: what a user would type to get the notebook's default back
    assert default_text("sparsities", [0.5, 0.7, 0.9]) == "0.5 0.7 0.9"
    assert default_text("batch_sizes", [1, 8]) == "1 8"
    assert default_text("n_samples", None) == "auto" and default_text("nm", "2:4") == "2:4"
    for name, text in (("sparsities", "0.5 0.7 0.9"), ("batch_sizes", "1 8"), ("nm", "2:4"), ("seqlen", "128")):
        assert KNOBS[name][0](text) == {"sparsities": [0.5, 0.7, 0.9], "batch_sizes": [1, 8], "nm": "2:4",
                                        "seqlen": 128}[name]
