"""Unsupervised CLIR with a shared embedding space: BWE-Agg and TbT-QT (Litschko et al., 2018), scored by MAP.

Both follow the reference code the paper's CLIR experiments ran (``rlitschk/UnsupCLIR``: ``model_dense.py``,
``model_lexical.py``, ``text2vec.py``), step by step:

**Preprocessing** (``text2vec.clean`` + ``tokenize``): lowercase, NLTK's wordpunct tokens, minus stopwords,
punctuation and one-character tokens. Words are looked up as written, lowercased, without accents, both.

**BWE-Agg** (``run_biencoder_experiment`` with ``text2vec_idf_sum``): a document is the sum of the vectors of its
tokens, each scaled by the word's IDF ``log(N / df)`` over the collection; a query is the plain sum of its tokens'
vectors (queries are not IDF-scaled); both are L2-normalised and ranked by inner product (cosine). Word vectors are
used as they are (the 2019 code does not normalise them; ``normalize=True`` does, as the 2018 pilot did). Documents
without any known word get no vector and are not ranked.

**TbT-QT** (``run_wordbyword_translation``): every distinct query term with a vector is replaced by its nearest
document-language word (inner product of L2-normalised vectors over the whole target vocabulary); terms without a
vector are kept as they are (if they equal their accent-stripped form; the reference drops the others). The
translated query then ranks documents with a unigram query-likelihood model with
Dirichlet smoothing (``mu = 1000``): ``sum_t occ(t) log((tf(t, d) + mu cf(t) / |C|) / (|d| + mu))`` over query terms
found in the collection; here, as in the reference, tokens with a digit are dropped and the translated query is
filtered with the *query* language's stopwords. Documents are ranked by that log-likelihood (the reference ranks by
its ``exp``, the same order while it does not underflow); an empty document ranks last.

**MAP** (``map``, the default) is ``ir_measures``' AP (trec_eval's definition) averaged over the queries with at least
one relevant judgement. Each ranking is passed down to its last relevant document, which leaves AP unchanged.
``map_reference`` is the reference's own definition (``reference_average_precision``): it averages precision over
the relevant documents *retrieved* and skips a query with none retrieved. The two differ only when a relevant
document is absent from the collection or has no vector (``relevant_unranked`` counts them); xling's default counts
such a document as missed, as trec_eval does, because skipping it rewards a space that leaves documents without
vectors. Ties are broken by collection order (the reference: faiss's order for BWE-Agg, a fixed random
permutation when a TbT-QT query matches no document).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from xling.cle.downstream.text import clir_terms, lookup_clir, strip_accents
from xling.cle.normalize import unit_rows
from xling.cle.vectors import Embeddings
from xling.errors import XlingError


@dataclass
class Ranking:
    """Scores of every ranked document for every query (rows = queries, columns = ranked documents)."""

    qids: list[str]
    docnos: list[str]
    scores: np.ndarray  # (queries, ranked documents); -inf = not ranked
    info: dict = field(default_factory=dict)


# --- BWE-Agg ---------------------------------------------------------------------------------------------------------


def term_rows(texts: Sequence[list[str]], emb: Embeddings) -> tuple[sp.csr_matrix, int, int]:
    """A (texts x vocabulary) count matrix of the tokens that have a vector; (matrix, tokens, tokens found)."""
    cache: dict[str, int] = {}
    rows, cols = [], []
    tokens = found = 0
    for i, terms in enumerate(texts):
        for term in terms:
            r = cache.get(term)
            if r is None:
                r = cache[term] = lookup_clir(term, emb.index)
            tokens += 1
            if r >= 0:
                rows.append(i)
                cols.append(r)
                found += 1
    counts = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(texts), len(emb)))
    counts.sum_duplicates()
    return counts, tokens, found


def idf(counts: sp.csr_matrix) -> np.ndarray:
    """``log(N / df)`` of every vocabulary row over the documents (0 where a word never occurs)."""
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(df > 0, np.log(counts.shape[0] / np.maximum(df, 1)), 0.0)


def aggregate(counts: sp.csr_matrix, vectors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each text's (weighted) sum of word vectors, L2-normalised; texts without a known word stay zero."""
    used = np.unique(counts.indices)
    v = vectors[used].astype(np.float64)
    if weights is not None:
        v = v * weights[used, None]
    out = counts[:, used] @ v
    return unit_rows(np.asarray(out))


