"""From the store to results tables: the per-seed long table and the release-schema table.

DuckDB reads the published ``scores.parquet`` of every finished score unit of the plan as one view and joins each
adapter's scores with its model's base scores; units not (yet) finished are simply absent, so partial grids export
what they have. ``score`` is acc; ``score_norm`` is the task's headline metric as the release picks it (acc_norm
where the task reports it, else acc: the task source's ``norm_metric``), named per row in
``score_norm_metric``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xling.contracts import LONG_COLUMNS, NORM_METRIC_COLUMN
from xling.grid.store import Store
from xling.studies.transfer.units import Plan

COLUMNS = [*LONG_COLUMNS, NORM_METRIC_COLUMN]


def long_table(plan: Plan, store: Store) -> pd.DataFrame:
    """One row per (model, source cell, seed, target cell): fine-tuned and base acc, and the task's headline
    metric (``score_norm``, named in ``score_norm_metric``)."""
    import duckdb

    from xling.tasks.registry import resolve_task

    base_key = {u.model.name: u.key for u in plan.base_scores}
    meta = pd.DataFrame(
        [
            {
                "key": u.key,
                "base_key": base_key[u.model.name],
                "model_name": u.model.name,
                "model_size": u.model.size_billions,  # NaN when unknown
                "fine_tuned_dataset": plan.task_labels[u.adapter.source.task],
                "fine_tuned_language": u.adapter.source.language,
                "seed": u.adapter.seed,
            }
            for u in plan.adapter_scores
        ]
    )
    keys = [u.key for u in plan.score if store.done(u.key)]
    files = [str(store.result_dir(k) / "scores.parquet") for k in keys]
    if meta.empty or not files:
        return pd.DataFrame(columns=COLUMNS)
    metrics = pd.DataFrame(
        [{"task": label, "metric": resolve_task(task).norm_metric} for task, label in plan.task_labels.items()]
    )
    con = duckdb.connect()
    con.register("meta", meta)
    con.register("metrics", metrics)
    con.register("files", pd.DataFrame({"key": keys, "path": files}))
    con.read_parquet(files, filename=True).create_view("raw")
    con.execute("create view scores as select r.*, f.key from raw r join files f on r.filename = f.path")
    df = con.execute(
        """
        select m.model_name, m.model_size, m.fine_tuned_dataset, m.fine_tuned_language,
               a.task as eval_dataset, a.language as eval_language, m.seed,
               a.acc as score, b.acc as score_base,
               case when k.metric = 'acc' then a.acc else a.acc_norm end as score_norm,
               case when k.metric = 'acc' then b.acc else b.acc_norm end as score_norm_base,
               k.metric as score_norm_metric
        from meta m
        join scores a on a.key = m.key
        join scores b on b.key = m.base_key and b.task = a.task and b.language = a.language
        join metrics k on k.task = a.task
        order by m.model_name, m.fine_tuned_dataset, m.fine_tuned_language, m.seed, a.task, a.language
        """
    ).df()
    return df[COLUMNS]


def export(plan: Plan, store: Store, out: str | Path) -> tuple[Path, Path, int]:
    """Write the release-schema table to ``out`` and the per-seed table beside it (``*.seeds.csv``).

    Returns both paths and the number of cells.
    """
    from xling.contracts import aggregate_seeds
    from xling.io import atomic_file

    out = Path(out)
    long = long_table(plan, store)
    table = aggregate_seeds(long)
    seeds_path = out.with_name(out.stem + ".seeds" + out.suffix)
    with atomic_file(seeds_path) as fh:
        long.to_csv(fh, index=False)
    with atomic_file(out) as fh:
        table.to_csv(fh, index=False)
    return out, seeds_path, len(table)
