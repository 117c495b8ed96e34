"""Where results and caches live, and how they are written: folders that appear only when complete,
manifests that say what made a result, and small caches keyed by what produced them."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import socket
import time
from importlib import metadata
from pathlib import Path

from .errors import SparsescopeError

CACHE_ENV = "SPARSESCOPE_CACHE"
LIBRARIES = ("sparsescope", "torch", "transformers", "safetensors", "numpy", "pandas", "papermill", "gguf")


# ------------------------------------------------------------------------------------- places
def cache_dir(*parts: str) -> Path:
    """$SPARSESCOPE_CACHE (default ~/.cache/sparsescope), or a folder inside it; created on first use."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sparsescope").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def result_slug(model: str) -> str:
    """Folder name for a model's results: registry names stay, paths and hub ids lose their slashes."""
    return model.strip("/").replace("/", "--").replace(" ", "_")


def results_path(results_dir: str | os.PathLike, model: str, stage: str | None = None) -> Path:
    """RESULTS/<model>/[<stage>]: the one place a model's results are found."""
    path = Path(results_dir) / result_slug(model)
    return path / stage if stage else path


# ----------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike):
    """Yield a temporary sibling folder; rename it to `final` only if the block finishes.

    A killed or failed run leaves at most a `.tmp-<host>-<pid>` folder, which a later run on that host removes
    once its process is gone; a folder another live process is writing (a task beside this one) is left be."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        if _writer_gone(stale.name.rpartition(".tmp-")[2]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.mkdir()
    try:
        with disk_full_is_one_line(final):
            yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _writer_gone(owner: str) -> bool:
    """Whether the process that named a temporary folder `<host>-<pid>` (or `<pid>`, older runs) has ended;
    a folder of another host cannot be judged from here and is kept."""
    host, _, pid = owner.rpartition("-")
    if host and host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):  # not a pid: not ours; a pid of another user: alive
        return False
    try:  # a killed task not yet reaped is a zombie: gone all the same
        return Path(f"/proc/{int(pid)}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def disk_full_is_one_line(target: Path):
    """A full disk (or quota) while writing `target` becomes one line saying what to do."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(target.parent if target.parent.exists() else Path.cwd()).free
        raise SparsescopeError(f"the disk filled up while writing {target} ({free / 1e9:.1f} GB free now): "
                               "free some space or point RESULTS / SPARSESCOPE_CACHE elsewhere, then rerun; "
                               "nothing half-written was kept") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with disk_full_is_one_line(path):
            tmp.write_text(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def write_json(obj, path: str | os.PathLike) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def cached_json(path: str | os.PathLike, key, compute):
    """compute()'s JSON-able result, reused from `path` while the stored key equals `key`."""
    path = Path(path)
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == json.loads(json.dumps(key, default=_json_default)):
            return stored["value"]
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json({"key": key, "value": value}, path)
    return value


# ---------------------------------------------------------------------------------- manifests
def sha256(path: str | os.PathLike, block: int = 1 << 24) -> str:
    """SHA-256 of a file, remembered in the cache by path, size and modification time: a seed checkpoint
    (11 GB) is hashed once, not at every stage."""
    path = Path(path).resolve()
    stat = path.stat()
    key = {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    name = hashlib.sha256(str(path).encode()).hexdigest()[:24]

    def digest() -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(block):
                h.update(chunk)
        return h.hexdigest()
    return cached_json(cache_dir("hashes") / f"{name}.json", key, digest)


def content_hashes(files: list[Path], root: str | os.PathLike) -> dict[str, str]:
    """{path under root: SHA-256}: what a cached result measured, by content. sha256 remembers each file by
    path, size and mtime, so a file is hashed again only when it changed."""
    return {str(Path(p).relative_to(root)): sha256(p) for p in files}


def folder_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """content_hashes of every file under a folder (a pruned checkpoint)."""
    return content_hashes(sorted(p for p in Path(folder).rglob("*") if p.is_file()), folder)


def peak_rss_bytes() -> int:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a
    child started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def anonymous_rss_bytes() -> int:
    """This process's resident memory that is not file-backed (RssAnon): what reading checkpoints through
    the page cache does not count."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakAnonymous:
    """Peak anonymous memory while the block runs, sampled every `interval` seconds by a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak = interval, 0
        self._stop = None

    def __enter__(self):
        import threading
        self._stop = threading.Event()
        self.peak = anonymous_rss_bytes() if Path("/proc/self/status").exists() else 0

        def sample():
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, anonymous_rss_bytes())
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if Path("/proc/self/status").exists():
            self.peak = max(self.peak, anonymous_rss_bytes())
        return False


def reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM to the current RSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def manifest(source: dict, files: list[Path], parameters: dict, seconds: float) -> dict:
    """What a result came from: the model source, hashes of the files read, versions, parameters."""
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source,
        "files": {str(p): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files},
        "parameters": parameters,
        "seconds": seconds,
        "versions": library_versions(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
    }
