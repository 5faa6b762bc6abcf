"""RCSLS equals fastText's ``alignment/align.py``: its loss and gradient, and its optimisation loop step by step
(reimplemented here from its code, float64 and dense, including what its in-place update does to the rollback)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from xling.cle.mappers import make_mapper
from xling.cle.mappers.rcsls import rcsls_loss
from xling.errors import XlingError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def unit(m):
    return m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-8)


# --- align.py, reimplemented from its code --------------------------------------------------------------------------


def ref_getknn(sc, x, y, k):
    sidx = np.argpartition(sc, -k, axis=1)[:, -k:]
    ytopk = y[sidx.flatten(), :].reshape(sidx.shape[0], sidx.shape[1], y.shape[1])
    f = np.sum(sc[np.arange(sc.shape[0])[:, None], sidx])
    df = np.dot(ytopk.sum(1).T, x)
    return f / k, df / k


def ref_rcsls(X_src, Y_tgt, Z_src, Z_tgt, R, knn):
    X_trans = np.dot(X_src, R.T)
    f = 2 * np.sum(X_trans * Y_tgt)
    df = 2 * np.dot(Y_tgt.T, X_src)
    fk0, dfk0 = ref_getknn(np.dot(X_trans, Z_tgt.T), X_src, Z_tgt, knn)
    fk1, dfk1 = ref_getknn(np.dot(np.dot(Z_src, R.T), Y_tgt.T).T, Y_tgt, Z_src, knn)
    f = f - fk0 - fk1
    df = df - dfk0 - dfk1.T
    return -f / X_src.shape[0], -df / X_src.shape[0]


def ref_proj_spectral(R):
    U, s, V = np.linalg.svd(R)
    s[s > 1] = 1
    s[s < 0] = 0
    return np.dot(U, np.dot(np.diag(s), V))


def ref_align(x_src, x_tgt, pairs, lr, niter, knn, maxneg, spectral):
    """align.py's main, from the Procrustes start on (R -= ... is in place, Rold aliases R)."""
    X_src, Y_tgt = x_src[pairs[:, 0]], x_tgt[pairs[:, 1]]
    Z_src, Z_tgt = x_src[:maxneg], x_tgt[:maxneg]
    U, s, V = np.linalg.svd(np.dot(Y_tgt.T, X_src))
    R = np.dot(U, V)
    fold, Rold = 0, []
    losses = []
    for it in range(0, niter + 1):
        if lr < 1e-4:
            break
        f, df = ref_rcsls(X_src, Y_tgt, Z_src, Z_tgt, R, knn)
        R -= lr * df
        if spectral:
            R = ref_proj_spectral(R)
        losses.append(f)
        if f > fold and it > 0:
            lr /= 2
            f, R = fold, Rold
        fold, Rold = f, R
    return R, losses


@pytest.fixture(scope="module")
def spaces():
    rng = np.random.default_rng(0)
    n, d = 400, 12
    X = rng.normal(size=(n, d))
    Z = X @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 0.8 * rng.normal(size=(n, d))
    pairs = np.c_[np.arange(120), np.arange(120)]
    return unit(X).astype(np.float32), unit(Z).astype(np.float32), pairs


def test_loss_and_gradient_equal_align_py(spaces):
    X, Z, pairs = spaces
    R = np.linalg.qr(np.random.default_rng(1).normal(size=(X.shape[1],) * 2))[0] * 1.3
    Xp, Yp = X[pairs[:, 0]], Z[pairs[:, 1]]
    f, grad = rcsls_loss(R, Xp, Yp, X[:300], Z[:300], 10)
    f_ref, grad_ref = ref_rcsls(
        Xp.astype(np.float64), Yp.astype(np.float64), X[:300].astype(np.float64), Z[:300].astype(np.float64), R, 10
    )
    assert f == pytest.approx(f_ref, rel=1e-5)
    assert np.allclose(grad, grad_ref, atol=1e-5)


@pytest.mark.parametrize("spectral", [False, True])
@pytest.mark.parametrize("lr", [25.0, 400.0])  # 400 + spectral: the loss rises, lr halves, align.py's aliasing shows
def test_fit_equals_align_py_step_by_step(spaces, spectral, lr):
    X, Z, pairs = spaces
    R_ref, losses = ref_align(X.astype(np.float64), Z.astype(np.float64), pairs, lr, 10, 10, 300, spectral)
    mapper = make_mapper("rcsls", lr=lr, n_iter=10, maxneg=300, spectral=spectral).fit(X, Z, pairs)
    assert [h["objective"] for h in mapper.history_] == pytest.approx(losses, rel=1e-4, abs=1e-6)
    assert np.allclose(mapper.W_src_, R_ref.T, atol=1e-4)
    assert np.allclose(mapper.W_tgt_, np.eye(X.shape[1]))
    if lr == 400.0 and spectral:
        assert not all(h["accepted"] for h in mapper.history_)


def test_rollback_restores_the_last_accepted_map(spaces):
    X, Z, pairs = spaces
    mapper = make_mapper("rcsls", lr=400.0, maxneg=300, spectral=True, rollback=True).fit(X, Z, pairs)
    history = mapper.history_
    rejected = [i for i, h in enumerate(history) if not h["accepted"]]
    assert rejected and rejected[0] + 1 < len(history)
    accepted_before = [h for h in history[: rejected[0]] if h["accepted"]][-1]
    assert history[rejected[0] + 1]["objective"] == pytest.approx(accepted_before["objective"], rel=1e-9)
    assert mapper.objective_ <= accepted_before["objective"]


def test_sampled_batches_are_seeded(spaces):
    X, Z, pairs = spaces
    a, b, c = (make_mapper("rcsls", maxneg=300, batch_size=40, seed=s).fit(X, Z, pairs) for s in (3, 3, 4))
    assert np.array_equal(a.W_src_, b.W_src_) and not np.array_equal(a.W_src_, c.W_src_)
    assert all(h["accepted"] for h in a.history_)  # no lr halving with sampled batches (align.py --sgd)


def test_bad_parameters(spaces):
    X, Z, pairs = spaces
    for params in ({"lr": 0}, {"knn": 0}, {"maxneg": 5}, {"batch_size": 0}):
        with pytest.raises(XlingError, match="rcsls"):
            make_mapper("rcsls", **params).fit(X, Z, pairs)
