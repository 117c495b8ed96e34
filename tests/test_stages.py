"""One home for each step: the notebooks call sparsescope.stages with their own parameters, by the names the
steps take, and the task graph calls the same steps with the same parameters (run.markers.call_stage)."""
import ast
import inspect
import json

import pytest

from sparsescope import stages
from sparsescope.errors import SparsescopeError
from sparsescope.run import NOTEBOOKS, STAGES, call_stage, notebook_defaults, plan, stage_parameters

# what a notebook names otherwise: its out_dir as a Path
ALIASES = {"out": "out_dir"}


def stage_calls(stage: str) -> list[ast.Call]:
    cells = json.loads((NOTEBOOKS / STAGES[stage].notebook).read_text())["cells"]
    tree = ast.parse("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "stages"]


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_notebook_passes_its_parameters_to_the_steps_by_their_names(stage):
    calls = stage_calls(stage)
    assert calls, f"{stage}: its notebook calls no step of sparsescope.stages"
    parameters = set(notebook_defaults(stage))
    for call in calls:
        function = getattr(stages, call.func.attr)
        names = list(inspect.signature(function).parameters)
        passed = [(names[i], a) for i, a in enumerate(call.args)] + [(k.arg, k.value) for k in call.keywords]
        for name, value in passed:
            assert isinstance(value, ast.Name), f"{call.func.attr}({name}=...) is not a notebook variable"
            assert ALIASES.get(value.id, value.id) == name, f"{call.func.attr}: {value.id} passed as {name}"
            assert name in parameters, f"{call.func.attr}: {name} is not a parameter of its notebook"


def test_call_stage_passes_the_notebooks_parameters_by_name_and_names_what_is_missing():
    seen = {}

    def step(model, out_dir, repeats, device="auto"):
        seen.update(model=model, out_dir=out_dir, repeats=repeats, device=device)
        return "done"

    assert call_stage(step, {"model": "m", "repeats": 3, "corpus": "sotu"}, out_dir="/x") == "done"
    assert seen == {"model": "m", "out_dir": "/x", "repeats": 3, "device": "auto"}
    with pytest.raises(SparsescopeError, match=r"step takes \['repeats'\], which its notebook's parameters lack"):
        call_stage(step, {"model": "m"}, out_dir="/x")


def test_the_grid_prunes_the_runs_notebook_02_plans(tmp_path):
    knobs = {"methods": ["global_magnitude", "wanda", "nm_magnitude"], "sparsities": [0.5, 0.7], "n_samples": 4}
    tasks = plan(["m"], tmp_path, knobs, {"m": 10**9}, open_models=False)
    pp = stage_parameters("pruning", "m", knobs, tmp_path / "m" / "pruning")
    expected = ["global_magnitude-0.5", "global_magnitude-0.7", "wanda-0.5", "wanda-0.7", "wanda-2of4",
                "nm_magnitude-2of4"]  # by hand: the knobs' targets, then each N:M run
    assert [t.job["label"] for t in tasks if t.kind == "prune"] == expected
    for task in (t for t in tasks if t.kind == "prune"):
        assert task.job["parameters"] == pp
        if task.job["spec"]["method"] == "wanda":
            assert task.job["spec"]["n_samples"] == 4
