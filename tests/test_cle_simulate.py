"""The simulator plants what it promises: the map, frequency ranks, warp, overlap, synonyms, dictionaries."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from xling.cle.bli import bli
from xling.cle.dictionaries import Dictionary, read_dictionary
from xling.cle.simulate import simulate_pair
from xling.cle.vectors import Embeddings, read_vectors
from xling.cli import app
from xling.errors import XlingError


def _procrustes_bli(pair) -> tuple[float, float]:
    """Fit orthogonal Procrustes on the training dictionary; (P@1 of NN BLI, relative residual on train)."""
    si, ti = {w: i for i, w in enumerate(pair.src_words)}, {w: i for i, w in enumerate(pair.tgt_words)}
    x = pair.src_vectors[[si[s] for s, _ in pair.train]]
    z = pair.tgt_vectors[[ti[t] for _, t in pair.train]]
    u, _, vt = np.linalg.svd(x.T @ z)
    w = u @ vt
    residual = np.linalg.norm(x @ w - z) / np.linalg.norm(z)
    result = bli(
        Embeddings(pair.src_words, pair.src_vectors @ w),
        Embeddings(pair.tgt_words, pair.tgt_vectors),
        Dictionary(pair.test),
        convention="source",
    )
    return result.p1, residual


def test_deterministic_and_shaped():
    a = simulate_pair(2000, 16, seed=1, n_train=300, n_test=100)
    b = simulate_pair(2000, 16, seed=1, n_train=300, n_test=100)
    c = simulate_pair(2000, 16, seed=2, n_train=300, n_test=100)
    assert a.src_words == b.src_words and a.train == b.train and a.test == b.test
    np.testing.assert_array_equal(a.tgt_vectors, b.tgt_vectors)
    assert not np.array_equal(a.src_vectors, c.src_vectors)
    assert a.src_vectors.shape == a.tgt_vectors.shape == (2000, 16) and a.src_vectors.dtype == np.float32
    assert len(set(a.src_words)) == len(set(a.tgt_words)) == 2000


def test_planted_map_exact_without_noise_and_warp():
    pair = simulate_pair(2000, 16, noise=0.0, warp=0.0, seed=0, n_train=300, n_test=100)
    ti = {w: i for i, w in enumerate(pair.tgt_words)}
    rows = [(i, ti["t" + w[1:]]) for i, w in enumerate(pair.src_words) if "t" + w[1:] in ti]
    src, tgt = zip(*rows)
    np.testing.assert_allclose(pair.src_vectors[list(src)] @ pair.mapping, pair.tgt_vectors[list(tgt)], atol=1e-5)
    np.testing.assert_allclose(pair.mapping @ pair.mapping.T, np.eye(16), atol=1e-5)


def test_frequency_ranks_differ_but_correlate():
    pair = simulate_pair(4000, 8, overlap=1.0, synonyms=0.0, seed=0, n_train=100, n_test=100)
    src_rank = {w[1:]: i for i, w in enumerate(pair.src_words)}
    tgt_rank = {w[1:]: i for i, w in enumerate(pair.tgt_words)}
    a = np.array([src_rank[c] for c in src_rank])
    b = np.array([tgt_rank[c] for c in src_rank])
    rho = np.corrcoef(a, b)[0, 1]  # ranks are permutations: Pearson on ranks = Spearman
    assert 0.3 < rho < 0.99
    assert [s for s, _ in pair.train] == pair.src_words[:100]  # training dictionary = most frequent source words


def test_difficulty_follows_noise_and_warp():
    easy = _procrustes_bli(simulate_pair(3000, 48, noise=0.3, warp=0.0, seed=3, n_train=800, n_test=300))
    noisy = _procrustes_bli(simulate_pair(3000, 48, noise=1.5, warp=0.0, seed=3, n_train=800, n_test=300))
    warped = _procrustes_bli(simulate_pair(3000, 48, noise=0.3, warp=1.0, seed=3, n_train=800, n_test=300))
    assert easy[0] > 0.95
    assert noisy[0] < 0.2
    assert warped[0] < 0.2 and warped[1] > 2 * easy[1]


def test_overlap_synonyms_identical_and_dictionaries():
    pair = simulate_pair(2000, 8, overlap=0.5, synonyms=0.2, identical=0.1, seed=4, n_train=300, n_test=200)
    translated = [w for w in pair.src_words if w[1:] in {t[1:].removesuffix("_2") for t in pair.tgt_words}]
    assert len(translated) == 1000
    golds = Dictionary(pair.test).golds()
    assert any(len(g) == 2 for g in golds.values())
    assert len(golds) == 200
    assert not set(golds) & {s for s, _ in pair.train}
    assert sum(s == t for s, t in pair.train + pair.test) > 0  # identical spellings
    assert set(pair.src_words) & set(pair.tgt_words)


def test_bad_parameters():
    with pytest.raises(XlingError, match="warp must be in"):
        simulate_pair(100, 4, warp=2.0)
    with pytest.raises(XlingError, match="exceeds the 90 translated words"):
        simulate_pair(100, 4, n_train=80, n_test=20)


def test_cli_writes_readable_files(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app,
        [
            "cle",
            "simulate",
            "-o",
            str(out),
            "--n-words",
            "500",
            "--dim",
            "8",
            "--n-train",
            "100",
            "--n-test",
            "50",
            "--seed",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    src = read_vectors(out / "src.vec")
    assert len(src) == 500 and src.dim == 8
    assert len(read_dictionary(out / "test.tsv").golds()) == 50
    assert (out / "run.json").is_file() and np.load(out / "mapping.npy").shape == (8, 8)
