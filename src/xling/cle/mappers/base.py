"""What every mapper shares: input validation at the boundary and the linear ``transform``.

A mapper is a scikit-learn style estimator: the constructor stores its parameters, ``fit(X, Z, pairs)``
learns ``W_src_`` and ``W_tgt_`` and returns ``self``, and ``transform(X, Z)`` returns the two mapped
spaces ``(normalize(X) @ W_src_, normalize(Z) @ W_tgt_)``. Rows of ``X``/``Z`` are words in frequency
order (row 0 is the most frequent word); ``pairs`` is an ``(n, 2)`` integer array of
``(source row, target row)`` training translations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from xling.cle.normalize import check_steps, normalize
from xling.errors import XlingError


F = TypeVar("F", bound=Callable[..., Any])


def single_threaded(func: F) -> F:
    """Run ``func`` with one BLAS/LAPACK thread: for d x d factorisations threads cost more than they save
    (on a loaded 2-core machine a 50 x 50 Procrustes SVD took 0.25 s with two threads, 4 ms with one)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_space(X: Any, name: str) -> np.ndarray:
    """A finite 2-D float32 matrix with at least one row, or ``XlingError``."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise XlingError(f"{name}: expected a non-empty 2-D matrix (words x dims), found shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise XlingError(f"{name}: expected numbers, found dtype {X.dtype}")
    X = np.asarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise XlingError(f"{name}: row {row} has NaN or inf values")
    return X


def check_pairs(pairs: Any, n_src: int, n_tgt: int, name: str = "pairs", min_pairs: int = 1) -> np.ndarray:
    """An ``(n, 2)`` int64 array of in-range (source row, target row) pairs, or ``XlingError``."""
    if pairs is None:
        raise XlingError(f"{name}: this method needs a training dictionary (pairs of source/target rows), found none")
    arr = np.asarray(pairs)
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise XlingError(f"{name}: expected an (n, 2) array of (source row, target row), found shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise XlingError(f"{name}: expected integer row indices, found dtype {arr.dtype}")
    if len(arr) < min_pairs:
        raise XlingError(f"{name}: expected at least {min_pairs} training pairs in the vocabulary, found {len(arr)}")
    arr = arr.astype(np.int64)
    for col, size, side in ((0, n_src, "source"), (1, n_tgt, "target")):
        bad = (arr[:, col] < 0) | (arr[:, col] >= size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise XlingError(f"{name}: pair {i} has {side} row {int(arr[i, col])}, expected 0 <= row < {size}")
    return arr


def check_same_dim(X: np.ndarray, Z: np.ndarray, method: str) -> None:
    """Orthogonal maps need spaces of one dimension."""
    if X.shape[1] != Z.shape[1]:
        raise XlingError(
            f"{method}: source and target must have the same dimension, found {X.shape[1]} and {Z.shape[1]}")


class Mapper(ABC):
    """Base of the mappers: parameter access, the fitted check and the linear ``transform``."""

    normalize: Sequence[str] = ()

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention), for run records and the grid's keys."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def _check_fitted(self) -> None:
        if not hasattr(self, "W_src_"):
            raise XlingError(f"{type(self).__name__} is not fitted yet; call fit(X, Z, pairs) first")

    def _inputs(self, X: Any, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate both spaces and apply this mapper's normalisation steps."""
        steps = check_steps(self.normalize)
        return normalize(check_space(X, "source vectors"), steps), normalize(check_space(Z, "target vectors"), steps)

    def transform(self, X: Any, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Map both spaces into the shared space: ``(normalize(X) @ W_src_, normalize(Z) @ W_tgt_)``."""
        self._check_fitted()
        Xn, Zn = self._inputs(X, Z)
        if Xn.shape[1] != self.W_src_.shape[0] or Zn.shape[1] != self.W_tgt_.shape[0]:
            raise XlingError(
                f"{type(self).__name__}: fitted on dims ({self.W_src_.shape[0]}, {self.W_tgt_.shape[0]}), "
                f"found ({Xn.shape[1]}, {Zn.shape[1]})"
            )
        return Xn @ self.W_src_, Zn @ self.W_tgt_

    def fit_transform(self, X: Any, Z: Any, pairs: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``fit`` then ``transform`` on the same spaces."""
        return self.fit(X, Z, pairs).transform(X, Z)

    @abstractmethod
    def fit(self, X: Any, Z: Any, pairs: Any = None) -> "Mapper":
        """Learn ``W_src_`` and ``W_tgt_`` from the two spaces (and seed ``pairs`` where the method uses them)."""
