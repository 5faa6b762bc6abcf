"""What a long CLE run looks like from outside: progress lines in logs, seeded determinism, the vectors cache where it
cannot be written, and in-place mapping (no second copy of the spaces)."""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from cli_runner import run_xling as xling
from threadpoolctl import threadpool_limits

from xling.cle.mappers import make_mapper, mapper_class, seed_of
from xling.cle.simulate import simulate_pair, write_pair
from xling.cli import _format_note
from xling.errors import XlingNote
from xling.registry import MAPPERS

#: every iterative method of xling: the name its progress lines start with, and settings small enough for a test
ITERATIVE = {
    "vecmap-semi": ("self-learning", {"vocabulary_cutoff": 300, "stochastic_interval": 2}),
    "rcsls": ("rcsls", {"maxneg": 400, "batch_size": 60}),
    "dlv": ("dlv", {"vocabulary_cutoff": 400}),
}


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def pair():
    return simulate_pair(600, 16, 0.4, 0.1, seed=3, n_train=150, n_test=100)


def rows(pair, lines) -> np.ndarray:
    si, ti = {w: i for i, w in enumerate(pair.src_words)}, {w: i for i, w in enumerate(pair.tgt_words)}
    return np.array([(si[s], ti[t]) for s, t in lines if s in si and t in ti], dtype=np.int64)


def _fit(method: str, pair, seed: int = 0, verbose: bool = False):
    return make_mapper(method, seed=seed, verbose=verbose, **ITERATIVE[method][1]).fit(
        pair.src_vectors, pair.tgt_vectors, rows(pair, pair.train)
    )


@pytest.mark.parametrize("method", sorted(ITERATIVE))
def test_plain_progress_line_per_iteration_when_stderr_is_not_a_terminal(method, pair, capsys):
    mapper = _fit(method, pair, verbose=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " iteration " in ln]
    assert len(lines) == mapper.n_iter_ >= 2
    assert re.match(rf"{ITERATIVE[method][0]}: iteration [01], objective -?[0-9.]+, ", lines[0])  # rcsls counts from 0
    assert all(ln.endswith(" s]") for ln in lines)


@pytest.mark.parametrize("method", sorted(ITERATIVE))
def test_seeded_runs_are_deterministic(method, pair):
    a, b = _fit(method, pair, seed=1), _fit(method, pair, seed=1)
    assert np.array_equal(a.W_src_, b.W_src_) and np.array_equal(a.W_tgt_, b.W_tgt_)


def test_quiet_unless_verbose(pair, capsys):
    _fit("vecmap-semi", pair)
    assert capsys.readouterr().err == ""


def test_every_iterative_method_is_covered():
    iterative = {m for m in MAPPERS.names() if "verbose" in inspect.signature(mapper_class(m)).parameters}
    elsewhere = {
        "vecmap-identical",
        "vecmap-unsup",  # the same class as vecmap-semi
        "muse",
        "icp",
        "gwa",
    }  # logs and determinism in test_cle_unsupervised.py
    assert iterative - elsewhere <= set(ITERATIVE)


def test_unwritable_cache_folder_is_a_note_and_no_cache_turns_it_off(monkeypatch, capsys, pair, tmp_path):
    folder = tmp_path / "vectors"
    write_pair(pair, folder)
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a folder")  # as a read-only folder would, mkdir fails
    monkeypatch.setenv("XLING_CACHE", str(blocked))
    args = [
        "cle",
        "run",
        "-m",
        "proc",
        "--src",
        folder / "src.vec",
        "--tgt",
        folder / "tgt.vec",
        "--train-dict",
        folder / "train.tsv",
        "--test-dict",
        folder / "test.tsv",
        "--json",
    ]
    with pytest.warns(XlingNote) as notes:
        code, out, err = xling(monkeypatch, capsys, *args)
    assert code == 0 and '"p1"' in out
    assert len(notes) == 2 and "cannot write the vectors cache" in str(notes[0].message)
    assert _format_note(notes[0].message, XlingNote, "x.py", 1) == f"note: {notes[0].message}\n"  # one CLI line
    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "fresh"))
    code, out, err = xling(monkeypatch, capsys, *args, "--no-cache")
    assert code == 0 and not (tmp_path / "fresh").exists() and not (folder / ".xling-cache").exists()


#: every method at settings small enough for a 600-word pair (one test each must take a second or two)
SMALL = {
    "vecmap-semi": {"vocabulary_cutoff": 300, "stochastic_interval": 2},
    "vecmap-identical": {"vocabulary_cutoff": 300, "stochastic_interval": 2},
    "vecmap-unsup": {"vocabulary_cutoff": 300, "stochastic_interval": 2, "unsupervised_vocab": 300},
    "rcsls": {"maxneg": 400, "n_iter": 3},
    "dlv": {"vocabulary_cutoff": 300, "max_iter": 3},
    "muse": {
        "n_epochs": 1,
        "epoch_size": 2000,
        "dis_hidden": 32,
        "dis_most_frequent": 400,
        "n_refinement": 1,
        "dico_max_rank": 300,
        "criterion_words": 200,
        "log_every": 10**6,
    },
    "icp": {
        "n_words": 300,
        "n_refine_words": 300,
        "n_restarts": 2,
        "n_components": 4,
        "init_epochs": 3,
        "train_epochs": 2,
        "refine_epochs": 2,
    },
    "gwa": {"n_words": 200, "epsilon": 5e-3, "max_iter": 10},
}


