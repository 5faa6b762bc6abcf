"""`xling cle simulate --downstream` and `xling cle downstream`: files, JSON, progress, run records, and bad input
as one line with exit code 2 and nothing written."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from cli_runner import run_xling as xling
from threadpoolctl import threadpool_limits

from xling.cle.vectors import read_vectors, write_vec
from xling.cli import main
from xling.io import MANIFEST

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


SIM_ARGS = ["--n-words", "1500", "--dim", "24", "--noise", "0.2", "--n-train", "400", "--n-test", "200", "--seed", "4"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """`xling cle simulate --downstream` output (simulated in-process through the CLI once per module)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("cli")
    try:
        mp.setattr(
            sys,
            "argv",
            [
                "xling",
                "cle",
                "simulate",
                "-o",
                str(root / "sim"),
                *SIM_ARGS,
                "--downstream",
                "--n-docs",
                "200",
                "--n-nli",
                "300",
                "--n-queries",
                "15",
            ],
        )
        with pytest.raises(SystemExit) as exit_, threadpool_limits(limits=1, user_api="blas"):
            main()  # one BLAS thread, as the tests' own runs: the last printed digit depends on the thread count
        assert not exit_.value.code
    finally:
        mp.undo()
    return root / "sim"


def test_simulate_downstream_adds_a_folder_and_leaves_the_pair_unchanged(monkeypatch, capsys, sim, tmp_path):
    code, _, err = xling(monkeypatch, capsys, "cle", "simulate", "-o", tmp_path / "plain", *SIM_ARGS)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "plain").iterdir() if p.name != MANIFEST) == [
        "mapping.npy",
        "run.json",
        "src.vec",
        "test.tsv",
        "tgt.vec",
        "train.tsv",
    ]
    for name in ("src.vec", "tgt.vec", "train.tsv", "test.tsv", "mapping.npy"):
        assert (tmp_path / "plain" / name).read_bytes() == (sim / name).read_bytes()
    assert (
        json.loads((sim / "run.json").read_text())["config"]
        == json.loads((tmp_path / "plain" / "run.json").read_text())["config"]
    )
    d = sim / "downstream"
    assert sorted(p.name for p in (d / "clir").iterdir()) == [
        "docs.tgt.jsonl",
        "qrels.txt",
        "queries.src.tsv",
        "queries.tgt.tsv",
        "stopwords.src.txt",
        "stopwords.tgt.txt",
    ]
    assert (d / "clir" / "stopwords.src.txt").read_text() == ""
    assert (d / "xnli" / "src" / "dev.tsv").read_text().startswith("label\tpremise\thypothesis\n")
    assert len((d / "cldc" / "tgt" / "test.tsv").read_text().splitlines()) == 100
    params = json.loads((d / "params.json").read_text())
    assert params["band"] == 0.2 and params["negation"]["src"].startswith(("s", "w"))


def _downstream(monkeypatch, capsys, sim, task, *extra, src=None, tgt=None):
    return xling(
        monkeypatch,
        capsys,
        "cle",
        "downstream",
        "--task",
        task,
        "--data",
        sim / "downstream" / task,
        "--src-lang",
        "src",
        "--tgt-lang",
        "tgt",
        "--src",
        src or sim / "src.vec",
        "--tgt",
        tgt or sim / "tgt.vec",
        *extra,
    )


def test_clir_json_line_and_outputs(monkeypatch, capsys, sim, tmp_path):
    code, out, err = _downstream(monkeypatch, capsys, sim, "clir", "--json", "-o", tmp_path / "out")
    assert code == 0, err
    row = json.loads(out)
    assert {"task", "model", "metric", "score", "n", "coverage", "coverage_src", "seed"} <= set(row)
    assert row["task"] == "clir" and row["model"] == "bwe-agg" and row["metric"] == "map" and row["n"] == 15
    assert 0 <= row["score"] <= 1 and row["coverage"] == 1.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != MANIFEST) == [
        "result.json",
        "run.json",
        "run.trec",
    ]
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["config"]["model"] == "bwe-agg" and record["seed"] == 0 and record["versions"]["torch"]
    assert "model_dense" in record["choices"]["model"] and record["result"]["score"] == row["score"]
    fields = (tmp_path / "out" / "run.trec").read_text().splitlines()[0].split()
    assert len(fields) == 6 and fields[1] == "Q0" and fields[3] == "1" and fields[5] == "xling-bwe-agg"
    stopwords = json.loads((tmp_path / "out" / "result.json").read_text())["details"]["stopwords"]
    assert stopwords["src"].endswith("stopwords.src.txt")  # the simulator writes its (empty) lists


