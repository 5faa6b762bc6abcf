"""Point models of a transfer grid: each fits the run (model, source) pairs of a ``TransferTensor`` and predicts every
cell. Three of them, compared on the same folds by ``xling predict --evaluate``:

- ``EffectsLowRank`` (xling's): additive effects, a low-rank source x target interaction shared by all models, and
  features (URIEL distances, base scores, model family).
- ``Additive``: the additive baseline, regime + model + donor cell + recipient cell, least squares.
- ``Boosted``: a LangRank-style baseline, scikit-learn's ``HistGradientBoostingRegressor`` on features alone.

Each has ``fit(tensor, lang_dist)`` -> self (only ``tensor.observed`` pairs are read) and ``predict()`` -> an array
(models, cells, cells) of deltas in pp.
"""

from __future__ import annotations

import numpy as np

from xling.analysis.prediction.data import CTCL, MTCL, TransferTensor
from xling.analysis.prediction.features import boosted_features, pair_distances


def shrunk_means(sums: np.ndarray, counts: np.ndarray, noise_var: float) -> np.ndarray:
    """Group means shrunk towards 0 by empirical Bayes: mean x tau^2 / (tau^2 + noise_var / n), where tau^2, the
    spread of the true group effects, is the mean squared raw mean less its sampling variance (0 where n = 0)."""
    ok = counts > 0
    raw = np.where(ok, sums / np.where(ok, counts, 1), 0.0)
    if not ok.any():
        return raw
    sampling = noise_var / np.where(ok, counts, 1)
    tau2 = max(float((raw[ok] ** 2).mean() - sampling[ok].mean()), 0.0)
    return np.where(ok, raw * tau2 / (tau2 + sampling), 0.0) if tau2 > 0 else np.zeros_like(raw)


def optimal_shrinkage(sv: np.ndarray, noise_sd: float, shape: tuple[int, int]) -> np.ndarray:
    """Singular values of a signal + white-noise matrix shrunk by Gavish and Donoho's optimal Frobenius shrinker
    ("Optimal shrinkage of singular values", IEEE Trans. Inf. Theory 2017): with y = sv / (noise_sd sqrt(n)) and
    beta = m / n (m <= n), y -> sqrt((y^2 - beta - 1)^2 - 4 beta) / y above the noise edge 1 + sqrt(beta), else 0."""
    m, n = sorted(shape)
    beta, unit = m / n, noise_sd * np.sqrt(n)
    y = sv / unit
    above = y > 1.0 + np.sqrt(beta)
    shrunk = np.sqrt(np.clip((y**2 - beta - 1.0) ** 2 - 4.0 * beta, 0.0, None)) / np.where(above, y, 1.0)
    return np.where(above, unit * shrunk, 0.0)


def _ridge(gram: np.ndarray, moment: np.ndarray, penalty: float) -> np.ndarray:
    return np.linalg.solve(gram + penalty * np.eye(len(gram)), moment)


