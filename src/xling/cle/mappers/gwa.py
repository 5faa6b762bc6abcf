"""GWA: Gromov-Wasserstein alignment (Alvarez-Melis & Jaakkola, EMNLP 2018), as ``dmelis/otalign`` runs it.

The steps of ``scripts/main_gw_bli.py`` with its defaults, one function each:

0. ``split_normalize``: the ``n_words`` most frequent words of each space are centred on their own mean and scaled
   to unit length (``normalize_vecs="both"``). The reference later exports the whole vocabulary with the rest of the
   words centred on *their* mean (``load_oov_data``): ``transform`` does the same.
1. ``distance_matrices``: cosine distances within each language, each matrix divided by its mean.
2. ``gromov_wasserstein``: entropic GW with the square loss ``(a - b)^2 / 2`` and uniform marginals (POT's
   ``ot.gromov`` pieces): from ``T = p q^T``, repeat ``T = sinkhorn(p, q, grad GW(T), epsilon)``, each Sinkhorn
   warm-started from the previous scalings as otalign's solver does, until ``||T - T_prev|| <= tol`` (checked
   every 10th iteration) or after iterations ``0..max_iter``.
3. ``coupling_pairs``: the coupling's mutual argmax pairs (row argmax and column argmax agree).
4. Orthogonal Procrustes on those pairs; the reference maps the *target* space onto the source space
   (``xt @ P.T``), so ``W_src_`` is the identity and ``W_tgt_ = P^T``.

Written as a loop over POT's ``init_matrix``/``gwggrad``/``sinkhorn`` rather than one call of
``ot.gromov.entropic_gromov_wasserstein`` so that every iteration reports its GW loss and change, and so that the
Sinkhorn stopping rule is otalign's (squared marginal error below ``sinkhorn_tol``, as POT <= 0.6 measured it).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from xling.cle.mappers.base import Mapper, check_same_dim, single_threaded
from xling.cle.mappers.iterlog import IterationLog
from xling.cle.mappers.procrustes import procrustes_map
from xling.cle.normalize import unit_rows
from xling.errors import XlingError

SinkhornMethod = Literal["sinkhorn", "sinkhorn_log"]


def split_normalize(X: np.ndarray, n_words: int, *, inplace: bool = False) -> np.ndarray:
    """STEP 0: rows ``[:n_words]`` and ``[n_words:]`` each centred on their own mean, then every row unit length;
    ``inplace`` writes into ``X`` (float32, writeable; else a normalised copy is returned)."""
    if not (inplace and X.dtype == np.float32 and X.flags.writeable):
        X = np.array(X, dtype=np.float32, copy=True)
    for part in (X[:n_words], X[n_words:]):
        if len(part):
            part -= part.mean(axis=0, dtype=np.float64).astype(np.float32)
    return unit_rows(X, inplace=True)


def distance_matrices(Xs: np.ndarray, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STEP 1: cosine distance matrices of the two samples (float64), each divided by its mean."""
    from scipy.spatial.distance import cdist

    C1 = cdist(Xs.astype(np.float64), Xs.astype(np.float64), metric="cosine")
    C2 = cdist(Xt.astype(np.float64), Xt.astype(np.float64), metric="cosine")
    return C1 / C1.mean(), C2 / C2.mean()


