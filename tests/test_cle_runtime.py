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

from xling.cle.mappers import METHODS, make_mapper
from xling.cle.simulate import simulate_pair, write_pair
from xling.cli import _format_note
from xling.errors import XlingNote

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
    iterative = {m for m, (cls, _, _) in METHODS.items() if "verbose" in inspect.signature(cls).parameters}
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


@pytest.mark.parametrize("method", ["proc", "cca", "vecmap-sup"])
def test_overwrite_maps_in_place_and_equals_transform(method, pair):
    X, Z = pair.src_vectors.copy(), pair.tgt_vectors.copy()
    seed = rows(pair, pair.train)
    expected = make_mapper(method).fit_transform(X, Z, seed)
    assert np.array_equal(X, pair.src_vectors)  # the default never writes into its inputs
    Xm, Zm = make_mapper(method).fit_transform(X, Z, seed, overwrite=True)
    assert Xm is X and Zm is Z
    assert np.allclose(Xm, expected[0], atol=1e-5) and np.allclose(Zm, expected[1], atol=1e-5)


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
