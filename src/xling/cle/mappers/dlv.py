"""DLV: the discriminative latent-variable model of Ruder, Cotterell, Kementchedjhieva and Søgaard (EMNLP 2018), as
``map_embeddings.py --ruder_emnlp2018`` of ``sebastianruder/latent-variable-vecmap`` runs it.

Self-learning from a seed dictionary in which each step's dictionary is a 1:1 matching:

0. Normalise both spaces (unit length, then mean-centred: ``unit, center``).
1. Orthogonal Procrustes on the current dictionary.
2. For every source word among the ``vocabulary_cutoff`` most frequent, its ``n_similar`` most similar targets (dot
   product in the mapped space, no CSLS) are its candidates, at cost ``1 - similarity``; the step's dictionary is a
   1:1 matching of candidate edges (``match_lapmod`` or ``match_optimal``).
3. The objective is the mean best similarity of the source words; the loop stops after the first step that does not
   raise it by ``threshold``, and the map is refitted on that step's dictionary.

Two solvers for step 2. ``solver="lapmod"`` (default) is the release's ``lat_var``: ``lap.lapmod`` (Jonker-Volgenant
for sparse matrices) on the candidate costs as a square problem, then every pair that is not a candidate edge is
dropped. With only ``n_similar`` candidates per word a full matching rarely exists, and on such problems ``lapmod``
returns a matching with as many candidate pairs as possible but not the cheapest one (on random problems here its
summed similarity was about 25% below the optimum), and its choices follow the last bits of the costs: xling's
Procrustes runs in float64 where the release's runs in float32, so the two agree step by step only when fed the same
numbers (the tests feed them so). ``solver="optimal"`` solves what the paper describes: among the matchings with the
most candidate pairs, the one of largest summed similarity, with SciPy's sparse solver
(``min_weight_full_bipartite_matching``) on the candidate edges plus one private "unmatched" column per word that
costs more than any gain among real edges. Neither builds the dense cost matrix (``linear_sum_assignment`` would need
40K x 40K; the release keeps that similarity matrix, 6.4 GB in float32); only each block's top candidates are kept.

``direction="backward"`` (``--ruder_emnlp2018_backward``) matches every target word to its candidate sources instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim
from xling.cle.mappers.iterlog import IterationLog
from xling.cle.mappers.procrustes import procrustes_map
from xling.errors import XlingError

Direction = Literal["forward", "backward"]
Solver = Literal["lapmod", "optimal"]

#: Bytes of one block of similarities (queries x candidates, float32).
SIM_BLOCK_BYTES = 64 * 2**20


def top_candidates(Q: np.ndarray, C: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row of ``Q``: its ``k`` most similar rows of ``C`` (dot product; indices, similarities) and its best
    similarity, computed a block of rows at a time."""
    k = min(k, len(C))
    idx = np.empty((len(Q), k), dtype=np.int64)
    sim = np.empty((len(Q), k), dtype=np.float32)
    best = np.empty(len(Q), dtype=np.float32)
    step = max(1, SIM_BLOCK_BYTES // (4 * len(C)))
    for start in range(0, len(Q), step):
        S = Q[start : start + step] @ C.T
        top = np.argpartition(S, S.shape[1] - k, axis=1)[:, -k:]
        idx[start : start + step] = top
        sim[start : start + step] = np.take_along_axis(S, top, axis=1)
        best[start : start + step] = sim[start : start + step].max(axis=1)
    return idx, sim, best


def match_lapmod(idx: np.ndarray, sim: np.ndarray, n_columns: int) -> np.ndarray:
    """STEP 2 as the release's ``lat_var``: ``lap.lapmod`` on the candidate costs ``1 - sim`` (columns sorted per
    row), then the rows assigned to a non-candidate column dropped; ``(row, column)`` pairs in row order."""
    try:
        from lap import lapmod
    except ImportError:
        raise XlingError(
            "dlv solver 'lapmod' needs the lap package (pip install lap, or xling[cle]); "
            "solver='optimal' needs only SciPy"
        ) from None
    n, k = idx.shape
    if n != n_columns:
        raise XlingError(
            f"dlv solver 'lapmod' matches square problems (as the release); found {n} words on one side "
            f"and {n_columns} on the other: lower vocabulary_cutoff or use solver='optimal'"
        )
    order = np.argsort(idx, axis=1)
    cols = np.take_along_axis(idx, order, axis=1)
    cost = np.maximum(1 - np.take_along_axis(sim, order, axis=1), 0)  # the release's float32 costs (>= 0 for lap)
    _, x, _ = lapmod(n, cost.ravel().astype(np.float64), np.arange(0, n * k + 1, k), cols.ravel())
    keep = (cols == x[:, None]).any(axis=1)
    return np.c_[np.flatnonzero(keep), x[keep]].astype(np.int64)


def match_optimal(idx: np.ndarray, sim: np.ndarray, n_columns: int) -> np.ndarray:
    """STEP 2 as the paper describes it: the 1:1 matching of rows to their candidate columns with the most pairs, then
    the largest summed similarity; returns ``(row, column)`` pairs of the matched rows, in row order."""
    n, k = idx.shape
    cost = (float(sim.max()) + 1.0 - sim).ravel()  # >= 1: no explicit zeros, order of similarities kept
    unmatched = n * float(cost.max()) + 1.0  # more than any sum of real costs: pairing one more row always wins
    data = np.concatenate([cost, np.full(n, unmatched)])
    rows = np.concatenate([np.repeat(np.arange(n), k), np.arange(n)])
    cols = np.concatenate([idx.ravel(), n_columns + np.arange(n)])
    row_ind, col_ind = min_weight_full_bipartite_matching(csr_array((data, (rows, cols)), shape=(n, n_columns + n)))
    keep = col_ind < n_columns
    return np.c_[row_ind[keep], col_ind[keep]].astype(np.int64)


class LatentVariableMatching(Mapper):
    """DLV (``dlv``): self-learning with a 1:1 latent matching per step, from a seed dictionary.

    Parameters
    ----------
    n_similar : candidates per word (3).  vocabulary_cutoff : words matched per side, the most frequent (40000).
    direction : ``forward`` (sources matched to targets, the paper's) or ``backward``.
    solver : ``"lapmod"`` (the release's matching; needs the ``lap`` package) or ``"optimal"`` (see the module).
    threshold : minimum objective gain that continues the loop (1e-6).
    max_iter : stop after this many matchings even if the objective still rises (None: until it stops rising).
    normalize : ("unit", "center"), as the release.  verbose : one progress line per step (``IterationLog``).

    Attributes
    ----------
    W_src_ : orthogonal map fitted on the last dictionary.  W_tgt_ : identity.  pairs_ : the last dictionary (rows).
    n_iter_ : matchings computed.  objective_ : best objective.  converged_ : False when ``max_iter`` stopped it.
    history_ : per step: iteration, objective, matched pairs, seconds.

    References
    ----------
    Ruder, Cotterell, Kementchedjhieva, Søgaard (2018), A Discriminative Latent-Variable Model for Bilingual Lexicon
    Induction, EMNLP; ``sebastianruder/latent-variable-vecmap`` (``lat_var.py``, ``map_embeddings.py``).
    """

    def __init__(
        self,
        n_similar: int = 3,
        vocabulary_cutoff: int = 40000,
        direction: Direction = "forward",
        solver: Solver = "lapmod",
        threshold: float = 1e-6,
        max_iter: int | None = None,
        normalize: Sequence[str] = ("unit", "center"),
        verbose: bool = False,
    ) -> None:
        self.n_similar = n_similar
        self.vocabulary_cutoff = vocabulary_cutoff
        self.direction = direction
        self.solver = solver
        self.threshold = threshold
        self.max_iter = max_iter
        self.normalize = normalize
        self.verbose = verbose

    def _check_params(self) -> None:
        if self.direction not in ("forward", "backward"):
            raise XlingError(f"dlv direction: expected 'forward' or 'backward', found {self.direction!r}")
        if self.solver not in ("lapmod", "optimal"):
            raise XlingError(f"dlv solver: expected 'lapmod' or 'optimal', found {self.solver!r}")
        for name in ("n_similar", "vocabulary_cutoff"):
            if getattr(self, name) < 1:
                raise XlingError(f"dlv: {name} must be at least 1, found {getattr(self, name)}")
        if self.max_iter is not None and self.max_iter < 1:
            raise XlingError(f"dlv: max_iter must be at least 1 (or None), found {self.max_iter}")

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> LatentVariableMatching:
        """Self-learning with latent matchings from the seed ``pairs``; the map of the last dictionary."""
        self._check_params()
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "dlv")
        pairs = check_pairs(pairs, len(Xn), len(Zn), name="seed dictionary")
        Xc, Zc = Xn[: self.vocabulary_cutoff], Zn[: self.vocabulary_cutoff]
        match = match_lapmod if self.solver == "lapmod" else match_optimal
        best, it = -np.inf, 0
        self.history_: list[dict[str, Any]] = []
        self.converged_ = True
        with IterationLog("dlv", self.verbose) as log:
            while True:
                if self.max_iter is not None and it >= self.max_iter:
                    self.converged_ = False
                    break
                it += 1
                t0 = time.perf_counter()
                # STEP 1: orthogonal map on the current dictionary
                W = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
                # STEP 2: the latent 1:1 matching among each word's top candidates
                if self.direction == "forward":
                    idx, sim, top = top_candidates(Xc @ W, Zc, self.n_similar)
                    pairs = match(idx, sim, len(Zc))
                else:
                    idx, sim, top = top_candidates(Zc, Xc @ W, self.n_similar)
                    pairs = match(idx, sim, len(Xc))[:, ::-1].copy()
                # STEP 3: stop after the first step that does not raise the objective
                objective = float(top.mean(dtype=np.float64))
                improved = objective - best >= self.threshold
                best = max(best, objective)
                self.history_.append(
                    {"iteration": it, "objective": objective, "pairs": len(pairs), "seconds": time.perf_counter() - t0}
                )
                log.update(it, objective=objective, best=best, matched=len(pairs))
                if not improved:
                    break
        self.W_src_ = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.pairs_, self.n_iter_, self.objective_ = pairs, it, float(best)
        return self
