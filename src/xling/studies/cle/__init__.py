"""The CLE grid (the protocol of Glavaš et al., 2019) as a grid kind: methods × language pairs × training-dictionary
sizes, each mapped pair evaluated with BLI and, with a ``downstream:`` section, on downstream tasks.

``xling grid run SPEC.yaml`` (or ``xling cle grid``) runs every unit not finished yet on the grid engine, storing
each result atomically in ``OUTPUT/store``, then writes the results tables (``xling.studies.cle.tables``):

- ``OUTPUT/cle_results.csv``: one row per (method, pair, size): p1, p5, p10, mrr, coverage, n, train_pairs,
  fit_seconds, failed (MRR below ``fail_mrr``), status (``done`` / ``error`` / ``missing``), error, and the
  conventions the unit ran with;
- with a ``downstream:`` section (``{cldc: DIR, xnli: DIR, clir: DIR}``, folder templates with ``{pair}``,
  ``{src}``, ``{tgt}``, or entries with ``data``, ``model``, ``metric``, ``params``, ``pairs`` and ``seeds``): each
  (unit, task) is a downstream unit of its own (stage ``downstream``), evaluated by the BLI unit's worker on the
  mapped spaces before BLI normalises them, so it scores what ``xling cle downstream`` scores on the same map; a
  task whose folder is missing or broken fails only its own units (the BLI result stays) and is retried by a rerun.
  ``OUTPUT/cle_downstream.csv`` has one row per (unit, task): the mean and standard deviation over the task's
  seeds; ``cle_downstream_seeds.csv`` one row per seed;

and its analysis and report in ``OUTPUT/analysis/`` (``xling.analysis.cle.analyze_cle``: method × pair matrices,
averages over pairs, BLI-vs-downstream correlations and ranks), as ``xling analyze OUTPUT/cle_results.csv`` writes
them. Methods without a dictionary (``vecmap-identical``, ``vecmap-unsup``, ``muse``, ``icp``, ``gwa``) run once per
pair; their size is ``none``. ``protocol: glavas2019`` (or ``vecmap``, ``muse``; ``xling.cle.protocol``) fixes how
vectors and dictionaries are read and how BLI counts; ``max_vocab``, ``case``, ``retrieval``, ``convention`` and
``oov`` written in the spec override it (recorded). ``cache: false`` turns off the ``.npy`` copies of the vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from xling.grid.jobs import Workload
from xling.grid.store import Store
from xling.studies.base import Study
from xling.studies.cle.spec import CLEGridSpec, resolve_paths
from xling.studies.cle.tables import downstream_tables, missing_inputs, results_table
from xling.studies.cle.units import DOWNSTREAM_STAGE, STAGE, cle_work, make_units

RESULTS = ("cle_results", "cle_downstream", "cle_downstream_seeds")


class CLEKind:
    """Methods × pairs × dictionary sizes: BLI and downstream tasks on every mapped pair."""

    name = "cle"
    spec_class = CLEGridSpec

    def detect(self, data: dict[str, Any]) -> bool:
        return "methods" in data

    def resolve_paths(self, spec: CLEGridSpec, folder: Path) -> CLEGridSpec:
        return resolve_paths(spec, folder)

    def stages(self, spec: CLEGridSpec) -> list[str]:
        return [STAGE, DOWNSTREAM_STAGE] if spec.downstream else [STAGE]

    def units(self, spec: CLEGridSpec) -> list:
        return make_units(spec)

    def job_shape(self, spec: CLEGridSpec) -> Workload:
        """One pair per job (its vectors read once), each unit failing on its own."""
        per_pair = len(spec.entries()) * len(spec.sizes)
        return Workload(
            cle_work,
            spec,
            chunk=lambda u: per_pair * (1 if u.stage == STAGE else max(1, len(spec.downstream))),
            cpus=spec.executor.cpus_per_unit,
            isolated=lambda u: True,
        )

    def more_units(self, spec: CLEGridSpec, store: Store, units: list) -> list:
        return []

    def results(self, spec: CLEGridSpec, store: Store, units: list) -> dict[str, pd.DataFrame]:
        tables = {"cle_results": results_table(spec, store, units)}
        if spec.downstream:
            tables["cle_downstream"], tables["cle_downstream_seeds"] = downstream_tables(store, units)
        return tables

    def report(self, study: Study, out: Path) -> None:
        """The analysis and report in ``OUTPUT/analysis/``."""
        from xling.report.cle import run_cle_analysis

        inputs = {k: v for k, v in study.written.items() if k in ("cle_results", "cle_downstream")}
        study.analysis = run_cle_analysis(
            study.tables["cle_results"],
            out / "analysis",
            study.tables.get("cle_downstream"),
            seed=study.spec.seed,
            inputs=inputs,
        )
        study.report = out / "analysis" / "report.html"
        study.notes += study.analysis.notes

    def summary(self, spec: CLEGridSpec, store: Store) -> dict[str, Any]:
        """Units per stage and how many are done, the downstream tasks with their pairs, and which input files are
        missing; offline."""
        todo = make_units(spec)
        missing = missing_inputs(todo)
        lines = [
            f"downstream {task}: {len(pairs)} pair(s) ({', '.join(pairs)}), seeds {entry.seeds or [spec.seed]}"
            for task, entry in spec.tasks().items()
            for pairs in [entry.pairs or spec.pair_list()]
        ]
        if missing:
            lines.append(f"{len(missing)} input file(s) or folder(s) missing, e.g.:")
            lines += [f"  {path}" for path in missing[:10]]
            if len(missing) > 10:
                lines.append(f"  ... and {len(missing) - 10} more (--json lists them all)")
        else:
            lines.append("every input file is there")
        return {
            "title": (
                f"CLE grid: {len(spec.entries())} method(s), {len(spec.pair_list())} pair(s), {len(spec.sizes)} size(s)"
            ),
            "methods": len(spec.entries()),
            "pairs": len(spec.pair_list()),
            "sizes": len(spec.sizes),
            "downstream": {
                task: {"pairs": entry.pairs or spec.pair_list(), "seeds": entry.seeds or [spec.seed]}
                for task, entry in spec.tasks().items()
            },
            "stages": {
                name: {
                    "units": sum(u.stage == name for u in todo),
                    "done": sum(store.done(u.key) for u in todo if u.stage == name),
                }
                for name in self.stages(spec)
            },
            "missing_inputs": missing,
            "lines": lines,
        }

    def show(self, study: Study, console: Any) -> None:
        """The mean over pairs per method, where the tables and report are."""
        from xling.report.terminal import print_cle_averages

        if study.analysis is not None:
            print_cle_averages(study.analysis.tables["cle_averages"], console)
        console.print(f"results: {', '.join(str(p) for p in study.written.values())}")
        for note in study.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        if study.report is not None:
            console.print(f"report: {study.report}")

    def json_summary(self, study: Study) -> dict[str, Any]:
        from xling.jsonable import records

        averages = study.analysis.tables["cle_averages"] if study.analysis is not None else None
        return {
            "averages": records(averages) if averages is not None else None,
            "tables": {name: str(path) for name, path in study.written.items()},
            "report": str(study.report) if study.report else None,
            "notes": study.notes,
        }


KIND = CLEKind()
