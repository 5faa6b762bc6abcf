"""Whole studies, end to end: run a grid on the engine, write its results tables, analyse, report.

The top of the layers (config → units → store → results tables → analysis → report): the CLI commands and the
quickstart call these, so every way of running a study goes through the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xling.errors import on_interrupt
from xling.grid.engine import StageStatus


@dataclass
class TransferStudy:
    """A finished (or partly finished) transfer grid: its status, results tables and analysis."""

    status: list[StageStatus]
    results: Path
    seeds: Path
    n_cells: int
    analysis: Any = None
    report: Path | None = None


def run_transfer_study(spec: Any, *, analyze: bool = True, console=None, progress: bool = True) -> TransferStudy:
    """Run a transfer grid's missing units, export ``OUTPUT/results.csv`` (release schema) and
    ``results.seeds.csv``, then (``analyze``) analyse them into ``OUTPUT/analysis/`` with the models' family and
    size from the spec."""
    from xling.analysis.meta import spec_for_models
    from xling.analysis.results import read_table
    from xling.grid.results import export
    from xling.grid.run import run_grid, store_for
    from xling.grid.units import make_plan
    from xling.report import run_analysis

    plan = make_plan(spec)
    with on_interrupt(lambda: _kept([*plan.train, *plan.score], store_for(spec, create=False))):
        final = run_grid(spec, console=console, progress=progress, plan=plan)
        out = Path(spec.output)
        table, seeds, n = export(plan, store_for(spec), out / "results.csv")
        study = TransferStudy(final, table, seeds, n)
        if analyze and n:
            study.analysis = run_analysis(
                read_table(table), out / "analysis", spec_for_models(spec.models), source=str(table), input_path=table
            )
            study.report = out / "analysis" / "report.html"
    return study


def _kept(units: list, store: Any) -> str:
    """What a Ctrl-C keeps of a grid: its finished units, and how to go on."""
    done = store.done_keys()
    n = sum(u.key in done for u in units)
    return f"{n} of {len(units)} finished units are kept in {store.root}; rerun the same command to resume"


@dataclass
class CLEStudy:
    """A finished (or partly finished) CLE grid: its tables, status and report."""

    tables: dict[str, pd.DataFrame]
    status: list[StageStatus]
    report: Path
    notes: list[str] = field(default_factory=list)


#: The BLI conventions the report states, as recorded by the units (``xling.cle.grid.recorded_conventions``).
CONVENTION_FACTS = ("protocol", "retrieval", "counting convention", "OOV", "case", "max vocabulary")


def run_cle_study(spec: Any, *, console=None, progress: bool = True) -> CLEStudy:
    """Run a CLE grid's missing units, then write ``OUTPUT/tables`` (with downstream tasks also
    ``cle_bli_downstream_correlation`` and ``cle_method_ranks``) and ``OUTPUT/report.html``."""
    from xling.cle.grid import store_for, units

    with on_interrupt(lambda: _kept(units(spec), store_for(spec, create=False))):
        return _cle_study(spec, console, progress)


def _cle_study(spec: Any, console, progress: bool) -> CLEStudy:
    """The steps of ``run_cle_study``: run, tables, analysis, report."""
    from xling.cle.grid import recorded_conventions, results_tables, run_grid, status, write_tables
    from xling.report.cle import write_cle_report

    run_grid(spec, console=console, progress=progress)
    tables = results_tables(spec)
    table = tables["cle_results"]
    if "cle_downstream" in tables:  # how BLI and the downstream tasks rank the methods
        from xling.analysis.cle import bli_downstream_correlation, method_ranks

        bli = table[table["status"] == "done"]
        down = tables["cle_downstream"]
        down = down[down["status"] == "done"]  # failed task cells are listed in cle_downstream, not correlated
        analysis = {
            "cle_bli_downstream_correlation": bli_downstream_correlation(bli, down, seed=spec.seed),
            "cle_method_ranks": method_ranks(bli, down),
        }
        write_tables(analysis, Path(spec.output) / "tables")
        tables.update(analysis)
    final = status(spec)
    n_failed = sum(len(st.failed) for st in final)
    notes = [f"{n_failed} unit(s) failed; `xling grid status` shows their last error"] if n_failed else []
    ran = recorded_conventions(spec)  # what the units ran with, from their records (not the spec's defaults)
    facts = [
        ("units", len(table)),
        ("done", int((table["status"] == "done").sum())),
        ("failed units", n_failed),
        *((what, ", ".join(map(str, ran[what])) if what in ran else "no unit finished") for what in CONVENTION_FACTS),
        ("method failure", f"MRR < {spec.fail_mrr}"),
    ]
    report = write_cle_report(
        tables,
        Path(spec.output),
        f"{len(spec.entries())} method(s) × {len(spec.pair_list())} pair(s) × {len(spec.sizes)} dictionary size(s)",
        facts,
        notes,
    )
    return CLEStudy(tables, final, report, notes)
