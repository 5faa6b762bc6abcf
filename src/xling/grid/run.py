"""Running a grid: plan, run what is missing stage by stage with retries, report progress and status.

Stage 1 trains every adapter and scores every base model; stage 2 scores the adapters (several per job, so a
worker loads the base model once). Each stage resubmits its failed units up to ``max_retries`` times; a unit
that still fails is reported and the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from xling.config import GridSpec
from xling.grid.executors import execute
from xling.grid.store import Store
from xling.grid.units import Plan, ScoreUnit, TrainUnit, describe, make_plan, spec_digest
from xling.grid.work import Job
from xling.provenance import write_run_record

Unit = TrainUnit | ScoreUnit
TMP_MAX_AGE_S = 24 * 3600


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


def store_for(spec: GridSpec) -> Store:
    """The store of a spec's output folder."""
    return Store(Path(spec.output) / "store")


def stages(plan: Plan) -> list[tuple[str, list[Unit]]]:
    """The units of each stage, in order."""
    return [("train", [*plan.train, *plan.base_scores]), ("score", list(plan.adapter_scores))]


def status(plan: Plan, store: Store) -> list[StageStatus]:
    """Done / failed / pending per stage; a unit counts as failed if its last event is a failure."""
    last: dict[str, dict] = {}
    for event in store.events():
        last[event["key"]] = event
    out = []
    for name, units in stages(plan):
        st = StageStatus(name, total=len(units))
        for u in units:
            if store.done(u.key):
                st.done += 1
            elif last.get(u.key, {}).get("event") == "fail":
                st.failed[describe(u)] = last[u.key].get("error", "")
        out.append(st)
    return out


def _jobs(spec: GridSpec, store: Store, units: Sequence[Unit]) -> list[Job]:
    """Group units into jobs: one train unit per job; score units of one model in chunks that share a base."""
    root = str(store.root)
    jobs = [Job(spec, root, (u,)) for u in units if isinstance(u, TrainUnit)]
    by_model: dict[str, list[ScoreUnit]] = {}
    for u in units:
        if isinstance(u, ScoreUnit):
            by_model.setdefault(u.model.name, []).append(u)
    size = spec.score.adapters_per_batch
    for group in by_model.values():
        for i in range(0, len(group), size):
            jobs.append(Job(spec, root, tuple(group[i : i + size])))
    return jobs


def run_grid(
    spec: GridSpec,
    *,
    max_retries: int | None = None,
    console: Console | None = None,
    plan: Plan | None = None,
) -> list[StageStatus]:
    """Run every unit of ``spec`` that is not finished yet; return the final status per stage."""
    console = console or Console(stderr=True)
    retries = spec.max_retries if max_retries is None else max_retries
    plan = plan or make_plan(spec)
    store = store_for(spec)
    _remove_stale_tmp(store)
    runs = Path(spec.output) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    digest = spec_digest(spec)
    write_run_record(runs, spec, seed=None, name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{digest}.json",
                     spec_digest=digest)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for name, units in stages(plan):
            if name == "score":  # an adapter can only be scored once it exists
                units = [u for u in units if store.done(u.adapter.key)]
            bar = progress.add_task(f"{name:5s}", total=len(units), failed=0)
            todo = [u for u in units if not store.done(u.key)]
            progress.update(bar, completed=len(units) - len(todo))
            for attempt in range(retries + 1):
                if not todo:
                    break
                failed: list[Unit] = []
                by_key = {u.key: u for u in todo}
                for outcomes in execute(_jobs(spec, store, todo), spec.executor, Path(spec.output)):
                    for o in outcomes:
                        if o.ok:
                            progress.advance(bar)
                        elif o.key in by_key:
                            failed.append(by_key[o.key])
                    progress.update(bar, failed=len(failed))
                todo = failed
                if todo and attempt < retries:
                    console.print(f"[yellow]{name}: {len(todo)} unit(s) failed; retry {attempt + 1}/{retries}")
    return status(plan, store)


def _remove_stale_tmp(store: Store) -> None:
    """Drop temporary folders of workers killed long ago (recent ones may belong to running workers)."""
    import shutil

    now = time.time()
    for path in store.tmp.iterdir():
        if now - path.stat().st_mtime > TMP_MAX_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
