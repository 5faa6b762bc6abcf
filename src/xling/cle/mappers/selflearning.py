"""VecMap-style self-learning (Artetxe, Labaka, Agirre, ACL 2018): map, induce a dictionary, repeat.

The loop, as in the paper and vecmap's ``map_embeddings.py``:

0. Normalise both spaces (unit, center, unit) and take a seed dictionary: the given pairs (semi-supervised),
   identical strings (``identical_pairs``), or ``unsupervised_init`` (similarity distributions of the top 4K
   words).
1. ``orthogonal_map``-style Procrustes on the current dictionary.
2. ``induce_dictionary``: CSLS (k=10) nearest neighbours in both directions over the ``vocabulary_cutoff``
   most frequent words, with stochastic dictionary induction (each candidate kept with probability
   ``keep_prob``).
3. The objective (mean best similarity, both directions) decides convergence: after ``stochastic_interval``
   iterations without an improvement of at least ``threshold``, ``keep_prob`` doubles; at 1.0 the loop ends.
4. Final refinement: the multi-step mapping (``vecmap.multistep_maps``) on the last induced dictionary.

Stochastic induction, written for speed without changing the distribution: dropping every candidate
independently with probability ``1 - p`` and taking the best survivor picks the candidate of rank ``r`` with
probability ``p (1 - p)^(r - 1)``. So each query draws ``r ~ Geometric(p)`` and takes its ``r``-th best
candidate: only the top ``max(r)`` candidates are needed, never a dense random mask of vocab x vocab numbers
(vecmap draws one per iteration and direction). vecmap sets dropped scores to 0 instead of removing them, which
differs only when every kept CSLS score of a query is negative; here dropped candidates are simply excluded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim
from xling.cle.mappers.iterlog import IterationLog
from xling.cle.mappers.procrustes import procrustes_map
from xling.cle.mappers.vecmap import MultiStep, multistep_maps
from xling.cle.normalize import VECMAP_ORDER, check_steps, normalize
from xling.cle.retrieval import nearest
from xling.errors import XlingError

Init = Literal["pairs", "unsupervised"]
Direction = Literal["forward", "backward", "union"]


def identical_pairs(src_words: Sequence[str], tgt_words: Sequence[str]) -> np.ndarray:
    """Seed dictionary of identically spelled words: ``(source row, target row)`` for every shared string."""
    tgt_index = {w: j for j, w in enumerate(tgt_words)}
    pairs = [(i, tgt_index[w]) for i, w in enumerate(src_words) if w in tgt_index]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def similarity_distribution(M: np.ndarray, steps: Sequence[str]) -> np.ndarray:
    """Each word's sorted similarity profile ``sort(sqrt(M M^T))``, normalised: comparable across languages."""
    U, s, _ = np.linalg.svd(M.astype(np.float64), full_matrices=False)
    sim = (U * s) @ U.T
    sim.sort(axis=1)
    return normalize(sim.astype(np.float32), steps)


def unsupervised_init(
    Xn: np.ndarray, Zn: np.ndarray, vocab: int, csls_k: int, steps: Sequence[str], direction: Direction = "union"
) -> np.ndarray:
    """Fully unsupervised seed: CSLS nearest neighbours between similarity distributions of the top ``vocab`` words."""
    n = min(len(Xn), len(Zn), vocab)
    xsim, zsim = similarity_distribution(Xn[:n], steps), similarity_distribution(Zn[:n], steps)
    rows = np.arange(n)
    fwd = nearest(xsim, zsim, 1, "csls", csls_k=csls_k)[0][:, 0]
    bwd = nearest(zsim, xsim, 1, "csls", csls_k=csls_k)[0][:, 0]
    return _combine(np.c_[rows, fwd], np.c_[bwd, rows], direction)


def _combine(forward: np.ndarray, backward: np.ndarray, direction: Direction) -> np.ndarray:
    if direction == "forward":
        return forward
    if direction == "backward":
        return backward
    return np.concatenate([forward, backward])


#: Largest similarity matrix (bytes) kept between the passes of one induction; larger ones are recomputed.
STORE_BYTES = 2 * 2**30
#: Bytes of the largest temporary of one block (its int64 candidate indices). Kept under glibc's 32 MB mmap
#: threshold so that blocks reuse heap memory instead of faulting in fresh pages every time.
BLOCK_BYTES = 16 * 2**20


