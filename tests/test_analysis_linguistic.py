"""URIEL distances: the vectors equal lang2vec.get_features, cosine distance, code mapping, correlations."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from xling.analysis.linguistic import (
    FEATURE_SETS,
    _letter_codes,
    cosine_distance,
    language_distances,
    linguistic_correlations,
    to_iso3,
    uriel_vectors,
)


def test_iso_codes_map_to_uriel_codes():
    letters = _letter_codes()
    codes = ("en", "de-AT", "eng", "zh", "ar", "fa", "xx-1", "??")
    # the release's table (ar -> ara, zh -> cmn), lang2vec's for the rest
    assert [to_iso3(c, letters) for c in codes] == ["eng", "deu", "eng", "cmn", "ara", "fas", None, None]
    # macrolanguages -> their main individual language
    assert [to_iso3(c, letters, "individual") for c in codes] == ["eng", "deu", "eng", "cmn", "arb", "pes", None, None]


def test_cosine_distance_known_values_and_missing_dimensions():
    assert cosine_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert cosine_distance(np.array([1.0, 1.0, np.nan]), np.array([2.0, 2.0, 5.0])) == pytest.approx(0.0)
    assert np.isnan(cosine_distance(np.zeros(3), np.ones(3)))


@pytest.mark.slow
def test_vectors_equal_lang2vec_get_features():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lang2vec.lang2vec as l2v
    codes = ["eng", "cmn", "hin"]
    for fs in FEATURE_SETS:
        ours = uriel_vectors(codes, fs)
        ref = l2v.get_features(codes, fs)
        for c in codes:
            expected = np.array([np.nan if v == "--" else float(v) for v in ref[c]])
            np.testing.assert_array_equal(ours[c], expected)


def test_unknown_language_is_skipped_with_a_note():
    notes: list[str] = []
    dist = language_distances(["en", "de", "qqq", "zz"], notes)
    assert set(dist["lang_a"]) == {"en", "de", "qqq"}  # zz: no ISO 639-3 code, so no pairs at all
    assert dist.loc[dist["lang_a"] == "qqq", list(FEATURE_SETS)].isna().all().all()  # qqq: URIEL has no vector
    assert any("zz" in n and "no ISO 639-3 code" in n for n in notes)
    assert any("qqq" in n and "no syntax_knn vector" in n for n in notes)
    assert dist.loc[(dist["lang_a"] == "en") & (dist["lang_b"] == "de"), "geo"].iloc[0] >= 0


def test_correlations_known_answer():
    langs = ["en", "de", "fr", "ru", "ja", "hi"]
    dist = language_distances(langs, [])
    # transfer that falls exactly with syntactic distance: rho = -1 for syntax_knn
    pairs = dist[["lang_a", "lang_b"]].rename(columns={"lang_a": "source", "lang_b": "target"})
    pairs["mean"] = -dist["syntax_knn"].to_numpy()
    out = linguistic_correlations(pairs, dist).set_index("feature")
    assert out.loc["syntax_knn", "spearman_rho"] == pytest.approx(-1.0)
    assert out.loc["syntax_knn", "pearson_r"] == pytest.approx(-1.0)
    assert out.loc["syntax_knn", "n"] == 30 and list(out.index) == list(FEATURE_SETS)
    assert isinstance(out, pd.DataFrame)
