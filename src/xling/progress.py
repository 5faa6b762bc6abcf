"""Progress of long work, on a terminal and in a log.

On a terminal a live bar (rich) that disappears when the work ends; when stderr is not a terminal (``xling … 2>log``,
a Slurm job's log) plain lines instead: one per milestone the caller names (an epoch, a scored cell) and, within a
long stretch of steps, at most one every ``every`` seconds, so a log shows that work goes on without one line per
batch.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


class Progress:
    """``with Progress("training", total=120) as p: p.advance(); p.line("epoch 1: loss 0.41")``."""

    def __init__(self, what: str, total: int | None = None, *, enabled: bool = True, every: float = 10.0) -> None:
        self.what, self.total, self.enabled, self.every = what, total, enabled, every
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._start = self._last = time.perf_counter()

    def __enter__(self) -> Progress:
        self._start = self._last = time.perf_counter()
        if self.enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import Progress as Bar

                self._bar = Bar(console=console, transient=True)
                self._bar.start()
                self._task = self._bar.add_task(self.what, total=self.total)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def live(self) -> bool:
        """True when progress is a live bar on a terminal (else plain lines, or nothing)."""
        return self._bar is not None

    def advance(self, n: int = 1) -> None:
        """``n`` more steps done; in a log, a line when ``every`` seconds have passed since the last one."""
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif self.enabled and time.perf_counter() - self._last >= self.every:
            of = f"/{self.total}" if self.total else ""
            self._print(f"{self.what}: {self.done}{of}")

    def line(self, text: str) -> None:
        """A milestone (an epoch's losses, a finished cell): printed above the bar, or as a line in a log."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(f"{self.what}: {text}", markup=False, highlight=False)
        else:
            self._print(f"{self.what}: {text}")

    def _print(self, text: str) -> None:
        self._last = time.perf_counter()
        print(f"{text} [{self._last - self._start:.0f} s]", file=sys.stderr, flush=True)