class EffectsLowRank:
    """xling's point model of the delta of model m fine-tuned on source cell s and scored on target cell t:

        mu[g] + b[m, t] + r[t, g] + d[s, g] + f[family(m), s] + c[m, s] + L[s, t] + beta . x[s, t]
        + gamma h[m, s] [s = t]

    with g the regime of (s, t).

    - ``mu``: regime means.
    - ``b``: model x target effects, centred over models (every model is scored on every target, so always observed).
    - ``r``, ``d``: recipient and donor effects per regime, shared by all models.
    - ``f``: model family x source effects, from the pair means of the family's models that ran the source, centred
      over the models that ran it (so ``d`` carries what a source gives every model); what makes a source's transfer
      to an unrun model follow the same family's models.
    - ``c``: model x source effects, centred over the models that ran the source and over the sources the model ran
      (so a model's main effect stays in ``b``); an unrun pair's is predicted by
      ridge regression on its base-score headroom ``h`` (the model's base score on the source cell minus that of the
      models that ran it).
    - ``L``: the low-rank interaction. The residual averaged over the models that ran each source, rows weighted by
      their number of models so that the noise is even, has its singular values shrunk by Gavish and Donoho's optimal
      shrinker for that noise (the across-model spread of the residual); values under the noise edge go to 0, which
      chooses the rank.
    - ``x``: the standardised URIEL distances of the two languages, for MT-CL and CT-CL pairs (ridge).
    - ``h`` on the trained cell (MT-ML): headroom predicts the gain of training on the cell itself.

    Every term is fitted by backfitting; every group mean is shrunk by empirical Bayes (``shrunk_means``).

    Parameters: ``rank`` caps the interaction's rank (None: as the shrinker chooses; 0: no interaction);
    ``linguistic`` uses the URIEL distances; ``n_iter`` backfitting sweeps.
    Attributes after ``fit``: ``mu_``, ``b_``, ``r_``, ``d_``, ``f_``, ``c_`` (run pairs), ``L_``, ``beta_``,
    ``gamma_``, ``c_coef_``, ``rank_`` (the interaction's rank), ``noise_sd_`` (the across-model noise level, pp).
    """

    def __init__(self, rank: int | None = None, linguistic: bool = True, n_iter: int = 10) -> None:
        self.rank = rank
        self.linguistic = linguistic
        self.n_iter = n_iter

    # one function per step: each takes the residual of every other term on the run cells (``w``) ---------------------
    def _model_target(self, resid: np.ndarray, w: np.ndarray, var: float) -> np.ndarray:
        b = shrunk_means(resid.sum(axis=1), w.sum(axis=1), var)
        return b - b.mean(axis=0, keepdims=True)

    def _per_regime(self, resid: np.ndarray, w: np.ndarray, var: float, over: tuple[int, int]) -> np.ndarray:
        """Donor (``over`` = models and targets) or recipient (models and sources) effects: cells x regimes."""
        out = np.zeros((resid.shape[1], 4))
        for g in range(4):
            wg = w & self._onehot[g][None]
            out[:, g] = shrunk_means(np.where(wg, resid, 0.0).sum(axis=over), wg.sum(axis=over), var)
        return out

    def _family_source(self, resid: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Family x source effects: shrunk means of the run pairs' mean residuals, weighed against the spread of the
        pair means within a (family, source) group, centred over the models that ran each source."""
        pair = resid.sum(axis=2) / resid.shape[2]
        onehot = (self._family[:, None] == np.arange(self._family.max() + 1)[None, :]).astype(float)  # model x family
        sums, counts = onehot.T @ pair, onehot.T @ observed
        group_mean = (sums / np.maximum(counts, 1))[self._family]
        dof = float((counts - 1).clip(min=0).sum())
        spread = ((pair - group_mean)[observed] ** 2).sum() / dof if dof > 0 else float((pair[observed] ** 2).mean())
        f = shrunk_means(sums, counts, spread)
        mean_src = (f[self._family] * observed).sum(axis=0) / np.maximum(observed.sum(axis=0), 1)
        return f - mean_src[None]

    def _model_source(self, resid: np.ndarray, w: np.ndarray, observed: np.ndarray, var: float) -> np.ndarray:
        """Shrunk pair means, centred over the run pairs of each source and of each model (alternating projections),
        so that what every model gets from a source stays in ``d`` and what a model gets from every source in ``b``."""
        c = np.where(observed, shrunk_means(resid.sum(axis=2), w.sum(axis=2), var), 0.0)
        for _ in range(5):
            for axis in (0, 1):
                mean = c.sum(axis=axis, keepdims=True) / np.maximum(observed.sum(axis=axis, keepdims=True), 1)
                c = np.where(observed, c - mean, 0.0)
        return c

    def _distances(self, resid: np.ndarray, w: np.ndarray) -> np.ndarray:
        n = w.sum(axis=0)  # (s, t): how many models ran the source
        gram = np.einsum("st,stf,stg->fg", n, self._x, self._x)
        if gram.trace() == 0:
            return np.zeros(self._x.shape[-1])
        return _ridge(gram, np.einsum("stf,st->f", self._x, resid.sum(axis=0)), 1.0)

    def _trained_cell(self, resid: np.ndarray, observed: np.ndarray) -> float:
        h = np.where(observed, self._head, 0.0)
        return float((h * np.einsum("mss->ms", resid)).sum() / ((h**2).sum() + 1.0))

    def _interaction(self, resid: np.ndarray, w: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """The low-rank part of the residual averaged over the models that ran each source (sets ``noise_sd_`` and
        ``rank_``)."""
        n_src = observed.sum(axis=0).astype(float)
        avg = resid.sum(axis=0) / np.maximum(n_src, 1)[:, None]
        dev = np.where(w, resid - avg[None], 0.0)
        dof = float(((n_src - 1).clip(min=0)).sum() * resid.shape[2])
        noise_var = float((dev**2).sum() / dof) if dof > 0 else float((resid**2).sum() / w.sum())
        self.noise_sd_, self.rank_ = float(np.sqrt(noise_var)), 0
        if self.rank == 0:
            return np.zeros_like(avg)
        root = np.sqrt(n_src)[:, None]  # rows weighted so that every entry's noise has variance noise_var
        u, sv, vt = np.linalg.svd(root * avg, full_matrices=False)
        kept = optimal_shrinkage(sv, np.sqrt(noise_var), avg.shape) if noise_var > 0 else sv.copy()
        if self.rank is not None:
            kept[self.rank :] = 0.0
        self.rank_ = int((kept > 0).sum())
        return (u * kept) @ vt / np.where(root > 0, root, 1.0)

    def _unrun_model_source(self, observed: np.ndarray) -> np.ndarray:
        """c of every pair: the run pairs' own; the unrun pairs' by ridge regression on headroom."""
        rows = observed & (observed.sum(axis=0) >= 2)[None]  # c is 0 by construction where one model ran the source
        h = self._head[rows]
        self.c_coef_ = float((h * self.c_[rows]).sum() / ((h**2).sum() + 1.0))
        return np.where(observed, self.c_, self.c_coef_ * self._head)

    # the terms, the fit and the prediction ---------------------------------------------------------------------------
    def _term(self, name: str) -> np.ndarray:
        """One term of the model, broadcastable to (models, sources, targets)."""
        idx = np.arange(self._nc)
        if name == "b":
            return self.b_[:, None, :]
        if name == "r":
            return self.r_[idx[None, :], self._regime][None]
        if name == "d":
            return self.d_[idx[:, None], self._regime][None]
        if name == "f":
            return self.f_[self._family][:, :, None]
        if name == "c":
            return self.c_[:, :, None]
        if name == "x":
            return (self._x @ self.beta_)[None]
        if name == "h":
            out = np.zeros((len(self.b_), self._nc, self._nc))
            out[:, idx, idx] = self.gamma_ * self._head
            return out
        return self.L_[None]

    def fit(self, tensor: TransferTensor, lang_dist: np.ndarray) -> EffectsLowRank:
        """Backfit every term on the run pairs of ``tensor``."""
        nm, nc = tensor.shape
        y, observed, regime = tensor.y, tensor.observed, tensor.regime
        w = np.broadcast_to(observed[:, :, None], y.shape)
        self._nc, self._regime = nc, regime
        self._family = np.array([sorted(set(tensor.families)).index(f) for f in tensor.families])
        self._onehot = np.stack([regime == g for g in range(4)])
        dist = pair_distances(tensor, lang_dist if self.linguistic else np.zeros_like(lang_dist))
        self._x = np.concatenate([dist * self._onehot[MTCL][..., None], dist * self._onehot[CTCL][..., None]], axis=-1)
        base = 100.0 * tensor.base
        self._head = base - ((base * observed).sum(axis=0) / np.maximum(observed.sum(axis=0), 1))[None]

        codes = np.broadcast_to(regime, y.shape)[w]
        self.mu_ = np.bincount(codes, weights=y[w], minlength=4) / np.maximum(np.bincount(codes, minlength=4), 1)
        self.b_, self.c_, self.f_ = np.zeros((nm, nc)), np.zeros((nm, nc)), np.zeros((self._family.max() + 1, nc))
        self.r_, self.d_, self.L_ = np.zeros((nc, 4)), np.zeros((nc, 4)), np.zeros((nc, nc))
        self.beta_, self.gamma_ = np.zeros(self._x.shape[-1]), 0.0
        steps = [  # (term, attribute, step(residual, noise variance))
            ("b", "b_", lambda r, var: self._model_target(r, w, var)),
            ("r", "r_", lambda r, var: self._per_regime(r, w, var, over=(0, 1))),
            ("d", "d_", lambda r, var: self._per_regime(r, w, var, over=(0, 2))),
            ("f", "f_", lambda r, var: self._family_source(r, observed)),
            ("c", "c_", lambda r, var: self._model_source(r, w, observed, var)),
            ("x", "beta_", lambda r, var: self._distances(r, w)),
            ("h", "gamma_", lambda r, var: self._trained_cell(r, observed)),
            ("L", "L_", lambda r, var: self._interaction(r, w, observed)),
        ]
        fitted = np.broadcast_to(self.mu_[regime][None], y.shape).copy()
        for _ in range(self.n_iter):
            var = float(((y - fitted)[w] ** 2).mean())  # the noise level the shrinkage weighs group means against
            for term, attr, step in steps:
                fitted -= self._term(term)
                setattr(self, attr, step(np.where(w, y - fitted, 0.0), var))
                fitted += self._term(term)
        self.c_all_ = self._unrun_model_source(observed)
        return self

    def predict(self) -> np.ndarray:
        """Every cell's delta (pp), the run pairs' included."""
        terms = [self._term(name) for name in ("b", "r", "d", "f", "x", "h", "L")]
        return self.mu_[self._regime][None] + self.c_all_[:, :, None] + sum(terms)


class Additive:
    """The additive baseline: regime + model + donor cell + recipient cell, least squares by backfitting."""

    def __init__(self, n_iter: int = 10) -> None:
        self.n_iter = n_iter

    def fit(self, tensor: TransferTensor, lang_dist: np.ndarray | None = None) -> Additive:
        y, observed, regime = tensor.y, tensor.observed, tensor.regime
        nm, nc = tensor.shape
        w = np.broadcast_to(observed[:, :, None], y.shape)
        codes = np.broadcast_to(regime, w.shape)[w]
        self.mu_ = np.bincount(codes, weights=y[w], minlength=4) / np.maximum(np.bincount(codes, minlength=4), 1)
        self.model_, self.donor_, self.recipient_ = np.zeros(nm), np.zeros(nc), np.zeros(nc)
        for _ in range(self.n_iter):
            for axes, attr in (((1, 2), "model_"), ((0, 2), "donor_"), ((0, 1), "recipient_")):
                resid = np.where(w, y - self._predict(regime, exclude=attr), 0.0)
                setattr(self, attr, resid.sum(axis=axes) / np.maximum(w.sum(axis=axes), 1))
        self._regime = regime
        return self

    def _predict(self, regime: np.ndarray, exclude: str = "") -> np.ndarray:
        out = np.broadcast_to(self.mu_[regime][None], (len(self.model_), *regime.shape)).copy()
        if exclude != "model_":
            out += self.model_[:, None, None]
        if exclude != "donor_":
            out += self.donor_[None, :, None]
        if exclude != "recipient_":
            out += self.recipient_[None, None, :]
        return out

    def predict(self) -> np.ndarray:
        return self._predict(self._regime)


class Boosted:
    """The LangRank-style baseline: gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``) on the
    features of ``features.boosted_features`` (regime, model, family, source and target task and language, size,
    base scores, URIEL distances), trained on the run cells."""

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1, seed: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, tensor: TransferTensor, lang_dist: np.ndarray) -> Boosted:
        try:
            from sklearn.ensemble import HistGradientBoostingRegressor
        except ImportError:
            from xling.errors import XlingError

            raise XlingError("the boosted baseline needs scikit-learn: pip install 'xling[predict]'") from None
        x, categorical = boosted_features(tensor, lang_dist)
        train = np.broadcast_to(tensor.observed[:, :, None], tensor.y.shape).ravel()
        self.model_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            categorical_features=categorical,
            early_stopping=False,
            random_state=self.seed,
        ).fit(x[train], tensor.y.ravel()[train])
        self._x, self._shape = x, tensor.y.shape
        return self

    def predict(self) -> np.ndarray:
        return self.model_.predict(self._x).reshape(self._shape)


#: The point models by name (``xling predict --evaluate`` compares them on the same folds).
POINT_MODELS = {"xling": EffectsLowRank, "additive": Additive, "boosted": Boosted}
