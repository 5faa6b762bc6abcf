"""Downstream data (CLDC, XNLI, CLIR) drawn from the latent concepts of a simulated pair, in the loaders' formats.

Texts are written in both simulated languages (``src`` and ``tgt``) with each language's own words, so a model
trained on ``src`` texts can be tested on ``tgt`` texts only through a shared space (the planted map). Planted
structure:

- **Frequency band.** Every text samples its words from the ``band`` most frequent share of its language's
  vocabulary, by Zipf weights of the language's own frequency ranks: downstream texts are dominated by frequent
  words, while the simulator's BLI test dictionary draws its words at random from the whole (mostly rare)
  vocabulary. A space that aligns frequent words well but rare words badly (or the reverse) therefore does well on
  one and badly on the other: BLI and downstream scores disagree exactly when they should.
- **CLDC.** ``n_topics`` topics, each owning ``clusters_per_topic`` of the shared concept clusters. A document of
  topic ``k`` draws a ``topic_share`` of its tokens from topic ``k``'s concepts and the rest from the whole band.
- **XNLI.** A premise of ``premise_len`` distinct band words (equally likely); an *entailed* hypothesis is a subset
  of the premise's words, a *neutral* one adds a word from a cluster the premise does not touch, a *contradicting*
  one adds the language's negation word (the most frequent shared concept, outside every premise). Labels are
  balanced. The negation word is a lexical cue that crosses languages only through the shared space; telling
  entailment from neutral needs alignment within a language, which ESIM learns only partly from a few thousand
  pairs over frozen vectors (dropout 0.5 on the embeddings slows it most).
- **CLIR.** Each query names ``query_terms`` concepts of the band (plus ``query_fillers`` frequent filler words);
  ``n_relevant`` target-language documents mention at least two of them among background words; ``n_background``
  documents are background only. Queries are written in both languages (``tgt`` queries give a monolingual upper
  bound); documents in ``tgt``; qrels judge the relevant documents 1 and a few others 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xling.errors import XlingError

if TYPE_CHECKING:
    from xling.cle.simulate import SimulatedPair

LANGS: tuple[str, str] = ("src", "tgt")


@dataclass
class DownstreamSet:
    """Simulated downstream data of both languages, ready to be written."""

    cldc: dict[str, dict[str, list[tuple[str, str]]]]  # lang -> split -> (label, text)
    xnli: dict[str, dict[str, list[tuple[str, str, str]]]]  # lang -> split -> (label, premise, hypothesis)
    queries: dict[str, dict[str, str]]  # lang -> qid -> text
    docs: list[tuple[str, str]]  # (docno, text), target language
    qrels: list[tuple[str, str, int]]  # (qid, docno, relevance)
    params: dict = field(default_factory=dict)


class _Language:
    """One language's band: rows, their concepts and clusters, Zipf weights, and weighted samplers."""

    def __init__(self, words: list[str], concepts: np.ndarray, clusters: np.ndarray, band: int, zipf: float):
        self.words = words[:band]
        self.concepts = np.asarray(concepts[:band])
        self.clusters = clusters[self.concepts]
        weights = 1.0 / np.arange(1, band + 1) ** zipf
        self.p = weights / weights.sum()
        self.row_of = {}
        for r, c in enumerate(self.concepts.tolist()):
            self.row_of.setdefault(c, r)  # a second gold word of a concept keeps the first (more frequent) row

    def sample(
        self, rng: np.random.Generator, n: int, mask: np.ndarray | None = None, *, uniform: bool = False
    ) -> np.ndarray:
        """``n`` rows by Zipf weight (``uniform``: distinct rows, equally likely), restricted to ``mask``."""
        p = np.ones_like(self.p) if uniform else self.p
        if mask is not None:
            p = np.where(mask, p, 0.0)
        return rng.choice(len(p), size=n, p=p / p.sum(), replace=not uniform)

    def text(self, rows) -> str:
        return " ".join(self.words[r] for r in rows)


