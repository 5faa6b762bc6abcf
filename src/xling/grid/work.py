"""Executing units of work inside a worker (a local process, a Ray task or a Slurm array job).

A job is a list of units of one kind that share a loaded base model: one train unit, or several score units of
the same model (the base once, several adapters in one pass). Every unit is skipped if already published, logged
(``start``/``done``/``fail``) in the store's event log, and isolated: an exception fails its units, never the grid.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass

from xling.config import GridSpec
from xling.grid.store import Store
from xling.grid.units import ScoreUnit, TrainUnit
from xling.provenance import run_record

ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class Job:
    """Units to run together in one worker."""

    spec: GridSpec
    store_root: str
    units: tuple[TrainUnit, ...] | tuple[ScoreUnit, ...]


@dataclass(frozen=True)
class Outcome:
    """What happened to one unit."""

    key: str
    ok: bool
    skipped: bool = False
    error: str = ""
    seconds: float = 0.0


def run_job(job: Job) -> list[Outcome]:
    """Run a job's units that are not yet published; return one outcome per unit."""
    store = Store(job.store_root)
    todo = [u for u in job.units if not store.done(u.key)]
    outcomes = [Outcome(u.key, ok=True, skipped=True) for u in job.units if store.done(u.key)]
    if not todo:
        return outcomes
    start = time.time()
    for u in todo:
        store.log_event(u.key, "start", worker=os.environ.get("XLING_WORKER", "main"))
    try:
        if isinstance(todo[0], TrainUnit):
            for u in todo:
                _train(job.spec, store, u)
        else:
            _score(job.spec, store, todo)
    except Exception as err:  # a failing unit is recorded and never stops the rest of the grid
        message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
        detail = traceback.format_exc(limit=6)
        for u in todo:
            if not store.done(u.key):
                store.log_event(u.key, "fail", error=message, traceback=detail)
                outcomes.append(Outcome(u.key, ok=False, error=message, seconds=time.time() - start))
    for u in todo:
        if store.done(u.key):
            outcomes.append(Outcome(u.key, ok=True, seconds=time.time() - start))
    return outcomes


def _train(spec: GridSpec, store: Store, unit: TrainUnit) -> None:
    from xling.train import train_cell

    t0 = time.time()
    meta = {"unit": "train", "model": unit.model.name, "source": unit.source.name, "seed": unit.seed}
    with store.writing(unit.key, meta) as tmp:
        train_cell(unit.model, unit.source.task, unit.source.language, unit.seed, tmp / ADAPTER_DIR,
                   lora=spec.lora, train=spec.train)
    store.log_event(unit.key, "done", seconds=round(time.time() - t0, 3))


def _score(spec: GridSpec, store: Store, units: list[ScoreUnit]) -> None:
    """Score the base and several adapters of one model in one pass, then publish each unit's rows."""
    from xling.score import score_items, summarize
    from xling.tasks.registry import load_items

    t0 = time.time()
    model = units[0].model
    adapters = {u.label: (None if u.adapter is None else store.result_dir(u.adapter.key) / ADAPTER_DIR)
                for u in units}
    items = [item for cell in units[0].targets for item in load_items(cell.task, cell.language, spec.score.split)]
    loglik = score_items(model, adapters, items, spec.score)
    scores = summarize(loglik)
    share = (time.time() - t0) / len(units)  # each unit's share of the one scoring pass
    for u in units:
        meta = {"unit": "score", "model": model.name, "adapter": u.label}
        with store.writing(u.key, meta) as tmp:
            scores[scores["adapter"] == u.label].to_parquet(tmp / "scores.parquet", index=False)
            loglik[loglik["adapter"] == u.label].to_parquet(tmp / "loglikelihoods.parquet", index=False)
            (tmp / "run.json").write_text(_json(run_record(spec, seed=None, unit=u.key)))
        store.log_event(u.key, "done", seconds=round(share, 3))


def _json(data: object) -> str:
    import json

    return json.dumps(data, indent=2, default=str) + "\n"
