"""Bilingual dictionaries: read (xling-eval TAB and MUSE space formats), write, look up in two vocabularies.

A dictionary is a list of ``(source, target)`` lines in file order; a source word may have several gold translations
(several lines). Case is handled explicitly: ``case="keep"`` compares words exactly as written (xling-eval's
dictionaries are mixed case), ``case="lower"`` lowercases both sides (pair it with vectors read with
``lowercase=True``). A line that repeats an earlier one (after lowercasing) is counted and either dropped
(``repeats="drop"``, the default) or kept (``repeats="keep"``: xling-eval reads every line, so a repeated test line
counts twice in its MRR and a repeated training line weighs twice in its Procrustes fit).

Coverage (``lookup``) is reported both ways the reference tools count: the share of dictionary lines whose two words
are in the vocabularies (xling-eval) and the share of unique source words with at least one such line (MUSE/vecmap).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from xling.errors import XlingError
from xling.io import atomic_file

Case = Literal["keep", "lower"]
Repeats = Literal["drop", "keep"]


@dataclass
class Dictionary:
    """Dictionary lines ``(source, target)`` in file order; repeated lines dropped or kept (``kept_repeats``)."""

    pairs: list[tuple[str, str]]
    source: str = "<memory>"
    repeats: int = 0  # lines that repeat an earlier line
    kept_repeats: bool = False  # True: the repeats are among ``pairs``; False: they were dropped

    def __len__(self) -> int:
        return len(self.pairs)

    def golds(self) -> dict[str, list[str]]:
        """Source word -> its distinct gold translations, in first-seen order."""
        out: dict[str, list[str]] = {}
        for src, tgt in self.pairs:
            golds = out.setdefault(src, [])
            if tgt not in golds:
                golds.append(tgt)
        return out


def read_dictionary(
    path: str | Path, *, case: Case = "keep", repeats: Repeats = "drop", encoding: str = "utf-8"
) -> Dictionary:
    """Read ``source<TAB>target`` or ``source target`` lines (the separator is detected per line; blank lines skipped).

    A line that is not exactly two fields raises ``XlingError`` naming the line.
    """
    path = Path(path)
    if case not in ("keep", "lower"):
        raise XlingError(f"unknown dictionary case policy {case!r}; expected 'keep' or 'lower'")
    if repeats not in ("drop", "keep"):
        raise XlingError(f"unknown repeated-line policy {repeats!r}; expected 'drop' or 'keep'")
    try:
        text = path.read_bytes()
    except OSError as err:
        raise XlingError(f"{path}: cannot read dictionary ({err.strerror or err})") from None
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    n_repeats = 0
    for line_no, raw in enumerate(text.split(b"\n"), start=1):
        try:
            line = raw.decode(encoding).strip()
        except UnicodeDecodeError:
            raise XlingError(f"{path}:{line_no}: not valid {encoding}: {raw[:60]!r}") from None
        if not line:
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) != 2 or not all(fields):
            raise XlingError(f"{path}:{line_no}: expected 'source<TAB>target' or 'source target', found {line[:80]!r}")
        pair = (fields[0].lower(), fields[1].lower()) if case == "lower" else (fields[0], fields[1])
        if pair in seen:
            n_repeats += 1
            if repeats == "drop":
                continue
        seen.add(pair)
        pairs.append(pair)
    if not pairs:
        raise XlingError(f"{path}: the dictionary has no lines")
    return Dictionary(pairs, str(path), n_repeats, repeats == "keep")


def write_dictionary(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    """Write ``source<TAB>target`` lines atomically."""
    with atomic_file(path, "w") as fh:
        fh.write("".join(f"{s}\t{t}\n" for s, t in pairs))


@dataclass
class Lookup:
    """A dictionary resolved against a source and a target vocabulary.

    ``src_rows``/``tgt_rows``: row numbers of the in-vocabulary lines (file order); ``line_of``: for each of them, its
    index in ``Dictionary.pairs``. ``oov_lines``/``oov_sources``: lines and unique source words left out.
    """

    src_rows: np.ndarray
    tgt_rows: np.ndarray
    line_of: np.ndarray
    n_lines: int
    n_sources: int
    oov_lines: list[tuple[str, str]]
    oov_sources: list[str]

    @property
    def line_coverage(self) -> float:
        """Share of dictionary lines with both words in vocabulary (xling-eval)."""
        return len(self.src_rows) / self.n_lines

    @property
    def source_coverage(self) -> float:
        """Share of unique source words with at least one line in vocabulary (MUSE/vecmap)."""
        return (self.n_sources - len(self.oov_sources)) / self.n_sources


def lookup(dictionary: Dictionary, src_index: dict[str, int], tgt_index: dict[str, int]) -> Lookup:
    """Resolve dictionary lines to rows of the two vocabularies; lines with an unknown word are kept aside as OOV."""
    src_rows, tgt_rows, line_of, oov_lines = [], [], [], []
    covered: set[str] = set()
    for i, (src, tgt) in enumerate(dictionary.pairs):
        s, t = src_index.get(src), tgt_index.get(tgt)
        if s is None or t is None:
            oov_lines.append((src, tgt))
            continue
        src_rows.append(s)
        tgt_rows.append(t)
        line_of.append(i)
        covered.add(src)
    sources = list(dictionary.golds())
    return Lookup(
        np.array(src_rows, dtype=np.int64),
        np.array(tgt_rows, dtype=np.int64),
        np.array(line_of, dtype=np.int64),
        len(dictionary.pairs),
        len(sources),
        oov_lines,
        [s for s in sources if s not in covered],
    )
