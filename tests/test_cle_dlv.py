"""DLV: the latent 1:1 matching equals the release's ``lat_var`` (a dense assignment in which a non-candidate edge
costs a large constant, non-candidate pairs dropped), and the whole loop equals ``map_embeddings.py
--ruder_emnlp2018`` reimplemented densely; from a small seed it beats PROC on a harder pair."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from xling.cle.mappers import make_mapper
from xling.cle.mappers.dlv import match_candidates, top_candidates
from xling.cle.simulate import simulate_pair
from xling.errors import XlingError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


LARGE = 1e6  # lap's cost of a missing edge


def ref_lat_var(sims: np.ndarray, n_similar: int) -> tuple[np.ndarray, np.ndarray]:
    """lat_var.lat_var with n_repeats 1: each row's n_similar best columns, cost 1 - sim, every other edge LARGE
    (as lapmod prices it), the optimal assignment, then pairs outside a row's candidates dropped."""
    n = sims.shape[0]
    cand = np.sort(np.argpartition(sims, -n_similar, axis=1)[:, -n_similar:], axis=1)
    cost = np.full(sims.shape, LARGE)
    rows = np.repeat(np.arange(n), n_similar)
    cost[rows, cand.ravel()] = 1 - sims[rows, cand.ravel()]
    r, c = linear_sum_assignment(cost)
    keep = np.array([c[i] in cand[r[i]] for i in range(len(r))])
    return r[keep], c[keep]


def ref_ruder_emnlp2018(x, z, seed, n_similar, cutoff, threshold=1e-6):
    """map_embeddings.py --ruder_emnlp2018 (orthogonal, normalize unit center, forward, no CSLS, no dropout, stochastic
    interval 1), densely."""
    def normalize(m):
        m = m / np.linalg.norm(m, axis=1, keepdims=True)
        return m - m.mean(axis=0)

    x, z = normalize(x), normalize(z)
    src, trg = seed[:, 0], seed[:, 1]
    best, it, last, end = -100.0, 1, 0, False
    while True:
        if it - last > 1:
            end, last = True, it
        u, s, vt = np.linalg.svd(z[trg].T.dot(x[src]))
        w = vt.T.dot(u.T)
        if end:
            return w, np.c_[src, trg]
        sims = x[:cutoff].dot(w).dot(z[:cutoff].T)
        src, trg = ref_lat_var(sims, n_similar)
        objective = sims.max(axis=1).mean()
        if objective - best >= threshold:
            last, best = it, objective
        it += 1


def test_candidates_are_each_rows_best_columns():
    rng = np.random.default_rng(0)
    Q, C = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(70, 8)).astype(np.float32)
    idx, sim, best = top_candidates(Q, C, 3)
    S = Q @ C.T
    assert [set(r) for r in idx.tolist()] == [set(r) for r in np.argsort(-S, axis=1)[:, :3].tolist()]
    assert np.allclose(sim, np.take_along_axis(S, idx, axis=1)) and np.allclose(best, S.max(axis=1))


@pytest.mark.parametrize("noise", [0.3, 1.0, 3.0])  # crowded candidates (many rows left unpaired) to scattered ones
def test_matching_equals_lat_var_with_lapmods_missing_edge_cost(noise):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(150, 6))
    sims = base @ (base + rng.normal(scale=noise, size=base.shape)).T / 6
    r_ref, c_ref = ref_lat_var(sims, 3)
    cand = np.argpartition(sims, -3, axis=1)[:, -3:]
    got = match_candidates(cand, np.take_along_axis(sims, cand, axis=1).astype(np.float32), len(sims))
    assert len(got) == len(r_ref) and len(set(got[:, 1].tolist())) == len(got)  # as many pairs, 1:1
    assert sims[got[:, 0], got[:, 1]].sum() == pytest.approx(sims[r_ref, c_ref].sum(), abs=1e-3)


def test_fit_equals_the_release_loop():
    pair = simulate_pair(500, 16, 0.6, 0.15, seed=4, n_train=60, n_test=50)
    si = {w: i for i, w in enumerate(pair.src_words)}
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    seed = np.array([(si[s], ti[t]) for s, t in pair.train])
    w_ref, pairs_ref = ref_ruder_emnlp2018(pair.src_vectors.astype(np.float64), pair.tgt_vectors.astype(np.float64),
                                           seed, 3, 400)
    mapper = make_mapper("dlv", vocabulary_cutoff=400).fit(pair.src_vectors, pair.tgt_vectors, seed)
    assert mapper.converged_ and mapper.n_iter_ >= 2
    assert sorted(map(tuple, mapper.pairs_.tolist())) == sorted(map(tuple, pairs_ref.tolist()))
    assert np.allclose(mapper.W_src_, w_ref, atol=1e-4)


def test_dlv_beats_proc_from_a_small_seed_on_a_harder_pair():
    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import Dictionary, lookup

    pair = simulate_pair(3000, 48, 0.6, 0.15, seed=2, n_train=200, n_test=500)
    si = {w: i for i, w in enumerate(pair.src_words)}
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    seed = np.array([(si[s], ti[t]) for s, t in pair.train])
    test = lookup(Dictionary(pair.test), si, ti)
    p1 = {m: evaluate(*make_mapper(m).fit_transform(pair.src_vectors, pair.tgt_vectors, seed), test).p1
          for m in ("proc", "dlv")}
    assert p1["dlv"] > p1["proc"] + 0.05, p1  # measured: 67.8 vs 55.3


def test_backward_direction_and_bad_parameters():
    pair = simulate_pair(400, 16, 0.3, 0.0, seed=1, n_train=80, n_test=40)
    si = {w: i for i, w in enumerate(pair.src_words)}
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    seed = np.array([(si[s], ti[t]) for s, t in pair.train])
    back = make_mapper("dlv", direction="backward", max_iter=2).fit(pair.src_vectors, pair.tgt_vectors, seed)
    assert back.n_iter_ <= 2 and len(set(back.pairs_[:, 0].tolist())) == len(back.pairs_)
    for params in ({"direction": "both"}, {"n_similar": 0}, {"max_iter": 0}):
        with pytest.raises(XlingError, match="dlv"):
            make_mapper("dlv", **params).fit(pair.src_vectors, pair.tgt_vectors, seed)
