"""Embedding normalisation steps: unit length, mean centring, and their vecmap order unit → center → unit.

Each step returns a new float32 matrix (the input is never changed). ``normalize(X, steps)`` applies
steps in order; an empty sequence leaves the vectors as they are (PROC and CCA as in xling-eval use raw
vectors unless normalisation is asked for). ``normalize_inplace`` does the same into a float32 matrix, a block
of rows at a time, without a second copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xling.errors import XlingError

STEPS = ("unit", "center")
VECMAP_ORDER: tuple[str, ...] = ("unit", "center", "unit")


def unit_length(X: np.ndarray) -> np.ndarray:
    """Scale every row to Euclidean length 1 (all-zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return X / norms


def mean_center(X: np.ndarray) -> np.ndarray:
    """Subtract the mean vector of the rows (the space's centroid moves to the origin)."""
    X = np.asarray(X, dtype=np.float32)
    return X - X.mean(axis=0, dtype=np.float64).astype(np.float32)


def check_steps(steps: Sequence[str], field: str = "normalize") -> tuple[str, ...]:
    """Validate a sequence of step names; raise ``XlingError`` naming the unknown one."""
    if isinstance(steps, str):
        steps = [steps]
    for step in steps:
        if step not in STEPS:
            raise XlingError(f"{field}: unknown normalisation step {step!r}; expected one of {', '.join(STEPS)}")
    return tuple(steps)


def normalize(X: np.ndarray, steps: Sequence[str] = VECMAP_ORDER) -> np.ndarray:
    """Apply normalisation ``steps`` (``"unit"``, ``"center"``) in order and return a new float32 matrix."""
    out = np.array(X, dtype=np.float32, copy=True)
    for step in check_steps(steps):
        out = unit_length(out) if step == "unit" else mean_center(out)
    return out


def normalize_inplace(X: np.ndarray, steps: Sequence[str] = VECMAP_ORDER, block: int = 16384) -> np.ndarray:
    """``normalize`` written into ``X`` (float32, writeable; else a normalised copy is returned); returns ``X``."""
    steps = check_steps(steps)
    if not steps:
        return X
    if X.dtype != np.float32 or not X.flags.writeable:
        return normalize(X, steps)
    for step in steps:
        if step == "unit":
            for i in range(0, len(X), block):
                rows = X[i : i + block]
                norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, None]
                np.divide(rows, norms, out=rows, where=norms > 0)
        else:
            mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
            for i in range(0, len(X), block):
                X[i : i + block] -= mean
    return X
