"""RCSLS: a linear map trained on a relaxed CSLS retrieval loss (Joulin et al., 2018), as fastText's
``alignment/align.py`` trains it.

Steps, in ``align.py``'s order:

0. Both spaces unit length (``normalize=("unit", "center", "unit")`` is its ``--center``); the negatives are the first
   ``maxneg`` words of each space.
1. Start from orthogonal Procrustes on the training pairs.
2. ``rcsls_loss``: for each training pair ``(x, y)`` and map ``R``,
   ``-2 cos(Rx, y) + mean of Rx's k best scores among target negatives + mean of y's k best among R(source negatives)``,
   averaged over the pairs, and its gradient (full batch; ``batch_size`` samples pairs as ``--sgd`` does).
3. A gradient step of size ``lr`` (after ``reg`` weight decay); ``spectral=True`` clips the singular values to [0, 1].
4. ``lr`` halves whenever the loss rises (full batch only), and the loop stops after ``n_iter + 1`` steps or when
   ``lr < 1e-4``. What happens to the map on a rise follows ``align.py``'s code rather than its comment: there
   ``Rold`` aliases ``R`` and the update is in place, so the new map is kept (with ``spectral``, the new map before
   projection). ``rollback=True`` instead restores the last map whose loss did not rise.

Written for speed, not copied: the scores are computed in float32 a block of pairs at a time (never an
``n x maxneg`` matrix, which is 8 GB in float64 for 5K pairs and 200K negatives), and the second term uses
``y . (R z) = (R^T y) . z``, so each step is two ``n x d x maxneg`` products and two row-wise top-k selections.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim
from xling.cle.mappers.iterlog import IterationLog
from xling.cle.mappers.procrustes import procrustes_map
from xling.errors import XlingError

#: Bytes of one block of scores (pairs x negatives, float32).
SCORE_BLOCK_BYTES = 64 * 2**20


def _top_k_sum(S: np.ndarray, negatives: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Sum of every row's ``k`` largest scores, and per row the sum of the ``k`` negatives that gave them."""
    idx = np.argpartition(S, S.shape[1] - k, axis=1)[:, -k:]
    f = float(np.take_along_axis(S, idx, axis=1).sum(dtype=np.float64))
    return f, negatives[idx].sum(axis=1, dtype=np.float32)


