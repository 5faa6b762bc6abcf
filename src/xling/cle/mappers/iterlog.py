"""Progress of an iterative fit: a live line on a terminal, one plain line per iteration in a log.

Every iterative mapper reports each iteration through ``IterationLog.update(iteration, objective=..., ...)``.
Where it goes depends on stderr: on a terminal, a transient rich line that is rewritten in place; anywhere else
(a Slurm job, ``2> log``, a pipe) one plain, flushed line per iteration, so a long run is never silent in its log.
Nothing is shown unless ``verbose``. Output goes to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


class IterationLog:
    """Context manager reporting ``name: iteration i, key value, ...`` per iteration (see the module docstring)."""

    def __init__(self, name: str, verbose: bool) -> None:
        self.name = name
        self.verbose = verbose
        self._progress: Any = None
        self._task: Any = None
        self._start = time.perf_counter()

    def __enter__(self) -> IterationLog:
        self._start = time.perf_counter()
        if self.verbose:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

                self._progress = Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task(self.name, total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @property
    def live(self) -> bool:
        """True when progress is a live terminal line (else plain lines, or nothing)."""
        return self._progress is not None

    def update(self, iteration: int, **values: Any) -> None:
        """Report one finished iteration and its numbers (objective, criterion, step size, ...)."""
        self.note(
            f"iteration {iteration}" + "".join(f", {k.replace('_', ' ')} {_format(v)}" for k, v in values.items())
        )

    def note(self, text: str) -> None:
        """Report one event of the fit (an initialisation, a restart, a stop) in the same place as iterations."""
        if not self.verbose:
            return
        line = f"{self.name}: {text}"
        if self._progress is not None:
            self._progress.update(self._task, description=line)
        else:
            print(f"{line} [{time.perf_counter() - self._start:.1f} s]", file=sys.stderr, flush=True)
