"""The CLE grid's units and their work.

A BLI unit maps one language pair with one method (and dictionary size), evaluates its downstream units on the mapped
spaces as they are, then BLI (which normalises the spaces in place); a downstream unit left unfinished (a retry, a
task added later) maps its pair again on its own (the same map: the mapping is seeded). A worker keeps the pair's
vectors loaded between its units.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xling.grid.store import Store, unit_key
from xling.registry import DOWNSTREAM_TASKS
from xling.studies.cle.spec import NO_SIZE, CLEGridSpec, fill, unit_files

STAGE = "bli"
DOWNSTREAM_STAGE = "downstream"


@dataclass(frozen=True)
class CLEUnit:
    """Map one language pair with one method (and dictionary size), then evaluate it with BLI."""

    key: str
    label: str
    method: str
    params: dict[str, Any]
    pair: str
    src: str
    tgt: str
    size: str
    src_vectors: str
    tgt_vectors: str
    train_dict: str | None
    test_dict: str
    stage = STAGE
    deps = ()

    @property
    def group(self) -> str:
        """Units of one pair share a worker, which reads the pair's vectors once."""
        return self.pair

    def describe(self) -> str:
        return f"{self.label} {self.pair} size={self.size}"


@dataclass(frozen=True)
class DownstreamUnit:
    """One downstream task on one BLI unit's mapped spaces, for each of the task's seeds. The BLI unit's worker
    evaluates it while the mapped spaces are in memory; run on its own (a retry, a task added later) it maps the
    pair again (the same map: the mapping is seeded)."""

    key: str
    bli: CLEUnit
    task: str
    data: str
    seeds: tuple[int, ...]
    stage = DOWNSTREAM_STAGE

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.bli.key,)

    @property
    def group(self) -> str:
        return self.bli.pair

    def describe(self) -> str:
        return f"{self.bli.describe()} {self.task}"


def make_units(spec: CLEGridSpec) -> list[CLEUnit | DownstreamUnit]:
    """Every (method, pair, size) BLI unit with its resolved files (methods without a dictionary get size
    ``none``), then every downstream unit: (BLI unit, task) for the pairs the task evaluates."""
    from xling.cle.mappers import seed_of

    out: list[CLEUnit | DownstreamUnit] = []
    for pair in spec.pair_list():
        names = fill(pair)
        for entry in spec.entries():
            with_dict = seed_of(entry.method) == "dictionary"
            for size in spec.sizes if with_dict else [NO_SIZE]:
                src_vectors, tgt_vectors, train_dict, test_dict = unit_files(spec, pair, size if with_dict else None)
                files = dict(
                    src_vectors=_path(src_vectors),
                    tgt_vectors=_path(tgt_vectors),
                    train_dict=_path(train_dict) if train_dict else None,
                    test_dict=_path(test_dict),
                )
                payload = unit_payload(
                    spec, {"method": entry.method, "params": entry.params, "pair": pair, "size": size, **files}
                )
                out.append(
                    CLEUnit(
                        unit_key(payload),
                        entry.name,
                        entry.method,
                        entry.params,
                        pair,
                        names["src"],
                        names["tgt"],
                        size,
                        **files,
                    )
                )
    out += [d for u in list(out) for d in downstream_units(spec, u)]
    return out


def downstream_units(spec: CLEGridSpec, unit: CLEUnit) -> list[DownstreamUnit]:
    """The downstream units of one BLI unit: one per task that evaluates its pair."""
    out = []
    for task, entry in spec.tasks().items():
        if entry.pairs is not None and unit.pair not in entry.pairs:
            continue
        data = _path(entry.data.format(**fill(unit.pair)))
        seeds = tuple(entry.seeds or [spec.seed])
        settings = entry.model_dump(exclude={"data", "pairs", "seeds"})
        payload = {"kind": "cle-downstream", "bli": unit.key, "task": task, "data": data, "seeds": seeds, **settings}
        out.append(DownstreamUnit(unit_key(payload), unit, task, data, seeds))
    return out


def _path(text: str) -> str:
    return str(Path(text).expanduser().resolve())