def test_cldc_prints_a_line_per_epoch_and_writes_predictions(monkeypatch, capsys, sim, tmp_path):
    code, out, err = _downstream(
        monkeypatch,
        capsys,
        sim,
        "cldc",
        "--param",
        "epochs=2",
        "--param",
        "lr=1e-3",
        "--seed",
        "3",
        "-o",
        tmp_path / "out",
    )
    assert code == 0, err
    assert [line.split(",")[0] for line in err.splitlines()] == ["cnn: epoch 1/2", "cnn: epoch 2/2"]
    assert "micro_f1 *" in out and "accuracy " in out  # the paper's metric is the headline, the others stay
    lines = (tmp_path / "out" / "predictions.tsv").read_text().splitlines()
    assert lines[0] == "unit\titem\tgold\tpredicted" and len(lines) == 101
    assert lines[1].split("\t")[1].endswith("tgt/test.tsv:1")


def test_xnli_json(monkeypatch, capsys, sim):
    code, out, err = _downstream(
        monkeypatch,
        capsys,
        sim,
        "xnli",
        "--param",
        "hidden=8",
        "--param",
        "epochs=1",
        "--task-metric",
        "macro_f1",
        "--json",
    )
    assert code == 0, err
    row = json.loads(out)
    assert row["model"] == "esim" and row["metric"] == "macro_f1" and row["n"] == 60 and "dev accuracy" in err


def _copy(sim, tmp_path):
    data = tmp_path / "sim"
    shutil.copytree(sim, data)
    return data


@pytest.mark.parametrize(
    "case",
    [
        "missing split",
        "unknown label",
        "empty document",
        "other dimension",
        "model of another task",
        "bad parameter",
        "no stopword list",
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(monkeypatch, capsys, sim, tmp_path, case):
    data, extra, task = _copy(sim, tmp_path), [], "cldc"
    src, tgt = data / "src.vec", data / "tgt.vec"
    if case == "missing split":
        (data / "downstream/cldc/tgt/test.tsv").unlink()
        message = "tgt/test.tsv: missing split"
    elif case == "unknown label":
        path = data / "downstream/cldc/tgt/test.tsv"
        path.write_text(path.read_text() + "topic9\tt1 t2\n")
        message = "tgt/test.tsv:101: unknown label 'topic9'"
    elif case == "empty document":
        task = "clir"
        path = data / "downstream/clir/docs.tgt.jsonl"
        n = len(path.read_text().splitlines()) + 1
        path.write_text(path.read_text() + '{"docno": "D99999", "text": ""}\n')
        message = f"docs.tgt.jsonl:{n}: empty document 'D99999'"
    elif case == "other dimension":
        z = read_vectors(tgt)
        write_vec(data / "narrow.vec", z.words, np.asarray(z.vectors)[:, :12])
        tgt, message = data / "narrow.vec", "narrow.vec: vectors have 12 dimensions, but"
    elif case == "model of another task":
        extra, message = ["--task-model", "esim"], "unknown model 'esim' for cldc"
    elif case == "no stopword list":  # xling ships none for 'src': an error, not a run without stopwords
        task = "clir"
        (data / "downstream/clir/stopwords.src.txt").unlink()
        message = "no stopword list for language 'src'"
    else:
        extra, message = ["--param", "dropout=high"], "parameter 'dropout' of model cnn: expected float"
    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "downstream",
        "--task",
        task,
        "--data",
        data / "downstream" / task,
        "--src-lang",
        "src",
        "--tgt-lang",
        "tgt",
        "--src",
        src,
        "--tgt",
        tgt,
        "-o",
        tmp_path / "never",
        *extra,
    )
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "never").exists() and not out
