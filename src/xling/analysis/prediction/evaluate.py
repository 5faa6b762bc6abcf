"""Leave-sources-out cross-validation of the predictors on a (complete) grid: the same folds for every method.

A fold runs a fraction of each model's source cells (a different subset per model, every source cell run for at
least one model, as ``initial_design`` plans a partial grid) and holds out the rest; every method is fitted on the
run pairs, with its own conformal intervals, and scored on the held-out cells: Spearman and MAE over the cells,
NDCG@3 of each (model, target) donor ranking, interval coverage and width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from xling.analysis.prediction.data import encode
from xling.analysis.prediction.models import POINT_MODELS
from xling.analysis.prediction.predictor import TransferPredictor
from xling.contracts import HEADLINE_METRIC
from xling.errors import XlingError

METRICS = ["spearman", "mae", "ndcg_at_3", "coverage", "width"]


def source_groups(observed: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """(models, cells) group of each run pair: each source's models spread over the groups as evenly as their number
    allows (so every group has every source run by at least one model when it has >= ``n_groups`` models); -1 for
    pairs not run."""
    groups = np.full(observed.shape, -1)
    for s in range(observed.shape[1]):
        models = np.flatnonzero(observed[:, s])
        groups[rng.permutation(models), s] = (rng.integers(n_groups) + np.arange(len(models))) % n_groups
    return groups


def outer_folds(observed: np.ndarray, fraction: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Training masks of the folds: with ``fraction`` <= 1/2, G = round(1 / fraction) groups and each fold runs one;
    above, G = round(1 / (1 - fraction)) groups and each fold runs all but one."""
    if not 0.0 < fraction < 1.0:
        raise XlingError(f"observed fraction must be in (0, 1); got {fraction}")
    sparse = fraction <= 0.5
    n_groups = max(2, round(1.0 / (fraction if sparse else 1.0 - fraction)))
    too_few = np.flatnonzero(observed.sum(axis=0) < (n_groups if sparse else 2))
    if len(too_few):
        raise XlingError(
            f"observed fraction {fraction:g}: a source cell run by {observed.sum(axis=0)[too_few[0]]} models cannot be "
            f"run by at least one model in each of {n_groups} folds; use a larger fraction"
        )
    groups = source_groups(observed, n_groups, rng)
    return [(groups == k) if sparse else (observed & (groups != k)) for k in range(n_groups)]


def ndcg_at_k(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, k: int = 3) -> np.ndarray:
    """NDCG@k of each column's ranking of its valid rows by ``pred``; gains are the true deltas less the column's
    smallest valid one (so the worst donor gains 0). NaN for columns with fewer than 2 valid rows or no spread."""
    gain = np.where(valid, truth - np.where(valid, truth, np.inf).min(axis=0, keepdims=True), 0.0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    order = np.argsort(np.where(valid, -pred, np.inf), axis=0, kind="stable")[:k]
    ideal = -np.sort(-gain, axis=0)[:k]
    dcg = (np.take_along_axis(gain, order, axis=0) * discount[: len(order), None]).sum(axis=0)
    idcg = (ideal * discount[: len(ideal), None]).sum(axis=0)
    ok = (valid.sum(axis=0) >= 2) & (idcg > 0)
    return np.where(ok, dcg / np.where(ok, idcg, 1.0), np.nan)


def score_fold(rows: pd.DataFrame, truth: np.ndarray) -> dict[str, float]:
    """The metrics of one method on one fold's held-out cells (``rows`` from ``TransferPredictor.predict_pairs``)."""
    m, s, t = rows["m"].to_numpy(), rows["s"].to_numpy(), rows["t"].to_numpy()
    y, pred = truth[m, s, t], rows["delta_pred"].to_numpy()
    lo, hi = rows["delta_lo"].to_numpy(), rows["delta_hi"].to_numpy()
    ndcg = []
    for model in np.unique(m):
        sel = m == model
        sources = np.unique(s[sel])
        if len(sources) < 2:
            continue
        nc = truth.shape[1]
        p, v = np.full((len(sources), nc), np.nan), np.full((len(sources), nc), np.nan)
        row = np.searchsorted(sources, s[sel])
        p[row, t[sel]], v[row, t[sel]] = pred[sel], y[sel]
        valid = np.isfinite(v) & (sources[:, None] != np.arange(nc)[None, :])  # a target's donors, not itself
        ndcg.append(ndcg_at_k(np.nan_to_num(p), np.nan_to_num(v), valid))
    ndcg_all = np.concatenate(ndcg) if ndcg else np.array([np.nan])
    return {
        "n_cells": len(y),
        "spearman": float(stats.spearmanr(pred, y)[0]) if len(y) > 2 else np.nan,
        "mae": float(np.abs(pred - y).mean()),
        "ndcg_at_3": float(np.nanmean(ndcg_all)) if np.isfinite(ndcg_all).any() else np.nan,
        "coverage": float(((lo <= y) & (y <= hi)).mean()),
        "width": float((hi - lo).mean()),
    }


def evaluate_predictors(
    table: pd.DataFrame,
    *,
    observed: float = 0.25,
    methods: tuple[str, ...] = tuple(POINT_MODELS),
    level: float = 0.9,
    n_folds: int = 5,
    rank: int | None = None,
    linguistic: bool = True,
    metric: str = HEADLINE_METRIC,
    seed: int = 0,
    source: str = "results",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validate ``methods`` on the same folds. Returns (per fold: ``method, fold, n_cells, spearman, mae,
    ndcg_at_3, coverage, width``; per method: the mean and the sd over folds of each metric)."""
    tensor = encode(table, metric, source)
    lang_dist = TransferPredictor(linguistic=linguistic).language_features(tensor)
    folds = outer_folds(tensor.observed, observed, np.random.default_rng(seed))
    rows = []
    for k, train in enumerate(folds):
        held_out = tensor.observed & ~train
        for method in methods:
            predictor = TransferPredictor(method, level, n_folds, rank, linguistic, metric, seed)
            predictor.fit_tensor(tensor.masked(train), lang_dist)
            rows.append({"method": method, "fold": k, **score_fold(predictor.predict_pairs(held_out), tensor.y)})
    per_fold = pd.DataFrame(rows)
    grouped = per_fold.groupby("method", sort=False)[METRICS]
    summary = grouped.mean().join(grouped.std(ddof=1).add_suffix("_sd")).reset_index()
    summary.insert(1, "n_folds", len(folds))
    summary.insert(2, "observed", observed)
    return per_fold, summary
