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
targets that can reach its top ranking. A penalty computed over a *subset* of the sources is a lower bound of the true
penalty: a top-k mean over a subset cannot exceed the top-k mean over the whole set, and a partial sum of positive
terms cannot exceed the whole sum. For CSLS each target's subset is about ``bound_rows`` sources from the cells
nearest to it (``_cell_topk_mean``: tight, because near neighbours live in near cells); for ISF it is the first
``bound_rows`` sources plus Jensen's bound for the rest
(``sum_rest exp(beta <x, z>) >= n_rest exp(beta <mean_rest, z>)``).
A lower bound of the penalty gives an *upper* bound of every score. A target whose score upper bound is below a
threshold that the query already reaches with exact scores (the k-th best exact score, or the gold's exact score for
ranks) can never enter the top k (or rank above the gold), so its exact penalty is never needed. Only the remaining
targets get exact penalties (all of them once that is more than half: then pruning no longer pays). A small margin
(``_EPS``) absorbs float32 rounding between differently blocked matrix products; results equal the brute force up to
float32 rounding of near-ties (scores within ~1e-6), as two BLAS libraries would.

Backends (``backend="auto"`` picks): ``torch`` when a GPU is present (brute force there: the full penalty is cheap on a
GPU), else ``numpy`` — blocked float32 products in one reused buffer, partitioned in place. ``faiss`` (exact
inner-product k-NN) can be asked for; on 2 CPU cores it measured 2-3x slower than the numpy blocks for these shapes
(its heaps cost more than an in-place partition), so it is not the default.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from xling.errors import XlingError

Method = Literal["nn", "csls", "isf"]
METHODS: tuple[str, ...] = ("nn", "csls", "isf")
BACKENDS: tuple[str, ...] = ("auto", "numpy", "faiss", "torch")

#: Bytes of one block of similarities; bounds the extra memory of every function here.
BLOCK_BYTES = 16 * 2**20
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
    return "numpy"


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# --- k nearest by inner product --------------------------------------------------------------------------------------


