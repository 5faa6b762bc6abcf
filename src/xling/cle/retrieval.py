"""Cross-lingual retrieval: nearest neighbour (cosine), CSLS and inverted softmax — exact, batched, bounded memory.

All three rank targets ``z`` for a query ``q`` by ``scale * <q, z> - penalty(z)`` (plus a per-query constant):

- ``nn``: cosine, ``scale = 1``, no penalty;
- ``csls`` (Conneau et al., 2018): ``2 cos(q, z) - r_T(q) - r_S(z)``, where ``r_S(z)`` is the mean similarity of ``z``
  to its ``csls_k`` nearest *sources* and ``r_T(q)`` the mean similarity of ``q`` to its ``csls_k`` nearest targets;
- ``isf``, inverted softmax (Smith et al., 2017): ``log P(z | q) = beta * cos(q, z) - log sum_x exp(beta * cos(x, z))``
  over all sources ``x``.

Rows are used as given (dot products): pass unit-length float32 rows to get cosines. ``sources`` is the whole (mapped)
source space the penalties are taken over; it defaults to the queries themselves. Every function returns the same
numbers as the brute-force definition (tests check this); the speed comes from doing less, not from approximation:

Exact pruning (CSLS and ISF with ``sources`` larger than ``bound_rows``): the penalty of *every* target over *every*
source costs ``n_targets x n_sources`` dot products (24 TFLOP for two 200K x 300 spaces), yet a query only needs the
targets that can reach its top ranking. A penalty computed over a subset of the sources (the first ``bound_rows``,
the most frequent words) is a lower bound of the true penalty: a top-k mean over a subset cannot exceed the top-k mean
over the whole set, and a partial sum of positive terms cannot exceed the whole sum (for ISF the rest of the sum is
bounded below too, by Jensen: ``sum_rest exp(beta <x, z>) >= n_rest exp(beta <mean_rest, z>)``). A lower bound of the
penalty gives an *upper* bound of every score. A target whose score upper bound is below a threshold that the query
already reaches with exact scores (the k-th best exact score, or the gold's exact score for ranks) can never enter
the top k (or rank above the gold), so its exact penalty is never needed. Only the remaining targets get exact
penalties. A small margin (``_EPS``) absorbs float32 rounding between differently blocked matrix products.

Backends: ``faiss`` (exact inner-product k-NN, multi-threaded) when installed, else numpy blocks; ``torch`` on a GPU
when one is present (brute force there: the full penalty is cheap on a GPU).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Literal

import numpy as np

from xling.errors import XlingError

Method = Literal["nn", "csls", "isf"]
METHODS: tuple[str, ...] = ("nn", "csls", "isf")
BACKENDS: tuple[str, ...] = ("auto", "numpy", "faiss", "torch")

#: Bytes of one block of similarities; bounds the extra memory of every function here.
BLOCK_BYTES = 64 * 2**20
#: Safety margin for comparisons between bounds and exact scores (float32 rounding of blocked products).
_EPS = 1e-4


# --- inputs ---------------------------------------------------------------------------------------------------------


def _as_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Validate a 2-D float matrix; return it as C-contiguous float32 (no copy when it already is)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise XlingError(f"{name}: expected a 2-D matrix (rows = words), found shape {x.shape}")
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    return x


def _check(method: str, queries: np.ndarray, targets: np.ndarray, sources: np.ndarray | None, csls_k: int) -> None:
    if method not in METHODS:
        raise XlingError(f"unknown retrieval method {method!r}; expected one of {', '.join(METHODS)}")
    if queries.shape[1] != targets.shape[1]:
        raise XlingError(f"queries have dimension {queries.shape[1]}, targets {targets.shape[1]}; they must match")
    if sources is not None and sources.shape[1] != targets.shape[1]:
        raise XlingError(f"sources have dimension {sources.shape[1]}, targets {targets.shape[1]}; they must match")
    if method == "csls" and csls_k < 1:
        raise XlingError(f"csls_k must be at least 1, found {csls_k}")


def _block(n_cols: int, block_bytes: int | None) -> int:
    """Rows per block so that one float32 block of ``rows x n_cols`` stays within ``block_bytes``."""
    return max(1, int((block_bytes or BLOCK_BYTES) // (4 * max(n_cols, 1))))


def _spans(n: int, step: int) -> Iterator[tuple[int, int]]:
    for i in range(0, n, step):
        yield i, min(n, i + step)


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise XlingError(f"unknown retrieval backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    # Look for a GPU without importing torch (importing it costs seconds and hundreds of MB).
    if (os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")) and _torch_cuda():
        return "torch"
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "numpy"
    return "faiss"


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# --- k nearest by inner product --------------------------------------------------------------------------------------


def knn(queries: np.ndarray, db: np.ndarray, k: int, *, backend: str = "auto",
        block_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``db`` with the largest inner product with each query: ``(indices, values)``, best first."""
    queries, db = _as_rows(queries, "queries"), _as_rows(db, "db")
    k = min(k, db.shape[0])
    backend = _resolve_backend(backend)
    if backend == "faiss":
        import faiss

        values, indices = faiss.knn(queries, db, k, metric=faiss.METRIC_INNER_PRODUCT)
        return indices.astype(np.int64), values
    if backend == "torch":
        return _torch_knn(queries, db, k)
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    values = np.empty((queries.shape[0], k), dtype=np.float32)
    for i, j in _spans(queries.shape[0], _block(db.shape[0], block_bytes)):
        sims = queries[i:j] @ db.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_vals = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_vals, axis=1, kind="stable")
        indices[i:j] = np.take_along_axis(top, order, axis=1)
        values[i:j] = np.take_along_axis(top_vals, order, axis=1)
    return indices, values


