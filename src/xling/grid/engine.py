"""The one grid engine: units with dependencies → jobs → an executor → the store, with retries and status.

Every kind of grid (the PEFT transfer grid, the CLE grid) is a list of units. A unit has a ``key`` (the hash of
everything that determines its result: its folder in the store), a ``stage`` (for progress and status), the keys
it depends on (``deps``: a score unit needs its adapter), a ``group`` (units of one group can share a worker, e.g.
adapters of one base model) and a ``describe()`` line. A ``Workload`` says how units of that kind run: the
function that publishes them, how many share one job, and what a job needs (CPUs, GPUs).

``run_units`` submits a job as soon as its units' dependencies are published (a score unit starts while other
adapters still train), keeps at most as many jobs in flight as the executor can run, retries failed units up to
``max_retries`` times, and never lets one failure stop the rest. ``grid_status`` reads the same answer back from
the store's event log at any time, from any machine.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xling.config import ExecutorSpec
from xling.grid.executors import make_executor
from xling.grid.jobs import Job, Outcome, Workload
from xling.grid.store import Store


class Unit(Protocol):
    """What the engine needs of a unit of work of any kind."""

    key: str

    @property
    def stage(self) -> str: ...

    @property
    def deps(self) -> tuple[str, ...]: ...

    @property
    def group(self) -> Hashable: ...

    def describe(self) -> str: ...


# --- status -------------------------------------------------------------------------------------------------------


@dataclass
class StageStatus:
    """Counts of one stage, and the last error of each failed unit."""

    name: str
    total: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return self.total - self.done - len(self.failed)


def grid_status(units: Sequence[Unit], stages: Sequence[str], store: Store) -> list[StageStatus]:
    """Done / failed / pending per stage; a unit counts as failed if its last event is a failure."""
    last: dict[str, dict] = {}
    for event in store.events():
        last[event["key"]] = event
    out = {name: StageStatus(name) for name in stages}
    for u in units:
        st = out[u.stage]
        st.total += 1
        if store.done(u.key):
            st.done += 1
        elif last.get(u.key, {}).get("event") == "fail":
            st.failed[u.describe()] = last[u.key].get("error", "")
    return list(out.values())


def failed_units(statuses: Iterable[StageStatus]) -> int:
    """How many units failed, over all stages."""
    return sum(len(st.failed) for st in statuses)


# --- scheduling ---------------------------------------------------------------------------------------------------


class _Scheduler:
    """Which units can run now, grouped into jobs; attempts and permanent failures."""

    def __init__(self, units: Sequence[Unit], workload: Workload, store: Store, max_retries: int) -> None:
        self.units = {u.key: u for u in units}
        self.workload, self.store, self.max_retries = workload, store, max_retries
        self.order = {u.key: i for i, u in enumerate(units)}
        self.done = {k for k in self.units if store.done(k)}
        self.attempts: dict[str, int] = {}
        self.given_up: set[str] = set()
        self.running: set[str] = set()

    def finished(self, outcome: Outcome) -> bool:
        """Record an outcome; True if the unit is done, False if it failed (it is retried while attempts last)."""
        self.running.discard(outcome.key)
        if outcome.ok:
            self.done.add(outcome.key)
            return True
        self.attempts[outcome.key] = self.attempts.get(outcome.key, 0) + 1
        if self.attempts[outcome.key] > self.max_retries:
            self.given_up.add(outcome.key)
        return False

    def _blocked(self, u: Unit) -> bool:
        """A dependency failed for good (or is not part of this grid and not published): ``u`` can never run."""
        return any(d in self.given_up or (d not in self.units and d not in self.done) for d in u.deps)

    def _waiting(self) -> list[Unit]:
        return [
            u
            for k, u in self.units.items()
            if k not in self.done and k not in self.given_up and k not in self.running and not self._blocked(u)
        ]

    def next_job(self, idle: bool) -> Job | None:
        """The next job to submit, or None. A group's job waits until it is full unless nothing more can join it
        (or the executor would otherwise sit idle), so adapters of one model are scored together."""
        waiting = self._waiting()
        ready = [u for u in waiting if all(d in self.done for d in u.deps)]
        if not ready:
            return None
        groups: dict[Hashable, list[Unit]] = {}
        for u in sorted(ready, key=lambda u: self.order[u.key]):
            groups.setdefault((u.stage, u.group), []).append(u)
        later = {(u.stage, u.group) for u in waiting if not all(d in self.done for d in u.deps)}
        for gkey, members in groups.items():
            if len(members) >= self.workload.chunk(members[0]) or gkey not in later:
                return self._job(members[: self.workload.chunk(members[0])])
        if idle:  # nothing is full yet, but the executor would sit idle: run what is ready
            members = next(iter(groups.values()))
            return self._job(members[: self.workload.chunk(members[0])])
        return None

    def _job(self, units: list[Unit]) -> Job:
        w = self.workload
        self.running.update(u.key for u in units)
        return Job(
            w.work,
            w.context,
            str(self.store.root),
            tuple(units),
            cpus=w.cpus,
            gpus=max(w.gpus(u) for u in units),
            isolated=w.isolated(units[0]),
            scope=w.scope,
        )


def run_units(
    units: Sequence[Unit],
    stages: Sequence[str],
    workload: Workload,
    store: Store,
    executor: ExecutorSpec,
    output: str,
    *,
    max_retries: int,
    console=None,
    progress: bool = True,
) -> list[StageStatus]:
    """Run every unit of ``units`` that is not published yet; return the final status per stage.

    ``output`` is the grid's output folder (Slurm logs go below it). Progress is a bar per stage on a terminal and
    one plain line per finished unit otherwise (a Slurm job's log, ``2>log``), as each unit is published: a watcher
    reads the store's event log while jobs run, so a job of several units reports each one when it finishes.
    """
    sched = _Scheduler(units, workload, store, max_retries)
    todo = [u for u in units if u.key not in sched.done]
    with _Progress(units, stages, sched.done, console, progress) as bar, _Watcher(store, bar, enabled=bool(todo)):
        if todo:
            with make_executor(executor, output) as ex:
                in_flight = 0
                while True:
                    while in_flight < ex.capacity:
                        job = sched.next_job(idle=in_flight == 0)
                        if job is None:
                            break
                        ex.submit(job)
                        in_flight += 1
                    if in_flight == 0:
                        break
                    job, outcomes = ex.wait()
                    in_flight -= 1
                    for o in outcomes:
                        if o.key not in sched.units:
                            continue
                        if sched.finished(o):
                            bar.done(o.key)
                        else:
                            bar.failed(o.key, o.error, retry=o.key not in sched.given_up)
    return grid_status(units, stages, store)


class _Watcher:
    """Reports every unit the moment a worker publishes it, from the store's event log, while jobs run (a job of
    several units, say eight adapters trained in turn, returns its outcomes only at its end)."""

    def __init__(self, store: Store, bar: _Progress, *, enabled: bool, interval: float = 1.0) -> None:
        self.store, self.bar, self.enabled, self.interval = store, bar, enabled, interval
        path = store.events_path
        self.offset = path.stat().st_size if path.exists() else 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="xling-progress", daemon=True)

    def __enter__(self) -> _Watcher:
        if self.enabled:
            self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        events, self.offset = self.store.events_since(self.offset)
        for event in events:
            if event.get("event") == "done":
                self.bar.done(event["key"])

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stop.set()
            self.thread.join()
            self.poll()


class _Progress:
    """A rich progress bar per stage on a terminal; one plain line per finished or failed unit otherwise."""

    def __init__(self, units: Sequence[Unit], stages: Sequence[str], done: set[str], console, enabled: bool):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.totals = {s: sum(u.stage == s for u in units) for s in stages}
        self.counts = {s: sum(u.stage == s and u.key in done for u in units) for s in stages}
        self.failed_n = {s: 0 for s in stages}
        self.units = {u.key: u for u in units}
        self.reported = set(done)
        self.lock = threading.Lock()
        self.bar = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.bar.start()
            self.tasks = {
                s: self.bar.add_task(f"{s:5s}", total=n, completed=self.counts[s], failed=0)
                for s, n in self.totals.items()
                if n
            }
        return self

    def done(self, key: str) -> None:
        """A unit was published (from the watcher or the job's outcome; reported once)."""
        with self.lock:
            unit = self.units.get(key)
            if unit is None or key in self.reported:
                return
            self.reported.add(key)
            self.counts[unit.stage] += 1
            self._show(unit, "done")

    def failed(self, key: str, error: str, retry: bool) -> None:
        """A unit's attempt failed; it is retried, or reported as failed for good."""
        with self.lock:
            unit = self.units[key]
            if not retry:
                self.failed_n[unit.stage] += 1
            self._show(unit, "failed, will retry" if retry else "FAILED", error)

    def _show(self, unit: Unit, what: str, error: str = "") -> None:
        s = unit.stage
        if self.bar is not None:
            self.bar.update(self.tasks[s], completed=self.counts[s], failed=self.failed_n[s])
            if error:
                colour = "yellow" if what.startswith("failed,") else "red"
                self.bar.console.print(f"[{colour}]{what.lower()}[/{colour}] {unit.describe()}: {error}")
        elif self.enabled:
            tail = f": {error}" if error else ""
            self.console.print(
                f"{s} {self.counts[s]}/{self.totals[s]} {what}: {unit.describe()}{tail}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
