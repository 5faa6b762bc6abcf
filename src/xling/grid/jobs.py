"""Jobs: units that run together in one worker, and what happened to each of them.

A ``Job`` is what executors move to workers (a local process, a Ray task, a Slurm array task): a module-level
``work`` function (it travels by reference), its context (the grid spec) and the units. ``run_job`` runs in the
worker; ``crashed`` speaks for a worker that died before it could report.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from xling.grid.store import Store

#: ``work(context, store, units)`` runs ``units`` and publishes each one with ``store.writing(unit.key)``.
Work = Callable[[Any, Store, list], None]


@dataclass(frozen=True)
class Workload:
    """How units of one kind run.

    ``work`` is a module-level function (it travels to Ray and Slurm workers by reference); ``context`` is what it
    needs besides the units (the grid spec). ``chunk(unit)`` is how many units of the unit's group one job takes;
    ``gpus(unit)`` and ``cpus`` are a job's requests. Where ``isolated(unit)`` holds, each unit of a job runs (and
    fails) on its own; otherwise the job's units run in one call and fail together (one scoring pass over several
    adapters). ``scope``, a module-level function returning a context manager, is entered once around a whole job
    in its worker (to keep a base model loaded for all the job's units).
    """

    work: Work
    context: Any
    chunk: Callable[[Any], int] = lambda unit: 1
    gpus: Callable[[Any], float] = lambda unit: 0.0
    cpus: float = 1.0
    isolated: Callable[[Any], bool] = lambda unit: False
    scope: Callable[[], AbstractContextManager] | None = None


@dataclass(frozen=True)
class Job:
    """Units that run together in one worker."""

    work: Work
    context: Any
    store_root: str
    units: tuple
    cpus: float = 1.0
    gpus: float = 0.0
    isolated: bool = False
    scope: Callable[[], AbstractContextManager] | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one unit."""

    key: str
    ok: bool
    skipped: bool = False
    error: str = ""
    seconds: float = 0.0


def run_job(job: Job) -> list[Outcome]:
    """Run a job's units that are not published yet (in a worker); return one outcome per unit.

    Every unit is skipped if already published and logged (``start``/``done``/``fail``) in the store's event log;
    an exception fails the units it concerns, never the grid. Outside a command's thread limit (a worker process of
    Ray or Slurm) the job runs under ``xling.threads``' default for the worker's machine.
    """
    from xling.threads import current_threads, limit_threads

    store = Store(job.store_root)
    outcomes = [Outcome(u.key, ok=True, skipped=True) for u in job.units if store.done(u.key)]
    todo = [u for u in job.units if not store.done(u.key)]
    # a worker process of its own (Ray, Slurm) picks its thread count for its own machine
    threads = limit_threads() if current_threads() is None and todo else nullcontext()
    with threads, job.scope() if job.scope is not None and todo else nullcontext():
        outcomes += _run_batches(job, store, todo)
    return outcomes


def _run_batches(job: Job, store: Store, todo: list) -> list[Outcome]:
    outcomes = []
    for batch in [[u] for u in todo] if job.isolated else [todo] if todo else []:
        start = time.time()
        for u in batch:
            store.log_event(u.key, "start", worker=os.environ.get("XLING_WORKER", "main"))
        try:
            job.work(job.context, store, batch)
        except Exception as err:  # a failing unit is recorded and never stops the rest of the grid
            message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
            detail = traceback.format_exc(limit=6)
            for u in batch:
                if not store.done(u.key):
                    store.log_event(u.key, "fail", error=message, traceback=detail)
        seconds = (time.time() - start) / len(batch)
        for u in batch:
            if store.done(u.key):
                store.log_event(u.key, "done", seconds=round(seconds, 3))
                outcomes.append(Outcome(u.key, ok=True, seconds=seconds))
            else:
                errors = store.failures(u.key)
                outcomes.append(Outcome(u.key, ok=False, error=errors[-1] if errors else "not published"))
    return outcomes


def crashed(job: Job, err: BaseException) -> list[Outcome]:
    """Outcomes for a job whose worker died before it could report: each unpublished unit failed."""
    store = Store(job.store_root)
    text = str(err).strip()
    message = f"worker died: {type(err).__name__}: {text.splitlines()[0] if text else ''}"[:500]
    out = []
    for u in job.units:
        if store.done(u.key):
            out.append(Outcome(u.key, ok=True))
        else:
            store.record_failure(u.key, message)
            out.append(Outcome(u.key, ok=False, error=message))
    return out