def _torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torch_knn(queries: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    dev = _torch_device()
    d = torch.from_numpy(db).to(dev)
    out_i, out_v = [], []
    for i, j in _spans(queries.shape[0], _block(db.shape[0], 4 * BLOCK_BYTES)):
        v, ix = torch.topk(torch.from_numpy(queries[i:j]).to(dev) @ d.T, k, dim=1)
        out_i.append(ix.cpu().numpy())
        out_v.append(v.cpu().numpy())
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_v).astype(np.float32)


# --- penalties -------------------------------------------------------------------------------------------------------


def csls_penalty(A: np.ndarray, B: np.ndarray, k: int = 10, *, backend: str = "auto",
                 block_bytes: int | None = None) -> np.ndarray:
    """CSLS neighbourhood term: for each row ``b`` of ``B``, the mean of its ``k`` largest ``<b, a>`` over rows of ``A``.

    ``r_S(z) = csls_penalty(sources, targets, k)``; ``r_T(q) = csls_penalty(targets, queries, k)``.
    """
    _, values = knn(B, A, k, backend=backend, block_bytes=block_bytes)
    return values.mean(axis=1, dtype=np.float64).astype(np.float32)


def isf_log_partition(A: np.ndarray, B: np.ndarray, beta: float = 30.0, *,
                      block_bytes: int | None = None) -> np.ndarray:
    """Inverted-softmax normaliser: for each row ``b`` of ``B``, ``log sum_a exp(beta <a, b>)`` over rows of ``A``."""
    A, B = _as_rows(A, "A"), _as_rows(B, "B")
    out = np.empty(B.shape[0], dtype=np.float64)
    for i, j in _spans(B.shape[0], _block(A.shape[0], block_bytes)):
        logits = beta * (B[i:j] @ A.T)
        top = logits.max(axis=1, keepdims=True)
        np.subtract(logits, top, out=logits)
        np.exp(logits, out=logits)
        out[i:j] = top[:, 0] + np.log(logits.sum(axis=1, dtype=np.float64))
    return out.astype(np.float32)


class _Rule:
    """``score(q, z) = scale * <q, z> - penalty(z) - offset(q)`` for one method, with exact and lower-bound penalties."""

    def __init__(self, method: str, sources: np.ndarray, targets: np.ndarray, csls_k: int, beta: float,
                 backend: str, block_bytes: int | None):
        self.method, self.sources, self.targets = method, sources, targets
        self.csls_k, self.beta, self.backend, self.block_bytes = csls_k, beta, backend, block_bytes
        self.scale = {"nn": 1.0, "csls": 2.0, "isf": beta}[method]

    def penalty(self, target_rows: np.ndarray) -> np.ndarray:
        """Exact penalty of the given targets over all sources."""
        z = self.targets[target_rows]
        if self.method == "csls":
            return csls_penalty(self.sources, z, self.csls_k, backend=self.backend, block_bytes=self.block_bytes)
        if self.method == "isf":
            return isf_log_partition(self.sources, z, self.beta, block_bytes=self.block_bytes)
        return np.zeros(len(z), dtype=np.float32)

    def penalty_lower_bound(self, n_rows: int) -> np.ndarray:
        """A lower bound of every target's penalty from the first ``n_rows`` sources only (see the module docstring)."""
        part = self.sources[:n_rows]
        if self.method == "csls":
            return csls_penalty(part, self.targets, self.csls_k, backend=self.backend, block_bytes=self.block_bytes)
        n_rest = self.sources.shape[0] - n_rows
        head = isf_log_partition(part, self.targets, self.beta, block_bytes=self.block_bytes).astype(np.float64)
        rest_mean = (self.sources.sum(axis=0, dtype=np.float64) - part.sum(axis=0, dtype=np.float64)) / n_rest
        rest = np.log(n_rest) + self.beta * (self.targets @ rest_mean.astype(np.float32)).astype(np.float64)
        return np.logaddexp(head, rest).astype(np.float32)

    def offset(self, queries: np.ndarray) -> np.ndarray:
        """Per-query constant (CSLS's ``r_T(q)``); it does not change a query's ranking."""
        if self.method == "csls":
            return csls_penalty(self.targets, queries, self.csls_k, backend=self.backend, block_bytes=self.block_bytes)
        return np.zeros(queries.shape[0], dtype=np.float32)


