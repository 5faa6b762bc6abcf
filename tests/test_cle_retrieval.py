"""Retrieval equals brute-force definitions (NN, CSLS, inverted softmax), with and without pruning, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from xling.cle import retrieval as R
from xling.errors import XlingError


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def spaces():
    """Mapped sources close to their targets (as after a good mapping), plus target-only words and hubs."""
    rng = np.random.default_rng(0)
    latent = _unit(rng.standard_normal((1500, 24)))
    sources = _unit(latent + 0.3 * rng.standard_normal(latent.shape) / np.sqrt(24))
    targets = _unit(latent + 0.3 * rng.standard_normal(latent.shape) / np.sqrt(24))
    hub = _unit(latent.mean(axis=0, keepdims=True) + 0.05 * rng.standard_normal((20, 24)))
    targets = np.vstack([targets, hub, _unit(rng.standard_normal((200, 24)))])
    queries = np.arange(100, 250)
    return sources, targets, queries


def _reference(method: str, q: np.ndarray, t: np.ndarray, s: np.ndarray, k: int = 10, beta: float = 30.0):
    """Full score matrix straight from the definitions."""
    cos = q @ t.T
    if method == "nn":
        return cos
    if method == "csls":
        r_s = np.sort(t @ s.T, axis=1)[:, -k:].mean(axis=1)
        r_t = np.sort(cos, axis=1)[:, -k:].mean(axis=1)
        return 2 * cos - r_s[None, :] - r_t[:, None]
    return beta * cos - logsumexp(beta * (t @ s.T).astype(np.float64), axis=1)[None, :]


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
@pytest.mark.parametrize("method", R.METHODS)
def test_nearest_equals_brute_force(spaces, method, backend):
    sources, targets, rows = spaces
    queries = sources[rows]
    ref = _reference(method, queries, targets, sources)
    # bound_rows=100 forces the pruned path; small blocks exercise batching
    idx, scores = R.nearest(
        queries, targets, k=10, method=method, sources=sources, bound_rows=100, backend=backend, block_bytes=1 << 20
    )
    ref_idx = np.argsort(-ref, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, ref_idx)
    tol = 2e-5 * (30 if method == "isf" else 1)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, ref_idx, axis=1), atol=tol)


@pytest.mark.parametrize("method", R.METHODS)
def test_gold_ranks_equal_brute_force(spaces, method):
    sources, targets, rows = spaces
    rng = np.random.default_rng(1)
    queries = sources[rows]
    # true translations (ranked near the top) and random targets (deep ranks), two golds per query
    query_of = np.repeat(np.arange(len(rows)), 2)
    gold_of = np.stack([rows, rng.integers(0, len(targets), len(rows))], axis=1).ravel()
    ref = _reference(method, queries, targets, sources)
    gold = ref[query_of, gold_of][:, None]
    ranks = R.gold_ranks(
        queries, targets, query_of, gold_of, method=method, sources=sources, bound_rows=100, block_bytes=1 << 20
    )
    # equal up to float32 rounding: a target within 1e-5 of the gold's score may fall either side
    tol = 1e-5 * (30 if method == "isf" else 1)
    assert np.all(ranks >= 1 + (ref[query_of] > gold + tol).sum(axis=1))
    assert np.all(ranks <= 1 + (ref[query_of] > gold - tol).sum(axis=1))
    assert np.mean(ranks == 1 + (ref[query_of] > gold).sum(axis=1)) > 0.99


@pytest.mark.slow
def test_torch_backend_equals_brute_force(spaces):
    pytest.importorskip("torch")
    sources, targets, rows = spaces
    queries = sources[rows]
    for method in R.METHODS:
        ref = _reference(method, queries, targets, sources)
        idx, _ = R.nearest(queries, targets, k=5, method=method, sources=sources, backend="torch")
        np.testing.assert_array_equal(idx, np.argsort(-ref, axis=1, kind="stable")[:, :5])
        ranks = R.gold_ranks(
            queries, targets, np.arange(len(rows)), rows, method=method, sources=sources, backend="torch"
        )
        np.testing.assert_array_equal(ranks, 1 + (ref > ref[np.arange(len(rows)), rows][:, None]).sum(axis=1))


def test_pruning_computes_few_exact_penalties(spaces, monkeypatch):
    """On a good mapping only a small share of the targets needs its exact CSLS penalty — and ranks stay exact."""
    sources, targets, rows = spaces
    asked: list[int] = []
    exact = R._Rule.penalty
    monkeypatch.setattr(R._Rule, "penalty", lambda self, r: (asked.append(len(r)), exact(self, r))[1])
    ranks = R.gold_ranks(
        sources[rows], targets, np.arange(len(rows)), rows, method="csls", sources=sources, bound_rows=250
    )
    ref = _reference("csls", sources[rows], targets, sources)
    np.testing.assert_array_equal(ranks, 1 + (ref > ref[np.arange(len(rows)), rows][:, None]).sum(axis=1))
    assert sum(asked) < 0.5 * len(targets)


def test_penalties_match_definitions(spaces):
    sources, targets, _ = spaces
    ref = np.sort(targets @ sources.T, axis=1)[:, -10:].mean(axis=1)
    np.testing.assert_allclose(R.csls_penalty(sources, targets, 10, backend="numpy"), ref, atol=1e-5)
    np.testing.assert_allclose(R.csls_penalty(sources, targets, 10, backend="faiss"), ref, atol=1e-5)
    np.testing.assert_allclose(
        R.isf_log_partition(sources, targets, 30.0, block_bytes=1 << 18),
        logsumexp(30.0 * (targets @ sources.T).astype(np.float64), axis=1),
        rtol=1e-5,
    )


@pytest.mark.parametrize("k", [1, 3])
def test_knn_matches_sorting(spaces, k):
    sources, targets, rows = spaces
    sims = sources[rows] @ targets.T
    for backend in ("numpy", "faiss"):
        idx, vals = R.knn(sources[rows], targets, k, backend=backend)
        np.testing.assert_array_equal(idx, np.argsort(-sims, axis=1, kind="stable")[:, :k])
        np.testing.assert_allclose(vals, np.take_along_axis(sims, idx, axis=1), atol=1e-5)


def test_queries_default_to_sources_and_k_clips():
    rng = np.random.default_rng(2)
    q, t = _unit(rng.standard_normal((20, 8))), _unit(rng.standard_normal((5, 8)))
    idx, scores = R.nearest(q, t, k=50, method="csls", csls_k=3)
    ref = _reference("csls", q, t, q, k=3)
    np.testing.assert_array_equal(idx, np.argsort(-ref, axis=1, kind="stable"))
    assert scores.shape == (20, 5)


def test_bad_input_is_a_one_line_error():
    q = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(XlingError, match="unknown retrieval method 'knn'"):
        R.nearest(q, q, method="knn")
    with pytest.raises(XlingError, match="dimension 4, targets 5"):
        R.nearest(q, np.ones((3, 5), dtype=np.float32))
    with pytest.raises(XlingError, match="2-D"):
        R.nearest(q[0], q)
    with pytest.raises(XlingError, match="backend"):
        R.nearest(q, q, backend="cuda")