def bwe_agg(
    queries: dict[str, str],
    docnos: list[str],
    docs: list[str],
    src: Embeddings,
    tgt: Embeddings,
    *,
    src_stopwords: frozenset[str] = frozenset(),
    tgt_stopwords: frozenset[str] = frozenset(),
    normalize: bool = False,
) -> Ranking:
    """Rank documents by the cosine of IDF-weighted aggregated document vectors and summed query vectors."""
    src_vectors, tgt_vectors = _maybe_unit(src.vectors, normalize), _maybe_unit(tgt.vectors, normalize)
    qids = list(queries)
    q_counts, q_tokens, q_found = term_rows([clir_terms(queries[q], src_stopwords) for q in qids], src)
    d_counts, d_tokens, d_found = term_rows([clir_terms(d, tgt_stopwords) for d in docs], tgt)
    d_vecs = aggregate(d_counts, tgt_vectors, idf(d_counts))
    q_vecs = aggregate(q_counts, src_vectors)
    keep = np.flatnonzero(np.abs(d_vecs).sum(1) > 0)  # the reference drops documents without a vector
    scores = q_vecs @ d_vecs[keep].T
    return Ranking(
        qids,
        [docnos[i] for i in keep],
        scores,
        {
            "query_tokens": q_tokens,
            "query_tokens_found": q_found,
            "doc_tokens": d_tokens,
            "doc_tokens_found": d_found,
            "docs_without_vector": len(docs) - len(keep),
            "queries_without_vector": int((np.abs(q_vecs).sum(1) == 0).sum()),
        },
    )


def _maybe_unit(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    return unit_rows(vectors) if normalize else vectors


# --- TbT-QT ----------------------------------------------------------------------------------------------------------


def translate_terms(terms: list[str], src: Embeddings, tgt: Embeddings, *, block: int = 1024) -> dict[str, str]:
    """Each distinct term with a source vector → the target word with the largest inner product of unit vectors."""
    unique = sorted(set(terms))
    found = [(t, r) for t in unique if (r := lookup_clir(t, src.index)) >= 0]
    if not found:
        return {}
    q = _maybe_unit(src.vectors[[r for _, r in found]].astype(np.float32), True)
    targets = _maybe_unit(tgt.vectors.astype(np.float32), True)
    best = np.full(len(q), -np.inf, dtype=np.float32)
    arg = np.zeros(len(q), dtype=np.int64)
    for i in range(0, len(targets), block * 64):  # blocks of targets bound the similarity buffer
        sims = q @ targets[i : i + block * 64].T
        j = sims.argmax(1)
        top = sims[np.arange(len(q)), j]
        better = top > best
        best[better], arg[better] = top[better], i + j[better]
    return {t: tgt.words[a] for (t, _), a in zip(found, arg)}


def query_likelihood(queries: list[list[str]], docs: list[list[str]], mu: float = 1000.0) -> np.ndarray:
    """Dirichlet-smoothed unigram query log-likelihood of every document for every query: (queries, documents).

    Query terms absent from the collection are skipped (a query with none scores 0 everywhere); empty documents
    score ``-inf``.
    """
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, terms in enumerate(docs):
        for term in terms:
            rows.append(i)
            cols.append(vocab.setdefault(term, len(vocab)))
    tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(vocab)))
    tf.sum_duplicates()
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    cf = np.asarray(tf.sum(axis=0)).ravel()
    background = mu * cf / max(cf.sum(), 1.0)  # mu * p(t | collection)
    # log((tf + mu p) / (|d| + mu)) = log(mu p) + log1p(tf / (mu p)) - log(|d| + mu)
    gain = tf.copy()
    gain.data = np.log1p(gain.data / background[gain.indices])
    occ_rows, occ_cols, occ_vals = [], [], []
    for i, terms in enumerate(queries):
        for term, n in Counter(t for t in terms if t in vocab).items():
            occ_rows.append(i)
            occ_cols.append(vocab[term])
            occ_vals.append(n)
    occ = sp.csr_matrix((occ_vals, (occ_rows, occ_cols)), shape=(len(queries), len(vocab)))
    q_len = np.asarray(occ.sum(axis=1)).ravel()
    const = occ @ np.log(np.maximum(background, 1e-300))
    scores = np.asarray((gain @ occ.T).T.todense()) + const[:, None] - q_len[:, None] * np.log(lengths + mu)[None, :]
    scores[:, lengths == 0] = -np.inf
    scores[q_len == 0] = 0.0
    return scores


