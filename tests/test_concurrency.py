"""Tasks beside each other (a cluster runs several at once) never trip over each other's temporary files: clips
spoken by several processes at once, and a run's folder being written while another process starts one."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import numpy as np
import pytest

from sparsescope.artifacts import atomic_dir

SPEAK = """
import sys
from sparsescope.sources.speech import speak
clip = speak(sys.argv[1])
print(clip.size)
"""


def test_four_processes_speaking_the_same_text_at_once_all_get_the_clip(tmp_path):
    if subprocess.run(["which", "espeak-ng"], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is missing: `make setup` installs it")
        pytest.skip("espeak-ng is not installed")
    env = {**os.environ, "SPARSESCOPE_CACHE": str(tmp_path)}
    for trial in range(3):  # a fresh cache and a fresh text each time: every process must write the clip
        text = f"the budget for trial {trial} {uuid.uuid4().hex[:6]} was approved today"
        procs = [subprocess.Popen([sys.executable, "-c", SPEAK, text], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err[-300:] for _, err in outs]
        sizes = {int(out.split()[-1]) for out, _ in outs}
        assert len(sizes) == 1 and sizes.pop() > 16000 // 2  # one clip, at least half a second of speech
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert all(np.load(p).dtype == np.float32 for p in tmp_path.rglob("*.npy"))


HOLD = """
import sys, time
from pathlib import Path
from sparsescope.artifacts import atomic_dir
final, go = Path(sys.argv[1]), Path(sys.argv[2])
with atomic_dir(final) as tmp:
    (tmp / "part").write_text("written by the first process")
    print("inside", flush=True)
    while not go.exists():
        time.sleep(0.02)
"""


def test_a_folder_another_live_process_writes_is_left_alone_and_a_dead_ones_is_removed(tmp_path):
    final, go = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(final), str(go)], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "inside"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".run.tmp-{socket.gethostname()}-{dead}"  # left by a killed run
    stale.mkdir()
    other_host = tmp_path / ".run.tmp-some-other-host-1"   # a process elsewhere: cannot be judged, kept
    other_host.mkdir()
    with atomic_dir(tmp_path / "run") as mine:   # a second writer starts while the first still writes
        (mine / "part").write_text("written by the second process")
        live = tmp_path / f".run.tmp-{socket.gethostname()}-{first.pid}"
        assert live.exists() and (live / "part").exists(), "the live writer's folder was removed"
        assert not stale.exists() and other_host.exists()
    go.touch()
    assert first.wait(timeout=60) == 0  # the first process finishes its rename: its folder was never taken
    assert (final / "part").read_text() == "written by the first process"
