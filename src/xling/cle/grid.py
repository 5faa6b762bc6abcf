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
  ``{src}``, ``{tgt}``, or entries with ``data``, ``model``, ``metric``, ``params``): every mapped pair is also
  evaluated on those tasks, in the same unit while its mapped spaces are in memory (``xling.cle.downstream``), and
  ``OUT/tables/cle_downstream.csv`` has one row per unit and task.

Methods without a dictionary (``vecmap-identical``, ``vecmap-unsup``) run once per pair; their size is ``none``.
``protocol: glavas2019`` (or ``vecmap``, ``muse``; ``xling.cle.protocol``) fixes how vectors and dictionaries are
read and how BLI counts; ``max_vocab``, ``case``, ``retrieval``, ``convention`` and ``oov`` written in the spec
override it (recorded). ``cache: false`` turns off the ``.xling-cache`` copies beside the vectors files.
Paths in the spec are templates relative to the spec file's folder: ``vectors`` with ``{lang}`` (one file per
language), or ``src_vectors``/``tgt_vectors`` with ``{pair}``, ``{src}``, ``{tgt}`` (one pair of files per pair,
as ``xling cle simulate`` writes them); dictionaries with ``{pair}``, ``{src}``, ``{tgt}`` and ``{size}``.
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
    (``xling cle downstream``'s options)."""

    data: str
    model: str | None = None
    metric: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    topics: list[str] | None = None
    stopwords: Literal["auto", "file", "nltk", "none"] = "auto"


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
    downstream: dict[Literal["cldc", "xnli", "clir"], str | DownstreamEntry] = Field(default_factory=dict)

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

        for task, entry in self.tasks().items():
            _check_template(f"downstream.{task}.data", entry.data, pair_keys)
            try:
                model, _ = check_task(task, entry.model, entry.metric)
                model_params(model, entry.params)
            except XlingError as err:
                raise ValueError(f"downstream.{task}: {err}") from None
        return self

    def tasks(self) -> dict[str, DownstreamEntry]:
        """Every downstream task as a ``DownstreamEntry``."""
        return {t: e if isinstance(e, DownstreamEntry) else DownstreamEntry(data=e) for t, e in self.downstream.items()}

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


def units(spec: CLEGridSpec) -> list[CLEUnit]:
    """Every (method, pair, size) unit with its resolved files; methods without a dictionary get size ``none``."""
    from xling.cle.mappers import seed_of

    out = []
    for pair in spec.pair_list():
        src, tgt = pair.split("-")
        for entry in spec.entries():
            with_dict = seed_of(entry.method) == "dictionary"
            for size in spec.sizes if with_dict else [NO_SIZE]:
                fill = dict(pair=pair, src=src, tgt=tgt, size=size)
                files = dict(
                    src_vectors=_path((spec.src_vectors or spec.vectors).format(lang=src, **fill)),
                    tgt_vectors=_path((spec.tgt_vectors or spec.vectors).format(lang=tgt, **fill)),
                    train_dict=_path(spec.train_dict.format(**fill)) if with_dict else None,
                    test_dict=_path(spec.test_dict.format(**fill)),
                )
                payload = unit_payload(
                    spec,
                    {"method": entry.method, "params": entry.params, "pair": pair, "size": size, "fill": fill, **files},
                )
                out.append(
                    CLEUnit(unit_key(payload), entry.name, entry.method, entry.params, pair, src, tgt, size, **files)
                )
    return out


def _path(text: str) -> str:
    return str(Path(text).expanduser().resolve())


def unit_payload(spec: CLEGridSpec, fields: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines a unit's result (its store key is a hash of this)."""
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
    if spec.downstream:  # the tasks and their data; grids without them keep their earlier keys
        payload["downstream"] = {
            task: {**entry.model_dump(), "data": _path(entry.data.format(**fields["fill"]))}
            for task, entry in spec.tasks().items()
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


def _vectors(spec: CLEGridSpec, path: str):
    from xling.cle.vectors import read_vectors

    options = spec.conventions().vector_options()
    key = (path, spec.cache, *sorted(options.items()))
    if key not in _VECTORS:
        if len(_VECTORS) >= 2:
            _VECTORS.clear()
        _VECTORS[key] = read_vectors(path, **options, cache=spec.cache)
    return _VECTORS[key]


def run_unit(spec: CLEGridSpec, unit: CLEUnit) -> dict[str, Any]:
    """Map and evaluate one unit; the pair's vectors stay loaded for the worker's next unit."""
    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.mappers.run import map_embeddings

    conv = spec.conventions()
    x, z = _vectors(spec, unit.src_vectors), _vectors(spec, unit.tgt_vectors)
    train = read_dictionary(unit.train_dict, **conv.dictionary_options()) if unit.train_dict else None
    test = read_dictionary(unit.test_dict, **conv.dictionary_options())
    mapped = map_embeddings(
        unit.method, x, z, train, params=unit.params, seed=spec.seed, protocol=conv if spec.protocol else None
    )
    result = bli(mapped.src, mapped.tgt, test, inplace=True, **conv.bli_options()).to_dict()
    result = {**result, "mapping": mapped.info}
    if spec.downstream:
        result["downstream"] = [
            downstream_row(spec, unit, task, entry, mapped.src, mapped.tgt) for task, entry in spec.tasks().items()
        ]
    return result


_TASK_DATA: dict[tuple, Any] = {}  # this worker's downstream data of the current pair


def downstream_row(spec: CLEGridSpec, unit: CLEUnit, task: str, entry: DownstreamEntry, src, tgt) -> dict[str, Any]:
    """One downstream task on a unit's mapped spaces (the pair's data loaded once per worker): a result row."""
    from xling.cle.downstream.evaluate import evaluate_downstream, load_task_data

    folder = entry.data.format(pair=unit.pair, src=unit.src, tgt=unit.tgt)
    key = (task, folder, unit.src, unit.tgt, tuple(entry.topics or ()))
    if key not in _TASK_DATA:
        if len(_TASK_DATA) >= len(spec.downstream):
            _TASK_DATA.clear()
        _TASK_DATA[key] = load_task_data(task, folder, unit.src, unit.tgt, topics=entry.topics)
    result = evaluate_downstream(
        task,
        folder,
        unit.src,
        unit.tgt,
        src,
        tgt,
        loaded=_TASK_DATA[key],
        stopwords=entry.stopwords,
        model=entry.model,
        metric=entry.metric,
        params=entry.params,
        seed=spec.seed,
    )
    return {**result.row(), "seconds": round(result.seconds, 3), "params": result.params}


def cle_work(spec: CLEGridSpec, store: Store, batch: list[CLEUnit]) -> None:
    """The grid engine's work for CLE units: map, evaluate, publish ``result.json`` (one unit per call)."""
    for unit in batch:
        start = time.perf_counter()
        result = run_unit(spec, unit)
        result["seconds"] = round(time.perf_counter() - start, 3)
        with store.writing(
            unit.key, {"unit": {k: getattr(unit, k) for k in ("label", "method", "pair", "size")}}
        ) as tmp:
            (tmp / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def workload(spec: CLEGridSpec) -> Workload:
    """CLE units run one pair per job (its vectors read once), each unit failing on its own."""
    per_pair = len(spec.entries()) * len(spec.sizes)
    return Workload(cle_work, spec, chunk=lambda u: per_pair, cpus=spec.executor.cpus_per_unit, isolated=lambda u: True)


def store_for(spec: CLEGridSpec, *, create: bool = True) -> Store:
    """The store of a spec's output folder (``create=False``: only read it, create nothing)."""
    return Store(Path(spec.output) / "store", create=create)


def status(spec: CLEGridSpec) -> list[StageStatus]:
    """Done / failed / pending units and the last error of each failed one (creates nothing)."""
    return grid_status(units(spec), [STAGE], store_for(spec, create=False))


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
        [STAGE],
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
        units=len(todo),
        done=int((table["status"] == "done").sum()),
        errors=int((table["status"] == "error").sum()),
    )
    return table


# --- tables -----------------------------------------------------------------------------------------------------------


def results_table(spec: CLEGridSpec, store: Store, todo: list[CLEUnit]) -> pd.DataFrame:
    """One row per unit of the spec: its BLI result, or ``status=error`` with the last error, or ``missing``."""
    rows = []
    for unit in todo:
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


def downstream_table(store: Store, todo: list[CLEUnit]) -> pd.DataFrame:
    """One row per finished unit and downstream task: method, pair, size, task, model, metric, score, n, coverage,
    coverage_src, then every metric the task computed."""
    rows = []
    for unit in todo:
        if store.done(unit.key):
            result = json.loads((store.result_dir(unit.key) / "result.json").read_text())
            for row in result.get("downstream", []):
                extra = {k: v for k, v in row.items() if k not in CLE_DOWNSTREAM_COLUMNS and k != "params"}
                rows.append(
                    {
                        "method": unit.label,
                        "pair": unit.pair,
                        "size": unit.size,
                        **{k: row[k] for k in CLE_DOWNSTREAM_COLUMNS[3:]},
                        **extra,
                    }
                )
    return pd.DataFrame(rows, columns=None if rows else CLE_DOWNSTREAM_COLUMNS)


def results_tables(spec: CLEGridSpec) -> dict[str, pd.DataFrame]:
    """Every results table of the grid from its store: ``cle_results``, the summaries and (with a ``downstream``
    section) ``cle_downstream``."""
    todo, store = units(spec), store_for(spec)
    table = results_table(spec, store, todo)
    tables = {"cle_results": table, **summary_tables(table, spec.fail_mrr)}
    if spec.downstream:
        tables["cle_downstream"] = downstream_table(store, todo)
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


def plan_summary(spec: CLEGridSpec) -> dict:
    """What ``xling grid plan`` shows for a CLE grid: units and how many are done."""
    todo, store = units(spec), store_for(spec, create=False)
    return {
        "methods": len(spec.entries()),
        "pairs": len(spec.pair_list()),
        "sizes": len(spec.sizes),
        "downstream": sorted(spec.downstream),
        "stages": {STAGE: {"units": len(todo), "done": sum(store.done(u.key) for u in todo)}},
    }
