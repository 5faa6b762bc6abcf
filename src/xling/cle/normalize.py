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


#: Rows per block of the in-place passes (16K x 300 float32 = 19 MB of temporaries).
BLOCK_ROWS = 16384


def unit_rows(X: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Rows scaled to Euclidean length 1 (all-zero rows stay zero), so dot products are cosines; a block of rows at a
    time (``np.linalg.norm`` would square a full-size copy). ``inplace`` writes into ``X``."""
    out = X if inplace else X.copy()
    for i in range(0, len(out), BLOCK_ROWS):
        block = out[i : i + BLOCK_ROWS]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        np.divide(block, norms, out=block, where=norms > 0)
    return out


def unit_length(X: np.ndarray) -> np.ndarray:
    """``unit_rows`` of a float32 copy of ``X``."""
    return unit_rows(np.array(X, dtype=np.float32, copy=True), inplace=True)


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


def normalize_inplace(X: np.ndarray, steps: Sequence[str] = VECMAP_ORDER) -> np.ndarray:
    """``normalize`` written into ``X`` (float32, writeable; else a normalised copy is returned); returns ``X``."""
    steps = check_steps(steps)
    if not steps:
        return X
    if X.dtype != np.float32 or not X.flags.writeable:
        return normalize(X, steps)
    for step in steps:
        if step == "unit":
            unit_rows(X, inplace=True)
        else:
            mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
            for i in range(0, len(X), BLOCK_ROWS):
                X[i : i + BLOCK_ROWS] -= mean
    return X
