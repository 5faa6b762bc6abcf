"""Dictionaries: TAB and space formats, several golds, explicit case, coverage both ways; the real xling-eval files."""

from __future__ import annotations

import pytest

from xling.cle.dictionaries import lookup, read_dictionary, write_dictionary
from xling.errors import XlingError


def test_formats_golds_and_repeats(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("Haus\thouse\nHaus home\n\nhund\tdog\nHaus\thouse\n  katze   cat  \n", encoding="utf-8")
    d = read_dictionary(path)
    assert d.pairs == [("Haus", "house"), ("Haus", "home"), ("hund", "dog"), ("katze", "cat")]
    assert d.repeats == 1
    assert d.golds() == {"Haus": ["house", "home"], "hund": ["dog"], "katze": ["cat"]}


def test_case_is_explicit(tmp_path):
    path = tmp_path / "d.tsv"
    write_dictionary(path, [("Haus", "House"), ("haus", "house")])
    assert len(read_dictionary(path, case="keep")) == 2
    lowered = read_dictionary(path, case="lower")
    assert lowered.pairs == [("haus", "house")] and lowered.repeats == 1
    with pytest.raises(XlingError, match="case policy 'upper'"):
        read_dictionary(path, case="upper")


@pytest.mark.parametrize(("content", "line"), [("a\tb\nc\n", 2), ("a b c\n", 1), ("a\tb\tc\n", 1), ("x\t\n", 1)])
def test_malformed_lines_name_the_line(tmp_path, content, line):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(XlingError, match=rf"bad.tsv:{line}: expected 'source<TAB>target'"):
        read_dictionary(path)


def test_missing_and_empty(tmp_path):
    with pytest.raises(XlingError, match="cannot read dictionary"):
        read_dictionary(tmp_path / "none.tsv")
    (tmp_path / "e.tsv").write_text("\n\n")
    with pytest.raises(XlingError, match="no lines"):
        read_dictionary(tmp_path / "e.tsv")


def test_lookup_coverage_both_conventions(tmp_path):
    path = tmp_path / "d.tsv"
    write_dictionary(path, [("a", "x"), ("a", "zz"), ("b", "zz"), ("c", "y"), ("dd", "x")])
    found = lookup(read_dictionary(path), {"a": 0, "b": 1, "c": 2}, {"x": 5, "y": 6})
    assert found.src_rows.tolist() == [0, 2] and found.tgt_rows.tolist() == [5, 6]
    assert found.line_of.tolist() == [0, 3]
    assert found.oov_lines == [("a", "zz"), ("b", "zz"), ("dd", "x")]
    assert found.oov_sources == ["b", "dd"]  # "a" has one line in vocabulary
    assert found.line_coverage == pytest.approx(2 / 5)
    assert found.source_coverage == pytest.approx(2 / 4)


def test_real_xling_eval_dictionaries_load_with_coverage(bli_data):
    tests = sorted(bli_data.glob("*/yacle.test.freq.2k.*.tsv"))
    assert len(tests) >= 28
    for test in tests:
        pair = test.name.split(".")[-2]
        d = read_dictionary(test)
        assert len(d) + d.repeats == 2000
        train = read_dictionary(test.with_name(f"yacle.train.freq.5k.{pair}.tsv"))
        assert len(train) + train.repeats == 5000
        # coverage of the test dictionary in a vocabulary made of the training dictionary's words, both ways
        src_vocab = {s: i for i, s in enumerate(dict.fromkeys(s for s, _ in train.pairs))}
        tgt_vocab = {t: i for i, t in enumerate(dict.fromkeys(t for _, t in train.pairs))}
        found = lookup(d, src_vocab, tgt_vocab)
        both = [p for p in d.pairs if p[0] in src_vocab and p[1] in tgt_vocab]
        assert found.line_coverage == pytest.approx(len(both) / len(d))
        covered = {s for s, _ in both}
        assert found.source_coverage == pytest.approx(len(covered) / len(d.golds()))
        if pair.startswith("en-"):  # English-source test words never appear in the training dictionary
            assert found.line_coverage == 0.0
    mixed = read_dictionary(bli_data / "de-fi" / "yacle.test.freq.2k.de-fi.tsv")
    assert any(s != s.lower() for s, _ in mixed.pairs)  # mixed case, kept as written
    assert max(len(g) for g in mixed.golds().values()) > 1  # several golds per source word
