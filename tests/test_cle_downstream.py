"""Downstream tasks on a simulated pair: a PROC-mapped space transfers, the unmapped spaces do not; planted
frequency bands make BLI and downstream disagree; the models are seeded; MAP and the LM match direct formulas."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from xling.cle.bli import bli
from xling.cle.dictionaries import Dictionary
from xling.cle.downstream.clir import Ranking, average_precision, query_likelihood, reference_average_precision
from xling.cle.downstream.evaluate import clir_stopwords, evaluate_downstream, model_params, run_task
from xling.cle.downstream.simulate import simulate_downstream, write_downstream
from xling.cle.mappers.run import map_embeddings
from xling.cle.simulate import simulate_pair
from xling.cle.vectors import Embeddings
from xling.errors import XlingError

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A near-isomorphic pair, its downstream data on disk, and the PROC-mapped and the unmapped spaces."""
    pair = simulate_pair(2000, 32, 0.3, 0.0, seed=3, n_train=600, n_test=300)
    folder = tmp_path_factory.mktemp("downstream")
    write_downstream(simulate_downstream(pair, seed=3, n_docs=300, n_nli=1200, n_queries=20, n_background=200), folder)
    x, z = Embeddings(pair.src_words, pair.src_vectors), Embeddings(pair.tgt_words, pair.tgt_vectors)
    mapped = map_embeddings("proc", x, z, Dictionary(pair.train))
    return {"pair": pair, "dir": folder, "proc": (mapped.src, mapped.tgt), "unmapped": (x, z)}


def _run(sim, task, space, **options):
    src, tgt = sim[space] if isinstance(space, str) else space
    return evaluate_downstream(task, sim["dir"] / task, "src", "tgt", src, tgt, **options)


FAST_CNN = {"lr": 1e-3, "epochs": 15}  # the reference's 1e-4 x 10 epochs underfits 300 short documents


@pytest.mark.parametrize("model, params", [("mean", {}), ("cnn", FAST_CNN)])
def test_cldc_transfers_only_through_a_shared_space(sim, model, params):
    proc = _run(sim, "cldc", "proc", model=model, params=params)
    unmapped = _run(sim, "cldc", "unmapped", model=model, params=params)
    assert proc.metric == "micro_f1" and proc.score == proc.metrics["accuracy"]  # one multi-class task: equal
    assert proc.n == 150 and proc.coverage == 1.0
    assert proc.score > 0.9 and proc.metrics["macro_f1"] > 0.9  # 4 topics: chance is 0.25
    assert unmapped.score < 0.45


