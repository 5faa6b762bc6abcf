"""CLE mappers: planted maps recovered, steps equal their definitions, variants differ as documented, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from xling.cle.mappers import (
    CCA,
    CCAXlingEval,
    Procrustes,
    ProcrustesBootstrap,
    VecMapSupervised,
    make_mapper,
    seed_of,
)
from xling.cle.mappers.bootstrap import mutual_neighbours
from xling.cle.mappers.vecmap import (
    MultiStep,
    dewhiten,
    multistep_maps,
    orthogonal_map,
    reweight,
    whiten,
)
from xling.cle.normalize import VECMAP_ORDER, mean_center, normalize, unit_length
from xling.cle.retrieval import nearest
from xling.cle.simulate import simulate_pair
from xling.errors import XlingError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):  # small matrices on a shared machine: threads only thrash
        yield


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def rows(pair, lines) -> np.ndarray:
    si = {w: i for i, w in enumerate(pair.src_words)}
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    return np.array([(si[s], ti[t]) for s, t in lines if s in si and t in ti], dtype=np.int64)


def p_at_1(Xm: np.ndarray, Zm: np.ndarray, test: np.ndarray) -> float:
    """P@1 with CSLS, per unique source word, any gold counts (a compact reference for the bands)."""
    gold: dict[int, set[int]] = {}
    for s, t in test.tolist():
        gold.setdefault(s, set()).add(t)
    queries = np.array(sorted(gold))
    top = nearest(unit_length(Xm[queries]), unit_length(Zm), 1, "csls", sources=unit_length(Xm))[0][:, 0]
    return float(np.mean([t in gold[q] for q, t in zip(queries.tolist(), top.tolist())]))


# --- normalisation ----------------------------------------------------------------------------------------------------


def test_normalisation_steps():
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 6)).astype(np.float32)
    assert np.allclose(np.linalg.norm(unit_length(X), axis=1), 1, atol=1e-6)
    assert np.allclose(mean_center(X).mean(axis=0), 0, atol=1e-5)
    vec = normalize(X, VECMAP_ORDER)
    assert np.allclose(vec, unit_length(mean_center(unit_length(X))), atol=1e-6)
    assert np.array_equal(normalize(X, ()), X)
    with pytest.raises(XlingError, match="unknown normalisation step 'scale'"):
        normalize(X, ["unit", "scale"])


# --- PROC ------------------------------------------------------------------------------------------------------------


def test_proc_recovers_a_planted_orthogonal_map_exactly():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 12)).astype(np.float32)
    Q = _orthogonal(rng, 12).astype(np.float32)
    pairs = np.c_[np.arange(0, 300, 3), np.arange(0, 300, 3)]  # a third of the words as the dictionary
    proc = Procrustes().fit(X, X @ Q, pairs)
    assert np.allclose(proc.W_src_, Q, atol=1e-5)
    Xm, Zm = proc.transform(X, X @ Q)
    assert np.allclose(Xm, X @ Q, atol=1e-4) and np.array_equal(proc.W_tgt_, np.eye(12, dtype=np.float32))
    assert np.allclose(proc.W_src_.T @ proc.W_src_, np.eye(12), atol=1e-5)


def test_proc_uses_raw_vectors_unless_asked():
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((100, 5)) * rng.uniform(0.5, 4, size=(100, 1))).astype(np.float32)
    Z = rng.standard_normal((100, 5)).astype(np.float32)
    pairs = np.c_[np.arange(100), np.arange(100)]
    raw, unit = Procrustes().fit(X, Z, pairs), Procrustes(normalize=["unit"]).fit(X, Z, pairs)
    U, _, Vt = np.linalg.svd(X.T.astype(np.float64) @ Z)
    assert np.allclose(raw.W_src_, U @ Vt, atol=1e-5)  # xling-eval: svd(X^T Z) = U S V^T, W = U V^T on raw rows
    assert not np.allclose(raw.W_src_, unit.W_src_, atol=1e-3)


# --- CCA -------------------------------------------------------------------------------------------------------------


def _cca_data():
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((400, 6))
    X = latent @ rng.standard_normal((6, 6)) + 0.3 * rng.standard_normal((400, 6)) + 2.0
    Z = latent @ rng.standard_normal((6, 6)) + 0.3 * rng.standard_normal((400, 6)) - 1.0
    return X.astype(np.float32), Z.astype(np.float32), np.c_[np.arange(400), np.arange(400)]


def test_cca_xlingeval_equals_its_reference_computation():
    from scipy.linalg import sqrtm

    X, Z, pairs = _cca_data()
    Xd, Zd = X.astype(np.float64), Z.astype(np.float64)
    n = len(Xd)
    Kx = sqrtm(np.linalg.inv(Xd.T @ Xd / n)).real  # xling-eval: sqrtm(inv(cov)), covariance without centring
    Kz = sqrtm(np.linalg.inv(Zd.T @ Zd / n)).real
    U, S, Vt = np.linalg.svd(Kx @ (Xd.T @ Zd / n) @ Kz)
    cca = CCAXlingEval().fit(X, Z, pairs)
    Xm, Zm = cca.transform(X, Z)
    assert np.allclose(np.abs(Xm), np.abs(X @ U), atol=1e-3)  # projected by the SVD factors only
    assert np.allclose(np.abs(Zm), np.abs(Z @ Vt.T), atol=1e-3)
    assert np.allclose(cca.correlations_, S, atol=1e-6)


def test_cca_variants_differ_as_documented():
    X, Z, pairs = _cca_data()
    xe, tb = CCAXlingEval().fit(X, Z, pairs), CCA().fit(X, Z, pairs)
    # xling-eval: orthogonal projections (cosines inside each space are kept), so no whitening of the pairs
    assert np.allclose(xe.W_src_.T @ xe.W_src_, np.eye(6), atol=1e-5)
    Xe, _ = xe.transform(X, Z)
    assert not np.allclose(np.cov(Xe.T, bias=True), np.eye(6), atol=0.1)
    # textbook: the mapped pairs are centred and whitened; dimension i correlates by the i-th canonical correlation
    Xt, Zt = tb.transform(X, Z)
    assert np.allclose(Xt.mean(axis=0), 0, atol=1e-4) and np.allclose(Zt.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(Xt.T @ Xt / len(Xt), np.eye(6), atol=1e-3)
    assert np.allclose((Xt * Zt).mean(axis=0), tb.correlations_, atol=1e-3)
    # textbook CCA ignores a shift of the inputs; xling-eval's (uncentred) does not
    shifted = CCA().fit(X + 5.0, Z, pairs).transform(X + 5.0, Z)[0]
    assert np.allclose(np.abs(shifted), np.abs(Xt), atol=1e-2)
    xe_shift = CCAXlingEval().fit(X + 5.0, Z, pairs).correlations_
    assert not np.allclose(xe_shift, xe.correlations_, atol=1e-2)


# --- VecMap multi-step ------------------------------------------------------------------------------------------------


def test_multistep_maps_equal_the_steps_applied_one_by_one():
    rng = np.random.default_rng(4)
    X = normalize(rng.standard_normal((120, 8)), VECMAP_ORDER).astype(np.float64)
    Z = normalize(rng.standard_normal((120, 8)), VECMAP_ORDER).astype(np.float64)
    src, trg = np.arange(60), rng.permutation(120)[:60]
    # the paper's order, on whole matrices: whiten, rotate, re-weight, de-whiten, reduce
    Wx1, Wz1 = whiten(X[src]), whiten(Z[trg])
    assert np.allclose((X[src] @ Wx1).T @ (X[src] @ Wx1), np.eye(8), atol=1e-8)
    xw, zw = X @ Wx1, Z @ Wz1
    U, S, V = orthogonal_map(xw[src], zw[trg])
    xw, zw = xw @ U, zw @ V
    xw, zw = xw * reweight(S, 0.5), zw * reweight(S, 0.5)
    xw, zw = xw @ dewhiten(Wx1, U), zw @ dewhiten(Wz1, V)
    W_src, W_tgt = multistep_maps(X[src], Z[trg], MultiStep(dim_reduction=5))
    assert np.allclose(X @ W_src, xw[:, :5], atol=1e-4) and np.allclose(Z @ W_tgt, zw[:, :5], atol=1e-4)
    est = VecMapSupervised(normalize=(), steps=MultiStep(dim_reduction=5)).fit(X, Z, np.c_[src, trg])
    assert est.W_src_.shape == (8, 5) and np.allclose(est.transform(X, Z)[0], xw[:, :5], atol=1e-4)


def test_vecmap_checks_its_options_and_the_dictionary_rank():
    X = np.random.default_rng(5).standard_normal((50, 10)).astype(np.float32)
    with pytest.raises(XlingError, match="whitening needs linearly independent training pairs"):
        VecMapSupervised().fit(X, X, np.c_[np.arange(5), np.arange(5)])
    with pytest.raises(XlingError, match="needs whitening first"):
        VecMapSupervised(steps=MultiStep(whitening=False)).fit(X, X, np.c_[np.arange(50), np.arange(50)])
    assert make_mapper("vecmap-sup", dim_reduction=4).steps == MultiStep(dim_reduction=4)  # flat, as --param gives
    assert make_mapper(
        "vecmap-semi", steps={"whitening": False, "src_dewhiten": None, "trg_dewhiten": None}
    ).steps == MultiStep(whitening=False, src_dewhiten=None, trg_dewhiten=None)  # or nested, as a grid spec may
    with pytest.raises(XlingError, match="dim_reduction must be in 0..10"):
        VecMapSupervised(steps=MultiStep(dim_reduction=11)).fit(X, X, np.c_[np.arange(50), np.arange(50)])


# --- P@1 bands on simulated pairs of known difficulty -----------------------------------------------------------------

BANDS = {  # (noise, warp) -> method -> (low, high) P@1; 2000 words x 40 dims, 500 training pairs
    (0.3, 0.0): {
        "proc": (0.97, 1.0),
        "proc-b": (0.97, 1.0),
        "cca": (0.95, 1.0),
        "cca-xlingeval": (0.97, 1.0),
        "vecmap-sup": (0.97, 1.0),
    },
    (0.6, 0.15): {
        "proc": (0.58, 0.72),
        "proc-b": (0.6, 0.75),
        "cca": (0.5, 0.65),
        "cca-xlingeval": (0.58, 0.72),
        "vecmap-sup": (0.56, 0.7),
    },
    (1.0, 0.5): {
        "proc": (0.0, 0.05),
        "proc-b": (0.0, 0.05),
        "cca": (0.0, 0.05),
        "cca-xlingeval": (0.0, 0.05),
        "vecmap-sup": (0.0, 0.05),
    },
}


@pytest.mark.parametrize("difficulty", list(BANDS))
def test_supervised_methods_reach_their_band(difficulty):
    noise, warp = difficulty
    pair = simulate_pair(2000, 40, noise, warp, seed=7, n_train=500, n_test=400)
    train, test = rows(pair, pair.train), rows(pair, pair.test)
    for method, (low, high) in BANDS[difficulty].items():
        assert seed_of(method) == "dictionary"
        Xm, Zm = make_mapper(method).fit_transform(pair.src_vectors, pair.tgt_vectors, train)
        score = p_at_1(Xm, Zm, test)
        assert low <= score <= high, f"{method} at noise={noise}, warp={warp}: P@1 {score:.3f} not in [{low}, {high}]"


# --- PROC-B ----------------------------------------------------------------------------------------------------------


def _brute_mutual(Xm: np.ndarray, Zm: np.ndarray) -> list[tuple[int, int]]:
    s2t, t2s = (Xm @ Zm.T).argmax(axis=1), (Zm @ Xm.T).argmax(axis=1)
    pairs = [(i, int(j)) for i, j in enumerate(s2t) if t2s[j] == i]
    return sorted(pairs, key=lambda p: (p[0] + p[1], p[0]))


def test_mutual_neighbours_with_early_stop_equal_the_full_scan():
    pair = simulate_pair(1500, 20, 0.6, 0.1, seed=3, n_train=100, n_test=100)
    Xu, Zu = unit_length(pair.src_vectors @ pair.mapping), unit_length(pair.tgt_vectors)
    full = _brute_mutual(Xu, Zu)
    assert len(full) > 300
    for need in (10, 150, 5000):
        got = mutual_neighbours(Xu, Zu, need, block=64)
        assert [tuple(p) for p in got.tolist()] == full[:need]
    skip = {full[0], full[3]}
    assert [tuple(p) for p in mutual_neighbours(Xu, Zu, 20, exclude=skip, block=64).tolist()] == [
        p for p in full if p not in skip
    ][:20]


def test_proc_b_variants():
    pair = simulate_pair(2000, 40, 0.6, 0.15, seed=7, n_train=500, n_test=400)
    train, test = rows(pair, pair.train)[:200], rows(pair, pair.test)
    X, Z = pair.src_vectors, pair.tgt_vectors
    proc = p_at_1(*Procrustes().fit_transform(X, Z, train), test)
    paper = ProcrustesBootstrap(limit=1000).fit(X, Z, train)
    # one bootstrap step: the seed pairs first, then new mutual neighbours, up to the limit; one refit
    assert len(paper.sizes_) == 2 and paper.sizes_[1] <= 1000 and paper.sizes_[1] > paper.sizes_[0]
    assert np.array_equal(paper.pairs_[: len(train)], train)
    assert len({tuple(p) for p in paper.pairs_.tolist()}) == len(paper.pairs_)
    it = ProcrustesBootstrap(variant="iterative", limit=1000).fit(X, Z, train)
    sizes = it.sizes_
    assert all(b <= int(1.5 * a) for a, b in zip(sizes, sizes[1:]))  # grows at most 1.5x per step
    assert sizes[-1] >= 1000 or sizes[-1] < 1.01 * sizes[-2]  # stops at the limit or when growth < 1%
    assert np.array_equal(it.W_src_, Procrustes().fit(X, Z, it.pairs_).W_src_)  # the map of the last dictionary
    for est in (paper, it):  # bootstrapping helps a small seed dictionary on this pair
        assert p_at_1(*est.transform(X, Z), test) >= proc
    with pytest.raises(XlingError, match="variant"):
        ProcrustesBootstrap(variant="exact").fit(X, Z, train)


# --- bad input -------------------------------------------------------------------------------------------------------


def test_bad_input_is_one_line_error():
    X = np.random.default_rng(6).standard_normal((20, 4)).astype(np.float32)
    good = np.c_[np.arange(20), np.arange(20)]
    with pytest.raises(XlingError, match="pair 0 has target row 20, expected 0 <= row < 20"):
        Procrustes().fit(X, X, np.array([[0, 20]]))
    with pytest.raises(XlingError, match=r"expected an \(n, 2\) array"):
        Procrustes().fit(X, X, np.arange(5))
    with pytest.raises(XlingError, match="needs a training dictionary"):
        Procrustes().fit(X, X, None)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(XlingError, match="row 3 has NaN or inf"):
        CCA().fit(bad, X, good)
    with pytest.raises(XlingError, match="same dimension"):
        Procrustes().fit(X, X[:, :3], good)
    with pytest.raises(XlingError, match="not fitted yet"):
        Procrustes().transform(X, X)
    with pytest.raises(XlingError, match="unknown mapping method 'procrustes'"):
        make_mapper("procrustes")
    with pytest.raises(XlingError, match="unknown parameter 'variant'"):
        make_mapper("proc-b", variant="iterative")  # fixed by the method name
    with pytest.raises(XlingError, match="covariance is singular"):
        CCA().fit(X, X, good[:2])
