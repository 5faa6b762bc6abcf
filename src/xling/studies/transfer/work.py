"""The transfer grid's work: what a worker does with a job's train or score units.

A job holds units of one kind that share a base model: training units (each one adapter), or score units of one
model (the base and several adapters scored in one pass, the base model loaded once). The engine
(``xling.grid.engine.run_job``) skips published units, logs events and isolates failures; these functions only do
the work and publish each unit with ``store.writing``.
"""

from __future__ import annotations

import json
import time

from xling.config import GridSpec
from xling.grid.store import Store
from xling.provenance import run_record
from xling.studies.transfer.units import ScoreUnit, TrainUnit

ADAPTER_DIR = "adapter"


def transfer_work(spec: GridSpec, store: Store, units: list[TrainUnit] | list[ScoreUnit]) -> None:
    """Run one job of the transfer grid: train each adapter, or score the base and adapters in one pass."""
    if isinstance(units[0], TrainUnit):
        for u in units:
            _train(spec, store, u)
    else:
        _score(spec, store, units)


def _train(spec: GridSpec, store: Store, unit: TrainUnit) -> None:
    from xling.train import train_cell

    meta = {"unit": "train", "model": unit.model.name, "source": unit.source.name, "seed": unit.seed}
    with store.writing(unit.key, meta) as tmp:
        train_cell(
            unit.model,
            unit.source.task,
            unit.source.language,
            unit.seed,
            tmp / ADAPTER_DIR,
            lora=spec.lora,
            train=spec.train,
        )


def _score(spec: GridSpec, store: Store, units: list[ScoreUnit]) -> None:
    """Score the base and several adapters of one model in one pass, then publish each unit's rows."""
    from xling.score import score_items, summarize
    from xling.tasks.registry import format_records, load_items

    t0 = time.time()
    model = units[0].model
    adapters = {u.label: (None if u.adapter is None else store.result_dir(u.adapter.key) / ADAPTER_DIR) for u in units}
    items = [item for cell in units[0].targets for item in load_items(cell.task, cell.language, spec.score.split)]
    loglik = score_items(model, adapters, items, spec.score)
    scores = summarize(loglik)
    share = (time.time() - t0) / len(units)  # each unit's share of the one scoring pass
    extra = format_records([c.task for c in units[0].targets], spec.score.benchmark_format)
    for u in units:
        meta = {"unit": "score", "model": model.name, "adapter": u.label, "seconds": round(share, 3)}
        with store.writing(u.key, meta) as tmp:
            scores[scores["adapter"] == u.label].to_parquet(tmp / "scores.parquet", index=False)
            loglik[loglik["adapter"] == u.label].to_parquet(tmp / "loglikelihoods.parquet", index=False)
            (tmp / "run.json").write_text(
                json.dumps(
                    run_record(
                        spec,
                        seed=None,
                        unit=u.key,
                        batch_size=loglik.attrs.get("batch_size"),
                        oom_retries=loglik.attrs.get("oom_retries"),
                        **extra,
                    ),
                    indent=2,
                    default=str,
                )
                + "\n"
            )