def tbt_qt(
    queries: dict[str, str],
    docnos: list[str],
    docs: list[str],
    src: Embeddings,
    tgt: Embeddings,
    *,
    src_stopwords: frozenset[str] = frozenset(),
    tgt_stopwords: frozenset[str] = frozenset(),
    mu: float = 1000.0,
    exclude_digits: bool = True,
) -> Ranking:
    """Translate queries term by term through the shared space, then rank by query likelihood."""
    qids = list(queries)
    terms = [clir_terms(queries[q], src_stopwords) for q in qids]
    mapping = translate_terms([t for ts in terms for t in ts], src, tgt)
    # the reference keeps an untranslatable term as is when it equals its last lookup form (accents stripped,
    # lowercased); others are dropped
    as_is = {strip_accents(t).lower() for ts in terms for t in ts if t not in mapping}
    translated = [" ".join(mapping.get(t, t) for t in ts if t in mapping or t in as_is) for ts in terms]
    q_terms = [clir_terms(t, src_stopwords, exclude_digits=exclude_digits) for t in translated]
    d_terms = [clir_terms(d, tgt_stopwords, exclude_digits=exclude_digits) for d in docs]
    scores = query_likelihood(q_terms, d_terms, mu)
    _, d_tokens, d_found = term_rows(d_terms, tgt)  # coverage only: documents are matched as strings
    return Ranking(
        qids,
        list(docnos),
        scores,
        {
            "query_tokens": sum(len(ts) for ts in terms),
            "query_tokens_found": sum(t in mapping for ts in terms for t in ts),
            "doc_tokens": d_tokens,
            "doc_tokens_found": d_found,
            "translations": dict(zip(qids, translated)),
            "empty_docs": int(sum(not d for d in d_terms)),
        },
    )


# --- evaluation ------------------------------------------------------------------------------------------------------


def average_precision(ranking: Ranking, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """AP (ir_measures, trec_eval's definition) of every query that has a relevant judgement and a ranking."""
    import ir_measures
    from ir_measures import AP

    judged = {
        q: {d: r for d, r in docs.items()}
        for q, docs in qrels.items()
        if q in set(ranking.qids) and any(r > 0 for r in docs.values())
    }
    if not judged:
        raise XlingError("no query has both a ranking and a relevant judgement (check the query ids in qrels.txt)")
    position = {d: i for i, d in enumerate(ranking.docnos)}
    run: dict[str, dict[str, float]] = {}
    for qi, qid in enumerate(ranking.qids):
        if qid not in judged:
            continue
        order = np.argsort(-ranking.scores[qi], kind="stable")  # ties: collection order
        relevant = [position[d] for d, r in judged[qid].items() if r > 0 and d in position]
        rank_of = np.empty(len(order), dtype=np.int64)
        rank_of[order] = np.arange(len(order))
        cut = max((rank_of[p] for p in relevant), default=0) + 1
        # scores = -rank, so trec_eval keeps exactly this order; AP needs nothing below the last relevant document
        run[qid] = {ranking.docnos[d]: float(-k) for k, d in enumerate(order[:cut])}
    return {m.query_id: float(m.value) for m in ir_measures.iter_calc([AP], judged, run)}


def reference_average_precision(ranking: Ranking, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """AP as the CLIR reference computes it (``rlitschk/UnsupCLIR`` ``evaluate.evaluate_clef``): the mean of the
    precision at each relevant document *retrieved* (ranked with a finite score), over the queries with a relevant
    judgement; a query with no relevant document retrieved is skipped (it has no AP), not counted as 0."""
    out = {}
    for qi, qid in enumerate(ranking.qids):
        relevant = {d for d, r in qrels.get(qid, {}).items() if r > 0}
        if not relevant:
            continue
        scores = ranking.scores[qi]
        order = [d for d in np.argsort(-scores, kind="stable") if np.isfinite(scores[d])]
        ranks = [k for k, d in enumerate(order, 1) if ranking.docnos[d] in relevant]
        if ranks:
            out[qid] = float(np.mean([i / rank for i, rank in enumerate(ranks, 1)]))
    return out


def relevant_unranked(ranking: Ranking, qrels: dict[str, dict[str, int]]) -> int:
    """Relevant judgements (of ranked queries) whose document is not in the ranking."""
    ranked, qids = set(ranking.docnos), set(ranking.qids)
    return sum(1 for q, docs in qrels.items() if q in qids for d, r in docs.items() if r > 0 and d not in ranked)


#: What the parameters of ``bwe_agg`` default to and why (recorded in every result).
bwe_agg.CHOICES = {
    "model": (
        "rlitschk/UnsupCLIR model_dense: IDF-weighted sum for documents, plain sum for queries, cosine; vectors not "
        "normalised (2019 code)"
    ),
    "map": (
        "map: ir_measures AP (trec_eval: divides by all relevant documents); map_reference: the reference's (divides by"
        " relevant documents retrieved, skips queries with none retrieved)"
    ),
}


#: What the parameters of ``tbt_qt`` default to and why (recorded in every result).
tbt_qt.CHOICES = {
    "model": (
        "rlitschk/UnsupCLIR model_lexical: nearest target word per query term (unit vectors), Dirichlet unigram LM "
        "mu=1000, tokens with digits dropped (exclude_digits)"
    ),
    "map": (
        "map: ir_measures AP (trec_eval: divides by all relevant documents); map_reference: the reference's (divides by"
        " relevant documents retrieved, skips queries with none retrieved)"
    ),
}
