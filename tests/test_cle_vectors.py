"""word2vec readers and writers: round trips, streaming limits, case, cache, and every bad-input class."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from xling.cache import cache_dir
from xling.cle.vectors import read_vectors, write_bin, write_vec
from xling.errors import XlingError, XlingNote

WORDS = ["the", "The", "cat", "sat", "Über", "naïve"]


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(WORDS), 5)).astype(np.float32)


def test_text_and_binary_round_trip(tmp_path, vectors):
    write_vec(tmp_path / "a.vec", WORDS, vectors, precision=9)
    write_bin(tmp_path / "a.bin", WORDS, vectors)
    for name in ("a.vec", "a.bin"):
        emb = read_vectors(tmp_path / name)
        assert emb.words == WORDS
        assert emb.vectors.dtype == np.float32 and emb.vectors.flags.c_contiguous
        np.testing.assert_array_equal(emb.vectors, vectors)
        assert emb.index["cat"] == 2


def test_text_without_header_and_trailing_spaces(tmp_path):
    (tmp_path / "a.vec").write_text("a 1 2 3 \nb 4 5 6  \r\n\nc 7 8 9\n", encoding="utf-8")
    emb = read_vectors(tmp_path / "a.vec")
    assert emb.words == ["a", "b", "c"]
    np.testing.assert_array_equal(emb.vectors, np.arange(1, 10, dtype=np.float32).reshape(3, 3))


def test_max_vocab_stops_early(tmp_path, vectors):
    write_vec(tmp_path / "a.vec", WORDS, vectors)
    write_bin(tmp_path / "a.bin", WORDS, vectors)
    (tmp_path / "bad_tail.vec").write_text("a 1 2\nb 3 4\nc 5\n")  # the bad row is never reached
    assert read_vectors(tmp_path / "a.vec", max_vocab=3).words == WORDS[:3]
    assert read_vectors(tmp_path / "a.bin", max_vocab=2).vectors.shape == (2, 5)
    assert read_vectors(tmp_path / "bad_tail.vec", max_vocab=2).words == ["a", "b"]


def test_lowercase_deduplicates_first_wins(tmp_path, vectors):
    write_vec(tmp_path / "a.vec", WORDS, vectors, precision=9)
    emb = read_vectors(tmp_path / "a.vec", lowercase=True)
    assert emb.words == ["the", "cat", "sat", "über", "naïve"]
    assert emb.duplicates == 1
    np.testing.assert_array_equal(emb.vectors[0], vectors[0])  # "the", not "The"
    assert read_vectors(tmp_path / "a.vec").words == WORDS  # case kept by default


def test_cache_reloads_and_follows_changes(tmp_path, vectors):
    path = tmp_path / "a.vec"
    write_vec(path, WORDS, vectors, precision=9)
    first = read_vectors(path, cache=True, max_vocab=4)
    cached = sorted(p.name for p in (cache_dir() / "vectors").iterdir())
    assert len(cached) == 3 and all(name.startswith("a.vec.") for name in cached)  # .npy, .vocab.txt, .json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vec"]  # nothing written beside the input
    again = read_vectors(path, cache=True, max_vocab=4)
    assert again.words == first.words
    np.testing.assert_array_equal(again.vectors, first.vectors)
    write_vec(path, ["x", "y"], vectors[:2] * 2, precision=9)  # the file changes: the cache must not be used
    os.utime(path, ns=(1, 1))
    changed = read_vectors(path, cache=True, max_vocab=4)
    assert changed.words == ["x", "y"]
    np.testing.assert_array_equal(changed.vectors, vectors[:2] * 2)
    assert len(list((cache_dir() / "vectors").iterdir())) == 3  # the entry of the old file was dropped


def test_cache_goes_to_xling_cache_and_never_mixes_two_files(tmp_path, monkeypatch, vectors):
    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a" / "src.vec", tmp_path / "b" / "src.vec"
    write_vec(a, WORDS, vectors, precision=9)
    write_vec(b, WORDS, vectors[::-1], precision=9)  # same name, size and time: only the path tells them apart
    os.utime(a, ns=(5, 5))
    os.utime(b, ns=(5, 5))
    assert a.stat().st_size == b.stat().st_size
    first_a, first_b = read_vectors(a, cache=True), read_vectors(b, cache=True)
    again_a, again_b = read_vectors(a, cache=True), read_vectors(b, cache=True)
    np.testing.assert_array_equal(again_a.vectors, vectors)
    np.testing.assert_array_equal(again_b.vectors, vectors[::-1])
    np.testing.assert_array_equal(first_b.vectors, again_b.vectors)
    assert len(list((tmp_path / "cache" / "vectors").glob("src.vec.*.npy"))) == 2
    assert not (tmp_path / "a" / ".xling-cache").exists() and first_a.words == WORDS


def test_cache_folder_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XLING_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "xling"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "xling"


@pytest.mark.parametrize("limit", [{}, {"max_vocab": 4}, {"max_rows": 4}])
def test_a_file_cut_short_at_a_line_end_is_an_error_or_a_note(tmp_path, vectors, limit):
    path = tmp_path / "cut.vec"
    write_vec(path, WORDS, vectors)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:4]), encoding="utf-8")  # the header promises 6 rows; 3 arrived
    with pytest.raises(XlingError, match="header promises 6 rows but the file ends after 3") as err:
        read_vectors(path, **limit)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    for cache in (True, True):  # the first read and the cached copy both say so
        with pytest.warns(XlingNote, match="promises 6 rows but the file ends after 3"):
            emb = read_vectors(path, skip_bad=True, cache=cache, **limit)
        assert emb.words == WORDS[:3] and emb.short == (6, 3)


@pytest.mark.parametrize("limit", [{"max_vocab": 3}, {"max_rows": 3}, {"max_vocab": 2}])
def test_limits_reached_before_the_cut_read_the_file_as_usual(tmp_path, vectors, limit):
    path = tmp_path / "cut.vec"
    write_vec(path, WORDS, vectors)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:4]), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb = read_vectors(path, **limit)
    assert emb.words == WORDS[: next(iter(limit.values()))] and emb.short is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2 3\na 1 2 3\nb 1 2\n", ":3: expected 3 numbers after the word, found 2"),
        ("2 3\na 1 2 3\nb 1 2 3 4\n", ":3: expected 3 numbers after the word, found 4"),
        ("2 3\na 1 2 3\nb 1 x 3\n", ":3: expected 3 numbers"),
        ("2 3\na 1 nan 3\nb 1 2 3\n", ":2: non-finite value"),
        ("2 3\na 1 2 3\nb inf 2 3\n", ":3: non-finite value"),
        (b"2 3\na 1 2 3\n\xff\xfe 1 2 3\n", ":3: word is not valid utf-8"),
        ("1 3\na 1 2 3\nb 1 2 3\n", ":3: more rows than the header's count 1"),
    ],
)
def test_bad_rows_name_the_line_or_are_skipped(tmp_path, content, message):
    path = tmp_path / "bad.vec"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    with pytest.raises(XlingError, match=message) as err:
        read_vectors(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    if "more rows" not in message:
        emb = read_vectors(path, skip_bad=True)
        assert emb.skipped == 1 and len(emb) == 1


def test_binary_truncated_and_missing_files(tmp_path, vectors):
    write_bin(tmp_path / "a.bin", WORDS, vectors)
    data = (tmp_path / "a.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(XlingError, match="ends inside a vector"):
        read_vectors(tmp_path / "cut.bin")
    with pytest.raises(XlingError, match="no such vectors file"):
        read_vectors(tmp_path / "missing.vec")
    (tmp_path / "empty.vec").write_text("")
    with pytest.raises(XlingError, match="expected a 'count dim' header"):
        read_vectors(tmp_path / "empty.vec")
    with pytest.raises(XlingError, match="whitespace"):
        write_vec(tmp_path / "w.vec", ["a b"], vectors[:1])