def rcsls_loss(
    R: np.ndarray, X: np.ndarray, Y: np.ndarray, neg_src: np.ndarray, neg_tgt: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    """STEP 2: the RCSLS loss of map ``R`` (``x -> R x``) on pairs ``(X, Y)`` and its gradient (float64, ``R``'s
    shape). ``neg_src``/``neg_tgt``: the negatives of each side (unit rows)."""
    n, d = X.shape
    R32 = R.astype(np.float32)
    f = 2.0 * float(np.einsum("ij,ij->", X.astype(np.float64) @ R.T, Y))
    grad = 2.0 * (Y.T.astype(np.float64) @ X)
    block = max(1, SCORE_BLOCK_BYTES // (4 * max(len(neg_src), len(neg_tgt))))
    for start in range(0, n, block):
        Xb, Yb = X[start : start + block], Y[start : start + block]
        # Rx against the target negatives
        f0, near_tgt = _top_k_sum((Xb @ R32.T) @ neg_tgt.T, neg_tgt, k)
        # y against the mapped source negatives: y . (R z) = (R^T y) . z
        f1, near_src = _top_k_sum((Yb @ R32) @ neg_src.T, neg_src, k)
        f -= (f0 + f1) / k
        grad -= (near_tgt.T.astype(np.float64) @ Xb + Yb.T.astype(np.float64) @ near_src) / k
    return -f / n, -grad / n


def spectral_projection(R: np.ndarray) -> np.ndarray:
    """STEP 3 (``spectral``): the map with its singular values clipped to [0, 1]."""
    U, s, Vt = np.linalg.svd(R)
    return (U * np.clip(s, 0.0, 1.0)) @ Vt


class RCSLS(Mapper):
    """RCSLS (``rcsls``): supervised linear map trained on the relaxed CSLS loss, from a Procrustes start.

    Parameters
    ----------
    lr : learning rate (25, as fastText's example; ``align.py``'s own default is 1).
    n_iter : gradient steps after the first (10; ``n_iter + 1`` steps in all, as ``align.py --niter``).
    knn : neighbours in the CSLS terms (10).  maxneg : negatives, the most frequent words of each side (200000).
    spectral : clip singular values to [0, 1] after each step (``--model spectral``).
    reg : weight decay per step (0).  batch_size : pairs per step (None: full batch; else ``--sgd``, seeded).
    rollback : on a loss increase restore the previous map (False: ``align.py``'s effective behaviour, see module).
    normalize : ("unit",), or ("unit", "center", "unit") for ``--center``.
    seed : random seed of the sampled batches.  verbose : one progress line per step (``IterationLog``).

    Attributes
    ----------
    W_src_ : ``R^T`` (rows map as ``x W``).  W_tgt_ : identity.  n_iter_ : steps taken.
    objective_ : the last accepted loss.  history_ : per step: iteration, objective, lr, accepted, seconds.

    References
    ----------
    Joulin, Bojanowski, Mikolov, Jégou, Grave (2018), Loss in Translation: Learning Bilingual Word Mapping with a
    Retrieval Criterion, EMNLP; fastText ``alignment/align.py``.
    """

    def __init__(
        self,
        lr: float = 25.0,
        n_iter: int = 10,
        knn: int = 10,
        maxneg: int = 200000,
        spectral: bool = False,
        reg: float = 0.0,
        batch_size: int | None = None,
        rollback: bool = False,
        normalize: Sequence[str] = ("unit",),
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.lr = lr
        self.n_iter = n_iter
        self.knn = knn
        self.maxneg = maxneg
        self.spectral = spectral
        self.reg = reg
        self.batch_size = batch_size
        self.rollback = rollback
        self.normalize = normalize
        self.seed = seed
        self.verbose = verbose

    def _check_params(self) -> None:
        if not self.lr > 0 or self.reg < 0 or self.n_iter < 0:
            raise XlingError(f"rcsls: need lr > 0, reg >= 0, n_iter >= 0; found {self.lr}, {self.reg}, {self.n_iter}")
        if self.knn < 1 or self.maxneg < self.knn:
            raise XlingError(f"rcsls: need 1 <= knn <= maxneg; found knn {self.knn}, maxneg {self.maxneg}")
        if self.batch_size is not None and self.batch_size < 1:
            raise XlingError(f"rcsls: batch_size must be at least 1 (or None), found {self.batch_size}")

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> RCSLS:
        """Procrustes start, then ``n_iter + 1`` gradient steps on the RCSLS loss."""
        self._check_params()
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "rcsls")
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        knn = min(self.knn, len(Xn), len(Zn))
        Xp, Yp = Xn[pairs[:, 0]], Zn[pairs[:, 1]]
        neg_src, neg_tgt = Xn[: self.maxneg], Zn[: self.maxneg]
        rng = np.random.default_rng(self.seed)
        sgd = self.batch_size is not None and self.batch_size < len(pairs)
        # STEP 1: Procrustes start (R maps x -> R x, i.e. rows map by R^T)
        R = procrustes_map(Xp, Yp).T.astype(np.float64)
        lr, f_old, R_kept = float(self.lr), np.inf, R
        self.history_: list[dict[str, Any]] = []
        with IterationLog("rcsls", self.verbose) as log:
            for it in range(self.n_iter + 1):
                if lr < 1e-4:
                    break
                t0 = time.perf_counter()
                batch = rng.choice(len(pairs), size=self.batch_size, replace=False) if sgd else slice(None)
                # STEP 2: loss and gradient at the current map
                f, grad = rcsls_loss(R, Xp[batch], Yp[batch], neg_src, neg_tgt, knn)
                # STEP 3: gradient step (weight decay first), optional spectral projection
                step = R * (1.0 - lr * self.reg) - lr * grad
                R_new = spectral_projection(step) if self.spectral else step
                # STEP 4: halve the learning rate when the loss rose
                accepted = not (f > f_old and it > 0 and not sgd)
                if accepted:
                    R_kept, f_old, R = R, f, R_new
                else:
                    lr /= 2
                    R = R_kept if self.rollback else step  # align.py keeps the (unprojected) new map
                self.history_.append(
                    {
                        "iteration": it,
                        "objective": f,
                        "lr": lr,
                        "accepted": accepted,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                log.update(it, objective=f, lr=lr, step="accepted" if accepted else "loss rose: lr halved")
        self.W_src_ = R.T.astype(np.float32)
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.n_iter_, self.objective_ = len(self.history_), float(f_old)
        return self
