"""Tokenising texts and looking their words up in an embedding vocabulary, as the reference code does.

Two lookups, one per reference code base:

- ``lookup_exact_lower`` (the classifiers, after Glavaš's CNN code ``codogogo/topfish``: ``data_shaper``): the token
  as written, then lowercased; a token found neither way is dropped (no UNK vector).
- ``lookup_clir`` (the retrieval models, after ``rlitschk/UnsupCLIR``: ``text2vec.lookup``): as written, lowercased,
  accents stripped, accents stripped and lowercased.

Tokenisers are plain regular expressions: ``wordpunct`` is NLTK's ``wordpunct_tokenize`` pattern (the CLIR
reference's default tokenizer) written out, so no NLTK download is needed; ``words`` keeps word-internal hyphens and
apostrophes and splits punctuation off (the NLI texts are raw sentences). TED CLDC documents are already tokenised
and split on whitespace.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")  # nltk.tokenize.WordPunctTokenizer's pattern
_WORDS = re.compile(r"\w+(?:['\-]\w+)*|[^\w\s]")
_PUNCTUATION = set(string.punctuation)


def tokenize_whitespace(text: str) -> list[str]:
    """Tokens of an already tokenised text (TED CLDC, the TSV formats written by the simulator)."""
    return text.split()


def tokenize_words(text: str) -> list[str]:
    """Words (with inner hyphens/apostrophes) and single punctuation marks of a raw sentence."""
    return _WORDS.findall(text)


def tokenize_wordpunct(text: str) -> list[str]:
    """NLTK's ``wordpunct_tokenize``: runs of word characters and runs of other non-space characters."""
    return _WORDPUNCT.findall(text)


def clir_terms(text: str, stopwords: frozenset[str] = frozenset(), *, exclude_digits: bool = False) -> list[str]:
    """The CLIR reference's preprocessing (``clean`` then ``tokenize``): lowercase, wordpunct tokens, minus
    stopwords, punctuation and one-character tokens; ``exclude_digits`` also drops tokens with a digit (the
    unigram language model does)."""
    out = []
    for token in tokenize_wordpunct(text.lower()):
        if token in stopwords or token in _PUNCTUATION or len(token) <= 1:
            continue
        if exclude_digits and any(ch.isdigit() for ch in token):
            continue
        out.append(token)
    return out


def strip_accents(word: str) -> str:
    """The word without combining marks (NFD decomposition, category Mn dropped), as the CLIR reference does."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if unicodedata.category(ch) != "Mn")


def lookup_exact_lower(token: str, index: dict[str, int]) -> int:
    """Row of the token as written, else lowercased; -1 when neither is in the vocabulary."""
    row = index.get(token)
    if row is None:
        row = index.get(token.lower(), -1)
    return row


def lookup_clir(token: str, index: dict[str, int]) -> int:
    """Row of the token as written, lowercased, without accents, without accents lowercased; -1 if none."""
    for form in (token, token.lower()):
        if form in index:
            return index[form]
    bare = strip_accents(token)
    for form in (bare, bare.lower()):
        if form in index:
            return index[form]
    return -1


@dataclass
class Coverage:
    """How many tokens (and distinct token types) of a text collection have a vector."""

    tokens: int = 0
    found: int = 0
    types: int = 0
    types_found: int = 0

    @property
    def token_rate(self) -> float:
        return self.found / self.tokens if self.tokens else 0.0

    @property
    def type_rate(self) -> float:
        return self.types_found / self.types if self.types else 0.0

    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "found": self.found,
            "token_coverage": self.token_rate,
            "types": self.types,
            "types_found": self.types_found,
            "type_coverage": self.type_rate,
        }


def to_ids(
    texts: Iterable[list[str]], index: dict[str, int], lookup=lookup_exact_lower
) -> tuple[list[np.ndarray], Coverage]:
    """Token lists → arrays of vocabulary rows (tokens without a vector dropped), and the coverage."""
    cache: dict[str, int] = {}
    cov = Coverage()
    out = []
    for tokens in texts:
        rows = []
        for token in tokens:
            row = cache.get(token)
            if row is None:
                row = cache[token] = lookup(token, index)
            if row >= 0:
                rows.append(row)
        cov.tokens += len(tokens)
        cov.found += len(rows)
        out.append(np.asarray(rows, dtype=np.int64))
    cov.types = len(cache)
    cov.types_found = sum(1 for r in cache.values() if r >= 0)
    return out, cov
