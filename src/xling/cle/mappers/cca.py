"""CCA mappings, two named variants that differ on purpose.

- ``CCAXlingEval`` (``cca-xlingeval``): xling-eval's behaviour, as used for the paper's CCA numbers: no
  centring, covariances ``X^T X / n``; the whitened cross-covariance ``C_xx^{-1/2} C_xz C_zz^{-1/2}`` is
  factorised ``U S V^T`` and the spaces are projected by the SVD factors alone, ``X U`` and ``Z V``. Both maps
  are orthogonal, so distances inside each space are kept.
- ``CCA`` (``cca``): textbook CCA: centred on the training pairs' means, projected by
  ``C_xx^{-1/2} U`` and ``C_zz^{-1/2} V``, so the mapped training pairs are whitened (identity covariance)
  and their per-dimension correlations are the canonical correlations ``S``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xling.cle.mappers.base import Mapper, check_pairs, single_threaded
from xling.errors import XlingError


def inverse_sqrt(C: np.ndarray) -> np.ndarray:
    """``C^{-1/2}`` of a symmetric positive definite matrix (eigendecomposition); singular → ``XlingError``."""
    vals, vecs = np.linalg.eigh(C)
    if vals.min() <= vals.max() * 1e-12:
        raise XlingError(
            "cca: the training pairs' covariance is singular (fewer independent pairs than dimensions?); "
            "use more pairs or set reg > 0"
        )
    return (vecs / np.sqrt(vals)) @ vecs.T


@single_threaded
def canonical_directions(
    Xd: np.ndarray, Zd: np.ndarray, reg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(Cxx^{-1/2}, Czz^{-1/2}, U, S, V)`` with ``U S V^T = Cxx^{-1/2} Cxz Czz^{-1/2}`` (float64, uncentred)."""
    n = len(Xd)
    Xd, Zd = Xd.astype(np.float64), Zd.astype(np.float64)
    Cxx = Xd.T @ Xd / n + reg * np.eye(Xd.shape[1])
    Czz = Zd.T @ Zd / n + reg * np.eye(Zd.shape[1])
    Cxz = Xd.T @ Zd / n
    Kx, Kz = inverse_sqrt(Cxx), inverse_sqrt(Czz)
    U, S, Vt = np.linalg.svd(Kx @ Cxz @ Kz, full_matrices=False)
    return Kx, Kz, U, S, Vt.T


class CCAXlingEval(Mapper):
    """CCA as xling-eval runs it (``cca-xlingeval``): uncentred, projection by the SVD factors ``U`` and ``V``.

    Parameters
    ----------
    n_components : kept dimensions (default: all, ``min(d_src, d_tgt)``, as xling-eval).
    reg : ridge added to both covariances (xling-eval: 0).
    normalize : steps applied to both spaces first (default none, as xling-eval).

    Attributes
    ----------
    W_src_ = U[:, :k], W_tgt_ = V[:, :k] (orthonormal columns); correlations_ = the canonical correlations.
    """

    def __init__(self, n_components: int | None = None, reg: float = 0.0, normalize: Sequence[str] = ()) -> None:
        self.n_components = n_components
        self.reg = reg
        self.normalize = normalize

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> CCAXlingEval:
        """Learn the two projections from the training pairs."""
        Xn, Zn = self._inputs(X, Z)
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        k = _n_components(self.n_components, Xn, Zn)
        _, _, U, S, V = canonical_directions(Xn[pairs[:, 0]], Zn[pairs[:, 1]], self.reg)
        self.W_src_ = U[:, :k].astype(np.float32)
        self.W_tgt_ = V[:, :k].astype(np.float32)
        self.correlations_ = S[:k]
        self.n_pairs_ = len(pairs)
        return self


class CCA(Mapper):
    """Textbook CCA (``cca``): centred on the training pairs, projected by ``C^{-1/2}`` then ``U`` / ``V``.

    Parameters
    ----------
    n_components : kept dimensions (default all).  reg : ridge added to both covariances.
    normalize : steps applied to both spaces first.

    Attributes
    ----------
    W_src_ = Cxx^{-1/2} U[:, :k], W_tgt_ = Czz^{-1/2} V[:, :k]; mean_src_, mean_tgt_ (subtracted before
    projecting); correlations_ = the canonical correlations.
    """

    def __init__(self, n_components: int | None = None, reg: float = 0.0, normalize: Sequence[str] = ()) -> None:
        self.n_components = n_components
        self.reg = reg
        self.normalize = normalize

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> CCA:
        """Learn means and projections from the training pairs."""
        Xn, Zn = self._inputs(X, Z)
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        k = _n_components(self.n_components, Xn, Zn)
        Xd, Zd = Xn[pairs[:, 0]].astype(np.float64), Zn[pairs[:, 1]].astype(np.float64)
        self.mean_src_, self.mean_tgt_ = Xd.mean(axis=0), Zd.mean(axis=0)
        Kx, Kz, U, S, V = canonical_directions(Xd - self.mean_src_, Zd - self.mean_tgt_, self.reg)
        self.W_src_ = (Kx @ U[:, :k]).astype(np.float32)
        self.W_tgt_ = (Kz @ V[:, :k]).astype(np.float32)
        self.correlations_ = S[:k]
        self.n_pairs_ = len(pairs)
        return self

    def _map(self, Xn: np.ndarray, Zn: np.ndarray, *, inplace: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray]:
        """Centre on the training means, then project: ``((X - m_x) W_src_, (Z - m_z) W_tgt_)``."""
        Xm, Zm = super()._map(Xn, Zn, inplace=inplace)  # new arrays, or the caller's to overwrite
        Xm -= (self.mean_src_ @ self.W_src_).astype(np.float32)
        Zm -= (self.mean_tgt_ @ self.W_tgt_).astype(np.float32)
        return Xm, Zm


def _n_components(k: int | None, X: np.ndarray, Z: np.ndarray) -> int:
    top = min(X.shape[1], Z.shape[1])
    if k is None:
        return top
    if not 0 < k <= top:
        raise XlingError(f"cca: n_components must be in 1..{top}, found {k}")
    return k
