"""Bilingual lexicon induction (BLI): P@1/5/10, MRR and coverage of a cross-lingual space on a test dictionary.

Two counting conventions, named after the tools that use them (their numbers differ on dictionaries with several
translations per source word):

- ``line`` (xling-eval, Glavaš et al. 2019): every dictionary line is one test item; its rank is the rank of that
  line's target. MRR is the paper's "MAP" (one relevant item per line, so average precision = reciprocal rank).
- ``source`` (MUSE, vecmap): every unique source word is one test item; it is correct at k when *any* of its gold
  translations is among its k best targets; its rank is the best rank of its golds.

Out-of-vocabulary items (a line with an unknown word; a source word with no line in vocabulary) are either skipped
(``oov="skip"``: metrics over covered items, the usual report next to coverage) or counted as wrong (``oov="wrong"``:
rank infinity, reciprocal rank 0). Ranks are exact for every retrieval method (see ``xling.cle.retrieval``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from xling.cle import retrieval
from xling.cle.dictionaries import Dictionary, Lookup, lookup
from xling.cle.normalize import unit_rows
from xling.cle.vectors import Embeddings
from xling.errors import XlingError

Convention = Literal["line", "source"]
OOVPolicy = Literal["skip", "wrong"]
CONVENTIONS: tuple[str, ...] = ("line", "source")
OOV_POLICIES: tuple[str, ...] = ("skip", "wrong")


@dataclass
class BLIResult:
    """BLI metrics (proportions in [0, 1]) and how they were counted."""

    p1: float
    p5: float
    p10: float
    mrr: float
    coverage: float
    n: int
    n_oov: int
    retrieval: str
    convention: str
    oov: str

    def to_dict(self) -> dict:
        return asdict(self)


def metrics_from_ranks(ranks: np.ndarray, n_oov: int = 0, oov: OOVPolicy = "skip") -> dict[str, float | int]:
    """P@1/5/10 and MRR from 1-based ranks of the covered items; ``oov="wrong"`` adds ``n_oov`` items with rank inf."""
    if oov not in OOV_POLICIES:
        raise XlingError(f"unknown OOV policy {oov!r}; expected one of {', '.join(OOV_POLICIES)}")
    ranks = np.asarray(ranks, dtype=np.float64)
    if oov == "wrong" and n_oov:
        ranks = np.concatenate([ranks, np.full(n_oov, np.inf)])
    if ranks.size == 0:
        raise XlingError("no test item left to evaluate: no dictionary line has both words in the vocabularies")
    return {
        "p1": float(np.mean(ranks <= 1)),
        "p5": float(np.mean(ranks <= 5)),
        "p10": float(np.mean(ranks <= 10)),
        "mrr": float(np.mean(1.0 / ranks)),
        "n": int(ranks.size),
    }


def evaluate(
    src_vectors: np.ndarray,
    tgt_vectors: np.ndarray,
    found: Lookup,
    *,
    retrieval_method: str = "nn",
    convention: Convention = "line",
    oov: OOVPolicy = "skip",
    csls_k: int = 10,
    isf_beta: float = 30.0,
    normalize: bool = True,
    inplace: bool = False,
    backend: str = "auto",
) -> BLIResult:
    """BLI of mapped source vectors against target vectors on a resolved test dictionary.

    ``normalize``: use cosine (rows scaled to unit length; ``inplace=True`` scales the given arrays instead of copies,
    saving memory). CSLS and inverted-softmax penalties are taken over the whole source space, as vecmap does.
    """
    if convention not in CONVENTIONS:
        raise XlingError(f"unknown BLI convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    if normalize:
        src_vectors = unit_rows(src_vectors, inplace=inplace)
        tgt_vectors = unit_rows(tgt_vectors, inplace=inplace)
    sources, query_of = np.unique(found.src_rows, return_inverse=True)
    ranks = np.empty(0, dtype=np.int64)
    if len(sources):
        ranks = retrieval.gold_ranks(
            src_vectors[sources],
            tgt_vectors,
            query_of,
            found.tgt_rows,
            method=retrieval_method,
            sources=src_vectors,
            csls_k=csls_k,
            isf_beta=isf_beta,
            backend=backend,
        )
    if convention == "source":
        best = np.full(len(sources), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, query_of, ranks)
        ranks, n_oov, coverage = best, len(found.oov_sources), found.source_coverage
    else:
        n_oov, coverage = len(found.oov_lines), found.line_coverage
    scores = metrics_from_ranks(ranks, n_oov, oov)
    return BLIResult(
        scores["p1"],
        scores["p5"],
        scores["p10"],
        scores["mrr"],
        coverage,
        scores["n"],
        n_oov,
        retrieval_method,
        convention,
        oov,
    )


def bli(src: Embeddings, tgt: Embeddings, dictionary: Dictionary, **options) -> BLIResult:
    """Look the dictionary up in the two vocabularies, then ``evaluate`` (same keyword options)."""
    return evaluate(src.vectors, tgt.vectors, lookup(dictionary, src.index, tgt.index), **options)