def test_ted_cldc_layout_runs_one_binary_task_per_topic(sim, tmp_path):
    """The simulated topics written as TED CLDC: <lang>-<other>/{train,test}/<topic>/{positive,negative}/N.ted with
    language-suffixed tokens; train on src-tgt/train, test on tgt-src/test."""
    for lang, other, split in (("src", "tgt", "train"), ("tgt", "src", "test")):
        rows = [line.split("\t") for line in (sim["dir"] / "cldc" / lang / f"{split}.tsv").read_text().splitlines()]
        for topic in ("topic0", "topic1"):
            for i, (label, text) in enumerate(rows[:120]):
                d = tmp_path / f"{lang}-{other}" / split / topic / ("positive" if label == topic else "negative")
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{i}.ted").write_text(" ".join(f"{w}_{lang}" for w in text.split()) + "\n")
    result = evaluate_downstream("cldc", tmp_path, "src", "tgt", *sim["proc"], model="mean", metric="f1_positive")
    assert [u["name"] for u in result.details["units"]] == ["topic0", "topic1"] and result.n == 2 * 120
    assert result.coverage == 1.0 and result.score > 0.8 and result.metrics["accuracy"] > 0.9
    unmapped = evaluate_downstream("cldc", tmp_path, "src", "tgt", *sim["unmapped"], model="mean")
    assert unmapped.metrics["f1_positive"] < 0.5
    # the headline is the paper's micro-averaged F1: positive-class decisions pooled over the topics
    assert unmapped.metric == "micro_f1" and unmapped.score == unmapped.metrics["micro_f1"]
    for r in (result, unmapped):
        decisions = [(g == "positive", p == "positive") for _, _, g, p in r.artifacts["predictions"]]
        tp = sum(g and p for g, p in decisions)
        fp, fn = sum(p and not g for g, p in decisions), sum(g and not p for g, p in decisions)
        assert r.metrics["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert unmapped.metrics["micro_f1"] != pytest.approx(unmapped.metrics["f1_positive"])  # pooled, not averaged


def test_clir_transfers_only_through_a_shared_space(sim):
    bwe = {s: _run(sim, "clir", s, model="bwe-agg").score for s in ("proc", "unmapped")}
    tbt = {
        s: _run(sim, "clir", s, model="tbt-qt", params={"exclude_digits": False}).score for s in ("proc", "unmapped")
    }
    assert tbt["proc"] > 0.9 and tbt["unmapped"] < 0.15
    assert bwe["proc"] > 0.3 and bwe["unmapped"] < 0.15
    # the simulated words all carry digits: the reference's digit filter leaves TbT-QT nothing to match
    assert _run(sim, "clir", "proc", model="tbt-qt").score < 0.15


def test_xnli_transfers_above_chance_only_through_a_shared_space(sim):
    params = {"hidden": 24, "epochs": 5}
    proc = _run(sim, "xnli", "proc", params=params)
    unmapped = _run(sim, "xnli", "unmapped", params=params)
    assert proc.n == 240 and proc.details["n_dev"] == 240 and len(proc.details["dev_accuracy"]) == 5
    assert proc.score > 0.5 and proc.score > unmapped.score + 0.15  # chance is 1/3


def test_bli_and_downstream_disagree_when_the_bands_say_so(sim):
    """Damage only the frequent band of the mapped source space: downstream collapses, BLI (rare words) holds;
    damage only the rare words: BLI collapses, downstream holds."""
    pair, (src, tgt) = sim["pair"], sim["proc"]
    rng = np.random.default_rng(0)
    band = 400  # the texts' band: the 20% most frequent of 2000 words

    def damaged(rows):
        vectors = src.vectors.copy()
        vectors[rows] = rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32) / 6
        return Embeddings(src.words, vectors)

    rare = np.arange(band, len(src))
    scores = {}
    for name, space in (
        ("intact", src),
        ("frequent damaged", damaged(np.arange(band))),
        ("rare damaged", damaged(rare)),
    ):
        scores[name] = (bli(space, tgt, Dictionary(pair.test)).mrr, _run(sim, "cldc", (space, tgt), model="mean").score)
    assert scores["intact"][0] > 0.8 and scores["intact"][1] > 0.9
    assert scores["frequent damaged"][0] > 0.75 and scores["frequent damaged"][1] < 0.5
    assert scores["rare damaged"][0] < 0.1 and scores["rare damaged"][1] > 0.9


def test_runs_are_deterministic_for_a_seed(sim):
    params = {"lr": 1e-3, "epochs": 2}
    a, b = (_run(sim, "cldc", "proc", params=params, seed=7) for _ in range(2))
    assert a.artifacts["predictions"] == b.artifacts["predictions"] and a.score == b.score
    c = _run(sim, "cldc", "proc", params=params, seed=8)
    assert a.details["units"][0]["losses"] == b.details["units"][0]["losses"] != c.details["units"][0]["losses"]
    events = []
    _run(sim, "cldc", "proc", params=params, progress=events.append)
    assert [e["epoch"] for e in events] == [1, 2] and all(e["loss"] > 0 for e in events)


def test_average_precision_is_trec_eval_ap_and_the_reference_formula():
    # 6 documents, relevant: d2 and d5; ranking d2 d1 d5 d3 d4 d6 -> AP = (1/1 + 2/3) / 2
    ranking = Ranking(["q"], [f"d{i}" for i in range(1, 7)], np.array([[5.0, 6.0, 1.0, 0.5, 4.0, 0.0]]))
    ap = average_precision(ranking, {"q": {"d2": 1, "d5": 1, "d3": 0}, "other": {"d1": 1}})
    assert ap == {"q": pytest.approx((1 + 2 / 3) / 2)}
    # a relevant document absent from the ranking counts in trec_eval's denominator
    ap = average_precision(ranking, {"q": {"d2": 1, "d5": 1, "missing": 1}})
    assert ap["q"] == pytest.approx((1 + 2 / 3) / 3)
    with pytest.raises(XlingError, match="no query has both"):
        average_precision(ranking, {"z": {"d1": 1}})
    # the reference's AP divides by the relevant documents retrieved and skips a query with none retrieved
    two = Ranking(["q", "r"], ranking.docnos, np.vstack([ranking.scores, ranking.scores]))
    qrels = {"q": {"d2": 1, "d5": 1, "missing": 1}, "r": {"missing": 1}}
    assert reference_average_precision(two, qrels) == {"q": pytest.approx((1 + 2 / 3) / 2)}
    assert average_precision(two, qrels) == {"q": pytest.approx((1 + 2 / 3) / 3), "r": 0.0}
    # a document without a score (-inf: not retrieved) is not retrieved for the reference either
    two.scores[0, 4] = -np.inf
    assert reference_average_precision(two, qrels) == {"q": 1.0}


