"""The whole analysis as named steps: validate -> annotate -> tables, in memory (the analysis layer is pure).

``analyze`` computes every table from annotated cells; ``analyze_results`` validates a results table first.
Writing them (tables, figures, report, run record) is the report layer's: ``xling.report.run_analysis``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from threadpoolctl import threadpool_limits

from xling.analysis import (
    asymmetry,
    consistency,
    linguistic,
    matrices,
    predicted,
    profiles,
    roles,
    uplift,
    variance,
)
from xling.analysis.findings import Findings, find
from xling.analysis.meta import AnalysisSpec, annotate
from xling.analysis.results import RELEASE_COLUMNS, aggregate_seeds, se_column, validate_long, validate_release
from xling.contracts import HEADLINE_METRIC
from xling.errors import XlingError


@dataclass
class Analysis:
    """Every table of one analysis, what it found, what was skipped and how complete the grid was."""

    spec: AnalysisSpec
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    coverage: dict = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)
    timings: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def headline(self) -> pd.DataFrame:
        """The headline table: ``regime_summary``."""
        return self.tables["regime_summary"]


def prepare(results: pd.DataFrame, spec: AnalysisSpec, source: str = "results") -> pd.DataFrame:
    """Validate either schema and return annotated cells with ``delta`` (the metric) and ``delta_se``."""
    if "seed" in results.columns:
        cells = aggregate_seeds(validate_long(results, source))
    else:
        cells = validate_release(results, source, spec.metric)
    if spec.metric not in RELEASE_COLUMNS or not spec.metric.endswith("_mean"):
        raise XlingError(f"analysis config: metric {spec.metric!r} is not a *_mean column of the release schema")
    cells = annotate(cells, spec)
    cells["delta"] = cells[spec.metric].astype(float)
    cells["delta_se"] = cells[se_column(spec.metric)].astype(float)
    return cells


def grid_coverage(cells: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """How complete the grid is: every model x source cell x target cell seen anywhere in the table."""
    sources = cells[["fine_tuned_dataset", "fine_tuned_language"]].drop_duplicates()
    targets = cells[["eval_dataset", "eval_language"]].drop_duplicates()
    per_model_expected = len(sources) * len(targets)
    per_model = cells.groupby("model_name").size().rename("n_cells").reset_index()
    per_model["expected"] = per_model_expected
    per_model["coverage"] = 100.0 * per_model["n_cells"] / per_model_expected
    summary = {
        "models": int(cells["model_name"].nunique()),
        "tasks": int(pd.concat([cells["fine_tuned_dataset"], cells["eval_dataset"]]).nunique()),
        "languages": int(pd.concat([cells["fine_tuned_language"], cells["eval_language"]]).nunique()),
        "source_cells": len(sources),
        "target_cells": len(targets),
        "cells": len(cells),
        "expected": int(per_model_expected * len(per_model)),
        "n_seeds_min": int(cells["n_seeds"].min()),
        "n_seeds_max": int(cells["n_seeds"].max()),
    }
    summary["coverage"] = 100.0 * summary["cells"] / summary["expected"]
    summary["complete"] = summary["cells"] == summary["expected"]
    return summary, per_model


def analyze(
    cells: pd.DataFrame,
    spec: AnalysisSpec,
    mixed_models: bool = True,
    linguistic_distances: bool = True,
    progress: Callable[[str], None] | None = None,
    predictions: pd.DataFrame | None = None,
) -> Analysis:
    """Compute every table from annotated cells (see ``prepare``); ``progress(step)`` is told each step.
    ``predictions`` (a ``PREDICTION_COLUMNS`` table of the same grid, its unrun cells predicted) adds the tables of
    ``xling.analysis.predicted``: the cells marked observed or predicted and the donor/recipient tables from
    observed + predicted cells."""
    res = Analysis(spec=spec)
    t = res.tables

    def step(name: str, fn, *args):
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        out = fn(*args)
        res.timings[name] = time.perf_counter() - start
        return out

    res.coverage, t["coverage"] = grid_coverage(cells)
    if not res.coverage["complete"]:
        res.notes.append(
            f"incomplete grid: {res.coverage['cells']} of {res.coverage['expected']} cells "
            f"({res.coverage['coverage']:.1f}%); analyses use the cells present"
        )
    present = set(cells["regime"])

    def has(regime: str, name: str) -> bool:
        """True when ``regime`` has cells; otherwise note that ``name`` is skipped."""
        if regime in present:
            return True
        res.notes.append(f"{name}: skipped (no {regime} cells)")
        return False

    # 1-2. regimes and uplift
    t["regime_summary"] = step("regime_summary", uplift.regime_summary, cells, spec)
    t["global_uplift"] = step("global_uplift", uplift.global_uplift, cells, spec)
    if has("MT-CL", "mtcl_harm_breakdown, mtcl_by_construction_type"):
        t["mtcl_harm_breakdown"] = step("mtcl_harm_breakdown", uplift.mtcl_harm_breakdown, cells, spec)
        t["mtcl_by_construction_type"] = step(
            "mtcl_by_construction_type", uplift.mtcl_by_construction_type, cells, spec
        )
    # 9. per-cell significance
    t["cell_significance"] = step("cell_significance", uplift.cell_significance, cells, spec)
    t["significance_by_regime"] = uplift.significance_by_regime(t["cell_significance"])
    untested = int((t["cell_significance"]["call"] == "untested").sum())
    if untested:
        res.notes.append(f"cell_significance: {untested} cells untested (fewer than 2 seeds or zero SE)")

    # 3. roles and 4. matrices
    if has("MT-CL", "language roles, language_transfer_matrix, linguistic_correlations, language_asymmetry"):
        t["language_donor_recipient"] = step("language_roles", roles.language_donor_recipient, cells, spec)
        t["language_transfer_matrix"], t["language_transfer_pairs"] = step(
            "language_matrix", matrices.language_transfer, cells, spec
        )
        if spec.language_groups:
            t["language_group_roles"] = step("group_roles", roles.language_group_roles, cells, spec)
            grouped = {lang for langs in spec.language_groups.values() for lang in langs}
            ungrouped = sorted((set(cells["fine_tuned_language"]) | set(cells["eval_language"])) - grouped)
            if ungrouped:
                res.notes.append(f"language_group_roles: {', '.join(ungrouped)} in no language group")
        else:
            res.notes.append("language_group_roles: skipped (language_groups is empty in the analysis config)")
        if cells.loc[cells["regime"] == "MT-CL", "construction"].nunique() >= 2:
            t["language_roles_by_task_subset"], t["task_subset_agreement"] = step(
                "task_subsets", roles.roles_by_task_subset, cells, spec
            )
        else:
            res.notes.append("language_roles_by_task_subset: skipped (fewer than two task construction types)")
    if has("CT-ML", "task_donor_recipient, task_transfer_matrix"):
        t["task_donor_recipient"] = step("task_roles", roles.task_donor_recipient, cells, spec)
        t["task_transfer_matrix"], t["task_transfer_pairs"] = step("task_matrix", matrices.task_transfer, cells, spec)
    t["named_roles"] = roles.named_roles(t.get("language_donor_recipient"), t.get("task_donor_recipient"))

    # 5. on-task vs off-task profiles
    t["pareto_profiles"] = step("pareto_profiles", profiles.pareto_profiles, cells, spec)
    if len(t["pareto_profiles"]):
        t["task_on_off_summary"] = step("task_on_off", profiles.task_on_off_summary, t["pareto_profiles"], spec)
    else:
        res.notes.append("pareto_profiles: skipped (no source has both MT-CL and other-task targets)")

    # 6. typology
    if linguistic_distances and "language_transfer_pairs" in t:
        langs = sorted(set(cells["fine_tuned_language"]) | set(cells["eval_language"]))
        dist = step("uriel_distances", linguistic.language_distances, langs, res.notes, spec.uriel_codes)
        t["language_distances"] = dist
        t["linguistic_correlations"] = step(
            "linguistic_correlations", linguistic.linguistic_correlations, t["language_transfer_pairs"], dist
        )
    elif not linguistic_distances:
        res.notes.append("linguistic_correlations: skipped (turned off)")

    # 7. variance decomposition
    t["variance_crossed"] = step("variance_crossed", variance.crossed_decomposition, cells, spec, res.notes)
    if t["variance_crossed"].empty:
        res.notes.append(f"variance decomposition: skipped (no scope has {variance.MIN_ROWS} cells)")
    if mixed_models:
        t["variance_mixedlm"] = step("variance_mixedlm", variance.mixedlm_decomposition, cells, spec, res.notes)
    else:
        res.notes.append("variance_mixedlm: skipped (mixed-model fits turned off)")

    # 8. consistency index
    t.update(step("consistency", consistency.consistency_tables, cells, spec, res.notes))

    # 10. asymmetry
    if "MT-CL" in present:
        t["language_asymmetry"] = step("language_asymmetry", asymmetry.language_asymmetry, cells, spec)
    t["cell_asymmetry"] = step("cell_asymmetry", asymmetry.cell_asymmetry, cells)
    if predictions is not None:
        step("predicted", add_predicted, predictions, spec, res)
    t["interval_methods"] = interval_methods(t)
    res.findings = find(cells, t, res.coverage, spec.metric)
    if predictions is not None and "predicted_cells" in t:
        res.findings.predicted = predicted.prediction_basis(predictions)
    return res


def add_predicted(predictions: pd.DataFrame, spec: AnalysisSpec, res: Analysis) -> None:
    """The predicted cells' tables (``xling.analysis.predicted``) in ``res``; none, with a note, where the
    predictions are of another delta than the analysis's (a predictor predicts the headline delta)."""
    if spec.metric != HEADLINE_METRIC:
        res.notes.append(
            f"predicted: skipped (the predictions are of {HEADLINE_METRIC}, the analysis metric is {spec.metric})"
        )
        return
    res.tables["predicted_cells"] = predicted.predicted_cells(predictions)
    res.tables.update(predicted.roles_with_predictions(predictions, spec))