def simulate_downstream(
    pair: SimulatedPair,
    *,
    seed: int = 0,
    band: float = 0.2,
    zipf: float = 1.0,
    n_topics: int = 4,
    clusters_per_topic: int = 3,
    topic_share: float = 0.35,
    doc_len: int = 30,
    n_docs: int = 800,
    n_nli: int = 3000,
    premise_len: int = 6,
    n_queries: int = 40,
    query_terms: int = 3,
    query_fillers: int = 2,
    n_relevant: int = 4,
    n_background: int = 400,
    clir_doc_len: int = 40,
) -> DownstreamSet:
    """Simulate CLDC (``n_docs`` training, half as many test documents per language), XNLI (``n_nli`` training,
    a fifth as many dev and test pairs) and CLIR data from ``pair``'s concepts; deterministic for ``seed``."""
    if pair.src_concepts is None:
        raise XlingError("simulate_downstream needs a pair from xling.cle.simulate.simulate_pair")
    n_clusters = int(pair.params["n_clusters"])
    if not 0 < band <= 1:
        raise XlingError(f"downstream band must be in (0, 1], found {band}")
    if n_topics * clusters_per_topic > n_clusters:
        raise XlingError(f"{n_topics} topics x {clusters_per_topic} clusters exceed the {n_clusters} shared clusters")
    size = max(50, round(band * len(pair.src_words)))
    rng = np.random.default_rng([seed, 7919])
    langs = {
        "src": _Language(pair.src_words, pair.src_concepts, pair.concept_clusters, size, zipf),
        "tgt": _Language(pair.tgt_words, pair.tgt_concepts, pair.concept_clusters, size, zipf),
    }
    shared = set(langs["src"].row_of) & set(langs["tgt"].row_of) & set(range(pair.n_shared))

    topic_clusters = rng.choice(n_clusters, size=(n_topics, clusters_per_topic), replace=False)
    cldc = {lang: _cldc(langs[lang], topic_clusters, rng, n_docs, doc_len, topic_share) for lang in LANGS}
    negation = min(shared, key=lambda c: langs["src"].row_of[c])
    xnli = {lang: _xnli(langs[lang], negation, rng, n_nli, premise_len) for lang in LANGS}
    queries, docs, qrels = _clir(
        langs,
        sorted(shared),
        negation,
        rng,
        n_queries,
        query_terms,
        query_fillers,
        n_relevant,
        n_background,
        clir_doc_len,
    )
    params = {
        "seed": seed,
        "band": band,
        "band_words": size,
        "zipf": zipf,
        "n_topics": n_topics,
        "clusters_per_topic": clusters_per_topic,
        "topic_share": topic_share,
        "doc_len": doc_len,
        "n_docs": n_docs,
        "n_nli": n_nli,
        "premise_len": premise_len,
        "n_queries": n_queries,
        "query_terms": query_terms,
        "query_fillers": query_fillers,
        "n_relevant": n_relevant,
        "n_background": n_background,
        "clir_doc_len": clir_doc_len,
        "negation": {lang: langs[lang].words[langs[lang].row_of[negation]] for lang in LANGS},
    }
    return DownstreamSet(cldc, xnli, queries, docs, qrels, params)