def knn(
    queries: np.ndarray, db: np.ndarray, k: int, *, backend: str = "auto", block_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
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
        if k == 1:
            indices[i:j, 0] = sims.argmax(axis=1)
            values[i:j, 0] = sims[np.arange(j - i), indices[i:j, 0]]
            continue
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


def csls_penalty(
    A: np.ndarray, B: np.ndarray, k: int = 10, *, backend: str = "auto", block_bytes: int | None = None
) -> np.ndarray:
    """CSLS neighbourhood term: for each row ``b`` of ``B``, the mean of its ``k`` largest ``<b, a>`` over ``A``'s rows.

    ``r_S(z) = csls_penalty(sources, targets, k)``; ``r_T(q) = csls_penalty(targets, queries, k)``.
    """
    A, B = _as_rows(A, "A"), _as_rows(B, "B")
    k = min(k, A.shape[0])
    if _resolve_backend(backend) != "numpy":
        _, values = knn(B, A, k, backend=backend, block_bytes=block_bytes)
        return values.mean(axis=1, dtype=np.float64).astype(np.float32)
    # numpy: one reused block, partitioned in place (values only: cheaper than faiss's heaps on 2 cores, measured)
    out = np.empty(B.shape[0], dtype=np.float32)
    step = _block(A.shape[0], block_bytes)
    buf = np.empty((min(step, B.shape[0]), A.shape[0]), dtype=np.float32)
    for i, j in _spans(B.shape[0], step):
        sims = np.matmul(B[i:j], A.T, out=buf[: j - i])
        sims.partition(A.shape[0] - k, axis=1)
        out[i:j] = sims[:, A.shape[0] - k :].mean(axis=1, dtype=np.float64)
    return out


def isf_log_partition(
    A: np.ndarray, B: np.ndarray, beta: float = 30.0, *, block_bytes: int | None = None
) -> np.ndarray:
    """Inverted-softmax normaliser: for each row ``b`` of ``B``, ``log sum_a exp(beta <a, b>)`` over rows of ``A``."""
    A, B = _as_rows(A, "A"), _as_rows(B, "B")
    out = np.empty(B.shape[0], dtype=np.float64)
    step = _block(A.shape[0], block_bytes)
    buf = np.empty((min(step, B.shape[0]), A.shape[0]), dtype=np.float32)
    for i, j in _spans(B.shape[0], step):
        logits = np.matmul(B[i:j], A.T, out=buf[: j - i])
        logits *= beta
        top = logits.max(axis=1, keepdims=True)
        logits -= top
        np.exp(logits, out=logits)
        out[i:j] = top[:, 0] + np.log(logits.sum(axis=1, dtype=np.float64))
    return out.astype(np.float32)


class _Rule:
    """``score(q, z) = scale * <q, z> - penalty(z) - offset(q)`` for one method: exact and lower-bound penalties."""

    def __init__(
        self,
        method: str,
        sources: np.ndarray,
        targets: np.ndarray,
        csls_k: int,
        beta: float,
        backend: str,
        block_bytes: int | None,
    ):
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
        """A lower bound of every target's penalty from a subset of ``n_rows``-ish sources per target.

        CSLS: each target's top-k mean over the sources of a few cells near it (``_cell_topk_mean``); inverted softmax:
        the first ``n_rows`` sources exactly plus Jensen's bound for the rest (see the module docstring).
        """
        if self.method == "csls":
            return _cell_topk_mean(self.sources, self.targets, self.csls_k, n_rows, self.block_bytes)
        part = self.sources[:n_rows]
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

    def prunes(self, bound_rows: int) -> bool:
        """Whether bounds can pay off: a penalty exists and the sources are many more than the bound's rows."""
        return self.method != "nn" and self.sources.shape[0] > max(bound_rows, self.csls_k)

    def start(self, bound_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(penalties, which are exact): lower bounds when pruning pays, else exact penalties of every target."""
        n_t = self.targets.shape[0]
        if self.method == "nn":
            return np.zeros(n_t, dtype=np.float32), np.ones(n_t, dtype=bool)
        if not self.prunes(bound_rows):
            return self.penalty(np.arange(n_t)), np.ones(n_t, dtype=bool)
        return self.penalty_lower_bound(max(bound_rows, self.csls_k)), np.zeros(n_t, dtype=bool)

    def make_exact(self, penalty: np.ndarray, known: np.ndarray, rows: np.ndarray) -> None:
        """Replace bounds by exact penalties for ``rows`` (all remaining rows once pruning no longer pays)."""
        rows = rows[~known[rows]]
        if rows.size + known.sum() > 0.5 * len(known):
            rows = np.flatnonzero(~known)
        if rows.size:
            penalty[rows] = self.penalty(rows)
            known[rows] = True


def _cell_topk_mean(
    sources: np.ndarray, targets: np.ndarray, k: int, budget: int, block_bytes: int | None
) -> np.ndarray:
    """Lower bounds of the CSLS penalty: each target's top-``k`` mean over ``budget`` sources near it.

    Cells: ``2 sqrt(n_sources)`` random sources serve as centres; every source and target joins its most similar
    centre. The targets of a cell share one pool: the sources of the cells whose centres are most similar to theirs,
    nearest first, cut at ``budget``. Any subset of the sources gives a lower bound (slots short of ``k`` count as -1,
    the least a cosine can be); near cells hold the near neighbours, so the bound is tight where it matters.
    """
    n_s = sources.shape[0]
    n_cells = int(min(n_s, max(16, 2 * np.sqrt(n_s))))
    rng = np.random.default_rng(0)
    centres = sources[np.sort(rng.choice(n_s, n_cells, replace=False))]
    src_cell = _nearest_centre(sources, centres, block_bytes)
    tgt_cell = _nearest_centre(targets, centres, block_bytes)
    members = np.argsort(src_cell, kind="stable")
    cell_start = np.searchsorted(src_cell[members], np.arange(n_cells + 1))
    by_cell = np.argsort(tgt_cell, kind="stable")
    tgt_start = np.searchsorted(tgt_cell[by_cell], np.arange(n_cells + 1))
    out = np.empty(targets.shape[0], dtype=np.float32)
    with threadpool_limits(1):  # many small products: BLAS threads only add synchronisation (10x slower, measured)
        for c in range(n_cells):
            _cell_bound(
                c,
                centres,
                members,
                cell_start,
                by_cell[tgt_start[c] : tgt_start[c + 1]],
                sources,
                targets,
                k,
                budget,
                out,
            )
    return out


def _cell_bound(
    c: int,
    centres: np.ndarray,
    members: np.ndarray,
    cell_start: np.ndarray,
    rows: np.ndarray,
    sources: np.ndarray,
    targets: np.ndarray,
    k: int,
    budget: int,
    out: np.ndarray,
) -> None:
    """Bounds for the targets ``rows`` of cell ``c`` (see ``_cell_topk_mean``), written into ``out``."""
    if rows.size == 0:
        return
    near = np.argsort(-(centres @ centres[c]), kind="stable")
    sizes = np.cumsum(cell_start[near + 1] - cell_start[near])
    near = near[: np.searchsorted(sizes, budget) + 1]
    pool = np.concatenate([members[cell_start[p] : cell_start[p + 1]] for p in near])[:budget]
    sims = targets[rows] @ sources[pool].T
    if sims.shape[1] < k:
        sims = np.hstack([sims, np.full((len(rows), k - sims.shape[1]), -1.0, dtype=np.float32)])
    sims.partition(sims.shape[1] - k, axis=1)
    out[rows] = sims[:, sims.shape[1] - k :].mean(axis=1, dtype=np.float64)


def _nearest_centre(x: np.ndarray, centres: np.ndarray, block_bytes: int | None) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.int64)
    for i, j in _spans(x.shape[0], _block(centres.shape[0], block_bytes)):
        out[i:j] = np.argmax(x[i:j] @ centres.T, axis=1)
    return out


def _score_blocks(
    rule: _Rule, queries: np.ndarray, penalty: np.ndarray, step: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(i, j, scale * <q, z> - penalty(z))`` for queries ``i:j``, computed in one reused buffer."""
    buf = np.empty((min(step, queries.shape[0]), rule.targets.shape[0]), dtype=np.float32)
    for i, j in _spans(queries.shape[0], step):
        block = np.matmul(queries[i:j], rule.targets.T, out=buf[: j - i])
        block *= rule.scale
        block -= penalty
        yield i, j, block


# --- public entry points --------------------------------------------------------------------------------------------


def nearest(
    queries: np.ndarray,
    targets: np.ndarray,
    k: int = 1,
    method: Method = "nn",
    *,
    sources: np.ndarray | None = None,
    csls_k: int = 10,
    isf_beta: float = 30.0,
    bound_rows: int = 2048,
    backend: str = "auto",
    block_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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
    penalty, known = rule.start(bound_rows)
    if not known.all():
        # 1. the k best of each query by the score upper bound get exact penalties
        top, _ = _top_scores(rule, queries, penalty, k, block_bytes)
        rule.make_exact(penalty, known, np.unique(top))
        # 2. threshold = k-th best exact score of each query; an unknown target whose upper bound reaches it
        #    gets its exact penalty. Another round would ask for nothing new: bounds of the remaining targets
        #    do not change, and thresholds can only rise as more scores become exact.
        known_rows = np.flatnonzero(known)
        ask = np.zeros(targets.shape[0], dtype=bool)
        for _, _, upper in _score_blocks(rule, queries, penalty, _block(targets.shape[0], block_bytes)):
            exact = upper[:, known_rows]
            kk = min(k, exact.shape[1])
            kth = -np.partition(-exact, kk - 1, axis=1)[:, kk - 1]
            ask |= (upper >= (kth - _EPS)[:, None]).any(axis=0)
        rule.make_exact(penalty, known, np.flatnonzero(ask))
    # 3. the top k over all targets: unknown targets stay below every query's threshold, so they cannot enter it
    top, scores = _top_scores(rule, queries, penalty, k, block_bytes)
    return top, scores - rule.offset(queries)[:, None]


def _top_scores(
    rule: _Rule, queries: np.ndarray, penalty: np.ndarray, k: int, block_bytes: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``scale * <q, z> - penalty(z)`` per query, best first (ties: lower target index first)."""
    top = np.empty((queries.shape[0], k), dtype=np.int64)
    vals = np.empty((queries.shape[0], k), dtype=np.float32)
    for i, j, block in _score_blocks(rule, queries, penalty, _block(rule.targets.shape[0], block_bytes)):
        cand = np.argpartition(block, block.shape[1] - k, axis=1)[:, block.shape[1] - k :]
        cand_vals = np.take_along_axis(block, cand, axis=1)
        order = np.lexsort((cand, -cand_vals), axis=1)
        top[i:j] = np.take_along_axis(cand, order, axis=1)
        vals[i:j] = np.take_along_axis(cand_vals, order, axis=1)
    return top, vals


def gold_ranks(
    queries: np.ndarray,
    targets: np.ndarray,
    query_of: np.ndarray,
    gold_of: np.ndarray,
    method: Method = "nn",
    *,
    sources: np.ndarray | None = None,
    csls_k: int = 10,
    isf_beta: float = 30.0,
    bound_rows: int = 2048,
    backend: str = "auto",
    block_bytes: int | None = None,
) -> np.ndarray:
    """Rank (1 = best) of target ``gold_of[i]`` among all targets for query ``query_of[i]``, for every pair ``i``.

    Rank = 1 + the number of targets with a strictly higher score (ties favour the gold). Exact, like ``nearest``:
    one pass over the similarity blocks counts the targets with exact penalties that beat the gold and collects the
    others whose score upper bound reaches the gold's exact score; only those get exact penalties and are compared.
    """
    queries, targets = _as_rows(queries, "queries"), _as_rows(targets, "targets")
    sources = queries if sources is None else _as_rows(sources, "sources")
    _check(method, queries, targets, sources, csls_k)
    query_of, gold_of = np.asarray(query_of, dtype=np.int64), np.asarray(gold_of, dtype=np.int64)
    backend = _resolve_backend(backend)
    rule = _Rule(method, sources, targets, csls_k, isf_beta, backend, block_bytes)
    if backend == "torch":
        return _torch_ranks(rule, queries, query_of, gold_of)
    penalty, known = rule.start(bound_rows)
    rule.make_exact(penalty, known, np.unique(gold_of))  # the golds' scores must be exact
    known_rows = np.flatnonzero(known)
    all_known = known.all()
    order = np.argsort(query_of, kind="stable")
    sorted_q = query_of[order]
    above = np.zeros(len(query_of), dtype=np.int64)
    amb_q: list[np.ndarray] = []  # (query, target) pairs whose order against the gold is still open
    amb_z: list[np.ndarray] = []
    for i, j, block in _score_blocks(rule, queries, penalty, _block(targets.shape[0], block_bytes)):
        lo, hi = np.searchsorted(sorted_q, [i, j])
        if lo == hi:
            continue
        pairs = order[lo:hi]
        rows = query_of[pairs] - i
        gold = block[rows, gold_of[pairs]]
        # 1. targets with exact penalties: compare directly
        exact = block if all_known else block[:, known_rows]
        for part in np.array_split(np.arange(len(pairs)), max(1, len(pairs) // max(1, block.shape[0]))):
            above[pairs[part]] = np.count_nonzero(exact[rows[part]] > gold[part, None], axis=1)
        if all_known:
            continue
        # 2. the others: below the gold for sure when the upper bound is (the bound is a lower penalty)
        lowest = np.full(j - i, np.inf, dtype=np.float32)
        np.minimum.at(lowest, rows, gold)
        open_q, open_z = np.nonzero(block > (lowest - _EPS)[:, None])
        keep = ~known[open_z]
        amb_q.append(open_q[keep] + i)
        amb_z.append(open_z[keep])
    if amb_q:
        _settle(rule, queries, penalty, known, query_of, gold_of, above, np.concatenate(amb_q), np.concatenate(amb_z))
    return above + 1


def _settle(
    rule: _Rule,
    queries: np.ndarray,
    penalty: np.ndarray,
    known: np.ndarray,
    query_of: np.ndarray,
    gold_of: np.ndarray,
    above: np.ndarray,
    amb_q: np.ndarray,
    amb_z: np.ndarray,
) -> None:
    """Exact penalties for the open targets, then count those that beat each pair's gold (adds to ``above``)."""
    if amb_z.size == 0:
        return
    rule.make_exact(penalty, known, np.unique(amb_z))
    order = np.argsort(amb_q, kind="stable")
    amb_q, amb_z = amb_q[order], amb_z[order]
    starts = np.searchsorted(amb_q, np.arange(queries.shape[0] + 1))
    with threadpool_limits(1):  # small products: see _cell_topk_mean
        for pair, (q, g) in enumerate(zip(query_of.tolist(), gold_of.tolist())):
            z = amb_z[starts[q] : starts[q + 1]]
            if z.size == 0:
                continue
            scores = rule.scale * (rule.targets[z] @ queries[q]) - penalty[z]
            gold = rule.scale * (rule.targets[g] @ queries[q]) - penalty[g]
            above[pair] += int(np.count_nonzero(scores > gold))


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