def unit_payload(spec: CLEGridSpec, fields: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines a BLI unit's result (its store key is a hash of this)."""
    files = {k: fields[k] for k in ("src_vectors", "tgt_vectors", "train_dict", "test_dict")}
    payload = {
        "kind": "cle-bli",
        "method": fields["method"],
        "params": fields["params"],
        "pair": fields["pair"],
        "size": fields["size"],
        "files": files,
        "sizes_bytes": {k: _size(v) for k, v in files.items()},
        **spec.model_dump(include={"max_vocab", "case", "retrieval", "convention", "oov", "seed"}),
    }
    if spec.protocol is not None:  # the resolved conventions; specs without a protocol keep their earlier keys
        conv = spec.conventions()
        payload.update(
            protocol=conv.name,
            conventions={k: v for k, v in conv.record().items() if k != "reference"},
            params={**conv.params_for(fields["method"]), **fields["params"]},
        )
    return payload


def _size(path: str | None) -> int | None:
    return Path(path).stat().st_size if path and Path(path).is_file() else None


# --- running ----------------------------------------------------------------------------------------------------------

_VECTORS: dict[tuple, Any] = {}  # this worker's vectors of the current pair, kept between its units
_MAPPED: dict[str, Any] = {}  # this worker's last mapped pair (downstream units run on their own)
_TASK_DATA: dict[tuple, Any] = {}  # this worker's downstream data of the current pair


def _vectors(spec: CLEGridSpec, path: str):
    from xling.cle.vectors import read_vectors

    options = spec.conventions().vector_options()
    key = (path, spec.cache, *sorted(options.items()))
    if key not in _VECTORS:
        if len(_VECTORS) >= 2:
            _VECTORS.clear()
        _VECTORS[key] = read_vectors(path, **options, cache=spec.cache)
    return _VECTORS[key]


def map_unit(spec: CLEGridSpec, unit: CLEUnit):
    """The unit's mapped spaces (``xling.cle.mappers.run.Mapped``), both new arrays: the pair's vectors stay loaded
    for the worker's next unit."""
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.mappers.run import map_embeddings

    conv = spec.conventions()
    x, z = _vectors(spec, unit.src_vectors), _vectors(spec, unit.tgt_vectors)
    train = read_dictionary(unit.train_dict, **conv.dictionary_options()) if unit.train_dict else None
    return map_embeddings(
        unit.method, x, z, train, params=unit.params, seed=spec.seed, protocol=conv if spec.protocol else None
    )


def run_unit(spec: CLEGridSpec, unit: CLEUnit, store: Store | None = None) -> dict[str, Any]:
    """Map one unit, evaluate its unfinished downstream units on the mapped spaces as they are (each publishing
    or failing on its own, when a ``store`` is given), then BLI (which normalises the spaces in place)."""
    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary

    conv = spec.conventions()
    _vectors(spec, unit.src_vectors), _vectors(spec, unit.tgt_vectors)  # read (or found) first, as map_unit does
    test = read_dictionary(unit.test_dict, **conv.dictionary_options())
    mapped = map_unit(spec, unit)
    if store is not None:
        for down in downstream_units(spec, unit):
            if not store.done(down.key):
                _run_downstream_logged(spec, store, down, mapped.src, mapped.tgt)
    result = bli(mapped.src, mapped.tgt, test, inplace=True, **conv.bli_options()).to_dict()
    return {**result, "mapping": mapped.info, "conventions": conv.record()}


def _run_downstream_logged(spec: CLEGridSpec, store: Store, unit: DownstreamUnit, src, tgt) -> None:
    """A downstream unit inside its BLI unit's work: a failure is logged against the downstream unit only."""
    import os
    import traceback

    store.log_event(unit.key, "start", worker=os.environ.get("XLING_WORKER", "main"))
    start = time.time()
    try:
        publish_downstream(spec, store, unit, src, tgt)
    except Exception as err:  # the task's cells fail; the BLI unit goes on
        message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
        store.log_event(unit.key, "fail", error=message, traceback=traceback.format_exc(limit=6))
        return
    store.log_event(unit.key, "done", seconds=round(time.time() - start, 3))


def task_data(spec: CLEGridSpec, unit: DownstreamUnit):
    """The task's data for the unit's pair, loaded once per worker (a missing or broken folder fails here)."""
    from xling.cle.downstream.evaluate import load_task_data

    entry = spec.tasks()[unit.task]
    key = (unit.task, unit.data, unit.bli.src, unit.bli.tgt, tuple(entry.topics or ()))
    if key not in _TASK_DATA:
        if len(_TASK_DATA) >= len(spec.downstream):
            _TASK_DATA.clear()
        _TASK_DATA[key] = load_task_data(unit.task, unit.data, unit.bli.src, unit.bli.tgt, topics=entry.topics)
    return _TASK_DATA[key]


def publish_downstream(spec: CLEGridSpec, store: Store, unit: DownstreamUnit, src, tgt) -> None:
    """Evaluate one downstream unit on mapped spaces (every seed) and publish its ``result.json``."""
    from xling.cle.downstream.evaluate import evaluate_downstream

    entry = spec.tasks()[unit.task]
    data = task_data(spec, unit)
    rows, result = [], None
    seeded = DOWNSTREAM_TASKS.meta(unit.task)["seeded"]  # a retrieval model draws nothing: one run
    for seed in unit.seeds if seeded else unit.seeds[:1]:
        result = evaluate_downstream(
            unit.task,
            unit.data,
            unit.bli.src,
            unit.bli.tgt,
            src,
            tgt,
            loaded=data,
            stopwords=entry.stopwords,
            model=entry.model,
            metric=entry.metric,
            params=entry.params,
            seed=seed,
        )
        rows.append({**result.row(), "seed": seed, "seconds": round(result.seconds, 3)})
    record = {"rows": rows, "params": result.params, "stopwords": result.details.get("stopwords")}
    with store.writing(unit.key, {"unit": {"task": unit.task, "bli": unit.bli.key}}) as tmp:
        (tmp / "result.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def cle_work(spec: CLEGridSpec, store: Store, batch: list[CLEUnit | DownstreamUnit]) -> None:
    """The grid engine's work for CLE units (one unit per call): a BLI unit maps, evaluates its downstream units
    and publishes its BLI result; a downstream unit left unfinished loads its data (failing fast), maps its pair
    again and publishes its task result."""
    for unit in batch:
        start = time.perf_counter()
        if isinstance(unit, DownstreamUnit):
            task_data(spec, unit)
            if unit.bli.key not in _MAPPED:
                _MAPPED.clear()
                mapped = map_unit(spec, unit.bli)
                _MAPPED[unit.bli.key] = (mapped.src, mapped.tgt)
            publish_downstream(spec, store, unit, *_MAPPED[unit.bli.key])
            continue
        result = run_unit(spec, unit, store)
        result["seconds"] = round(time.perf_counter() - start, 3)
        with store.writing(
            unit.key, {"unit": {k: getattr(unit, k) for k in ("label", "method", "pair", "size")}}
        ) as tmp:
            (tmp / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