def _penalties(rule: _Rule, bound_rows: int, need: callable) -> np.ndarray:
    """Exact penalties where ``need`` says they matter, lower bounds elsewhere.

    ``need(penalty, known) -> bool mask`` returns the targets whose exact penalty can still change the answer given
    the current penalties (exact where ``known``, lower bounds elsewhere); it is called until it asks for nothing new.
    """
    n_t = rule.targets.shape[0]
    if rule.method == "nn":
        return np.zeros(n_t, dtype=np.float32)
    if rule.sources.shape[0] <= max(bound_rows, rule.csls_k):
        return rule.penalty(np.arange(n_t))
    penalty = rule.penalty_lower_bound(max(bound_rows, rule.csls_k))
    known = np.zeros(n_t, dtype=bool)
    while True:
        todo = np.flatnonzero(need(penalty, known) & ~known)
        if todo.size == 0:
            return penalty
        if todo.size + known.sum() > 0.5 * n_t:  # pruning no longer pays: finish brute force
            todo = np.flatnonzero(~known)
        penalty[todo] = rule.penalty(todo)
        known[todo] = True


# --- public entry points --------------------------------------------------------------------------------------------


def nearest(queries: np.ndarray, targets: np.ndarray, k: int = 1, method: Method = "nn", *,
            sources: np.ndarray | None = None, csls_k: int = 10, isf_beta: float = 30.0, bound_rows: int = 4096,
            backend: str = "auto", block_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best targets of each query under ``method``: ``(indices [n, k] int64, scores [n, k] float32)``.

    ``sources`` (default: the queries) is the whole source space the CSLS and inverted-softmax penalties are taken over;
    ``isf_beta`` is the inverse temperature of the inverted softmax (vecmap's ``--inv_temperature``). Exact: equal to
    the brute-force definition (see the module docstring for why pruning keeps it so).
    """
    queries, targets = _as_rows(queries, "queries"), _as_rows(targets, "targets")
    sources = queries if sources is None else _as_rows(sources, "sources")
    _check(method, queries, targets, sources, csls_k)
    k = min(k, targets.shape[0])
    backend = _resolve_backend(backend)
    rule = _Rule(method, sources, targets, csls_k, isf_beta, backend, block_bytes)
    if backend == "torch":
        return _torch_nearest(rule, queries, k)
    step = _block(targets.shape[0], block_bytes)

    def need(penalty: np.ndarray, known: np.ndarray) -> np.ndarray:
        ask = np.zeros(targets.shape[0], dtype=bool)
        if not known.any():  # first round: the k best by the score upper bound become exact
            top, _ = _top_scores(rule, queries, penalty, k, backend, block_bytes)
            ask[top.ravel()] = True
            return ask
        known_rows = np.flatnonzero(known)
        for i, j in _spans(queries.shape[0], step):
            upper = rule.scale * (queries[i:j] @ targets.T) - penalty
            exact = upper[:, known_rows]
            kth = -np.partition(-exact, min(k, exact.shape[1]) - 1, axis=1)[:, min(k, exact.shape[1]) - 1]
            ask |= (upper + _EPS >= kth[:, None]).any(axis=0)
        return ask

    penalty = _penalties(rule, bound_rows, need)
    top, scores = _top_scores(rule, queries, penalty, k, backend, block_bytes)
    return top, scores - rule.offset(queries)[:, None]


def _top_scores(rule: _Rule, queries: np.ndarray, penalty: np.ndarray, k: int, backend: str,
                block_bytes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``scale * <q, z> - penalty(z)``: an inner product with one extra column ``[scale q, 1]·[z, -pen]``."""
    best_i = np.full((queries.shape[0], 0), -1, dtype=np.int64)
    best_v = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    q_aug = np.hstack([rule.scale * queries, np.ones((queries.shape[0], 1), dtype=np.float32)])
    step = max(k, _block(rule.targets.shape[1] + 1, 4 * (block_bytes or BLOCK_BYTES) // 16))
    for i, j in _spans(rule.targets.shape[0], step):
        z_aug = np.hstack([rule.targets[i:j], -penalty[i:j, None]])
        idx, val = knn(q_aug, z_aug, k, backend=backend, block_bytes=block_bytes)
        best_i, best_v = np.hstack([best_i, idx + i]), np.hstack([best_v, val])
        order = np.argsort(-best_v, axis=1, kind="stable")[:, :k]
        best_i, best_v = np.take_along_axis(best_i, order, axis=1), np.take_along_axis(best_v, order, axis=1)
    return best_i, best_v


def gold_ranks(queries: np.ndarray, targets: np.ndarray, query_of: np.ndarray, gold_of: np.ndarray,
               method: Method = "nn", *, sources: np.ndarray | None = None, csls_k: int = 10, isf_beta: float = 30.0,
               bound_rows: int = 4096, backend: str = "auto", block_bytes: int | None = None) -> np.ndarray:
    """Rank (1 = best) of target ``gold_of[i]`` among all targets for query ``query_of[i]``, for every pair ``i``.

    Rank = 1 + the number of targets with a strictly higher score (ties favour the gold). Exact, like ``nearest``.
    """
    queries, targets = _as_rows(queries, "queries"), _as_rows(targets, "targets")
    sources = queries if sources is None else _as_rows(sources, "sources")
    _check(method, queries, targets, sources, csls_k)
    query_of, gold_of = np.asarray(query_of, dtype=np.int64), np.asarray(gold_of, dtype=np.int64)
    backend = _resolve_backend(backend)
    rule = _Rule(method, sources, targets, csls_k, isf_beta, backend, block_bytes)
    if backend == "torch":
        return _torch_ranks(rule, queries, query_of, gold_of)
    step = _block(targets.shape[0], block_bytes)
    order = np.argsort(query_of, kind="stable")

    def blocks(penalty: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(pair ids, their row in the block, score block) for query blocks that have pairs."""
        for i, j in _spans(queries.shape[0], step):
            lo, hi = np.searchsorted(query_of[order], [i, j])
            if lo == hi:
                continue
            pairs = order[lo:hi]
            yield pairs, query_of[pairs] - i, rule.scale * (queries[i:j] @ targets.T) - penalty

    def need(penalty: np.ndarray, known: np.ndarray) -> np.ndarray:
        ask = np.zeros(targets.shape[0], dtype=bool)
        if not known.any():  # first round: the golds' penalties become exact
            ask[gold_of] = True
            return ask
        for pairs, rows, upper in blocks(penalty):
            gold = np.full(upper.shape[0], np.inf, dtype=np.float32)
            np.minimum.at(gold, rows, upper[rows, gold_of[pairs]])
            ask |= (upper + _EPS > gold[:, None]).any(axis=0)
        return ask

    penalty = _penalties(rule, bound_rows, need)
    ranks = np.empty(len(query_of), dtype=np.int64)
    for pairs, rows, scores in blocks(penalty):
        gold = scores[rows, gold_of[pairs]]
        ranks[pairs] = 1 + (scores[rows] > gold[:, None]).sum(axis=1)
    return ranks


# --- torch (GPU): brute force ---------------------------------------------------------------------------------------


def _torch_penalty(rule: _Rule):
    import torch

    dev = _torch_device()
    t = torch.from_numpy(rule.targets).to(dev)
    if rule.method == "nn":
        return t, torch.zeros(t.shape[0], device=dev)
    s = torch.from_numpy(rule.sources).to(dev)
    out = []
    for i, j in _spans(t.shape[0], _block(s.shape[0], 4 * BLOCK_BYTES)):
        sims = t[i:j] @ s.T
        if rule.method == "csls":
            out.append(torch.topk(sims, min(rule.csls_k, s.shape[0]), dim=1).values.double().mean(dim=1))
        else:
            out.append(torch.logsumexp(rule.beta * sims.double(), dim=1))
    return t, torch.cat(out).float()


def _torch_nearest(rule: _Rule, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    t, penalty = _torch_penalty(rule)
    out_i, out_v = [], []
    for i, j in _spans(queries.shape[0], _block(t.shape[0], 4 * BLOCK_BYTES)):
        q = torch.from_numpy(queries[i:j]).to(t.device)
        v, ix = torch.topk(rule.scale * (q @ t.T) - penalty, k, dim=1)
        out_i.append(ix.cpu().numpy())
        out_v.append(v.cpu().numpy())
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_v) - rule.offset(queries)[:, None]


def _torch_ranks(rule: _Rule, queries: np.ndarray, query_of: np.ndarray, gold_of: np.ndarray) -> np.ndarray:
    import torch

    t, penalty = _torch_penalty(rule)
    ranks = np.empty(len(query_of), dtype=np.int64)
    for i, j in _spans(len(query_of), _block(t.shape[0], 4 * BLOCK_BYTES)):
        q = torch.from_numpy(queries[query_of[i:j]]).to(t.device)
        scores = rule.scale * (q @ t.T) - penalty
        gold = scores.gather(1, torch.from_numpy(gold_of[i:j]).to(t.device)[:, None])
        ranks[i:j] = (1 + (scores > gold).sum(dim=1)).cpu().numpy()
    return ranks
