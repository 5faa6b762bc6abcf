"""What every mapper shares: input validation at the boundary and the linear ``transform``.

A mapper is a scikit-learn style estimator: the constructor stores its parameters, ``fit(X, Z, pairs)``
learns ``W_src_`` and ``W_tgt_`` and returns ``self``, and ``transform(X, Z)`` returns the two mapped
spaces ``(normalize(X) @ W_src_, normalize(Z) @ W_tgt_)``. Rows of ``X``/``Z`` are words in frequency
order (row 0 is the most frequent word); ``pairs`` is an ``(n, 2)`` integer array of
``(source row, target row)`` training translations.

Memory: the input spaces are copied only where a normalisation step needs it, and
``fit_transform(X, Z, pairs, overwrite=True)`` normalises and maps float32 inputs in place, a block of rows at a
time, so a run that does not need its input vectors afterwards (``xling cle run``) holds one copy of each space.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from xling.cle.normalize import BLOCK_ROWS, check_steps, normalize, normalize_inplace
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
    """A finite 2-D float32 matrix with at least one row (float32 input is not copied), or ``XlingError``."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise XlingError(f"{name}: expected a non-empty 2-D matrix (words x dims), found shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise XlingError(f"{name}: expected numbers, found dtype {X.dtype}")
    X = np.asarray(X, dtype=np.float32)
    for start in range(0, len(X), BLOCK_ROWS):  # a block at a time: no full-size boolean temporary
        finite = np.isfinite(X[start : start + BLOCK_ROWS]).all(axis=1)
        if not finite.all():
            raise XlingError(f"{name}: row {start + int(np.flatnonzero(~finite)[0])} has NaN or inf values")
    return X


def apply_map(X: np.ndarray, W: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``X @ W``; with ``inplace`` written into ``X`` a block at a time when ``W`` is square and ``X`` a writeable,
    C-contiguous float32 matrix (an identity ``W`` then costs nothing)."""
    if inplace and W.shape[0] == W.shape[1] and X.dtype == np.float32 and X.flags.writeable and X.flags.c_contiguous:
        if not np.array_equal(W, np.eye(len(W), dtype=W.dtype)):
            for start in range(0, len(X), BLOCK_ROWS):
                X[start : start + BLOCK_ROWS] = X[start : start + BLOCK_ROWS] @ W
        return X
    return X @ W


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
            f"{method}: source and target must have the same dimension, found {X.shape[1]} and {Z.shape[1]}"
        )


class Mapper(ABC):
    """Base of the mappers: parameter access, the fitted check and the linear ``transform``."""

    normalize: Sequence[str] = ()

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention), for run records (parameter objects as dicts)."""
        return {
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
            for k, v in vars(self).items()
            if not k.endswith("_") and not k.startswith("_")
        }

    def _check_fitted(self) -> None:
        if not hasattr(self, "W_src_"):
            raise XlingError(f"{type(self).__name__} is not fitted yet; call fit(X, Z, pairs) first")

    def _normalize(self, X: np.ndarray, *, inplace: bool) -> np.ndarray:
        """This mapper's normalisation of one validated space, the one step ``fit`` and ``transform`` share:
        ``X`` itself when there is nothing to do, else a new array or, with ``inplace``, ``X`` overwritten.
        Methods whose normalisation is not a sequence of ``normalize`` steps override this (and only this)."""
        steps = check_steps(self.normalize)
        if not steps:
            return X
        return normalize_inplace(X, steps) if inplace else normalize(X, steps)

    def _inputs(self, X: Any, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate both spaces and normalise them (``_normalize``: a copy only where it changes them; nothing when
        ``fit_transform(..., overwrite=True)`` has normalised them already). Never write into them."""
        X, Z = check_space(X, "source vectors"), check_space(Z, "target vectors")
        if getattr(self, "_normalized_inputs", False):
            return X, Z
        return self._normalize(X, inplace=False), self._normalize(Z, inplace=False)

    def _map(self, Xn: np.ndarray, Zn: np.ndarray, *, inplace: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray]:
        """The learned maps applied to normalised spaces, each written into its input where ``inplace`` says so and
        the shapes allow (subclasses add what else their transform does). Never returns an input not to overwrite."""
        if Xn.shape[1] != self.W_src_.shape[0] or Zn.shape[1] != self.W_tgt_.shape[0]:
            raise XlingError(
                f"{type(self).__name__}: fitted on dims ({self.W_src_.shape[0]}, {self.W_tgt_.shape[0]}), "
                f"found ({Xn.shape[1]}, {Zn.shape[1]})"
            )
        return apply_map(Xn, self.W_src_, inplace=inplace[0]), apply_map(Zn, self.W_tgt_, inplace=inplace[1])

    def transform(self, X: Any, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Map both spaces into the shared space: ``(normalize(X) @ W_src_, normalize(Z) @ W_tgt_)``."""
        self._check_fitted()
        Xn, Zn = self._inputs(X, Z)
        return self._map(Xn, Zn, inplace=(Xn is not X, Zn is not Z))  # write into our own copies only

    def fit_transform(
        self, X: Any, Z: Any, pairs: Any = None, *, overwrite: bool = False, **fit_params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """``fit`` then ``transform`` on the same spaces; ``fit_params`` go to ``fit``.

        ``overwrite=True``: float32 ``X`` and ``Z`` are normalised and mapped in place (their old values are lost),
        so no second copy of either space is ever made; the returned arrays are ``X`` and ``Z`` themselves unless a
        map changes the dimension.
        """
        if not overwrite:
            return self.fit(X, Z, pairs, **fit_params).transform(X, Z)
        X = self._normalize(check_space(X, "source vectors"), inplace=True)
        Z = self._normalize(check_space(Z, "target vectors"), inplace=True)
        self._normalized_inputs = True
        try:
            self.fit(X, Z, pairs, **fit_params)
        finally:
            del self._normalized_inputs
        return self._map(X, Z, inplace=(True, True))

    @abstractmethod
    def fit(self, X: Any, Z: Any, pairs: Any = None) -> Mapper:
        """Learn ``W_src_`` and ``W_tgt_`` from the two spaces (and seed ``pairs`` where the method uses them)."""