@single_threaded
def gromov_wasserstein(
    C1: np.ndarray,
    C2: np.ndarray,
    *,
    epsilon: float,
    max_iter: int,
    tol: float,
    sinkhorn_max_iter: int,
    sinkhorn_tol: float,
    sinkhorn_method: SinkhornMethod = "sinkhorn",
    log: IterationLog | None = None,
) -> tuple[np.ndarray, list[dict[str, float]], str]:
    """STEP 2: the entropic GW coupling between uniform distributions, one record per iteration, and how it ended:
    ``"converged"``, ``"max_iter"`` or ``"numerical failure"``.

    Each record has the GW loss of the coupling the iteration started from (it costs nothing extra: the gradient
    at ``T`` is ``2 L(T)``, and the loss is ``<L(T), T>``), ``change = ||T_new - T||`` and the Sinkhorn iterations.
    A Sinkhorn projection that underflows (``exp(-grad / epsilon)`` is 0 for a whole row or column: ``epsilon``
    too small for the spread of the distances) leaves a coupling that has lost its mass; the loop stops there,
    as otalign's would produce nothing better. ``sinkhorn_method="sinkhorn_log"`` works in the log domain instead.
    """
    import ot

    p, q = ot.unif(len(C1)), ot.unif(len(C2))
    constC, hC1, hC2 = ot.gromov.init_matrix(C1, C2, p, q, "square_loss")
    # otalign's square loss is (a - b)^2 / 2 (POT <= 0.8); POT >= 0.9's is (a - b)^2: halve its terms
    constC, hC2 = constC / 2, hC2 / 2
    T = np.outer(p, q)
    scalings = None
    history: list[dict[str, float]] = []
    err, it, status = 1.0, 0, "max_iter"
    while err > tol and it <= max_iter:
        grad = ot.gromov.gwggrad(constC, hC1, hC2, T)
        loss = float(np.sum(grad * T) / 2)
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # an underflow is detected and reported below
            warnings.simplefilter("ignore")
            T_new, info = ot.sinkhorn(
                p,
                q,
                grad,
                epsilon,
                method=sinkhorn_method,
                numItermax=sinkhorn_max_iter,
                stopThr=np.sqrt(sinkhorn_tol),
                warmstart=scalings,
                log=True,
                warn=False,
            )
        if not (np.isfinite(T_new).all() and abs(T_new.sum() - 1) < 1e-3):
            status = "numerical failure"
            if log is not None:
                log.note(
                    f"iteration {it}: Sinkhorn failed numerically (the coupling lost its mass); epsilon "
                    f"{epsilon:g} is too small for these distances: try a larger one or "
                    "sinkhorn_method=sinkhorn_log"
                )
            break
        scalings = _warmstart(info, sinkhorn_method)
        change = float(np.linalg.norm(T_new - T))
        if it % 10 == 0:  # as otalign (and POT): the stopping test only every 10th iteration
            err = change
        T = T_new
        history.append({"iteration": it, "gw_loss": loss, "change": change, "sinkhorn_iter": int(info["niter"]) + 1})
        if log is not None:
            log.update(it, gw_loss=loss, change=change, sinkhorn=int(info["niter"]) + 1)
        it += 1
    if err <= tol:
        status = "converged"
    return T, history, status


def _warmstart(info: dict[str, Any], method: SinkhornMethod) -> tuple[np.ndarray, np.ndarray]:
    """The log scalings of a Sinkhorn run, as POT's ``warmstart`` takes them."""
    if method == "sinkhorn_log":
        return info["log_u"], info["log_v"]
    return np.log(info["u"]), np.log(info["v"])


def coupling_pairs(T: np.ndarray) -> np.ndarray:
    """STEP 3: the ``(source, target)`` pairs whose entry is the largest of both its row and its column."""
    best_tgt, best_src = T.argmax(axis=1), T.argmax(axis=0)
    rows = np.flatnonzero(best_src[best_tgt] == np.arange(len(T)))
    return np.c_[rows, best_tgt[rows]].astype(np.int64)


