"""BLI metrics: both counting conventions and both OOV policies on a hand-made dictionary with known ranks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from xling.cle.bli import bli, evaluate, metrics_from_ranks
from xling.cle.dictionaries import Dictionary, lookup
from xling.cle.simulate import simulate_pair
from xling.cle.vectors import Embeddings, write_vec
from xling.cli import app
from xling.errors import XlingError


def _circle(degrees: list[float]) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


# targets every 10 degrees; nearest-neighbour rank = order of angular distance
TGT = Embeddings([f"t{i}" for i in range(12)], _circle([10.0 * i for i in range(12)]))
SRC = Embeddings(["a", "b", "c"], 3 * _circle([1.0, 33.0, 64.0]))  # lengths do not matter: cosine
DICT = Dictionary([("a", "t0"), ("a", "t2"), ("b", "t5"), ("c", "t6"), ("d", "t1"), ("c", "unknown")])
# ranks: a->t0 1, a->t2 3 (t0 1deg, t1 9deg, t2 19deg), b->t5 4 (t3, t4, t2, t5), c->t6 1; d and c->unknown OOV


@pytest.mark.parametrize(
    ("convention", "oov", "expected"),
    [
        (
            "line",
            "skip",
            dict(p1=2 / 4, p5=1.0, p10=1.0, mrr=(1 + 1 / 3 + 1 / 4 + 1) / 4, coverage=4 / 6, n=4, n_oov=2),
        ),
        (
            "line",
            "wrong",
            dict(p1=2 / 6, p5=4 / 6, p10=4 / 6, mrr=(1 + 1 / 3 + 1 / 4 + 1) / 6, coverage=4 / 6, n=6, n_oov=2),
        ),
        ("source", "skip", dict(p1=2 / 3, p5=1.0, p10=1.0, mrr=(1 + 1 / 4 + 1) / 3, coverage=3 / 4, n=3, n_oov=1)),
        ("source", "wrong", dict(p1=2 / 4, p5=3 / 4, p10=3 / 4, mrr=(1 + 1 / 4 + 1) / 4, coverage=3 / 4, n=4, n_oov=1)),
    ],
)
def test_conventions_on_hand_made_dictionary(convention, oov, expected):
    result = bli(SRC, TGT, DICT, retrieval_method="nn", convention=convention, oov=oov).to_dict()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert (result["retrieval"], result["convention"], result["oov"]) == ("nn", convention, oov)


def test_metrics_from_ranks_and_bad_names():
    m = metrics_from_ranks(np.array([1, 2, 6, 11]), n_oov=1, oov="wrong")
    assert m == pytest.approx(dict(p1=0.2, p5=0.4, p10=0.6, mrr=(1 + 0.5 + 1 / 6 + 1 / 11) / 5, n=5))
    with pytest.raises(XlingError, match="OOV policy"):
        metrics_from_ranks(np.array([1]), oov="ignore")
    with pytest.raises(XlingError, match="no test item"):
        metrics_from_ranks(np.array([]))
    with pytest.raises(XlingError, match="convention"):
        bli(SRC, TGT, DICT, convention="muse")


def test_evaluate_leaves_inputs_unchanged_unless_inplace():
    x, z = SRC.vectors.copy(), TGT.vectors.copy()
    found = lookup(DICT, SRC.index, TGT.index)
    evaluate(x, z, found)
    np.testing.assert_array_equal(x, SRC.vectors)
    evaluate(x, z, found, inplace=True)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("method", ["nn", "csls", "isf"])
def test_planted_map_is_found_by_every_retrieval(method):
    pair = simulate_pair(3000, 32, noise=0.0, warp=0.0, overlap=0.9, seed=5, n_train=500, n_test=300)
    src = Embeddings(pair.src_words, pair.src_vectors @ pair.mapping)
    result = bli(src, Embeddings(pair.tgt_words, pair.tgt_vectors), Dictionary(pair.test), retrieval_method=method)
    assert result.p1 == 1.0 and result.coverage == 1.0 and result.n == len(pair.test)


def test_cli_bli_json_and_errors(tmp_path):
    write_vec(tmp_path / "src.vec", SRC.words, SRC.vectors)
    write_vec(tmp_path / "tgt.vec", TGT.words, TGT.vectors)
    (tmp_path / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in DICT.pairs))
    args = [
        "cle",
        "bli",
        "--src",
        str(tmp_path / "src.vec"),
        "--tgt",
        str(tmp_path / "tgt.vec"),
        "--test-dict",
        str(tmp_path / "test.tsv"),
        "--json",
        "-o",
        str(tmp_path / "out.json"),
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert {"p1", "p5", "p10", "mrr", "coverage", "n"} <= set(result)
    assert result["p1"] == pytest.approx(0.5) and result["n"] == 4
    assert json.loads((tmp_path / "out.json").read_text())["run"]["versions"]["numpy"]
    (tmp_path / "bad.tsv").write_text("a\tb\nbroken\n")
    proc = subprocess.run(
        [sys.executable, "-m", "xling", *args[:6], "--test-dict", str(tmp_path / "bad.tsv")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "bad.tsv:2" in proc.stderr
    assert "Traceback" not in proc.stderr
