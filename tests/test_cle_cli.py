"""`xling cle map` and `xling cle run`: outputs on disk, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_xling as xling
from threadpoolctl import threadpool_limits

from xling.cle.simulate import simulate_pair, write_pair
from xling.cle.vectors import read_vectors
from xling.io import MANIFEST


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """A near-isomorphic simulated pair on disk (src.vec, tgt.vec, train.tsv, test.tsv, mapping.npy)."""
    folder = tmp_path_factory.mktemp("cle") / "pair"
    write_pair(simulate_pair(800, 16, 0.1, 0.0, seed=5, n_train=200, n_test=200, identical=0.1), folder)
    return folder


def test_map_writes_both_spaces_the_maps_and_a_run_record(monkeypatch, capsys, easy, tmp_path):
    out = tmp_path / "mapped"
    code, stdout, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "map",
        "--method",
        "proc",
        "--src",
        easy / "src.vec",
        "--tgt",
        easy / "tgt.vec",
        "--train-dict",
        easy / "train.tsv",
        "-o",
        out,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST) == [
        "W_src.npy",
        "W_tgt.npy",
        "run.json",
        "src.vec",
        "tgt.vec",
    ]
    W = np.load(out / "W_src.npy", allow_pickle=False)
    assert np.abs(W - np.load(easy / "mapping.npy")).max() < 0.05  # the planted map, up to noise
    src, mapped = read_vectors(easy / "src.vec"), read_vectors(out / "src.vec")
    assert mapped.words == src.words and np.allclose(mapped.vectors, src.vectors @ W, atol=1e-4)
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["method"] == "proc" and record["mapping"]["train_pairs"] == len(
        (easy / "train.tsv").read_text().splitlines()
    )
    assert record["seed"] == 0 and record["versions"]["numpy"]


def test_run_prints_bli_json(monkeypatch, capsys, easy, tmp_path):
    code, stdout, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "run",
        "-m",
        "vecmap-identical",
        "--src",
        easy / "src.vec",
        "--tgt",
        easy / "tgt.vec",
        "--test-dict",
        easy / "test.tsv",
        "--param",
        "stochastic_interval=3",
        "--json",
        "-o",
        tmp_path / "run",
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert {"p1", "p5", "p10", "mrr", "coverage", "n", "method"} <= set(result)
    assert result["method"] == "vecmap-identical" and result["p1"] >= 0.95 and result["retrieval"] == "csls"
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["p1"] == result["p1"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["mapping"]["seed"] == "identical"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "procrustes", "--train-dict", "{d}/train.tsv"], "'procrustes' is not one of"),
        (["--method", "vecmap-sup"], "needs a training dictionary (--train-dict)"),
        (["--method", "proc", "--train-dict", "{d}/train.tsv", "--param", "limit"], "--param: expected KEY=VALUE"),
        (["--method", "proc", "--train-dict", "{d}/train.tsv", "--param", "limit=5"], "unknown parameter 'limit'"),
        (["--method", "proc", "--train-dict", "{d}/missing.tsv"], "missing.tsv: cannot read dictionary"),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, easy, tmp_path, args, message):
    args = [a.format(d=easy) for a in args]
    code, _, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "map",
        "--src",
        easy / "src.vec",
        "--tgt",
        easy / "tgt.vec",
        "-o",
        tmp_path / "never",
        *args,
    )
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
