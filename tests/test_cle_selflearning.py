"""VecMap-style self-learning: induction equals its definition, the stochastic draw matches dropout, and the three
initialisations succeed where they should and fail visibly where they cannot."""

from __future__ import annotations

import numpy as np
import pytest
from test_cle_mappers import p_at_1, rows
from threadpoolctl import threadpool_limits

from xling.cle.mappers import (
    Procrustes,
    VecMapSelfLearning,
    identical_pairs,
    make_mapper,
)
from xling.cle.mappers import selflearning as sl
from xling.cle.simulate import simulate_pair
from xling.errors import XlingError

FAST = {"stochastic_interval": 3}  # vecmap's 50 makes a run ~300 iterations; the schedule is the same


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _near_isomorphic(warp: float = 0.0, seed: int = 1):
    """1000 words x 20 dims, little noise, few clusters: similarity distributions identify words."""
    return simulate_pair(
        1000,
        20,
        0.1,
        warp,
        seed=seed,
        n_train=200,
        n_test=300,
        rank_noise=0.3,
        n_clusters=10,
        lang_clusters=2,
        overlap=1.0,
        identical=0.1,
    )


def _reference_induction(X: np.ndarray, Z: np.ndarray, k: int):
    S = X.astype(np.float64) @ Z.T.astype(np.float64)
    r_src = np.sort(S, axis=1)[:, -k:].mean(axis=1)
    r_tgt = np.sort(S, axis=0)[-k:].mean(axis=0)
    fwd = (S - r_tgt / 2).argmax(axis=1)
    bwd = (S.T - r_src / 2).argmax(axis=1)
    pairs = np.concatenate([np.c_[np.arange(len(X)), fwd], np.c_[bwd, np.arange(len(Z))]])
    return pairs, (S.max(axis=1).mean() + S.max(axis=0).mean()) / 2


@pytest.mark.parametrize("store", [True, False])
def test_deterministic_induction_equals_csls_by_definition(monkeypatch, store):
    monkeypatch.setattr(sl, "BLOCK_BYTES", 37 * 8 * 150)  # several blocks, uneven last one
    rng = np.random.default_rng(0)
    X = sl.normalize(rng.standard_normal((150, 8)), ("unit",))
    Z = sl.normalize(rng.standard_normal((130, 8)), ("unit",))
    S = sl.similarity_buffer(150, 130) if store else None  # without it, S is recomputed
    pairs, objective = sl.induce_dictionary(X, Z, keep_prob=1.0, csls_k=10, direction="union", rng=rng, S=S)
    ref_pairs, ref_objective = _reference_induction(X, Z, 10)
    assert np.array_equal(pairs, ref_pairs)
    assert objective == pytest.approx(ref_objective, abs=1e-6)
    fwd, _ = sl.induce_dictionary(X, Z, keep_prob=1.0, csls_k=10, direction="forward", rng=rng)
    assert np.array_equal(fwd, ref_pairs[:150])


def test_stochastic_induction_draws_like_dropout():
    """Keeping each candidate with probability p and taking the best survivor = taking the r-th best, r ~ Geom(p)."""
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.1, 1.0, size=(1, 40)).astype(np.float32)
    p, n = 0.3, 20000
    masks = rng.random((n, 40)) < p
    dropout = np.where(masks, scores, -np.inf).argmax(axis=1)[masks.any(axis=1)]
    ours = sl._sampled_choice(np.repeat(scores, n, axis=0), rng.geometric(p, size=n))
    f_drop = np.bincount(dropout, minlength=40) / len(dropout)
    f_ours = np.bincount(ours, minlength=40) / n
    assert 0.5 * np.abs(f_drop - f_ours).sum() < 0.03  # total variation distance
    assert f_ours[scores[0].argmax()] == pytest.approx(p, abs=0.02)


@pytest.mark.slow
def test_semi_supervised_self_learning_improves_a_small_seed():
    pair = simulate_pair(2000, 40, 0.6, 0.15, seed=7, n_train=500, n_test=400)
    seed, test = rows(pair, pair.train)[:100], rows(pair, pair.test)
    X, Z = pair.src_vectors, pair.tgt_vectors
    proc = p_at_1(*Procrustes().fit_transform(X, Z, seed), test)
    est = make_mapper("vecmap-semi", seed=0, **FAST).fit(X, Z, seed)
    semi = p_at_1(*est.transform(X, Z), test)
    assert proc < 0.45 and 0.6 <= semi <= 0.8, (proc, semi)
    assert est.converged_ and len(est.history_) == est.n_iter_ >= 5 * 3
    assert [h["keep_prob"] for h in est.history_][0] == 0.1 and est.history_[-1]["keep_prob"] == 1.0
    assert len(est.pairs_) == 2 * 2000  # union of both directions over the whole (cut) vocabulary


def test_self_learning_is_seeded_and_deterministic():
    pair = _near_isomorphic(seed=2)
    seed = rows(pair, pair.train)[:50]
    a = VecMapSelfLearning(seed=3, max_iter=6).fit(pair.src_vectors, pair.tgt_vectors, seed)
    b = VecMapSelfLearning(seed=3, max_iter=6).fit(pair.src_vectors, pair.tgt_vectors, seed)
    c = VecMapSelfLearning(seed=4, max_iter=6).fit(pair.src_vectors, pair.tgt_vectors, seed)
    assert np.array_equal(a.W_src_, b.W_src_) and np.array_equal(a.pairs_, b.pairs_)
    assert not np.array_equal(a.pairs_, c.pairs_)
    assert not a.converged_ and a.n_iter_ == 6  # max_iter stops it and says so


def test_identical_strings_seed():
    pair = _near_isomorphic()
    seed = identical_pairs(pair.src_words, pair.tgt_words)
    assert len(seed) == 100 and all(pair.src_words[i] == pair.tgt_words[j] for i, j in seed.tolist())
    est = make_mapper("vecmap-identical", **FAST).fit(pair.src_vectors, pair.tgt_vectors, seed)
    assert p_at_1(*est.transform(pair.src_vectors, pair.tgt_vectors), rows(pair, pair.test)) >= 0.95


@pytest.mark.slow
def test_unsupervised_succeeds_when_isomorphic_and_fails_visibly_when_not():
    good = _near_isomorphic(warp=0.0)
    est = make_mapper("vecmap-unsup", **FAST).fit(good.src_vectors, good.tgt_vectors, None)
    assert p_at_1(*est.transform(good.src_vectors, good.tgt_vectors), rows(good, good.test)) >= 0.95
    bad = _near_isomorphic(warp=0.8)
    est = make_mapper("vecmap-unsup", stochastic_interval=2).fit(bad.src_vectors, bad.tgt_vectors, None)
    assert est.converged_  # it ran to its own end: the low score is the method's, not a cut-off
    assert p_at_1(*est.transform(bad.src_vectors, bad.tgt_vectors), rows(bad, bad.test)) < 0.05


def test_bad_parameters():
    X = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    pairs = np.c_[np.arange(30), np.arange(30)]
    for params, message in (
        ({"stochastic_initial": 0.0}, "stochastic_initial must be in"),
        ({"init": "numerals"}, "init: expected"),
        ({"direction": "both"}, "direction: expected"),
        ({"csls_k": 0}, "csls_k must be at least 1"),
        ({"max_iter": 0}, "max_iter must be"),
    ):
        with pytest.raises(XlingError, match=message):
            VecMapSelfLearning(**params).fit(X, X, pairs)
    with pytest.raises(XlingError, match="seed dictionary: this method needs a training dictionary"):
        VecMapSelfLearning().fit(X, X, None)
