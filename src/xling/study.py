"""Whole studies, end to end: run a grid on the engine, write its results tables, analyse, report.

The top of the layers (config → units → store → results tables → analysis → report): the CLI commands and the
quickstart call these, so every way of running a study goes through the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xling.grid.engine import StageStatus


@dataclass
class CLEStudy:
    """A finished (or partly finished) CLE grid: its tables, status and report."""

    tables: dict[str, pd.DataFrame]
    status: list[StageStatus]
    report: Path
    notes: list[str] = field(default_factory=list)


def run_cle_study(spec: Any, *, console=None, progress: bool = True) -> CLEStudy:
    """Run a CLE grid's missing units, then write ``OUTPUT/tables`` and ``OUTPUT/report.html``."""
    from xling.cle.grid import run_grid, status, summary_tables
    from xling.report.cle import write_cle_report

    table = run_grid(spec, console=console, progress=progress)
    tables = {"cle_results": table, **summary_tables(table, spec.fail_mrr)}
    final = status(spec)
    n_failed = sum(len(st.failed) for st in final)
    notes = [f"{n_failed} unit(s) failed; `xling grid status` shows their last error"] if n_failed else []
    facts = [("units", len(table)), ("done", int((table["status"] == "done").sum())), ("failed units", n_failed),
             ("retrieval", spec.retrieval), ("counting convention", spec.convention), ("OOV", spec.oov),
             ("case", spec.case), ("max vocabulary", spec.max_vocab), ("method failure", f"MRR < {spec.fail_mrr}")]
    report = write_cle_report(tables, Path(spec.output), f"{len(spec.entries())} method(s) × "
                              f"{len(spec.pair_list())} pair(s) × {len(spec.sizes)} dictionary size(s)", facts, notes)
    return CLEStudy(tables, final, report, notes)