def test_clir_reports_both_map_definitions(sim):
    result = _run(sim, "clir", "proc")
    assert result.metric == "map" and set(result.metrics) == {"map", "map_reference"}
    ref = _run(sim, "clir", "proc", metric="map_reference")
    assert ref.score == ref.metrics["map_reference"] >= ref.metrics["map"]  # it ignores unretrieved documents


def test_query_likelihood_is_the_dirichlet_formula():
    docs = [["a", "b", "a"], ["b", "c"], []]
    queries = [["a", "c", "a"], ["zzz"]]
    scores = query_likelihood(queries, docs, mu=10.0)
    cf, total = {"a": 2, "b": 2, "c": 1}, 5
    for d, doc in enumerate(docs[:2]):
        expected = sum(np.log((doc.count(t) + 10.0 * cf[t] / total) / (len(doc) + 10.0)) for t in queries[0])
        assert scores[0, d] == pytest.approx(expected)
    assert scores[0, 2] == -np.inf and np.all(scores[1] == 0)  # empty document last; unknown query: all tied


def test_model_parameters_are_checked_and_coerced(sim):
    assert model_params("cnn", {"lr": "1e-3", "filters": [[2, 8]]})["lr"] == 1e-3
    assert model_params("cnn", {"filters": [[2, 8]]})["filters"] == ((2, 8),)
    with pytest.raises(XlingError, match="unknown parameter 'learning_rate' for model cnn"):
        model_params("cnn", {"learning_rate": 1})
    with pytest.raises(XlingError, match="parameter 'epochs' of model esim: expected int"):
        model_params("esim", {"epochs": "many"})
    src, tgt = sim["proc"]
    narrow = Embeddings(tgt.words, tgt.vectors[:, :16])
    with pytest.raises(XlingError, match="source vectors have 32 dimensions, target vectors 16"):
        run_task("cldc", None, src, narrow)


def test_clir_stopwords_are_the_references_lists_offline_or_an_error(tmp_path, monkeypatch):
    """The reference removes NLTK's stopwords; xling ships those lists, so no NLTK download decides the scores.
    A language without a list is an error naming what is missing, never a silent run without stopwords."""
    monkeypatch.setitem(sys.modules, "nltk", None)  # as on a default install: NLTK's corpus is not there
    words, source = clir_stopwords(tmp_path, "de")
    assert source == "nltk" and len(words) == 232 and {"und", "dass", "nicht"} <= words
    words, source = clir_stopwords(tmp_path, "en", "nltk")
    assert len(words) == 179 and {"the", "should've"} <= words
    assert all(len(clir_stopwords(tmp_path, lang)[0]) > 40 for lang in ("fi", "fr", "it", "ru", "es", "nl", "sv"))
    (tmp_path / "stopwords.de.txt").write_text("Foo\nbar\n")
    assert clir_stopwords(tmp_path, "de") == (frozenset({"foo", "bar"}), str(tmp_path / "stopwords.de.txt"))
    assert clir_stopwords(tmp_path, "hr", "none") == (frozenset(), "none")
    with pytest.raises(XlingError, match=r"no stopword list for language 'hr'.*stopwords.hr.txt.*--stopwords none"):
        clir_stopwords(tmp_path, "hr")
    with pytest.raises(XlingError, match="no such stopwords file"):
        clir_stopwords(tmp_path, "en", "file")


def test_xnli_without_a_dev_set_says_which_epoch_it_keeps(sim):
    import dataclasses

    from xling.cle.downstream.evaluate import load_task_data
    from xling.errors import XlingNote

    data = load_task_data("xnli", sim["dir"] / "xnli", "src", "tgt")
    assert data.dev is not None
    with pytest.warns(XlingNote, match="no source-language dev set.*last epoch is kept"):
        run_task("xnli", dataclasses.replace(data, dev=None), *sim["proc"], params={"hidden": 4, "epochs": 1})
