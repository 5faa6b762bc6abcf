"""The transfer grid (the PEFT protocol of Donors and Recipients) as a grid kind.

Units: ``train(model, source cell, seed)`` and ``score(model, base | adapter, every target)``
(``xling.studies.transfer.units``); their work (``work``); the results tables from the store, the per-seed long
table and the release-schema table (``results``); the analysis and report of ``xling analyze``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from xling.config import GridSpec
from xling.grid.jobs import Workload
from xling.grid.store import Store
from xling.studies.base import Study
from xling.studies.transfer.units import Plan, ScoreUnit, TrainUnit, make_plan, unit_counts

STAGES = ["train", "score"]


class TransferKind:
    """Models × source cells × seeds trained, the base and every adapter scored on every target cell."""

    name = "transfer"
    spec_class = GridSpec

    def detect(self, data: dict[str, Any]) -> bool:
        return "models" in data

    def resolve_paths(self, spec: GridSpec, folder: Path) -> GridSpec:
        return spec.relative_to(folder)

    def stages(self, spec: GridSpec) -> list[str]:
        return STAGES

    def units(self, spec: GridSpec) -> list[TrainUnit | ScoreUnit]:
        """Every unit; with a ``budget``, those of the rounds chosen so far (``adaptive``)."""
        if spec.budget is not None:
            from xling.studies.transfer.adaptive import chosen_units

            return chosen_units(spec, Path(spec.output) / "store")
        return make_plan(spec).units

    def job_shape(self, spec: GridSpec) -> Workload:
        """A training job trains up to ``executor.train_units_per_job`` adapters of one base model in turn, the model
        loaded once (each unit succeeds or fails on its own); the base and up to ``score.adapters_per_batch``
        adapters of a model share one scoring pass."""
        from xling.studies.transfer.work import transfer_work
        from xling.train import keep_base_models

        ex = spec.executor
        return Workload(
            transfer_work,
            spec,
            chunk=lambda u: ex.train_units_per_job if u.stage == "train" else spec.score.adapters_per_batch,
            gpus=lambda u: ex.gpus_per_train if u.stage == "train" else ex.gpus_per_score,
            cpus=ex.cpus_per_unit,
            isolated=lambda u: u.stage == "train",
            scope=keep_base_models,
        )

    def more_units(self, spec: GridSpec, store: Store, units: list) -> list:
        """With a ``budget``: the next round's units, chosen by the predictor from the finished cells, until the
        budget is spent (a progress line per round on stderr); none for a grid without one."""
        if spec.budget is None:
            return []
        from xling.studies.transfer.adaptive import next_round

        return next_round(spec, store, units, self._release(spec, store, units), _say)

    def results(self, spec: GridSpec, store: Store, units: list) -> dict[str, pd.DataFrame]:
        """``results``: the release schema; ``results.seeds``: one row per seed; with a ``budget``,
        ``predictions``: the observed cells and the predicted ones with their intervals (left out, with a note,
        where the predictor cannot be fitted on the finished cells)."""
        from xling.contracts import aggregate_seeds
        from xling.studies.transfer.results import long_table

        long = long_table(Plan.from_units(spec, units), store)
        tables = {"results": aggregate_seeds(long), "results.seeds": long}
        if spec.budget is not None and not long.empty:
            import warnings

            from xling.errors import XlingError, XlingNote
            from xling.studies.transfer.adaptive import predict_grid

            try:
                tables["predictions"] = predict_grid(spec, tables["results"])[0]
            except XlingError as err:
                warnings.warn(
                    f"no predictions.csv: the predictor cannot be fitted on the finished cells: {err}",
                    XlingNote,
                    stacklevel=2,
                )
        return tables

    def _release(self, spec: GridSpec, store: Store, units: list) -> pd.DataFrame:
        """The release-schema table of the finished units."""
        from xling.contracts import aggregate_seeds
        from xling.studies.transfer.results import long_table

        return aggregate_seeds(long_table(Plan.from_units(spec, units), store))

    def report(self, study: Study, out: Path) -> None:
        """The analysis and report of the release-schema table in ``OUTPUT/analysis/``, with the models' family and
        size from the spec and, for a grid with a budget, its predicted cells (nothing when no cell is finished, or
        ``analyze: false``)."""
        from xling.analysis.meta import spec_for_models
        from xling.report import run_analysis

        table = study.tables["results"]
        if table.empty or not study.spec.analyze:
            return
        path = study.written["results"]
        study.analysis = run_analysis(
            table,
            out / "analysis",
            spec_for_models(study.spec.models),
            source=str(path),
            input_path=path,
            predictions=study.tables.get("predictions"),
        )
        study.report = out / "analysis" / "report.html"
        study.notes += study.analysis.notes

    def summary(self, spec: GridSpec, store: Store) -> dict[str, Any]:
        """Units per stage and how many are done; the items, choices and training examples. Reads no data that is
        not prepared (paper benchmarks before ``xling data prepare``): unit keys hash the data, so until then which
        units are done is unknown (``None``), and ``unprepared`` says what is missing."""
        from xling.tasks.registry import load_items, resolve_task

        counts = unit_counts(spec)
        cells = {(c.task, c.language, spec.score.split) for c in spec.target_cells()}
        cells |= {(c.task, c.language, "train") for c in spec.source_cells()}
        unprepared = sorted(c for c in cells if not resolve_task(c[0]).is_prepared(c[1], c[2]))
        summary: dict[str, Any] = {
            "title": (
                f"grid {spec.name}: {len(spec.models)} model(s), {len(spec.source_cells())} source cell(s), "
                f"{len(spec.target_cells())} target cell(s), {len(spec.seeds)} seed(s)"
            ),
            "models": len(spec.models),
            "source_cells": len(spec.source_cells()),
            "target_cells": len(spec.target_cells()),
            "seeds": len(spec.seeds),
            "stages": {name: {"units": counts[name], "done": None} for name in STAGES},
            "unprepared": [list(c) for c in unprepared],
            "cells": len(cells),
        }
        budget_lines = []
        if spec.budget is not None:
            from xling.studies.transfer.adaptive import budget_summary

            summary["budget"] = budget_summary(spec)
            summary["stages"] = {
                "train": {"units": summary["budget"]["training_units"], "done": None},
                "score": {"units": len(spec.models) + summary["budget"]["training_units"], "done": None},
            }
            budget_lines = [summary["budget"]["line"]]
        if unprepared:
            task, lang, split = unprepared[0]
            summary["lines"] = [
                *budget_lines,
                f"unknown until the data are prepared ({len(unprepared)} of {len(cells)} task/language/split sets "
                f"are not, e.g. {task} {lang} {split}): which units are done, the number of items, choices and "
                "training examples. Fill them with: xling data prepare SPEC",
            ]
            return summary
        plan = make_plan(spec)
        if spec.budget is not None:
            from xling.studies.transfer.adaptive import first_design

            first_design(spec, plan)  # an initial design that cannot calibrate is an error before any work
        for name in STAGES:
            summary["stages"][name]["done"] = sum(store.done(u.key) for u in plan.units if u.stage == name)
        n_choices = sum(
            len(i.choices) for c in spec.target_cells() for i in load_items(c.task, c.language, spec.score.split)
        )
        n_train = {(c.task, c.language): len(load_items(c.task, c.language, "train")) for c in spec.source_cells()}
        n_scored = summary["stages"]["score"]["units"]
        if spec.budget is None:
            seen = len(spec.models) * len(spec.seeds) * sum(n_train.values()) * spec.train.epochs
        else:  # at most: the budget's pairs on the largest source cells
            from xling.studies.transfer.adaptive import budget_pairs

            per_pair = sorted((n for n in n_train.values() for _ in spec.models), reverse=True)
            seen = sum(per_pair[: budget_pairs(spec)]) * len(spec.seeds) * spec.train.epochs
        summary["choices_per_evaluation"] = n_choices
        summary["choice_scorings"] = n_scored * n_choices
        summary["training_examples_seen"] = seen
        at_most = "at most " if spec.budget is not None else ""
        summary["lines"] = [
            *budget_lines,
            f"work: {at_most}{summary['choice_scorings']:,} choice scorings ({n_choices:,} choices per model or "
            f"adapter); {at_most}{summary['training_examples_seen']:,} training examples seen",
        ]
        return summary

    def show(self, study: Study, console: Any) -> None:
        """Where the tables are, the findings, the top donors and recipients, notes and the report."""
        from xling.report.terminal import print_findings, print_top_roles

        table = study.tables["results"]
        console.print(
            f"results: {study.written['results']} ({len(table)} cells), per seed: {study.written['results.seeds']}"
        )
        if "predictions" in study.tables:
            predicted = int((~study.tables["predictions"]["observed"].astype(bool)).sum())
            console.print(f"predictions: {study.written['predictions']} ({predicted} cells predicted)")
        if study.analysis is not None:
            print_findings(study.analysis.findings, console)
            print_top_roles(study.analysis.tables, console)
        for note in study.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        if study.report is not None:
            console.print(f"report: {study.report}")

    def json_summary(self, study: Study) -> dict[str, Any]:
        from xling.analysis.findings import UNITS
        from xling.jsonable import records

        analysis = study.analysis
        return {
            "results": str(study.written["results"]),
            "seeds": str(study.written["results.seeds"]),
            "cells": len(study.tables["results"]),
            "predictions": str(study.written["predictions"]) if "predictions" in study.written else None,
            "predicted_cells": (
                int((~study.tables["predictions"]["observed"].astype(bool)).sum())
                if "predictions" in study.tables
                else None
            ),
            "report": str(study.report) if study.report else None,
            "findings": analysis.findings.to_dict() if analysis else None,
            "headline": records(analysis.headline) if analysis else None,
            "units": UNITS,
            "notes": study.notes,
        }


def _say(line: str) -> None:
    """One plain progress line on stderr (a terminal and a log alike)."""
    from rich.console import Console

    Console(stderr=True).print(line, markup=False, highlight=False, soft_wrap=True)


KIND = TransferKind()
