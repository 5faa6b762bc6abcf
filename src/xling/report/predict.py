"""Writing ``xling predict``'s outputs: the predictions table and its run record, or the cross-validation tables.
Everything goes through ``atomic_dir``: nothing is left at the output folder if anything fails."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from xling.analysis.prediction import TransferPredictor, evaluate_predictors
from xling.contracts import HEADLINE_METRIC
from xling.io import atomic_dir, file_sha256
from xling.provenance import write_run_record


def _input_record(input_path: str | Path | None) -> dict:
    if input_path is None:
        return {}
    return {"input": {"path": str(input_path), "sha256": file_sha256(Path(input_path))}}


def run_prediction(
    results: pd.DataFrame,
    out_dir: str | Path,
    *,
    level: float = 0.9,
    n_folds: int = 5,
    linguistic: bool = True,
    metric: str = HEADLINE_METRIC,
    seed: int = 0,
    source: str = "results",
    input_path: str | Path | None = None,
) -> dict:
    """Fit ``TransferPredictor`` on ``results`` (validated release schema) and write ``predictions.csv`` (the
    ``PREDICTION_COLUMNS`` contract), ``summary.json`` and ``run.json`` (config, calibration, input hash) to
    ``out_dir``. Returns the summary."""
    config = {"level": level, "n_folds": n_folds, "linguistic": linguistic, "metric": metric, "method": "xling"}
    predictor = TransferPredictor("xling", level, n_folds, None, linguistic, metric, seed).fit(results, source)
    table = predictor.predict()
    summary = {"out": str(out_dir), **predictor.summary()}
    with atomic_dir(out_dir) as tmp:
        table.to_csv(Path(tmp) / "predictions.csv", index=False)
        (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        write_run_record(tmp, config=config, seed=seed, calibration=predictor.calibration_, **_input_record(input_path))
    return summary


def run_evaluation(
    results: pd.DataFrame,
    out_dir: str | Path | None,
    *,
    observed: float = 0.25,
    level: float = 0.9,
    n_folds: int = 5,
    linguistic: bool = True,
    metric: str = HEADLINE_METRIC,
    seed: int = 0,
    source: str = "results",
    input_path: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validate xling's predictor and the two baselines on the same folds (``evaluate_predictors``); with
    ``out_dir``, write ``evaluation_folds.csv``, ``evaluation.csv`` and ``run.json``. Returns (per fold, summary)."""
    per_fold, summary = evaluate_predictors(
        results,
        observed=observed,
        level=level,
        n_folds=n_folds,
        linguistic=linguistic,
        metric=metric,
        seed=seed,
        source=source,
    )
    if out_dir is not None:
        config = {"observed": observed, "level": level, "n_folds": n_folds, "linguistic": linguistic, "metric": metric}
        with atomic_dir(out_dir) as tmp:
            per_fold.to_csv(Path(tmp) / "evaluation_folds.csv", index=False)
            summary.to_csv(Path(tmp) / "evaluation.csv", index=False)
            write_run_record(tmp, config=config, seed=seed, **_input_record(input_path))
    return per_fold, summary
