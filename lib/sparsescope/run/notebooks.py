"""A stage's notebook executed with papermill, its output streamed to the terminal, a failure as one line."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import SparsescopeError
from .markers import KERNEL, ROOT, marker_key, run_once
from .progress import ProgressStream


def run_notebook(notebook: Path, out_dir: Path, parameters: dict, kernel: str = KERNEL,
                 atomic: bool = True, prefix: str = "", out=None) -> bool:
    """Execute `notebook` into `out_dir` unless a complete run with these parameters is there; True if it
    ran. `out`: where its progress lines go (default stdout)."""
    parameters = {k: v for k, v in parameters.items() if k != "out_dir"}

    def work(folder: Path) -> None:
        execute(notebook, folder / notebook.name, {**parameters, "out_dir": str(folder)}, kernel, prefix, out)
    return run_once(out_dir, marker_key(parameters), work, atomic, f"{prefix}{notebook.name}", out)


# The kernel: IPC sockets in a private folder (TCP made ipykernel warn "running over TCP without
# encryption" on every start); tqdm.auto resolved to the console bar (in a kernel it picks the ipywidgets
# bar, which papermill never prints); and no "KeyboardInterrupt caught in kernel" when jupyter_client
# interrupts the idle kernel before shutting it down, as it always does.
TEXT_TQDM = "import sys, tqdm.std; sys.modules['tqdm.autonotebook'] = tqdm.std"
QUIET_SHUTDOWN = ("from ipykernel.kernelapp import IPKernelApp; IPKernelApp.instance().log.addFilter("
                  "lambda r: 'KeyboardInterrupt caught' not in r.getMessage())")
KERNEL_ARGUMENTS = [f"--IPKernelApp.exec_lines={[TEXT_TQDM, QUIET_SHUTDOWN]!r}"]


def execute(notebook: Path, output: Path, parameters: dict, kernel: str, prefix: str = "", out=None) -> None:
    """papermill, its cells' output streamed to the terminal (prefixed, bars thinned) and a failure turned
    into one line (a SparsescopeError's own message where it is one)."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config
    _quiet_dead_kernel_log()
    sockets = Path(tempfile.mkdtemp(prefix="sparsescope-kernel-"))
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "k")}})
    stream = ProgressStream(prefix, notebook.name, out=out)
    try:
        with stream.heartbeat():
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                       progress_bar=False, cwd=str(ROOT), stdout_file=stream.stdout,
                                       stderr_file=stream.stderr, extra_arguments=KERNEL_ARGUMENTS,
                                       config=config)
    except papermill.PapermillExecutionError as err:
        if err.ename == "SparsescopeError":
            raise SparsescopeError(err.evalue) from None
        raise SparsescopeError(f"{notebook.name} failed ({parameters.get('model', '')}): {err.ename}: "
                               f"{err.evalue} (the executed notebook is {output})") from None
    except DeadKernelError:
        raise SparsescopeError(f"{notebook.name} stopped ({parameters.get('model', '')}): its kernel died "
                               "(killed, or out of memory); run again to resume") from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _quiet_dead_kernel_log() -> None:
    """nbclient logs "Kernel died while waiting for execute reply" through papermill's logger; the error
    line execute() raises says it already."""
    import logging
    log = logging.getLogger("papermill")
    if not any(getattr(f, "sparsescope", False) for f in log.filters):
        def drop(record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("Kernel died")
        drop.sparsescope = True
        log.addFilter(drop)