class GromovWasserstein(Mapper):
    """Gromov-Wasserstein alignment (``gwa``), fully unsupervised.

    Parameters
    ----------
    n_words : words of each language in the GW problem, the most frequent (otalign's ``--maxs/--maxt``, 2000).
    epsilon : entropic regularisation (``--entreg``, 5e-4).
    max_iter : GW iterations ``0..max_iter`` at most (``--maxiter``, 1000).  tol : stop when ``||T - T_prev||``
        falls to ``tol`` (1e-8).
    sinkhorn_max_iter, sinkhorn_tol : each Sinkhorn projection: at most 1000 iterations, stop when the squared
        marginal error is below 1e-9 (otalign's and POT <= 0.6's rule).
    sinkhorn_method : ``"sinkhorn"`` (otalign's scaling iterations) or ``"sinkhorn_log"`` (log domain: slower, but it
        does not underflow when ``epsilon`` is small for the spread of the distances).
    verbose : report every iteration (GW loss, change of the coupling) on stderr.

    Attributes
    ----------
    W_src_ : identity.  W_tgt_ : the orthogonal map of the target space onto the source space.
    coupling_ : the GW coupling (n_words x n_words).  pairs_ : its mutual argmax pairs (rows).
    n_iter_ : GW iterations run.  objective_ : GW loss of the final coupling's predecessor.
    status_ : ``"converged"``, ``"max_iter"`` or ``"numerical failure"``.  converged_ : ``status_ == "converged"``.
    history_ : one dict per iteration.

    Deterministic: nothing is random. The GW problem is not convex: on near rotation-symmetric spaces the coupling
    can settle on a wrong symmetry; a Sinkhorn underflow leaves a coupling without mass. Either way the run finishes
    (a map from whatever mutual pairs there are), says so, and scores low.

    References
    ----------
    Alvarez-Melis, Jaakkola (2018), Gromov-Wasserstein Alignment of Word Embedding Spaces, EMNLP;
    Peyré, Cuturi, Solomon (2016), Gromov-Wasserstein averaging of kernel and distance matrices, ICML.
    """

    def __init__(
        self,
        n_words: int = 2000,
        epsilon: float = 5e-4,
        max_iter: int = 1000,
        tol: float = 1e-8,
        sinkhorn_max_iter: int = 1000,
        sinkhorn_tol: float = 1e-9,
        sinkhorn_method: SinkhornMethod = "sinkhorn",
        verbose: bool = False,
    ) -> None:
        self.n_words = n_words
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.tol = tol
        self.sinkhorn_max_iter = sinkhorn_max_iter
        self.sinkhorn_tol = sinkhorn_tol
        self.sinkhorn_method = sinkhorn_method
        self.verbose = verbose

    def _check_params(self) -> None:
        if self.n_words < 2:
            raise XlingError(f"n_words must be at least 2, found {self.n_words}")
        for name in ("epsilon", "tol", "sinkhorn_tol"):
            if not getattr(self, name) > 0:
                raise XlingError(f"{name} must be > 0, found {getattr(self, name)}")
        for name in ("max_iter", "sinkhorn_max_iter"):
            if getattr(self, name) < 1:
                raise XlingError(f"{name} must be at least 1, found {getattr(self, name)}")
        if self.sinkhorn_method not in ("sinkhorn", "sinkhorn_log"):
            raise XlingError(f"sinkhorn_method: expected 'sinkhorn' or 'sinkhorn_log', found {self.sinkhorn_method!r}")

    def _normalize(self, X: np.ndarray, *, inplace: bool) -> np.ndarray:
        """As the reference normalises (``split_normalize``), in ``fit``, ``transform`` and in place alike."""
        return split_normalize(X, self.n_words, inplace=inplace)

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> GromovWasserstein:
        """Solve GW on the most frequent words and fit the orthogonal map on the coupling's mutual pairs."""
        self._check_params()
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "gwa")
        n = min(self.n_words, len(Xn), len(Zn))
        with IterationLog("gwa", self.verbose) as log:
            C1, C2 = distance_matrices(Xn[:n], Zn[:n])
            T, self.history_, self.status_ = gromov_wasserstein(
                C1,
                C2,
                epsilon=self.epsilon,
                max_iter=self.max_iter,
                tol=self.tol,
                sinkhorn_max_iter=self.sinkhorn_max_iter,
                sinkhorn_tol=self.sinkhorn_tol,
                sinkhorn_method=self.sinkhorn_method,
                log=log,
            )
            self.pairs_ = coupling_pairs(T)
            log.note(f"{self.status_}; {len(self.pairs_)} mutual argmax pairs among {n} words")
        P = procrustes_map(Xn[self.pairs_[:, 0]], Zn[self.pairs_[:, 1]])
        self.W_src_ = np.eye(Xn.shape[1], dtype=np.float32)
        self.W_tgt_ = np.ascontiguousarray(P.T)
        self.coupling_ = T
        self.n_iter_ = len(self.history_)
        self.objective_ = self.history_[-1]["gw_loss"] if self.history_ else float("nan")
        self.converged_ = self.status_ == "converged"
        return self