def _top_k(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a similarity block: the mean of the ``k`` largest values (CSLS's r) and the largest one."""
    k = min(k, S.shape[1])
    top = np.partition(S, S.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1, dtype=np.float64).astype(np.float32), top.max(axis=1)


def _sampled_choice(A: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Per row of a score block, the column of its ``ranks[i]``-th largest score (rank 1 = the argmax)."""
    ranks = np.minimum(ranks, A.shape[1])
    R = int(ranks.max())
    if R == 1:
        return A.argmax(axis=1)
    top = np.argpartition(A, A.shape[1] - R, axis=1)[:, -R:]
    order = np.argsort(-np.take_along_axis(A, top, axis=1), axis=1, kind="stable")
    rows = np.arange(len(A))
    return top[rows, order[rows, ranks - 1]]


def _spans(n: int, n_cols: int) -> list[slice]:
    step = max(1, BLOCK_BYTES // (8 * n_cols))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def similarity_buffer(n_src: int, n_tgt: int) -> np.ndarray | None:
    """Room for ``S`` between the passes of an induction, or None when it is too large (then recomputed)."""
    return np.empty((n_src, n_tgt), dtype=np.float32) if 4 * n_src * n_tgt <= STORE_BYTES else None


def induce_dictionary(
    Xc: np.ndarray,
    Zc: np.ndarray,
    *,
    keep_prob: float,
    csls_k: int,
    direction: Direction,
    rng: np.random.Generator,
    S: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """STEP 2: CSLS dictionary induction with stochastic dropout; returns ``(pairs, objective)``.

    ``Xc``/``Zc`` are the mapped spaces cut to the vocabulary cutoff (unit rows give cosines). Forward: each
    source takes a target by ``cos(x, z) - r(z)/2``, the CSLS ranking for a fixed source, with ``r(z)`` the
    mean similarity of ``z`` to its ``csls_k`` nearest sources; backward symmetrically. The objective is the
    mean best similarity, averaged over the directions used.

    Why not ``xling.cle.retrieval``: its functions each compute their own products, while induction needs
    both directions' CSLS terms, best similarities and sampled ranks; here one pass over ``S = Xc Zc^T``
    and one over ``S^T`` give all of them (vecmap computes four products per iteration). ``S``: an optional
    ``similarity_buffer`` reused across iterations; without one, pass 3 recomputes the products.
    """
    n_src, n_tgt = len(Xc), len(Zc)
    ranks_fwd = rng.geometric(keep_prob, size=n_src)
    ranks_bwd = rng.geometric(keep_prob, size=n_tgt)
    r_src, best_fwd = np.empty(n_src, dtype=np.float32), np.empty(n_src, dtype=np.float32)
    r_tgt, best_bwd = np.empty(n_tgt, dtype=np.float32), np.empty(n_tgt, dtype=np.float32)
    pick_fwd, pick_bwd = np.empty(n_src, dtype=np.int64), np.empty(n_tgt, dtype=np.int64)
    # pass 1, source rows of S: r(x) and each source's best similarity
    for b in _spans(n_src, n_tgt):
        block = np.matmul(Xc[b], Zc.T, out=S[b]) if S is not None else Xc[b] @ Zc.T
        r_src[b], best_fwd[b] = _top_k(block, csls_k)
    # pass 2, target rows of S^T: r(z), each target's best similarity, backward induction
    for b in _spans(n_tgt, n_src):
        block = Zc[b] @ Xc.T
        r_tgt[b], best_bwd[b] = _top_k(block, csls_k)
        if direction != "forward":
            block -= r_src / 2
            pick_bwd[b] = _sampled_choice(block, ranks_bwd[b])
    # pass 3, forward induction (needs every r(z))
    if direction != "backward":
        for b in _spans(n_src, n_tgt):
            block = S[b] if S is not None else Xc[b] @ Zc.T
            block -= r_tgt / 2
            pick_fwd[b] = _sampled_choice(block, ranks_fwd[b])
    forward = np.c_[np.arange(n_src), pick_fwd]
    backward = np.c_[pick_bwd, np.arange(n_tgt)]
    objectives = {"forward": [best_fwd], "backward": [best_bwd], "union": [best_fwd, best_bwd]}[direction]
    objective = float(np.mean([o.mean(dtype=np.float64) for o in objectives]))
    return _combine(forward, backward, direction), objective


class VecMapSelfLearning(Mapper):
    """Self-learning mapping (``vecmap-semi``, ``vecmap-identical``, ``vecmap-unsup``).

    Parameters
    ----------
    init : ``"pairs"`` (seed dictionary given to ``fit``: a training dictionary or ``identical_pairs``) or
        ``"unsupervised"`` (similarity-distribution initialisation on the top ``unsupervised_vocab`` words).
    vocabulary_cutoff : induction over the most frequent words only (20K).
    csls_k : CSLS neighbourhood (10).  direction : ``union`` (both), ``forward`` or ``backward``.
    threshold : minimum objective improvement that counts (1e-6).
    stochastic_initial, stochastic_multiplier, stochastic_interval : keep probability 0.1, doubled after
        50 iterations without improvement.
    max_iter : stop after this many iterations even if not converged (None: run to convergence, as vecmap).
    seed : random seed of the stochastic induction (deterministic for a given seed).
    normalize, steps : the normalisation and the final multi-step refinement (``MultiStep``; vecmap's recommended
        settings).
    verbose : report every iteration (objective, keep probability) on stderr (``IterationLog``).

    Attributes
    ----------
    W_src_, W_tgt_ : the final multi-step maps.  pairs_ : the last induced dictionary (rows).
    n_iter_ : iterations run.  objective_ : best objective.  converged_ : False when ``max_iter`` stopped it.
    history_ : one dict per iteration (iteration, objective, keep_prob, seconds).

    References
    ----------
    Artetxe, Labaka, Agirre (2018), A robust self-learning method for fully unsupervised cross-lingual
    mappings of word embeddings, ACL.
    """

    def __init__(
        self,
        init: Init = "pairs",
        vocabulary_cutoff: int = 20000,
        csls_k: int = 10,
        direction: Direction = "union",
        threshold: float = 1e-6,
        stochastic_initial: float = 0.1,
        stochastic_multiplier: float = 2.0,
        stochastic_interval: int = 50,
        unsupervised_vocab: int = 4000,
        max_iter: int | None = None,
        seed: int = 0,
        normalize: Sequence[str] = VECMAP_ORDER,
        steps: MultiStep = MultiStep(),
        verbose: bool = False,
    ) -> None:
        self.init = init
        self.vocabulary_cutoff = vocabulary_cutoff
        self.csls_k = csls_k
        self.direction = direction
        self.threshold = threshold
        self.stochastic_initial = stochastic_initial
        self.stochastic_multiplier = stochastic_multiplier
        self.stochastic_interval = stochastic_interval
        self.unsupervised_vocab = unsupervised_vocab
        self.max_iter = max_iter
        self.seed = seed
        self.normalize = normalize
        self.steps = steps
        self.verbose = verbose

    def _check_params(self, dim: int) -> None:
        if self.init not in ("pairs", "unsupervised"):
            raise XlingError(f"init: expected 'pairs' or 'unsupervised', found {self.init!r}")
        if self.direction not in ("forward", "backward", "union"):
            raise XlingError(f"direction: expected 'forward', 'backward' or 'union', found {self.direction!r}")
        if not 0 < self.stochastic_initial <= 1:
            raise XlingError(f"stochastic_initial must be in (0, 1], found {self.stochastic_initial}")
        if self.stochastic_multiplier <= 1:
            raise XlingError(f"stochastic_multiplier must be > 1, found {self.stochastic_multiplier}")
        for name in ("vocabulary_cutoff", "csls_k", "stochastic_interval", "unsupervised_vocab"):
            if getattr(self, name) < 1:
                raise XlingError(f"{name} must be at least 1, found {getattr(self, name)}")
        if self.max_iter is not None and self.max_iter < 1:
            raise XlingError(f"max_iter must be at least 1, found {self.max_iter}")
        check_steps(self.normalize)
        self.steps.check(dim)

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> VecMapSelfLearning:
        """Run self-learning from the seed dictionary (or the unsupervised initialisation), then refine."""
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "vecmap")
        self._check_params(Xn.shape[1])
        if self.init == "unsupervised":
            pairs = unsupervised_init(Xn, Zn, self.unsupervised_vocab, self.csls_k, self.normalize, self.direction)
        else:
            pairs = check_pairs(pairs, len(Xn), len(Zn), name="seed dictionary")
        rng = np.random.default_rng(self.seed)
        Xc, Zc = Xn[: self.vocabulary_cutoff], Zn[: self.vocabulary_cutoff]
        S = similarity_buffer(len(Xc), len(Zc))
        keep_prob, best, it, last_improvement = self.stochastic_initial, -np.inf, 1, 0
        self.history_: list[dict[str, float]] = []
        self.converged_ = True
        with IterationLog("self-learning", self.verbose) as log:
            while True:
                # after an interval without improvement: more deterministic induction, or stop at keep_prob 1
                if it - last_improvement > self.stochastic_interval:
                    if keep_prob >= 1.0:
                        break
                    keep_prob = min(1.0, self.stochastic_multiplier * keep_prob)
                    last_improvement = it
                if self.max_iter is not None and it > self.max_iter:
                    self.converged_ = False
                    break
                t0 = time.perf_counter()
                # STEP 1: orthogonal mapping on the current dictionary
                W = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
                # STEP 2: dictionary induction in the mapped space
                pairs, objective = induce_dictionary(
                    Xc @ W, Zc, keep_prob=keep_prob, csls_k=self.csls_k, direction=self.direction, rng=rng, S=S
                )
                # STEP 3: convergence bookkeeping
                if objective - best >= self.threshold:
                    last_improvement, best = it, objective
                self.history_.append(
                    {
                        "iteration": it,
                        "objective": objective,
                        "keep_prob": keep_prob,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                log.update(it, objective=objective, best=float(best), keep=keep_prob, dictionary=len(pairs))
                it += 1
        # STEP 4: final multi-step refinement on the last induced dictionary
        self.W_src_, self.W_tgt_ = multistep_maps(Xn[pairs[:, 0]], Zn[pairs[:, 1]], self.steps)
        self.pairs_, self.n_iter_, self.objective_ = pairs, it - 1, float(best)
        return self
