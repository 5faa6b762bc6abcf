"""DLV: the latent 1:1 matching equals the release's ``lat_var`` (``lap.lapmod`` on the candidate costs, non-candidate
pairs dropped) or, with ``solver="optimal"``, the best matching with the most candidate pairs (a dense assignment in
which a missing edge costs a large constant); the whole loop equals ``map_embeddings.py --ruder_emnlp2018``
reimplemented from its code; from a small seed DLV beats PROC on a harder pair."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from xling.cle.mappers import make_mapper
from xling.cle.mappers.dlv import match_optimal, top_candidates
from xling.cle.normalize import normalize
from xling.cle.simulate import simulate_pair
from xling.errors import XlingError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def ref_lat_var(sims: np.ndarray, n_similar: int) -> tuple[np.ndarray, np.ndarray]:
    """lat_var.lat_var with n_repeats 1 and asym 1:1, from its code: each row's n_similar best columns (sorted), their
    costs 1 - sim, lapmod, then the rows assigned outside their candidates dropped."""
    from lap import lapmod

    n = sims.shape[0]
    cc, kk = np.empty(n * n_similar), np.empty(n * n_similar)
    ii = np.arange(0, n * n_similar + 1, n_similar)
    trg = np.sort(np.argpartition(sims, -n_similar)[:, -n_similar:], axis=1).flatten()
    rows = np.repeat(np.arange(n), n_similar)
    cc[:], kk[:] = 1 - sims[rows, trg], trg
    _, x, _ = lapmod(n, cc, ii, kk)
    keep = [i for i in range(n) if x[i] in kk[ii[i] : ii[i] + n_similar]]
    return np.arange(n)[keep], x[keep]


def ref_best_matching(sims: np.ndarray, n_similar: int) -> tuple[np.ndarray, np.ndarray]:
    """The matching the paper describes: each row's n_similar best columns, every other edge priced 1e6 (more than
    any sum of real costs), the optimal dense assignment, then the non-candidate pairs dropped."""
    n = sims.shape[0]
    cand = np.sort(np.argpartition(sims, -n_similar, axis=1)[:, -n_similar:], axis=1)
    cost = np.full(sims.shape, 1e6)
    rows = np.repeat(np.arange(n), n_similar)
    cost[rows, cand.ravel()] = 1 - sims[rows, cand.ravel()]
    r, c = linear_sum_assignment(cost)
    keep = np.array([c[i] in cand[r[i]] for i in range(len(r))])
    return r[keep], c[keep]


def ref_ruder_emnlp2018(x, z, seed, n_similar, cutoff, threshold=1e-6):
    """map_embeddings.py --ruder_emnlp2018 from the normalised spaces on (orthogonal map, forward, no CSLS, no dropout,
    stochastic interval 1): the map of the last dictionary and that dictionary. The release computes in float32;
    the SVD here is float64 like xling's Procrustes (lapmod's choices follow the last bits of the costs)."""
    src, trg = seed[:, 0], seed[:, 1]
    best, it, last, end = -100.0, 1, 0, False
    while True:
        if it - last > 1:
            end, last = True, it
        u, s, vt = np.linalg.svd(z[trg].T.astype(np.float64).dot(x[src]))
        w = vt.T.dot(u.T).astype(np.float32)
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


def _sims(noise: float, n: int = 150) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(n, 6))
    sims = base @ (base + rng.normal(scale=noise, size=base.shape)).T
    return (sims / np.abs(sims).max()).astype(np.float32)  # cosine-like, so 1 - sim >= 0 as lapmod needs


@pytest.mark.parametrize("noise", [0.3, 1.0, 3.0])  # crowded candidates (many rows left unpaired) to scattered ones
def test_matchings_equal_lat_var_and_the_best_matching(noise):
    pytest.importorskip("lap")
    from xling.cle.mappers.dlv import match_lapmod

    sims = _sims(noise)
    idx, sim, _ = top_candidates(np.eye(len(sims), dtype=np.float32), sims.T.copy(), 3)  # rows of sims
    released = match_lapmod(idx, sim, len(sims))
    r_ref, c_ref = ref_lat_var(sims, 3)
    assert released.tolist() == np.c_[r_ref, c_ref].tolist()
    best = match_optimal(idx, sim, len(sims))
    r_opt, c_opt = ref_best_matching(sims, 3)
    assert len(best) == len(r_opt) == len(released) and len(set(best[:, 1].tolist())) == len(best)  # 1:1
    assert sims[best[:, 0], best[:, 1]].sum() == pytest.approx(sims[r_opt, c_opt].sum(), abs=1e-3)
    assert sims[best[:, 0], best[:, 1]].sum() > sims[r_ref, c_ref].sum()  # lapmod's is not the best


def test_fit_equals_the_release_loop():
    pytest.importorskip("lap")
    pair = simulate_pair(500, 16, 0.6, 0.15, seed=4, n_train=60, n_test=50)
    si = {w: i for i, w in enumerate(pair.src_words)}
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    seed = np.array([(si[s], ti[t]) for s, t in pair.train])
    X, Z = normalize(pair.src_vectors, ("unit", "center")), normalize(pair.tgt_vectors, ("unit", "center"))
    w_ref, pairs_ref = ref_ruder_emnlp2018(X, Z, seed, 3, 400)
    mapper = make_mapper("dlv", vocabulary_cutoff=400, normalize=()).fit(X, Z, seed)
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
    p1 = {
        m: evaluate(*make_mapper(m).fit_transform(pair.src_vectors, pair.tgt_vectors, seed), test).p1
        for m in ("proc", "dlv")
    }
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
