"""Prediction intervals calibrated on held-out run pairs: K-fold cross-validation conformal intervals (the "CV" method
of Barber, Candes, Ramdas, Tibshirani 2021, "Predictive inference with the jackknife+", Ann. Statist.), with
(model, source) pairs as the units held out.

Steps: ``calibration_folds`` splits the run pairs into K folds, holding out a pair only where its source cell stays run
for another model (so a held-out pair is what an unrun pair is at prediction time) and its model keeps a run source;
each fold's model is fitted without the fold and predicts its cells; ``fit_scale`` splits the held-out residuals into
a pair error, larger where fewer models ran the source, and a cell error per regime, so an interval is wider where less
is known; ``conformal_quantiles`` takes the ``level`` quantile of the normalised held-out residuals |residual| / sd,
separately per regime (Mondrian: the trained cell's MT-ML gain is calibrated apart from transfer); a cell's interval
is the prediction of the model fitted on every run pair +- its sd times that quantile. No distribution is assumed: the
quantile is empirical. The held-out residuals come from models fitted on fewer pairs than the final one, so the
intervals err on the wide side (measured in ``tests/test_prediction.py`` and the README); all cells of a pair are held
out together, so the units stay whole.
"""

from __future__ import annotations

import numpy as np

from xling.contracts import REGIMES
from xling.errors import XlingError

#: What ``calibration_`` and the outputs record as the interval method.
CI_METHOD = "conformal, {k}-fold cross-validation over (model, source) pairs, per regime, sd by models per source"


def calibration_folds(observed: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """(models, cells) fold of each run pair, -1 where it is never held out: sources run by one model only, and a
    model's last run source in a fold. A source's models go to different folds (as evenly as its number allows)."""
    folds = np.full(observed.shape, -1)
    for s in range(observed.shape[1]):
        models = np.flatnonzero(observed[:, s])
        if len(models) >= 2:
            folds[rng.permutation(models), s] = (rng.integers(n_folds) + np.arange(len(models))) % n_folds
    for k in range(n_folds):
        for m in np.flatnonzero((observed & (folds != k)).sum(axis=1) == 0):
            run = np.flatnonzero(observed[m])
            if len(run):
                folds[m, rng.choice(run)] = -1
    return folds


def fit_scale(resid: np.ndarray, regime: np.ndarray, pair: np.ndarray, n_models: np.ndarray) -> np.ndarray:
    """The residual model's variances by moments: a held-out cell's residual is a pair error, shared by the pair's
    cells, of variance ``pair_var`` (1 + 1 / n) (the pair's own effect, plus the error of its source's effect
    estimated from the n other models that ran it), plus a cell error of variance ``cell_var[regime]``. Returns the
    (4, 2) table ``[cell_var, pair_var]`` per regime (``pair_var`` is one number, repeated).

    With k cells in a pair, e_i - mean(e) has expectation s_i^2 (1 - 2/k) + S/k^2 (S the sum of the pair's cell
    variances) and the pair's sum of squared deviations / (k - 1) estimates S/k; both are inverted for s_i^2 and for
    the pair error (mean(e)^2 = pair error^2 + S/k^2 on average)."""
    _, inverse, size = np.unique(pair, return_inverse=True, return_counts=True)
    k = size.astype(float)[inverse]
    pair_mean = np.bincount(inverse, weights=resid) / size
    sq_dev = (resid - pair_mean[inverse]) ** 2
    mean_var = np.bincount(inverse, weights=sq_dev) / np.maximum(size - 1, 1)  # S / k of each pair
    cell = (sq_dev - mean_var[inverse] / k) / np.where(k > 2, 1.0 - 2.0 / k, 1.0)
    counts = np.bincount(regime, minlength=4)
    fallback = max(float(mean_var.mean()), 1e-12)
    cell_var = np.bincount(regime, weights=cell, minlength=4) / np.maximum(counts, 1)
    cell_var = np.where(counts > 0, np.maximum(cell_var, 1e-3 * fallback), fallback)
    pair_models = np.bincount(inverse, weights=n_models) / size
    pair_var = float(((pair_mean**2 - mean_var / size) / (1.0 + 1.0 / np.maximum(pair_models, 1))).mean())
    return np.column_stack([cell_var, np.full(4, max(pair_var, 0.0))])


def scale_of(var: np.ndarray, regime: np.ndarray, n_models: np.ndarray) -> np.ndarray:
    """The residual sd of cells: sqrt(cell_var[regime] + pair_var (1 + 1 / n_models)), n_models = the models that ran
    the cell's source (without the cell's own)."""
    return np.sqrt(var[regime, 0] + var[regime, 1] * (1.0 + 1.0 / np.maximum(n_models, 1)))


def check_calibration(regime: np.ndarray, present: np.ndarray, level: float) -> None:
    """Raise where a regime of the grid (``present``: its codes) has too few held-out cells for a finite interval."""
    need = int(np.ceil(level / (1.0 - level) - 1e-9))  # so that ceil(level (n + 1)) <= n
    counts = np.bincount(regime, minlength=4)
    for g in np.flatnonzero((counts < need) & np.isin(np.arange(4), present)):
        raise XlingError(
            f"too few held-out cells to calibrate {level:.0%} intervals in regime {REGIMES[g]}: {counts[g]} "
            f"(need {need}); run more source cells for two or more models, or lower the level"
        )


def conformal_quantiles(score: np.ndarray, regime: np.ndarray, level: float) -> np.ndarray:
    """Per regime, the ceil(level (n + 1))-th smallest of its n held-out normalised scores (inf if n is too small)."""
    out = np.full(4, np.inf)
    for g in range(4):
        values = np.sort(score[regime == g])
        rank = int(np.ceil(level * (len(values) + 1)))
        if 1 <= rank <= len(values):
            out[g] = values[rank - 1]
    return out
