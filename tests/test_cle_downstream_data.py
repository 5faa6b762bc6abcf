"""Downstream loaders read the released formats (TED CLDC, MultiNLI, XNLI, XNLI-MT, CLEF/TREC) and name bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xling.cle.downstream.data import (
    load_cldc,
    load_clir,
    load_xnli,
    read_qrels,
    read_trec_topics,
)
from xling.errors import XlingError


def _ted(root: Path, folder: str, split: str, topic: str, label: str, n: int, words: str) -> None:
    """TED CLDC files as released: lowercased tokens suffixed with their language (``word_de``), one sentence a
    line; a metadata line in angle brackets, as WIT3 transcripts have, is skipped."""
    lang = folder.split("-")[0]
    d = root / folder / split / topic / label
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"{w}_{lang}" for w in f"{words} {i}".split())
        (d / f"{i + 1}.ted").write_text(
            f"<keywords>talks, {topic}</keywords>\n{body}\n\nsecond_{lang} line_{lang} ._{lang}\n", encoding="utf-8"
        )


def test_ted_cldc_layout_one_binary_task_per_topic(tmp_path):
    for topic in ("art", "science"):
        _ted(tmp_path, "en-de", "train", topic, "positive", 2, f"{topic} good")
        _ted(tmp_path, "en-de", "train", topic, "negative", 3, "other talk")
        _ted(tmp_path, "de-en", "test", topic, "positive", 1, f"{topic} gut")
        _ted(tmp_path, "de-en", "test", topic, "negative", 2, "anderer vortrag")
    data = load_cldc(tmp_path, "en", "de")
    assert data.layout == "ted" and [t.name for t in data.tasks] == ["art", "science"]
    art = data.tasks[0]
    assert art.train.labels == ["positive"] * 2 + ["negative"] * 3 and len(art.test) == 3
    assert art.train.texts[0] == "art good 0 second line ."  # metadata dropped, language suffixes stripped
    assert art.test.texts[0] == "art gut 0 second line ."
    assert [t.name for t in load_cldc(tmp_path, "en", "de", topics=["science"]).tasks] == ["science"]
    with pytest.raises(XlingError, match="unknown topic"):
        load_cldc(tmp_path, "en", "de", topics=["music"])
    with pytest.raises(XlingError, match="TED CLDC folder en-fr$"):
        load_cldc(tmp_path, "en", "fr")  # the English side of en-de is not the English side of en-fr


def test_ted_cldc_empty_document_names_the_file(tmp_path):
    _ted(tmp_path, "en-de", "train", "art", "positive", 1, "x")
    _ted(tmp_path, "en-de", "train", "art", "negative", 1, "y")
    _ted(tmp_path, "de-en", "test", "art", "positive", 1, "x")
    _ted(tmp_path, "de-en", "test", "art", "negative", 1, "y")
    (tmp_path / "de-en/test/art/negative/1.ted").write_text("<url>u</url>\n\n")
    with pytest.raises(XlingError, match=r"negative/1\.ted: empty document"):
        load_cldc(tmp_path, "en", "de")


@pytest.mark.parametrize(
    "train, test, message",
    [
        ("a\tone two\nb\tthree\n", None, "test.tsv: missing split"),
        ("a\tone two\nb\tthree\n", "a\tuno\nc\tdos\n", "test.tsv:2: unknown label 'c'"),
        ("a\tone two\nb\t  \n", "a\tuno\n", "train.tsv:2: empty document"),
        ("a one two\n", "a\tuno\n", "train.tsv:1: expected 'label<TAB>text'"),
    ],
)
def test_cldc_tsv_bad_input(tmp_path, train, test, message):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "train.tsv").write_text(train)
    if test is not None:
        (tmp_path / "de").mkdir()
        (tmp_path / "de" / "test.tsv").write_text(test)
    with pytest.raises(XlingError, match=message):
        load_cldc(tmp_path, "en", "de")


def _multinli_jsonl(path: Path) -> None:
    rows = [
        {
            "annotator_labels": ["neutral"],
            "genre": "government",
            "gold_label": "neutral",
            "pairID": "31193n",
            "promptID": 31193,
            "sentence1": "Conceptually cream skimming has two basic dimensions.",
            "sentence1_binary_parse": "( ( Conceptually ( cream skimming ) ) ...",
            "sentence1_parse": "(ROOT ...)",
            "sentence2": "Product and geography are what make cream skimming work.",
            "sentence2_binary_parse": "( ( ( Product ...",
            "sentence2_parse": "(ROOT ...)",
        },
        {"gold_label": "-", "sentence1": "No consensus here.", "sentence2": "Annotators disagreed."},
        {"gold_label": "entailment", "sentence1": "He went home.", "sentence2": "He left."},
        {"gold_label": "contradiction", "sentence1": "It is raining.", "sentence2": "It is dry."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


_XNLI_HEADER = (
    "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\t"
    "label5\tsentence1_tokenized\tsentence2_tokenized\tmatch\n"
)


def _xnli_row(lang: str, label: str, s1: str, s2: str) -> str:
    return (
        f"{lang}\t{label}\t\t\t\t\t{s1}\t{s2}\t1\t1\tfiction\t{label}\t{label}\t{label}\t{label}\t{label}\t"
        f"{s1}\t{s2}\tTrue\n"
    )


def test_multinli_and_xnli_releases(tmp_path):
    _multinli_jsonl(tmp_path / "multinli_1.0_train.jsonl")
    (tmp_path / "XNLI-1.0").mkdir()
    (tmp_path / "XNLI-1.0" / "xnli.test.tsv").write_text(
        _XNLI_HEADER
        + _xnli_row("en", "neutral", "A man.", "A person.")
        + _xnli_row("de", "contradiction", 'Er sagte "nein".', "Er sagte ja.")
        + _xnli_row("de", "entailment", "Es regnet.", "Es ist nass.")
    )
    data = load_xnli(tmp_path, "en", "de")
    assert data.train.labels == ["neutral", "entailment", "contradiction"] and data.train.skipped == 1
    assert data.test.labels == ["contradiction", "entailment"]  # English rows of xnli.test.tsv left out
    assert data.test.premises[0] == 'Er sagte "nein".'  # quotes are text (QUOTE_NONE), not CSV quoting
    assert data.dev is None and data.files["train"].endswith("multinli_1.0_train.jsonl")


def test_xnli_mt_training_file_and_multinli_txt(tmp_path):
    mt = tmp_path / "XNLI-MT-1.0" / "multinli"
    mt.mkdir(parents=True)
    (mt / "multinli.train.de.tsv").write_text(
        "premise\thypo\tlabel\nEr ging .\tEr blieb .\tcontradictory\nSie lacht .\tSie ist froh .\tentailment\n"
    )
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "test.tsv").write_text("label\tpremise\thypothesis\nneutral\tIl pleut.\tIl fait froid.\n")
    data = load_xnli(tmp_path, "de", "fr")
    assert data.train.labels == ["contradiction", "entailment"] and data.test.labels == ["neutral"]
    txt = tmp_path / "multinli_1.0_train.txt"
    txt.write_text(
        "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
        "sentence1\tsentence2\tpromptID\tpairID\tgenre\nentailment\t\t\t\t\tA b.\tA.\t1\t1n\tslate\n"
    )
    assert load_xnli(tmp_path, "en", "fr").train.labels == ["entailment"]


@pytest.mark.parametrize(
    "train, message",
    [
        ("label\tpremise\thypothesis\nmaybe\tA.\tB.\n", "train.tsv:2: unknown label 'maybe'"),
        ("label\tpremise\thypothesis\nneutral\t\tB.\n", "train.tsv:2: empty premise"),
        ("text\tother\nx\ty\n", "train.tsv:1: header must name"),
    ],
)
def test_nli_bad_input(tmp_path, train, message):
    for lang in ("en", "de"):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "test.tsv").write_text("label\tpremise\thypothesis\nneutral\tA.\tB.\n")
    (tmp_path / "en" / "train.tsv").write_text(train)
    with pytest.raises(XlingError, match=message):
        load_xnli(tmp_path, "en", "de")


def test_nli_missing_split_lists_what_was_tried(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "train.tsv").write_text("label\tpremise\thypothesis\nneutral\tA.\tB.\n")
    with pytest.raises(XlingError, match=r"de/test\.tsv: missing split 'test' for 'de' \(looked for .*xnli\.test"):
        load_xnli(tmp_path, "en", "de")


def test_clef_topics_trec_topics_and_qrels(tmp_path):
    clef = (
        "<top>\n<num> C141 </num>\n<EN-title> Letter Bomb for Kiesbauer </EN-title>\n"
        "<EN-desc> Find information on the explosion of a letter bomb. </EN-desc>\n"
        "<EN-narr> Relevant documents mention the attack. </EN-narr>\n</top>\n\n"
        "<top>\n<num> C142 </num>\n<EN-title> Christo wraps the Reichstag </EN-title>\n"
        "<EN-desc> Find reports on the wrapping of the Reichstag in Berlin. </EN-desc>\n</top>\n"
    )
    (tmp_path / "topics.en.txt").write_bytes(clef.encode("latin-1"))
    topics = read_trec_topics(tmp_path / "topics.en.txt")
    assert topics == {
        "141": "Letter Bomb for Kiesbauer Find information on the explosion of a letter bomb.",
        "142": "Christo wraps the Reichstag Find reports on the wrapping of the Reichstag in Berlin.",
    }
    trec = (
        "<top>\n<num> Number: 301\n<title> International Organized Crime\n\n<desc> Description:\n"
        "Identify organizations that participate in crime.\n\n<narr> Narrative:\nA relevant document.\n</top>\n"
    )
    (tmp_path / "trec.txt").write_text(trec)
    assert read_trec_topics(tmp_path / "trec.txt") == {
        "301": "International Organized Crime Identify organizations that participate in crime."
    }
    latin = "<top><num>C143</num><DE-title>Überschwemmung</DE-title><DE-desc>Flüsse.</DE-desc></top>"
    (tmp_path / "topics.de.txt").write_bytes(latin.encode("latin-1"))
    assert read_trec_topics(tmp_path / "topics.de.txt") == {"143": "Überschwemmung Flüsse."}
    (tmp_path / "qrels.txt").write_text("141 0 GH950102-000000 1\n141 0 GH950102-000001 0\n142 0 LA011094-0001 1\n")
    assert read_qrels(tmp_path / "qrels.txt") == {
        "141": {"GH950102-000000": 1, "GH950102-000001": 0},
        "142": {"LA011094-0001": 1},
    }
    (tmp_path / "bad.txt").write_text("141 0 GH950102-000000 1\n141 GH950102-000001 0\n")
    with pytest.raises(XlingError, match=r"bad\.txt:2: expected 'qid iteration docno relevance'"):
        read_qrels(tmp_path / "bad.txt")


def test_clir_folder_and_bad_documents(tmp_path):
    (tmp_path / "topics.en.txt").write_text("<top><num>C141</num><EN-title>bomb</EN-title></top>")
    (tmp_path / "docs.de.jsonl").write_text('{"docno": "SDA.940101.0001", "text": "Bombe in Wien"}\n')
    (tmp_path / "qrels.txt").write_text("141 0 SDA.940101.0001 1\n")
    data = load_clir(tmp_path, "en", "de")
    assert data.queries == {"141": "bomb"} and data.docnos == ["SDA.940101.0001"]
    (tmp_path / "docs.de.jsonl").write_text('{"docno": "A", "text": "x"}\n{"docno": "B", "text": " "}\n')
    with pytest.raises(XlingError, match=r"docs\.de\.jsonl:2: empty document 'B'"):
        load_clir(tmp_path, "en", "de")
    (tmp_path / "docs.de.jsonl").write_text('{"docno": "A", "text": "x"}\n{"docno": "A", "text": "y"}\n')
    with pytest.raises(XlingError, match="given twice"):
        load_clir(tmp_path, "en", "de")
    with pytest.raises(XlingError, match=r"queries\.fr\.tsv: missing queries"):
        load_clir(tmp_path, "fr", "de")