def _cldc(
    lang: _Language, topic_clusters: np.ndarray, rng: np.random.Generator, n_docs: int, doc_len: int, share: float
) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for split, n in (("train", n_docs), ("test", max(1, n_docs // 2))):
        rows = []
        for i in range(n):
            k = i % len(topic_clusters)
            n_topic = rng.binomial(doc_len, share)
            words = np.concatenate(
                [
                    lang.sample(rng, n_topic, np.isin(lang.clusters, topic_clusters[k])),
                    lang.sample(rng, doc_len - n_topic),
                ]
            )
            rows.append((f"topic{k}", lang.text(rng.permutation(words))))
        out[split] = [rows[i] for i in rng.permutation(len(rows))]
    return out


def _xnli(
    lang: _Language, negation: int, rng: np.random.Generator, n: int, premise_len: int
) -> dict[str, list[tuple[str, str, str]]]:
    not_row = lang.row_of[negation]
    ordinary = np.ones(len(lang.words), dtype=bool)
    ordinary[lang.concepts == negation] = False
    out = {}
    for split, size in (("train", n), ("dev", max(3, n // 5)), ("test", max(3, n // 5))):
        rows = []
        for i in range(size):
            label = ("entailment", "neutral", "contradiction")[i % 3]
            premise = lang.sample(rng, premise_len, ordinary, uniform=True)
            keep = rng.choice(premise, size=int(rng.integers(2, 4)) - (label != "entailment"), replace=False)
            if label == "neutral":
                away = ordinary & ~np.isin(lang.clusters, lang.clusters[premise])
                extra = lang.sample(rng, 1, away, uniform=True)
            elif label == "contradiction":
                extra = np.array([not_row])
            else:
                extra = np.zeros(0, dtype=np.int64)
            hypothesis = rng.permutation(np.concatenate([keep, extra]).astype(np.int64))
            rows.append((label, lang.text(premise), lang.text(hypothesis)))
        out[split] = [rows[i] for i in rng.permutation(len(rows))]
    return out


def _clir(
    langs: dict[str, _Language],
    shared: list[int],
    negation: int,
    rng: np.random.Generator,
    n_queries: int,
    query_terms: int,
    query_fillers: int,
    n_relevant: int,
    n_background: int,
    doc_len: int,
):
    src, tgt = langs["src"], langs["tgt"]
    top = max(1, len(src.words) // 100)  # the most frequent 1% act as fillers, never as query terms
    candidates = [c for c in shared if src.row_of[c] >= top and tgt.row_of[c] >= top and c != negation]
    if len(candidates) < n_queries * query_terms:
        raise XlingError(
            f"{n_queries} queries x {query_terms} terms need {n_queries * query_terms} concepts named in "
            f"both bands, found {len(candidates)}; raise band or n_words, or lower n_queries"
        )
    picked = rng.choice(candidates, size=(n_queries, query_terms), replace=False)
    queries: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
    texts: list[tuple[str, list[int]]] = []  # (qid or "", target rows)
    for q, concepts in enumerate(picked.tolist()):
        qid = str(q + 1)
        for name in LANGS:
            lang = langs[name]
            fillers = lang.sample(rng, query_fillers, np.arange(len(lang.words)) < top)
            words = rng.permutation(np.concatenate([[lang.row_of[c] for c in concepts], fillers]).astype(np.int64))
            queries[name][qid] = lang.text(words)
        for _ in range(n_relevant):
            named = rng.choice(concepts, size=int(rng.integers(2, query_terms + 1)), replace=False)
            mentions = [tgt.row_of[c] for c in named for _ in range(int(rng.integers(1, 4)))]
            background = tgt.sample(rng, max(1, doc_len - len(mentions)))
            texts.append((qid, rng.permutation(np.concatenate([background, mentions]).astype(np.int64)).tolist()))
    texts += [("", tgt.sample(rng, doc_len).tolist()) for _ in range(n_background)]
    order = rng.permutation(len(texts))
    docs, qrels = [], []
    for k, i in enumerate(order.tolist()):
        docno = f"D{k + 1:05d}"
        qid, rows = texts[i]
        docs.append((docno, tgt.text(rows)))
        if qid:
            qrels.append((qid, docno, 1))
    judged = {(q, d) for q, d, _ in qrels}
    for q in range(1, n_queries + 1):  # a few judged non-relevant documents per query, as real qrels have
        for k in rng.choice(len(docs), size=min(5, len(docs)), replace=False).tolist():
            if (str(q), docs[k][0]) not in judged:
                qrels.append((str(q), docs[k][0], 0))
    qrels.sort(key=lambda r: (int(r[0]), r[1]))
    return queries, docs, qrels


def write_downstream(data: DownstreamSet, folder: str | Path) -> dict[str, Path]:
    """Write ``cldc/<lang>/{train,test}.tsv``, ``xnli/<lang>/{train,dev,test}.tsv``, ``clir/queries.<lang>.tsv``,
    ``clir/docs.tgt.jsonl``, ``clir/qrels.txt``, empty ``clir/stopwords.<lang>.txt`` and ``params.json`` under
    ``folder`` (inside an atomic output)."""
    folder = Path(folder)
    for lang, splits in data.cldc.items():
        for split, rows in splits.items():
            _write(folder / "cldc" / lang / f"{split}.tsv", (f"{label}\t{text}\n" for label, text in rows))
    for lang, splits in data.xnli.items():
        for split, rows in splits.items():
            lines = ["label\tpremise\thypothesis\n", *(f"{a}\t{b}\t{c}\n" for a, b, c in rows)]
            _write(folder / "xnli" / lang / f"{split}.tsv", lines)
    for lang, queries in data.queries.items():
        _write(folder / "clir" / f"queries.{lang}.tsv", (f"{q}\t{t}\n" for q, t in queries.items()))
    _write(folder / "clir" / "docs.tgt.jsonl", (json.dumps({"docno": d, "text": t}) + "\n" for d, t in data.docs))
    _write(folder / "clir" / "qrels.txt", (f"{q} 0 {d} {r}\n" for q, d, r in data.qrels))
    for lang in LANGS:  # simulated languages have no stopwords: said by a file, not left to a fallback
        _write(folder / "clir" / f"stopwords.{lang}.txt", iter(()))
    _write(folder / "params.json", [json.dumps(data.params, indent=2) + "\n"])
    return {name: folder / name for name in ("cldc", "xnli", "clir")}


def _write(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