def interval_methods(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``table,column,ci_method,n_rows``: how the intervals of every table were made (the report shows it)."""
    rows = []
    for name, df in tables.items():
        for col in [c for c in df.columns if str(c).endswith("ci_method")]:
            for method, n in df[col].value_counts(sort=False).items():
                rows.append({"table": name, "column": col, "ci_method": method, "n_rows": int(n)})
    return pd.DataFrame(rows, columns=["table", "column", "ci_method", "n_rows"])


def headline_table(results: pd.DataFrame, spec: AnalysisSpec | None = None) -> pd.DataFrame:
    """The headline table (``regime_summary``) of a results table in either schema."""
    spec = spec or AnalysisSpec()
    return uplift.regime_summary(prepare(results, spec), spec)


def analyze_results(
    results: pd.DataFrame,
    spec: AnalysisSpec | None = None,
    *,
    mixed_models: bool | None = None,
    linguistic_distances: bool | None = None,
    source: str = "results",
    progress: Callable[[str], None] | None = None,
    predictions: pd.DataFrame | None = None,
) -> tuple[Analysis, pd.DataFrame]:
    """Validate ``results`` (either schema) and compute every table: the analysis and the annotated cells.

    ``mixed_models`` / ``linguistic_distances`` default to the spec's ``mixed_models`` / ``linguistic`` (recorded
    in ``Analysis.options``); ``predictions``: see ``analyze``. Pure: nothing is written
    (``xling.report.run_analysis`` writes the report).
    """
    spec = spec or AnalysisSpec()
    mixed = spec.mixed_models if mixed_models is None else mixed_models
    ling = spec.linguistic if linguistic_distances is None else linguistic_distances
    cells = prepare(results, spec, source)
    # The dense algebra here is small (<= ~1000 columns): BLAS threads cost more than they save, and on a
    # shared machine they thrash (a 600-column Cholesky took 0.5 s with 2 threads under load, 25 ms with 1).
    with threadpool_limits(limits=1, user_api="blas"):
        analysis = analyze(
            cells, spec, mixed_models=mixed, linguistic_distances=ling, progress=progress, predictions=predictions
        )
    analysis.options = {"mixed_models": mixed, "linguistic": ling}
    return analysis, cells