@pytest.fixture(scope="module")
def offset_pair(pair):
    """The pair with what real fastText spaces have: a large mean vector added to each space and row norms that
    vary (here between 0.5 and 4), so that every normalisation step a method takes changes its vectors."""
    rng = np.random.default_rng(0)
    out = []
    for X in (pair.src_vectors, pair.tgt_vectors):
        scale = rng.uniform(0.5, 4.0, size=(len(X), 1)).astype(np.float32)
        out.append(np.ascontiguousarray(X * scale + 3.0 * rng.normal(size=X.shape[1]).astype(np.float32)))
    return out


@pytest.mark.parametrize("method", sorted(MAPPERS.names()))
def test_in_place_path_equals_fit_then_transform_for_every_method(method, pair, offset_pair):
    """``fit_transform(..., overwrite=True)`` (``xling cle run``/``cle map``) equals ``fit(...).transform(...)``."""
    X0, Z0 = offset_pair
    seed = rows(pair, pair.train)
    params = SMALL.get(method, {})
    expected = make_mapper(method, seed=0, **params).fit(X0, Z0, seed).transform(X0, Z0)
    X, Z = X0.copy(), Z0.copy()
    Xm, Zm = make_mapper(method, seed=0, **params).fit_transform(X, Z, seed, overwrite=True)
    if Xm.shape == X.shape:
        assert Xm is X and Zm is Z  # mapped in place, no second copy
    assert np.allclose(Xm, expected[0], atol=1e-4) and np.allclose(Zm, expected[1], atol=1e-4)
    assert np.array_equal(X0, offset_pair[0])  # the default path never writes into its inputs


def test_every_method_has_an_in_place_test():
    assert set(SMALL) | {m for m in MAPPERS.names() if seed_of(m) == "dictionary"} == set(MAPPERS.names())


def test_ctrl_c_during_the_fit_leaves_no_output(monkeypatch, capsys, pair, tmp_path):
    from xling.cle.mappers.iterlog import IterationLog

    write_pair(pair, tmp_path / "data")

    def interrupt(self, iteration, **values):
        raise KeyboardInterrupt

    monkeypatch.setattr(IterationLog, "update", interrupt)
    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "map",
        "-m",
        "dlv",
        "--src",
        tmp_path / "data" / "src.vec",
        "--tgt",
        tmp_path / "data" / "tgt.vec",
        "--train-dict",
        tmp_path / "data" / "train.tsv",
        "-o",
        tmp_path / "mapped",
        "--no-cache",
    )
    assert code == 130 and not (tmp_path / "mapped").exists()


@pytest.mark.parametrize("method", ["rcsls", "dlv"])
def test_cle_run_new_methods_from_the_cli(method, monkeypatch, capsys, pair, tmp_path):
    write_pair(pair, tmp_path / "data")
    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "run",
        "-m",
        method,
        "--src",
        tmp_path / "data" / "src.vec",
        "--tgt",
        tmp_path / "data" / "tgt.vec",
        "--train-dict",
        tmp_path / "data" / "train.tsv",
        "--test-dict",
        tmp_path / "data" / "test.tsv",
        "--json",
        "--no-cache",
        "-o",
        tmp_path / "run",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == method and result["p1"] > 0.5
    assert f"{method}: iteration " in err  # progress on stderr, JSON alone on stdout
    assert json.loads((tmp_path / "run" / "run.json").read_text())["mapping"]["n_iter"] >= 1


def test_cle_run_gwa_gives_the_same_p1_with_a_mean_vector_added(monkeypatch, capsys, tmp_path):
    """GWA centres each space itself: ``xling cle run -m gwa`` scores the same with or without a shared mean vector
    added to each space (before the fix the in-place path mapped the uncentred vectors)."""
    from test_cle_unsupervised import easy_pair

    from xling.cle.vectors import write_vec

    easy = easy_pair()
    write_pair(easy, tmp_path / "plain")
    write_pair(easy, tmp_path / "offset")
    rng = np.random.default_rng(1)
    for name, words, X in (("src", easy.src_words, easy.src_vectors), ("tgt", easy.tgt_words, easy.tgt_vectors)):
        write_vec(tmp_path / "offset" / f"{name}.vec", words, X + 2.0 * rng.normal(size=X.shape[1]))
    p1 = []
    for folder in ("plain", "offset"):
        code, out, err = xling(
            monkeypatch,
            capsys,
            "cle",
            "run",
            "-m",
            "gwa",
            *("--src", tmp_path / folder / "src.vec", "--tgt", tmp_path / folder / "tgt.vec"),
            *("--test-dict", tmp_path / folder / "test.tsv", "--no-cache", "--json"),
            *("--param", "n_words=500", "--param", "epsilon=5e-3", "--param", "max_iter=30"),
        )
        assert code == 0, err
        p1.append(json.loads(out)["p1"])
    assert p1[0] > 0.5 and abs(p1[0] - p1[1]) < 0.01
