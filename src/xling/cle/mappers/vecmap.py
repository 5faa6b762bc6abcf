"""VecMap-style multi-step supervised mapping (Artetxe et al., AAAI 2018), one function per step.

Steps, on the normalised spaces and the training pairs ``(Xd, Zd)``:

1. ``whiten``: ``W1 = (Xd^T Xd)^{-1/2}`` for each side.
2. ``orthogonal_map``: ``U S V^T = svd((Xd W1x)^T (Zd W1z))``; source rotated by ``U``, target by ``V``.
3. ``reweight``: both sides scaled by ``S ** power`` (0.5 each by default).
4. ``dewhiten``: undo a whitening in the rotated coordinates, ``W2^T W1^{-1} W2`` (source by its own
   whitening, target by its own, by default).
5. ``reduce_dim``: keep the first ``k`` dimensions (optional).

All steps are linear, so ``fit`` composes them into the two matrices ``W_src_`` and ``W_tgt_`` and
``transform`` is one product per space (the same numbers as applying the steps one by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim, single_threaded
from xling.cle.normalize import VECMAP_ORDER
from xling.errors import XlingError

Side = Literal["src", "trg"]


def whiten(Md: np.ndarray) -> np.ndarray:
    """STEP 1: the whitening transformation ``(Md^T Md)^{-1/2} = V diag(1/s) V^T`` of ``svd(Md)``."""
    _, s, Vt = np.linalg.svd(Md.astype(np.float64), full_matrices=False)
    if len(s) < Md.shape[1] or s.min() <= s.max() * 1e-10:
        raise XlingError(
            f"whitening needs linearly independent training pairs spanning all {Md.shape[1]} dimensions; "
            f"found {len(Md)} pairs of rank {int((s > s.max() * 1e-10).sum())} (use more pairs or whiten=False)"
        )
    return (Vt.T / s) @ Vt


def orthogonal_map(Xd: np.ndarray, Zd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """STEP 2: ``(U, S, V)`` with ``U S V^T = svd(Xd^T Zd)``; source rotates by ``U``, target by ``V``."""
    U, S, Vt = np.linalg.svd(Xd.astype(np.float64).T @ Zd.astype(np.float64))
    return U, S, Vt.T


def reweight(S: np.ndarray, power: float) -> np.ndarray:
    """STEP 3: the per-dimension weights ``S ** power`` (power 0 = no re-weighting)."""
    return S**power


def dewhiten(W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
    """STEP 4: de-whitening in rotated coordinates, ``W2^T W1^{-1} W2``."""
    return W2.T @ np.linalg.inv(W1) @ W2


def reduce_dim(W: np.ndarray, k: int | None) -> np.ndarray:
    """STEP 5: keep the first ``k`` output dimensions (``None`` or 0 keeps all)."""
    return W if not k else W[:, :k]


@dataclass(frozen=True)
class MultiStep:
    """The options of steps 1–5, one object shared by ``vecmap-sup`` and the self-learning methods' final
    refinement (vecmap's recommended supervised settings by default). ``make_mapper`` also takes them one by one
    (``--param dim_reduction=100``)."""

    whitening: bool = True
    src_reweight: float = 0.5
    trg_reweight: float = 0.5
    src_dewhiten: Side | None = "src"
    trg_dewhiten: Side | None = "trg"
    dim_reduction: int | None = None

    def check(self, dim: int) -> None:
        """Validate the options against each other and the dimension."""
        for name in ("src_dewhiten", "trg_dewhiten"):
            value = getattr(self, name)
            if value not in (None, "src", "trg"):
                raise XlingError(f"{name}: expected 'src', 'trg' or None, found {value!r}")
            if value is not None and not self.whitening:
                raise XlingError(f"{name}={value!r} needs whitening first (whitening=False)")
        if self.dim_reduction is not None and not 0 <= self.dim_reduction <= dim:
            raise XlingError(f"dim_reduction must be in 0..{dim}, found {self.dim_reduction}")


@single_threaded
def multistep_maps(Xd: np.ndarray, Zd: np.ndarray, steps: MultiStep = MultiStep()) -> tuple[np.ndarray, np.ndarray]:
    """Compose steps 1–5 on the training pairs into ``(W_src, W_tgt)`` (float32)."""
    d = Xd.shape[1]
    W1x = whiten(Xd) if steps.whitening else np.eye(d)
    W1z = whiten(Zd) if steps.whitening else np.eye(d)
    U, S, V = orthogonal_map(Xd @ W1x, Zd @ W1z)
    W1 = {"src": W1x, "trg": W1z}
    W2 = {"src": U, "trg": V}
    D_src = dewhiten(W1[steps.src_dewhiten], W2[steps.src_dewhiten]) if steps.src_dewhiten else np.eye(d)
    D_tgt = dewhiten(W1[steps.trg_dewhiten], W2[steps.trg_dewhiten]) if steps.trg_dewhiten else np.eye(d)
    W_src = W1x @ U @ (reweight(S, steps.src_reweight)[:, None] * D_src)
    W_tgt = W1z @ V @ (reweight(S, steps.trg_reweight)[:, None] * D_tgt)
    k = steps.dim_reduction
    return reduce_dim(W_src, k).astype(np.float32), reduce_dim(W_tgt, k).astype(np.float32)


class VecMapSupervised(Mapper):
    """Supervised multi-step mapping (``vecmap-sup``; vecmap's ``--supervised`` recipe).

    Parameters
    ----------
    normalize : steps applied to both spaces first (vecmap: unit, center, unit).
    steps : the options of steps 1–5 (``MultiStep``: whitening, src/trg_reweight, src/trg_dewhiten,
        dim_reduction), defaults as vecmap's recommended supervised setting.

    Attributes
    ----------
    W_src_, W_tgt_ : the composed maps (d, k).  n_pairs_ : training pairs used.

    References
    ----------
    Artetxe, Labaka, Agirre (2018), Generalizing and improving bilingual word embedding mappings with a
    multi-step framework of linear transformations, AAAI.
    """

    def __init__(self, normalize: Sequence[str] = VECMAP_ORDER, steps: MultiStep = MultiStep()) -> None:
        self.normalize = normalize
        self.steps = steps

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> VecMapSupervised:
        """Compose the five steps on the training pairs."""
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "vecmap")
        self.steps.check(Xn.shape[1])
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        self.W_src_, self.W_tgt_ = multistep_maps(Xn[pairs[:, 0]], Zn[pairs[:, 1]], self.steps)
        self.n_pairs_ = len(pairs)
        return self
