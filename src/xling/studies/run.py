"""One way through every study: spec → units → engine → store → results tables → analysis → report.

``load_study`` reads a spec file of any kind (``kind:``, or told apart by its fields) and makes its relative paths
relative to the spec file's folder, the same rule for every kind. ``run_study`` cleans what killed workers left,
records the run, makes the units once, runs what is missing (round after round for an adaptive grid), writes the
results tables, analyses them and writes the report. ``plan_summary``, ``status``, ``store_for``, ``workload`` and
``run_grid`` are the same five verbs for every kind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from xling.config import load_yaml, parse_spec
from xling.errors import XlingError, on_interrupt
from xling.grid.engine import StageStatus, Unit, grid_status, run_units
from xling.grid.jobs import Workload
from xling.grid.store import Store
from xling.registry import GRID_KINDS
from xling.studies.base import GridKind, Study

#: What a grid's output folder holds that xling writes and manages (``xling.io.claim_dir``).
OWN_OUTPUTS = ("store/", "runs/", "slurm/")


def kind_of(spec: Any) -> GridKind:
    """The grid kind whose spec class ``spec`` is."""
    for name in GRID_KINDS.names():
        kind = GRID_KINDS.load(name)
        if isinstance(spec, kind.spec_class):
            return kind
    raise XlingError(f"not a grid spec: {type(spec).__name__}")


def load_study(
    path: str | Path,
    *,
    out: str | Path | None = None,
    executor: str | None = None,
    address: str | None = None,
    max_retries: int | None = None,
) -> Any:
    """Read a grid spec of any kind from ``path``: ``kind:`` names it, else the kind whose fields it has
    (``models:`` a transfer grid, ``methods:`` a CLE grid). Relative paths in the spec are relative to its folder;
    the command-line overrides (``-o`` relative to the working directory) come last."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise XlingError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    data = dict(data)
    name = data.pop("kind", None)
    if name is not None:
        if name not in GRID_KINDS:
            raise XlingError(f"{path}: field 'kind': unknown grid kind {name!r}; expected one of {GRID_KINDS.names()}")
        kind = GRID_KINDS.load(name)
    else:
        found = [GRID_KINDS.load(n) for n in GRID_KINDS.names() if GRID_KINDS.load(n).detect(data)]
        if len(found) != 1:
            raise XlingError(
                f"{path}: not a grid spec of one kind (a transfer grid has 'models:', a CLE grid 'methods:'; "
                "or say which with 'kind:')"
            )
        kind = found[0]
    spec = kind.resolve_paths(parse_spec(kind.spec_class, data, str(path)), Path(path).resolve().parent)
    if out is not None:
        spec.output = str(out)
    if executor:
        spec.executor.kind = executor
    if address:
        spec.executor.address = address
    if max_retries is not None:
        spec.max_retries = max_retries
    return spec


def store_for(spec: Any, *, create: bool = True) -> Store:
    """The store of a spec's output folder (``create=False``: only read it, create nothing)."""
    return Store(Path(spec.output) / "store", create=create)


def workload(spec: Any) -> Workload:
    """How the spec's units run (its kind's job shape)."""
    return kind_of(spec).job_shape(spec)


def status(spec: Any, units: list[Unit] | None = None) -> list[StageStatus]:
    """Done / failed / pending units per stage and the last error of each failed one; creates nothing."""
    kind = kind_of(spec)
    return grid_status(units or kind.units(spec), kind.stages(spec), store_for(spec, create=False))


def plan_summary(spec: Any) -> dict[str, Any]:
    """What ``xling grid plan`` shows: units per stage and how many are done, and what the kind adds (the data a
    transfer grid needs, a CLE grid's missing inputs); offline, and it creates nothing."""
    return {"kind": kind_of(spec).name, **kind_of(spec).summary(spec, store_for(spec, create=False))}


def run_grid(spec: Any, units: list[Unit] | None = None, *, console=None, progress: bool = True) -> list[StageStatus]:
    """Run every unit of ``units`` (default: the spec's) that is not published yet on the spec's executor; the final
    status."""
    kind = kind_of(spec)
    return run_units(
        units or kind.units(spec),
        kind.stages(spec),
        kind.job_shape(spec),
        store_for(spec),
        spec.executor,
        spec.output,
        max_retries=spec.max_retries,
        console=console,
        progress=progress,
    )


def run_study(spec: Any, *, analyze: bool = True, console=None, progress: bool = True) -> Study:
    """Run a study end to end: the missing units, then its results tables, analysis and report.

    A rerun runs only what is missing; Ctrl-C keeps every finished unit and says so.
    """
    from xling.io import check_out_dir, claim_dir
    from xling.provenance import write_run_record

    kind = kind_of(spec)
    check_out_dir(spec.output)
    units = kind.units(spec)  # reads the data (and a design log) but writes nothing: a refusal leaves no folder
    out = claim_dir(spec.output, *OWN_OUTPUTS)
    store = store_for(spec)
    store.remove_stale_tmp()
    digest = spec_digest(spec)
    (out / "runs").mkdir(exist_ok=True)
    write_run_record(
        out / "runs", spec, seed=None, name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{digest}.json", spec_digest=digest
    )
    with on_interrupt(lambda: _kept(units, store)):
        final = run_grid(spec, units, console=console, progress=progress)
        while more := kind.more_units(spec, store, units):
            units = [*units, *more]
            final = run_grid(spec, units, console=console, progress=progress)
    tables = kind.results(spec, store, units)
    study = Study(spec, kind.name, final, tables, write_tables(tables, out))
    if study.n_failed:
        study.notes.append(f"{study.n_failed} unit(s) failed; `xling grid status` shows their last error")
    if analyze:
        kind.report(study, out)
    return study


def write_tables(tables: dict[str, pd.DataFrame], out: Path) -> dict[str, Path]:
    """Each results table as ``OUT/NAME.csv``, written atomically; where each went."""
    from xling.io import atomic_file

    written = {}
    for name, table in tables.items():
        with atomic_file(out / f"{name}.csv") as fh:
            table.to_csv(fh, index=False)
        written[name] = out / f"{name}.csv"
    return written


def spec_digest(spec: Any) -> str:
    """A digest of the spec, for run records."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def _kept(units: list[Unit], store: Store) -> str:
    """What a Ctrl-C keeps of a grid: its finished units, and how to go on."""
    done = store.done_keys()
    n = sum(u.key in done for u in units)
    return f"{n} of {len(units)} finished units are kept in {store.root}; rerun the same command to resume"
