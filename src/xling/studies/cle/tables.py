"""The CLE grid's results tables, read from its store: one row per BLI unit (``cle_results``) and per downstream unit
(``cle_downstream``, the mean over the task's seeds; ``cle_downstream_seeds``, one row per seed).

Each BLI row carries the conventions its unit ran with, read from the unit's record (protocol, retrieval, counting
convention, OOV, case, vectors read), so a report states what ran, not the spec's defaults, and the table can be
analysed again on its own (``xling analyze cle_results.csv``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from xling.contracts import CLE_DOWNSTREAM_COLUMNS, CLE_RESULT_COLUMNS
from xling.grid.store import Store
from xling.studies.cle.spec import CLEGridSpec
from xling.studies.cle.units import CLEUnit, DownstreamUnit


def _bli_units(todo: list) -> list[CLEUnit]:
    return [u for u in todo if isinstance(u, CLEUnit)]


def results_table(spec: CLEGridSpec, store: Store, todo: list) -> pd.DataFrame:
    """One row per BLI unit of the spec: its result and the conventions it ran with, or ``status=error`` with the
    last error, or ``missing``; ``failed`` marks an MRR below the spec's ``fail_mrr`` (a method that found no map)."""
    rows = []
    for unit in _bli_units(todo):
        key = unit.key
        row: dict[str, Any] = {
            "method": unit.label,
            "pair": unit.pair,
            "src": unit.src,
            "tgt": unit.tgt,
            "size": unit.size,
            "fail_mrr": spec.fail_mrr,
        }
        if store.done(key):
            result = json.loads((store.result_dir(key) / "result.json").read_text())
            conv = result.get("conventions", {})
            row.update({k: result[k] for k in ("p1", "p5", "p10", "mrr", "coverage", "n")})
            row.update(
                train_pairs=result["mapping"].get("train_pairs"),
                fit_seconds=result["mapping"]["fit_seconds"],
                failed=bool(result["mrr"] < spec.fail_mrr),
                status="done",
                error=None,
                protocol=conv.get("name"),
                retrieval=result.get("retrieval"),
                convention=result.get("convention"),
                oov=result.get("oov"),
                case=conv.get("case"),
                max_vocab=conv.get("max_vocab"),
            )
        else:
            errors = store.failures(key)
            row.update(status="error" if errors else "missing", error=errors[-1] if errors else None)
        rows.append(row)
    return pd.DataFrame(rows, columns=CLE_RESULT_COLUMNS)


def downstream_tables(store: Store, todo: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cle_downstream``: one row per downstream unit: method, pair, size, task, model, metric, the score's mean
    and standard deviation over seeds, n_seeds, n, coverage, coverage_src, status, error, then the mean of every
    metric the task computed; ``cle_downstream_seeds``: one row per unit and seed."""
    rows, per_seed = [], []
    for unit in todo:
        if not isinstance(unit, DownstreamUnit):
            continue
        base = {"method": unit.bli.label, "pair": unit.bli.pair, "size": unit.bli.size, "task": unit.task}
        if not store.done(unit.key):
            errors = store.failures(unit.key)
            rows.append({**base, "status": "error" if errors else "missing", "error": errors[-1] if errors else None})
            continue
        seeds = pd.DataFrame(json.loads((store.result_dir(unit.key) / "result.json").read_text())["rows"])
        per_seed += [{**base, **r} for r in seeds.to_dict("records")]
        numeric = seeds.drop(columns=["seed", "seconds"]).select_dtypes("number")
        first = seeds.iloc[0]
        rows.append(
            {
                **base,
                "model": first["model"],
                "metric": first["metric"],
                "score": float(seeds["score"].mean()),
                "score_sd": float(seeds["score"].std(ddof=1)) if len(seeds) > 1 else float("nan"),
                "n_seeds": len(seeds),
                **{k: float(numeric[k].mean()) for k in numeric.columns if k != "score"},
                "status": "done",
                "error": None,
            }
        )
    columns = list(CLE_DOWNSTREAM_COLUMNS)
    table = pd.DataFrame(rows)
    table = table.reindex(columns=columns + [c for c in table.columns if c not in columns])
    return table, pd.DataFrame(per_seed)


def missing_inputs(todo: list) -> list[str]:
    """Every input file or folder of the units that is not there (vectors, dictionaries, downstream folders)."""
    paths: dict[str, None] = {}
    for unit in todo:
        if isinstance(unit, CLEUnit):
            for path in (unit.src_vectors, unit.tgt_vectors, unit.train_dict, unit.test_dict):
                if path and not Path(path).is_file():
                    paths[path] = None
        elif not Path(unit.data).is_dir():
            paths[unit.data] = None
    return list(paths)
