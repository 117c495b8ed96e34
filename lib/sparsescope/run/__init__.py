"""Running the pipeline: the stages as notebooks with their parameters and completion markers (markers),
the knobs (knobs), papermill execution (notebooks), progress on the terminal (progress), the serial entry
points and the report build (pipeline), and the Dask task graph (grid) whose tasks run on workers (tasks)
and call the steps of sparsescope.stages that the notebooks call."""
from .grid import GridRun, Task, plan, run_grid
from .knobs import KNOBS, knob_flag, parse_knobs
from .markers import (KERNEL, MARKER, NOTEBOOKS, STAGES, call_stage, marker_key, notebook_defaults,
                      read_marker, stage_parameters, stage_status)
from .notebooks import execute, run_notebook
from .pipeline import REPORT_DIR, REPORT_TEMPLATE, build_report, run_direct, run_model, run_models
from .progress import ProgressStream, say

__all__ = ["GridRun", "Task", "plan", "run_grid", "KNOBS", "knob_flag", "parse_knobs", "KERNEL", "MARKER",
           "NOTEBOOKS", "STAGES", "call_stage", "marker_key", "notebook_defaults", "read_marker",
           "stage_parameters", "stage_status", "execute", "run_notebook", "REPORT_DIR", "REPORT_TEMPLATE",
           "build_report", "run_direct", "run_model", "run_models", "ProgressStream", "say"]
