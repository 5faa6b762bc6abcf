"""Running a transfer grid: plan its units, run what is missing on the grid engine, report status.

Training units and score units go through one engine (``xling.grid.engine``): a worker trains several adapters of
one base model with the model loaded once; a model's adapters are scored as soon as ``score.adapters_per_batch`` of
them are trained (the dependency is per adapter, not per stage), the base and those adapters in one scoring pass;
a failed unit is retried up to ``max_retries`` times and a unit that still fails is reported while the others go
on.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from xling.config import GridSpec
from xling.grid.engine import StageStatus, grid_status, run_units
from xling.grid.jobs import Workload
from xling.grid.store import Store
from xling.grid.units import Plan, make_plan, spec_digest
from xling.grid.work import transfer_work
from xling.io import claim_dir
from xling.provenance import write_run_record

STAGES = ("train", "score")
TMP_MAX_AGE_S = 24 * 3600


def store_for(spec: GridSpec, *, create: bool = True) -> Store:
    """The store of a spec's output folder (``create=False``: only read it, create nothing)."""
    return Store(Path(spec.output) / "store", create=create)


def workload(spec: GridSpec) -> Workload:
    """How transfer units run: a training job trains up to ``executor.train_units_per_job`` adapters of one base
    model in turn, the model loaded once (each unit succeeds or fails on its own); the base and up to
    ``score.adapters_per_batch`` adapters of a model share one scoring pass."""
    from xling.train import keep_base_models

    ex = spec.executor
    return Workload(
        transfer_work,
        spec,
        chunk=lambda u: ex.train_units_per_job if u.stage == "train" else spec.score.adapters_per_batch,
        gpus=lambda u: ex.gpus_per_train if u.stage == "train" else ex.gpus_per_score,
        cpus=ex.cpus_per_unit,
        isolated=lambda u: u.stage == "train",
        scope=keep_base_models,
    )


def status(plan: Plan, store: Store) -> list[StageStatus]:
    """Done / failed / pending per stage (train, score), and the last error of each failed unit."""
    return grid_status([*plan.train, *plan.score], STAGES, store)


def run_grid(
    spec: GridSpec,
    *,
    max_retries: int | None = None,
    console: Console | None = None,
    plan: Plan | None = None,
    progress: bool = True,
) -> list[StageStatus]:
    """Run every unit of ``spec`` that is not finished yet; return the final status per stage."""
    plan = plan or make_plan(spec)
    claim_dir(spec.output, "store/", "runs/", "slurm/")
    store = store_for(spec)
    _remove_stale_tmp(store)
    runs = Path(spec.output) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    digest = spec_digest(spec)
    write_run_record(
        runs, spec, seed=None, name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{digest}.json", spec_digest=digest
    )
    units = [*plan.train, *plan.score]
    return run_units(
        units,
        STAGES,
        workload(spec),
        store,
        spec.executor,
        spec.output,
        max_retries=spec.max_retries if max_retries is None else max_retries,
        console=console,
        progress=progress,
    )


def _remove_stale_tmp(store: Store) -> None:
    """Drop temporary folders of workers killed long ago (recent ones may belong to running workers)."""
    import shutil

    now = time.time()
    for path in store.tmp.iterdir() if store.tmp.is_dir() else ():
        if now - path.stat().st_mtime > TMP_MAX_AGE_S:
            shutil.rmtree(path, ignore_errors=True)


def plan_summary(spec: GridSpec) -> dict:
    """What ``xling grid plan`` shows: units per stage and how many are done; the items, choices and training
    examples. Reads no data that is not prepared (paper benchmarks before ``xling data prepare``): unit keys hash
    the data, so until then which units are done is unknown (``None``), with ``unprepared`` saying what is missing.
    """
    from xling.grid.units import unit_counts
    from xling.tasks.registry import load_items, resolve_task

    counts = unit_counts(spec)
    cells = {(c.task, c.language, spec.score.split) for c in spec.target_cells()}
    cells |= {(c.task, c.language, "train") for c in spec.source_cells()}
    unprepared = sorted(c for c in cells if not resolve_task(c[0]).is_prepared(c[1], c[2]))
    summary = {
        "name": spec.name,
        "models": len(spec.models),
        "source_cells": len(spec.source_cells()),
        "target_cells": len(spec.target_cells()),
        "seeds": len(spec.seeds),
        "stages": {name: {"units": counts[name], "done": None} for name in STAGES},
        "unprepared": [list(c) for c in unprepared],
        "cells": len(cells),
    }
    if unprepared:
        return summary
    plan, store = make_plan(spec), store_for(spec, create=False)
    for name in STAGES:
        summary["stages"][name]["done"] = sum(store.done(u.key) for u in [*plan.train, *plan.score] if u.stage == name)
    n_choices = sum(
        len(i.choices) for c in spec.target_cells() for i in load_items(c.task, c.language, spec.score.split)
    )
    n_train = sum(len(load_items(c.task, c.language, "train")) for c in spec.source_cells())
    summary["choices_per_evaluation"] = n_choices
    summary["choice_scorings"] = len(plan.score) * n_choices
    summary["training_examples_seen"] = len(spec.models) * len(spec.seeds) * n_train * spec.train.epochs
    return summary
