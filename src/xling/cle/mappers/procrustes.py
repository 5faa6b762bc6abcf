"""PROC: orthogonal Procrustes mapping of the source space onto the target space (xling-eval's PROC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim, single_threaded


@single_threaded
def procrustes_map(Xd: np.ndarray, Zd: np.ndarray) -> np.ndarray:
    """The orthogonal ``W`` minimising ``||Xd W - Zd||_F`` (``U V^T`` of ``svd(Xd^T Zd)``), float64 inside."""
    W, _ = orthogonal_procrustes(Xd.astype(np.float64), Zd.astype(np.float64), check_finite=False)
    return W.astype(np.float32)


class Procrustes(Mapper):
    """Orthogonal Procrustes (PROC): ``X W ≈ Z`` on the training pairs with ``W`` orthogonal.

    Parameters
    ----------
    normalize : steps applied to both spaces first (``"unit"``, ``"center"``); empty = raw vectors, as
        xling-eval does.

    Attributes
    ----------
    W_src_ : (d, d) orthogonal source map.  W_tgt_ : identity (the target space is not changed).
    n_pairs_ : number of training pairs used.

    References
    ----------
    Glavaš et al. (2019), How to (Properly) Evaluate Cross-Lingual Word Embeddings, ACL; Schönemann (1966).

    Example
    -------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> Q = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
    >>> m = Procrustes().fit(X, X @ Q, np.c_[np.arange(50), np.arange(50)])
    >>> bool(np.allclose(m.W_src_, Q, atol=1e-5))
    True
    """

    def __init__(self, normalize: Sequence[str] = ()) -> None:
        self.normalize = normalize

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> Procrustes:
        """Learn ``W_src_`` from the training pairs."""
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "proc")
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        self.W_src_ = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.n_pairs_ = len(pairs)
        return self
