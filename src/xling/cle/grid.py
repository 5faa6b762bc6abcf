"""The CLE grid: methods x language pairs x training-dictionary sizes, resumable, with summary tables.

``xling cle grid SPEC.yaml -o OUT`` runs every (method, pair, size) unit that is not finished yet on the grid
engine (``xling.grid.engine``: local, Ray or Slurm executors, retries, status), storing each unit's BLI result
atomically in ``OUT/store`` (a rerun skips finished units, a killed run loses only the units in progress), then
writes the tables the analysis layer reads:

- ``OUT/tables/cle_results.csv``: one row per unit: method, pair, src, tgt, size, p1, p5, p10, mrr,
  coverage, n, train_pairs, fit_seconds, failed (MRR below ``fail_mrr``), status (``done`` / ``error``), error;
- ``OUT/tables/cle_mrr_matrix.csv`` and ``cle_p1_matrix.csv``: (method, size) x pair, with the mean over pairs;
- ``OUT/tables/cle_averages.csv``: per (method, size): mean and standard deviation of MRR and P@1 over
  pairs, pairs done, failures (MRR below ``fail_mrr``), errors;
- with a ``downstream:`` section (``{cldc: DIR, xnli: DIR, clir: DIR}``, folder templates with ``{pair}``,
  ``{src}``, ``{tgt}``, or entries with ``data``, ``model``, ``metric``, ``params``, ``pairs`` and ``seeds``): each
  (unit, task) is a downstream unit of its own (stage ``downstream``), evaluated by the BLI unit's worker on the
  mapped spaces before BLI normalises them, so it scores what ``xling cle downstream`` scores on the same map; a
  task whose folder is missing or broken fails only its own units (the BLI result stays) and is retried by a rerun.
  ``OUT/tables/cle_downstream.csv`` has one row per (unit, task): the mean and standard deviation over the task's
  seeds; ``cle_downstream_seeds.csv`` one row per seed.

Methods without a dictionary (``vecmap-identical``, ``vecmap-unsup``) run once per pair; their size is ``none``.
``protocol: glavas2019`` (or ``vecmap``, ``muse``; ``xling.cle.protocol``) fixes how vectors and dictionaries are
read and how BLI counts; ``max_vocab``, ``case``, ``retrieval``, ``convention`` and ``oov`` written in the spec
override it (recorded). ``cache: false`` turns off the ``.npy`` copies of the vectors in the cache folder.
Paths in the spec are templates relative to the spec file's folder: ``vectors`` with ``{lang}`` (one file per
language), or ``src_vectors``/``tgt_vectors`` with ``{pair}``, ``{src}``, ``{tgt}`` (one pair of files per pair,
as ``xling cle simulate`` writes them); dictionaries with ``{pair}``, ``{src}``, ``{tgt}`` and ``{size}``.
A grid axis that changes no input (two sizes reading the same dictionaries, two pairs reading the same files, two
method entries alike) is an error: its "results" would be one result counted several times.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from xling.config import ExecutorSpec, Spec
from xling.contracts import CLE_DOWNSTREAM_COLUMNS, CLE_RESULT_COLUMNS
from xling.errors import XlingError
from xling.grid.engine import StageStatus, grid_status, run_units
from xling.grid.jobs import Workload
from xling.grid.store import Store, unit_key

if TYPE_CHECKING:
    from xling.cle.protocol import Protocol

#: The paper's eight languages; its 28 pairs are the xling-eval dictionary folders.
PAPER_LANGUAGES = ("de", "en", "fi", "fr", "hr", "it", "ru", "tr")
PAPER_SIZES = ("500", "1k", "3k", "5k")
NO_SIZE = "none"


class MethodEntry(Spec):
    """One method of the grid: a registered method name, optional parameters and a label for the tables."""

    method: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.method


class DownstreamEntry(Spec):
    """One downstream task of the grid: its data folder (a template with ``{pair}``, ``{src}``, ``{tgt}``) and,
    optionally, the model, headline metric, model parameters, TED topics and CLIR stopwords
    (``xling cle downstream``'s options), the pairs it evaluates (default: every pair of the grid) and the model
    seeds (default: the grid's seed; the tables give the mean and standard deviation over them)."""

    data: str
    model: str | None = None
    metric: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    topics: list[str] | None = None
    stopwords: Literal["auto", "file", "nltk", "none"] = "auto"
    pairs: list[str] | None = Field(None, min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError(f"a seed is listed twice: {value}")
            if min(value) < 0:
                raise ValueError(f"seeds must be >= 0, found {min(value)}")
        return value


class CLEGridSpec(Spec):
    """A CLE grid: which methods, pairs and dictionary sizes, where the files are, how BLI is counted, and which
    downstream tasks every mapped pair is evaluated on."""

    methods: list[str | MethodEntry] = Field(min_length=1)
    pairs: list[str] | Literal["paper"] = "paper"
    sizes: list[str] = Field(default_factory=lambda: list(PAPER_SIZES), min_length=1)
    vectors: str | None = None
    src_vectors: str | None = None
    tgt_vectors: str | None = None
    train_dict: str | None = None
    test_dict: str
    protocol: Literal["glavas2019", "vecmap", "muse"] | None = None
    max_vocab: int | None = Field(200000, gt=0)
    case: Literal["keep", "lower"] = "keep"
    retrieval: Literal["nn", "csls", "isf"] = "csls"
    convention: Literal["line", "source"] = "line"
    oov: Literal["skip", "wrong"] = "skip"
    fail_mrr: float = Field(0.05, ge=0.0, le=1.0)
    seed: int = 0
    cache: bool = True
    output: str = "xling-out/cle-grid"
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    max_retries: int = Field(1, ge=0)
    downstream: dict[Literal["cldc", "xnli", "clir"], DownstreamEntry] = Field(default_factory=dict)

    @field_validator("downstream", mode="before")
    @classmethod
    def _folder_alone(cls, value: Any) -> Any:
        """``task: DIR`` is short for ``task: {data: DIR}``."""
        if isinstance(value, dict):
            return {k: {"data": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes_as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("pairs")
    @classmethod
    def _pair_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            for pair in value:
                if len(pair.split("-")) != 2 or not all(pair.split("-")):
                    raise ValueError(f"a pair is 'src-tgt' (e.g. en-de), found {pair!r}")
            if len(set(value)) != len(value):
                raise ValueError("a pair is listed twice")
        return value

    @model_validator(mode="after")
    def _check(self) -> CLEGridSpec:
        from xling.cle.mappers import check_method, seed_of

        labels = [m.name if isinstance(m, MethodEntry) else m for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"methods: a label is used twice: {labels}")
        for entry in self.methods:
            method = entry.method if isinstance(entry, MethodEntry) else entry
            try:
                check_method(method)
            except XlingError as err:
                raise ValueError(str(err)) from None
            if isinstance(entry, MethodEntry):
                from xling.cle.mappers import make_mapper

                try:
                    make_mapper(method, **entry.params)
                except XlingError as err:
                    raise ValueError(str(err)) from None
            if seed_of(method) == "dictionary" and self.train_dict is None:
                raise ValueError(f"method {method!r} needs a training dictionary: set train_dict")
        if (self.vectors is None) == (self.src_vectors is None or self.tgt_vectors is None):
            raise ValueError(
                "give either vectors (a {lang} template) or both src_vectors and tgt_vectors "
                "({pair}/{src}/{tgt} templates)"
            )
        pair_keys = {"pair", "src", "tgt"}
        for field, template, keys in (
            ("vectors", self.vectors, {"lang"}),
            ("src_vectors", self.src_vectors, pair_keys),
            ("tgt_vectors", self.tgt_vectors, pair_keys),
            ("train_dict", self.train_dict, {"pair", "src", "tgt", "size"}),
            ("test_dict", self.test_dict, {"pair", "src", "tgt"}),
        ):
            if template is not None:
                _check_template(field, template, keys)
        from xling.cle.downstream.evaluate import check_task, model_params

        pairs = set(self.pair_list())
        for task, entry in self.tasks().items():
            _check_template(f"downstream.{task}.data", entry.data, pair_keys)
            try:
                model, _ = check_task(task, entry.model, entry.metric)
                model_params(model, entry.params)
            except XlingError as err:
                raise ValueError(f"downstream.{task}: {err}") from None
            unknown = [p for p in entry.pairs or [] if p not in pairs]
            if unknown:
                raise ValueError(f"downstream.{task}.pairs: {unknown[0]!r} is not a pair of the grid (pairs:)")
        check_axes(self)
        return self

    def tasks(self) -> dict[str, DownstreamEntry]:
        """Every downstream task as a ``DownstreamEntry``."""
        return dict(self.downstream)

    def conventions(self) -> Protocol:
        """The BLI conventions of every unit (``xling.cle.protocol.Protocol``): the spec's protocol, or xling's
        defaults with CSLS, with the options written in the spec on top."""
        from xling.cle.protocol import resolve

        keys = ("max_vocab", "case", "retrieval", "convention", "oov")
        given = {k: getattr(self, k) for k in keys if self.protocol is None or k in self.model_fields_set}
        return resolve(self.protocol, {"retrieval": "csls"}, **given)

    def entries(self) -> list[MethodEntry]:
        """Every method as a ``MethodEntry``."""
        return [m if isinstance(m, MethodEntry) else MethodEntry(method=m) for m in self.methods]

    def pair_list(self) -> list[str]:
        """The language pairs: the spec's list, or the paper's 28 pairs."""
        if self.pairs == "paper":
            from xling.cle.fetch import bli_pairs

            return bli_pairs()
        return list(self.pairs)


def _check_template(field: str, template: str, keys: set[str]) -> None:
    import string

    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in keys:
            raise ValueError(f"{field}: unknown placeholder {{{name}}}; expected some of {sorted(keys)}")


def _fill(pair: str) -> dict[str, str]:
    src, tgt = pair.split("-")
    return {"pair": pair, "src": src, "tgt": tgt}


def _unit_files(spec: CLEGridSpec, pair: str, size: str | None) -> tuple[str, str, str | None, str]:
    """The (unresolved) vectors and dictionary files of one (pair, size); ``size=None``: no training dictionary."""
    fill = _fill(pair)
    return (
        (spec.src_vectors or spec.vectors).format(lang=fill["src"], **fill),
        (spec.tgt_vectors or spec.vectors).format(lang=fill["tgt"], **fill),
        spec.train_dict.format(size=size, **fill) if size is not None and spec.train_dict else None,
        spec.test_dict.format(**fill),
    )


def check_axes(spec: CLEGridSpec) -> None:
    """Every axis of the grid changes an input; ``ValueError`` naming the axis and the two values otherwise.

    Two sizes that read the same training dictionary, two pairs that read the same files, a ``vectors`` template
    without ``{lang}`` (both sides one file) or two method entries with the same method and parameters would report
    one result several times under different names.
    """
    from xling.cle.mappers import seed_of

    seen: dict[tuple, str] = {}
    for entry in spec.entries():
        ident = (entry.method, json.dumps(entry.params, sort_keys=True, default=str))
        if ident in seen:
            raise ValueError(f"methods: {seen[ident]!r} and {entry.name!r} are the same method with the same params")
        seen[ident] = entry.name
    if spec.vectors is not None and "lang" not in _placeholders(spec.vectors):
        raise ValueError("vectors: the template has no {lang}: source and target would read the same file")
    with_dict = any(seed_of(e.method) == "dictionary" for e in spec.entries())
    by_files: dict[tuple, str] = {}
    for pair in spec.pair_list():
        if with_dict:
            by_dict: dict[str | None, str] = {}
            for size in spec.sizes:
                path = _unit_files(spec, pair, size)[2]
                if path in by_dict:
                    raise ValueError(
                        f"sizes: {by_dict[path]} and {size} read the same training dictionary ({path}) for {pair}: "
                        "put {size} in train_dict, or list one size"
                    )
                by_dict[path] = size
        files = _unit_files(spec, pair, spec.sizes[0] if with_dict else None)
        if files in by_files:
            raise ValueError(
                f"pairs: {by_files[files]} and {pair} read the same vectors and dictionaries: put {{pair}} (or "
                "{src}, {tgt}) in the file templates"
            )
        by_files[files] = pair


def _placeholders(template: str) -> set[str]:
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_grid_spec(path: str | Path) -> CLEGridSpec:
    """Read and validate a CLE grid spec (YAML); relative file templates become relative to the spec's folder."""
    from xling.config import load_spec

    spec = load_spec(CLEGridSpec, path)
    folder = Path(path).resolve().parent
    for name in ("vectors", "src_vectors", "tgt_vectors", "train_dict", "test_dict"):
        template = getattr(spec, name)
        if template is not None and not Path(template).expanduser().is_absolute():
            setattr(spec, name, str(folder / template))
    spec.downstream = {
        task: entry.model_copy(update={"data": str(folder / entry.data)})
        if not Path(entry.data).expanduser().is_absolute()
        else entry
        for task, entry in spec.tasks().items()
    }
    return spec


# --- units ------------------------------------------------------------------------------------------------------------

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


def units(spec: CLEGridSpec) -> list[CLEUnit | DownstreamUnit]:
    """Every (method, pair, size) BLI unit with its resolved files (methods without a dictionary get size
    ``none``), then every downstream unit: (BLI unit, task) for the pairs the task evaluates."""
    from xling.cle.mappers import seed_of

    out: list[CLEUnit | DownstreamUnit] = []
    for pair in spec.pair_list():
        fill = _fill(pair)
        for entry in spec.entries():
            with_dict = seed_of(entry.method) == "dictionary"
            for size in spec.sizes if with_dict else [NO_SIZE]:
                src_vectors, tgt_vectors, train_dict, test_dict = _unit_files(spec, pair, size if with_dict else None)
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
                        fill["src"],
                        fill["tgt"],
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
        data = _path(entry.data.format(**_fill(unit.pair)))
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


#: Tasks whose models draw random numbers (CLIR's rankings are deterministic: one run whatever the seeds).
SEEDED_TASKS = ("cldc", "xnli")


def publish_downstream(spec: CLEGridSpec, store: Store, unit: DownstreamUnit, src, tgt) -> None:
    """Evaluate one downstream unit on mapped spaces (every seed) and publish its ``result.json``."""
    from xling.cle.downstream.evaluate import evaluate_downstream

    entry = spec.tasks()[unit.task]
    data = task_data(spec, unit)
    rows, result = [], None
    for seed in unit.seeds if unit.task in SEEDED_TASKS else unit.seeds[:1]:
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


def workload(spec: CLEGridSpec) -> Workload:
    """CLE units run one pair per job (its vectors read once), each unit failing on its own."""
    per_pair = len(spec.entries()) * len(spec.sizes)
    return Workload(
        cle_work,
        spec,
        chunk=lambda u: per_pair * (1 if u.stage == STAGE else max(1, len(spec.downstream))),
        cpus=spec.executor.cpus_per_unit,
        isolated=lambda u: True,
    )


def store_for(spec: CLEGridSpec, *, create: bool = True) -> Store:
    """The store of a spec's output folder (``create=False``: only read it, create nothing)."""
    return Store(Path(spec.output) / "store", create=create)


def stages(spec: CLEGridSpec) -> list[str]:
    return [STAGE, DOWNSTREAM_STAGE] if spec.downstream else [STAGE]


def status(spec: CLEGridSpec) -> list[StageStatus]:
    """Done / failed / pending units and the last error of each failed one, per stage (creates nothing)."""
    return grid_status(units(spec), stages(spec), store_for(spec, create=False))


def run_grid(spec: CLEGridSpec, *, console=None, progress: bool = True) -> pd.DataFrame:
    """Run the unfinished units into ``OUTPUT/store`` on the spec's executor and write the tables under
    ``OUTPUT/tables``; return the results table."""
    from xling.io import claim_dir
    from xling.provenance import write_run_record

    out = claim_dir(spec.output, "store/", "slurm/", "tables/", "figures/", "run.json", "report.html")
    todo = units(spec)
    store = store_for(spec)
    run_units(
        todo,
        stages(spec),
        workload(spec),
        store,
        spec.executor,
        spec.output,
        max_retries=spec.max_retries,
        console=console,
        progress=progress,
    )
    tables = results_tables(spec)
    table = tables["cle_results"]
    write_tables(tables, out / "tables")
    write_run_record(
        out,
        config=spec,
        seed=spec.seed,
        units=len(table),
        done=int((table["status"] == "done").sum()),
        errors=int((table["status"] == "error").sum()),
    )
    return table


# --- tables -----------------------------------------------------------------------------------------------------------


def _bli_units(todo: list) -> list[CLEUnit]:
    return [u for u in todo if isinstance(u, CLEUnit)]


def results_table(spec: CLEGridSpec, store: Store, todo: list) -> pd.DataFrame:
    """One row per BLI unit of the spec: its result, or ``status=error`` with the last error, or ``missing``."""
    rows = []
    for unit in _bli_units(todo):
        key = unit.key
        row: dict[str, Any] = {
            "method": unit.label,
            "pair": unit.pair,
            "src": unit.src,
            "tgt": unit.tgt,
            "size": unit.size,
        }
        if store.done(key):
            result = json.loads((store.result_dir(key) / "result.json").read_text())
            row.update({k: result[k] for k in ("p1", "p5", "p10", "mrr", "coverage", "n")})
            row.update(
                train_pairs=result["mapping"].get("train_pairs"),
                fit_seconds=result["mapping"]["fit_seconds"],
                failed=bool(result["mrr"] < spec.fail_mrr),
                status="done",
                error=None,
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


def results_tables(spec: CLEGridSpec) -> dict[str, pd.DataFrame]:
    """Every results table of the grid from its store: ``cle_results``, the summaries and (with a ``downstream``
    section) ``cle_downstream`` and ``cle_downstream_seeds``."""
    todo, store = units(spec), store_for(spec)
    table = results_table(spec, store, todo)
    tables = {"cle_results": table, **summary_tables(table, spec.fail_mrr)}
    if spec.downstream:
        tables["cle_downstream"], tables["cle_downstream_seeds"] = downstream_tables(store, todo)
    return tables


def summary_tables(table: pd.DataFrame, fail_mrr: float) -> dict[str, pd.DataFrame]:
    """Method x pair matrices of MRR and P@1 (with the mean over pairs) and per-method averages and failures."""
    done = table[table["status"] == "done"]
    out = {}
    for metric in ("mrr", "p1"):
        matrix = done.pivot_table(index=["method", "size"], columns="pair", values=metric, aggfunc="first")
        matrix["mean"] = matrix.mean(axis=1)
        out[f"cle_{metric}_matrix"] = matrix.reset_index()
    groups = table.groupby(["method", "size"], sort=False)
    averages = groups.apply(
        lambda g: pd.Series(
            {
                "mrr_mean": g.loc[g.status == "done", "mrr"].mean(),
                "mrr_sd": g.loc[g.status == "done", "mrr"].std(),
                "p1_mean": g.loc[g.status == "done", "p1"].mean(),
                "p1_sd": g.loc[g.status == "done", "p1"].std(),
                "pairs_done": int((g.status == "done").sum()),
                "failures": int(g.loc[g.status == "done", "failed"].sum()),
                "errors": int((g.status == "error").sum()),
                "fail_mrr": fail_mrr,
            }
        ),
        include_groups=False,
    )
    counts = ["pairs_done", "failures", "errors"]
    averages[counts] = averages[counts].astype(int)
    out["cle_averages"] = averages.reset_index()
    return out


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Each table as ``NAME.csv``, written atomically."""
    from xling.io import atomic_file

    for name, frame in tables.items():
        with atomic_file(folder / f"{name}.csv") as fh:
            frame.to_csv(fh, index=False)


def recorded_conventions(spec: CLEGridSpec) -> dict[str, list]:
    """The BLI conventions the finished units ran with, read from their records (retrieval, convention, OOV,
    case, vectors read): each a sorted list of the values found (more than one only in a mixed store)."""
    store = store_for(spec)
    found: dict[str, set] = {}
    for unit in _bli_units(units(spec)):
        if store.done(unit.key):
            result = json.loads((store.result_dir(unit.key) / "result.json").read_text())
            conv = result.get("conventions", {})
            values = {
                "retrieval": result.get("retrieval"),
                "counting convention": result.get("convention"),
                "OOV": result.get("oov"),
                "case": conv.get("case"),
                "max vocabulary": conv.get("max_vocab"),
                "protocol": conv.get("name"),
            }
            for k, v in values.items():
                if v is not None:
                    found.setdefault(k, set()).add(v)
    return {k: sorted(v, key=str) for k, v in found.items()}


def missing_inputs(spec: CLEGridSpec) -> list[str]:
    """Every input file or folder of the grid that is not there (vectors, dictionaries, downstream folders)."""
    todo = units(spec)
    paths: dict[str, None] = {}
    for unit in todo:
        if isinstance(unit, CLEUnit):
            for path in (unit.src_vectors, unit.tgt_vectors, unit.train_dict, unit.test_dict):
                if path and not Path(path).is_file():
                    paths[path] = None
        elif not Path(unit.data).is_dir():
            paths[unit.data] = None
    return list(paths)


def plan_summary(spec: CLEGridSpec) -> dict:
    """What ``xling grid plan`` shows for a CLE grid, offline: units per stage and how many are done, the
    downstream tasks with their pairs, and which input files are missing."""
    todo = units(spec)
    store = store_for(spec, create=False)  # planning creates no folder
    by_stage = {
        name: {
            "units": sum(u.stage == name for u in todo),
            "done": sum(store.done(u.key) for u in todo if u.stage == name),
        }
        for name in stages(spec)
    }
    return {
        "methods": len(spec.entries()),
        "pairs": len(spec.pair_list()),
        "sizes": len(spec.sizes),
        "downstream": {
            task: {"pairs": entry.pairs or spec.pair_list(), "seeds": entry.seeds or [spec.seed]}
            for task, entry in spec.tasks().items()
        },
        "stages": by_stage,
        "missing_inputs": missing_inputs(spec),
    }
