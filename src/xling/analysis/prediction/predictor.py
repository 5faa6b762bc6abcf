"""``TransferPredictor``: a partial transfer grid in (release-schema table), every unrun cell's delta with a
calibrated interval out (a table in the ``PREDICTION_COLUMNS`` contract)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.prediction.conformal import (
    CI_METHOD,
    calibration_folds,
    check_calibration,
    conformal_quantiles,
    fit_scale,
    scale_of,
)
from xling.analysis.prediction.data import TransferTensor, encode, regime_codes, to_rows
from xling.analysis.prediction.features import language_distance_features
from xling.analysis.prediction.models import POINT_MODELS
from xling.contracts import HEADLINE_METRIC, KEYS, PREDICTION_COLUMNS, REGIMES
from xling.errors import XlingError


class TransferPredictor:
    """Predict the unrun (model, source cell) pairs of a transfer grid, with conformal intervals.

    Parameters
    ----------
    method : ``xling`` (additive effects + low-rank source x target interaction + features, ``EffectsLowRank``),
        ``additive`` or ``boosted`` (the two baselines of ``models.py``).
    level : the intervals' nominal coverage (0.9: 90 % intervals).
    n_folds : cross-validation folds over the run (model, source) pairs, for the intervals.
    rank : cap on the interaction's rank (None: chosen by the noise threshold; 0: no interaction).
    linguistic : use URIEL (lang2vec) distances between the languages.
    metric : the delta to predict (``delta_score_norm_mean``, the release's headline, or ``delta_score_mean``).
    seed : the folds' random seed.

    Attributes
    ----------
    tensor_ : the encoded grid. model_ : the point model fitted on every run pair; pred_ : its predictions of every
    cell. calibration_ : the interval method, level, folds and held-out cells per regime. quantile_ : each regime's
    conformal quantile of the normalised held-out residuals.
    scale_ : the residual model of ``conformal.fit_scale`` per regime: ``cell_var`` and ``pair_var`` (pp^2); a cell's
    residual variance is cell_var + pair_var (1 + 1 / models that ran its source).
    notes_ : what the features could not use.

    Example
    -------
    >>> from xling.analysis.prediction import initial_design
    >>> from xling.analysis.simulate import SimulationSpec, simulate_grid
    >>> grid = simulate_grid(SimulationSpec(tasks=["a", "b"], languages=["en", "de", "fr"], interaction_rank=1))
    >>> cells = sorted(set(zip(grid["eval_dataset"], grid["eval_language"])))
    >>> run = grid.merge(initial_design(sorted(set(grid["model_name"])), cells, per_source=3))  # 3 of 9 models a cell
    >>> table = TransferPredictor().fit(run).predict()
    >>> len(table), int((~table["observed"]).sum())
    (324, 216)
    """

    def __init__(
        self,
        method: str = "xling",
        level: float = 0.9,
        n_folds: int = 5,
        rank: int | None = None,
        linguistic: bool = True,
        metric: str = HEADLINE_METRIC,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.level = level
        self.n_folds = n_folds
        self.rank = rank
        self.linguistic = linguistic
        self.metric = metric
        self.seed = seed

    def _point_model(self):
        if self.method not in POINT_MODELS:
            raise XlingError(f"method {self.method!r} unknown; expected one of {', '.join(POINT_MODELS)}")
        if self.method == "xling":
            return POINT_MODELS["xling"](rank=self.rank, linguistic=self.linguistic)
        if self.method == "boosted":
            return POINT_MODELS["boosted"](seed=self.seed)
        return POINT_MODELS[self.method]()

    def fit(self, table: pd.DataFrame, source: str = "results") -> TransferPredictor:
        """Fit on a validated release-schema table (``xling.analysis.results.read_results``) of the run pairs."""
        if not 0.5 <= self.level < 1.0:
            raise XlingError(f"level must be in [0.5, 1); got {self.level}")
        if self.n_folds < 2:
            raise XlingError(f"n_folds must be >= 2; got {self.n_folds}")
        tensor = encode(table, self.metric, source)
        return self.fit_tensor(tensor, self.language_features(tensor))

    def language_features(self, tensor: TransferTensor) -> np.ndarray:
        """The standardised URIEL distances of the grid's languages (zeros without ``linguistic``)."""
        if not self.linguistic:
            return np.zeros((len(tensor.languages), len(tensor.languages), 5))
        return language_distance_features(tensor.languages, tensor.notes)

    def fit_tensor(self, tensor: TransferTensor, lang_dist: np.ndarray) -> TransferPredictor:
        """Fit on an encoded grid (``fit`` without the encoding; the cross-validation reuses one encoding)."""
        self.tensor_, self.notes_ = tensor, list(tensor.notes)
        self.model_ = self._point_model().fit(tensor, lang_dist)
        self.pred_ = self.model_.predict()

        # calibration: fit without each fold, keep the held-out cells' residuals
        folds = calibration_folds(tensor.observed, self.n_folds, np.random.default_rng(self.seed))
        held = {"resid": [], "regime": [], "pair": [], "n_models": []}
        for k in range(self.n_folds):
            m, s = np.nonzero(folds == k)
            if not len(m):
                continue
            train = tensor.observed & (folds != k)
            pred = self._point_model().fit(tensor.masked(train), lang_dist).predict()
            n_models, nc = train.sum(axis=0), len(tensor.cells)
            m, s, t = np.repeat(m, nc), np.repeat(s, nc), np.tile(np.arange(nc), len(m))
            held["resid"].append(tensor.y[m, s, t] - pred[m, s, t])
            held["regime"].append(tensor.regime[s, t])
            held["pair"].append(m * nc + s)
            held["n_models"].append(n_models[s])
        if not held["resid"]:
            raise XlingError(
                "no run pair can be held out to calibrate the intervals: every source cell was run for one model "
                "only; run some source cells for two or more models"
            )
        cal = {key: np.concatenate(v) for key, v in held.items()}
        check_calibration(cal["regime"], np.unique(tensor.regime), self.level)
        self.scale_var_ = fit_scale(cal["resid"], cal["regime"], cal["pair"], cal["n_models"])
        score = np.abs(cal["resid"]) / scale_of(self.scale_var_, cal["regime"], cal["n_models"])
        self.quantile_ = conformal_quantiles(score, cal["regime"], self.level)
        counts = np.bincount(cal["regime"], minlength=4)
        self.calibration_ = {
            "ci_method": CI_METHOD.format(k=self.n_folds),
            "level": self.level,
            "n_folds": self.n_folds,
            "held_out_pairs": int((folds >= 0).sum()),
            "held_out_cells": {REGIMES[g]: int(counts[g]) for g in range(4)},
        }
        self.scale_ = pd.DataFrame(self.scale_var_, columns=["cell_var", "pair_var"]).assign(regime=list(REGIMES))[
            ["regime", "cell_var", "pair_var"]
        ]
        return self

    def predict_pairs(self, pairs: np.ndarray) -> pd.DataFrame:
        """Rows (keys, ``regime``, ``m, s, t``, ``delta_pred, delta_lo, delta_hi``) of every cell of the (model,
        source) ``pairs`` mask, run or not: the prediction of the model fitted on every run pair +- the cell's sd
        times its regime's conformal quantile."""
        tensor = self.tensor_
        rows = to_rows(tensor, pairs)
        m, s, t = rows["m"].to_numpy(), rows["s"].to_numpy(), rows["t"].to_numpy()
        n_models = tensor.observed.sum(axis=0)[s] - tensor.observed[m, s]  # the pair's own run not counted
        regime = tensor.regime[s, t]
        pred = self.pred_[m, s, t]
        half = scale_of(self.scale_var_, regime, n_models) * self.quantile_[regime]
        return rows.assign(delta_pred=pred, delta_lo=pred - half, delta_hi=pred + half)

    def predict(self, include_observed: bool = True) -> pd.DataFrame:
        """The ``PREDICTION_COLUMNS`` table: every unrun pair's cells with ``delta_pred`` and its interval, and (with
        ``include_observed``) the run cells with their measured delta as ``delta_pred``, no interval, ``observed``."""
        tensor = self.tensor_
        out = self.predict_pairs(~tensor.observed).assign(observed=False)
        if include_observed:
            run = to_rows(tensor, tensor.observed)
            run = run.assign(
                delta_pred=tensor.y[run["m"], run["s"], run["t"]], delta_lo=np.nan, delta_hi=np.nan, observed=True
            )
            out = pd.concat([out, run], ignore_index=True)
        return out.sort_values(KEYS, ignore_index=True)[PREDICTION_COLUMNS]

    def summary(self) -> dict:
        """What was fitted and how: the grid's size, run and predicted pairs, the interval method and its residual
        model, the mean interval width per regime, and (for ``xling``) the interaction's rank."""
        tensor, observed = self.tensor_, self.tensor_.observed
        widths = {}
        if (~observed).any():
            rows = self.predict_pairs(~observed)
            widths = (rows["delta_hi"] - rows["delta_lo"]).groupby(rows["regime"]).mean().round(4).to_dict()
        return {
            "method": self.method,
            "metric": tensor.metric,
            "models": len(tensor.models),
            "cells": len(tensor.cells),
            "run_pairs": int(observed.sum()),
            "predicted_pairs": int((~observed).sum()),
            "predicted_cells": int((~observed).sum()) * len(tensor.cells),
            "calibration": self.calibration_,
            "residual_model": self.scale_.round(6).to_dict(orient="records"),
            "mean_interval_width": widths,
            "interaction_rank": getattr(self.model_, "rank_", None),
            "notes": self.notes_,
        }


def check_design(
    pairs: pd.DataFrame, cells: list[tuple[str, str]], *, level: float = 0.9, n_folds: int = 5, seed: int = 0
) -> None:
    """Raise ``XlingError`` where ``TransferPredictor(level=, n_folds=, seed=).fit`` on a grid of ``cells`` whose run
    (model, source) pairs are ``pairs`` (``model_name, fine_tuned_dataset, fine_tuned_language``) could not
    calibrate its intervals: the same folds as ``fit``, counted before anything is run."""
    models, cells = sorted(set(pairs["model_name"])), sorted(cells)
    observed = np.zeros((len(models), len(cells)), dtype=bool)
    m = pairs["model_name"].map({name: i for i, name in enumerate(models)}).to_numpy()
    s = pd.Series(list(zip(pairs["fine_tuned_dataset"], pairs["fine_tuned_language"]))).map(
        {c: i for i, c in enumerate(cells)}
    )
    observed[m, s.to_numpy(dtype=int)] = True
    tasks, langs = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
    regime = regime_codes(np.array([tasks.index(c[0]) for c in cells]), np.array([langs.index(c[1]) for c in cells]))
    folds = calibration_folds(observed, n_folds, np.random.default_rng(seed))
    held = regime[np.nonzero(folds >= 0)[1]].ravel()  # every target cell of every held-out pair
    check_calibration(held, np.unique(regime), level)
