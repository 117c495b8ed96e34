"""What a running stage prints, streamed to the terminal: lines prefixed by their model, tqdm bars
thinned to a line every few seconds, and a heartbeat when a stage is silent."""
from __future__ import annotations

import contextlib
import re
import sys
import threading
import time


def say(line: str, out=None) -> None:
    out = out or sys.stdout
    out.write(line + "\n")  # one write: a line never interleaves with another thread's
    out.flush()  # flushed: worker processes' stdout is a pipe or file, block-buffered


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds} s"


# tqdm bar: "desc: 40%|████      | 4/10 [00:02<00:03, 2.0it/s]"; without a total "desc: 12it [00:01, ...]"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BAR = re.compile(r"(?P<desc>.*?):\s+(?:\d+%\||[\d.]+\S*\s*\[\d)")
_BAR_END = re.compile(r"\[\d+:\d\d(?::\d\d)?[^\]]*\]\s*$")
_COUNT = re.compile(r"\|\s*([\d.]+\w?)/([\d.]+\w?)\s*\[")


class ProgressStream:
    """What a notebook prints, line by line to the terminal with a prefix. A tqdm bar (redrawn with
    carriage returns) shows at most one line per `interval` seconds plus its finished line; after `silence`
    seconds with nothing shown, a heartbeat says the stage still runs, with its latest bar."""

    def __init__(self, prefix: str = "", label: str = "", interval: float = 10.0, silence: float = 20.0,
                 clock=time.monotonic, out=None):
        self.prefix, self.label, self.interval, self.silence = prefix, label, interval, silence
        self.clock, self.out = clock, out
        self.started = self.last_shown = clock()
        self.bars: dict[str, dict] = {}
        self.latest = ""          # the running bar's newest line, for the heartbeat
        self.lock = threading.RLock()
        self.stdout, self.stderr = _Pipe(self), _Pipe(self)

    def feed(self, pipe: "_Pipe", text: str) -> None:
        with self.lock:
            if _BAR_END.search(pipe.pending) and not text.startswith(("\r", "\n")):
                text = "\r" + text  # a warning printed over a bar: the bar's line ends there
            parts = re.split(r"(\r|\n)", _ANSI.sub("", pipe.pending + text))
            pipe.pending = parts[-1]  # an unterminated line waits for its end (a bar: its next redraw)
            for segment in parts[0:-1:2]:
                self.line(segment.rstrip())
            if _BAR.match(pipe.pending) and _BAR_END.search(pipe.pending):
                self.latest = pipe.pending.strip()

    def line(self, text: str) -> None:
        if not text.strip():
            return
        bar = _BAR.match(text) if _BAR_END.search(text) else None
        if bar is None:
            self.show(text)
            return
        now = self.clock()
        state = self.bars.setdefault(bar.group("desc"), {"shown": now, "done": False})
        count = _COUNT.search(text)
        if count and count.group(1) == count.group(2):  # finished: shown once
            self.latest = ""
            if not state["done"]:
                self.show(text)
                state.update(done=True, shown=now)
            return
        if state["done"]:  # a new bar under a finished one's name
            state.update(done=False, shown=now)
        self.latest = text.strip()
        if now - state["shown"] >= self.interval:
            self.show(text)
            state["shown"] = now

    def show(self, text: str) -> None:
        with self.lock:
            say(f"{self.prefix}{text.strip()}", self.out)
            self.last_shown = self.clock()

    def beat(self) -> None:
        """Called every second or so: break a silence with what runs, for how long, and how far it is."""
        with self.lock:
            now = self.clock()
            if now - self.last_shown >= self.silence:
                bar = _BAR.match(self.latest)
                if bar and bar.group("desc") in self.bars:  # the bar just shown: its next line waits
                    self.bars[bar.group("desc")]["shown"] = now
                latest = f": {self.latest}" if self.latest else ""
                self.show(f"{self.label} still running after {duration(now - self.started)}{latest}")

    def close(self) -> None:
        with self.lock:
            for pipe in (self.stdout, self.stderr):
                if pipe.pending.strip() and not _BAR_END.search(pipe.pending):
                    self.show(pipe.pending)
                pipe.pending = ""

    @contextlib.contextmanager
    def heartbeat(self, period: float = 1.0):
        stop = threading.Event()

        def beat_until_stopped() -> None:
            while not stop.wait(period):
                self.beat()
        thread = threading.Thread(target=beat_until_stopped, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.close()


class _Pipe:
    """A file papermill writes one stream (stdout or stderr) of the kernel to."""

    encoding = "utf-8"  # what tqdm asks before drawing its bar in block characters

    def __init__(self, owner: ProgressStream):
        self.owner, self.pending = owner, ""

    def write(self, text: str) -> int:
        self.owner.feed(self, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:  # asked by libraries that colour their output (transformers' load report)
        return False

