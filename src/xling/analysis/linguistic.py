"""Does transfer follow typology? URIEL (lang2vec) distances against MT-CL transfer.

For each ordered language pair, the cosine distance between the two languages' lang2vec vectors
(``syntax_knn``, ``phonology_knn``, ``inventory_knn``, ``geo``, ``fam``) is set against the pair's mean
MT-CL delta: Spearman rho (p, Fisher-z CI), Pearson r, N. lang2vec's ``distance()`` is not in its PyPI
release, so distances are computed here from the same vectors ``get_features`` returns (read directly
from lang2vec's data, see ``uriel_vectors``); a language URIEL does not know is skipped with a note.

Language codes reach URIEL as the release's ``ISO_MAP`` (analysis/chapters/ling_correlation.py) sends them:
Arabic as the macrolanguage ``ara``, Chinese as Mandarin ``cmn`` (``codes="release"``, the default); other
two-letter codes through lang2vec's own ISO 639-1 table. URIEL has vectors for macrolanguages and for their
individual languages alike, and they differ (``ara`` vs ``arb``: syntax distance to English 0.349 vs 0.356), so
``codes="individual"`` (every macrolanguage -> its main individual language, ``ar`` -> ``arb``) is a different
analysis, one switch away.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from xling.analysis.stats import NO_CI, fisher_ci
from xling.errors import XlingError

FEATURE_SETS = ("syntax_knn", "phonology_knn", "inventory_knn", "geo", "fam")
UrielCodes = Literal["release", "individual"]


def _data_file(name: str) -> Path:
    """A file of lang2vec's bundled data, found through the installed distribution.

    Not ``importlib.resources``: lang2vec also installs a ``bin/lang2vec.py`` script that shadows the
    package whenever a console script (like ``xling``) runs from ``bin/``.
    """
    try:
        path = Path(str(metadata.distribution("lang2vec").locate_file(f"lang2vec/data/{name}")))
    except metadata.PackageNotFoundError:
        raise XlingError(
            "linguistic correlations need lang2vec: pip install 'xling[lang]' (or use --no-linguistic)"
        ) from None
    if not path.is_file():
        raise XlingError(f"lang2vec data file {path} is missing; reinstall lang2vec (or use --no-linguistic)")
    return path


def _letter_codes() -> dict[str, str]:
    """lang2vec's own ISO 639-1 -> 639-3 table, read from its data without importing the (slow) module."""
    return json.loads(_data_file("letter_codes.json").read_text())


def to_iso3(code: str, letter_codes: dict[str, str], codes: UrielCodes = "release") -> str | None:
    """``en``/``en-US``/``eng`` -> ``eng``; None when the code is not ISO 639-1/3 shaped.

    ``codes="release"``: the release's table first (``ar`` -> ``ara``, ``zh`` -> ``cmn``), then lang2vec's.
    ``codes="individual"``: lang2vec's table, then every macrolanguage to its main individual language.
    """
    base = str(code).strip().lower().replace("_", "-").split("-")[0]
    if len(base) == 3 and base.isalpha():
        iso = base
    elif len(base) == 2:
        iso = RELEASE_ISO.get(base) if codes == "release" else None
        iso = iso or letter_codes.get(base)
    else:
        iso = None
    if iso is None:
        return None
    return _MACRO.get(iso, iso) if codes == "individual" else iso


# lang2vec's named feature sets: (data file, source, feature-name prefix), as in lang2vec.FEATURE_SETS_DICT.
_SETS = {
    "syntax_knn": ("feature_predictions.npz", "predicted", "S_"),
    "phonology_knn": ("feature_predictions.npz", "predicted", "P_"),
    "inventory_knn": ("feature_predictions.npz", "predicted", "INV_"),
    "geo": ("geocoord_features.npz", "GEOCOORDS", ""),
    "fam": ("family_features.npz", "FAM", ""),
}
# The release's ISO 639-1 -> 639-3 table (its ``ISO_MAP``): lang2vec's codes except Chinese as Mandarin.
RELEASE_ISO = {
    "ar": "ara",
    "bn": "ben",
    "de": "deu",
    "en": "eng",
    "es": "spa",
    "fr": "fra",
    "hi": "hin",
    "id": "ind",
    "it": "ita",
    "pt": "por",
    "zh": "cmn",
}
# Macrolanguage 639-3 codes (as lang2vec's ISO 639-1 table gives them) -> their main individual language.
_MACRO = {
    "ara": "arb",
    "zho": "cmn",
    "fas": "pes",
    "msa": "zsm",
    "swa": "swh",
    "est": "ekk",
    "lav": "lvs",
    "uzb": "uzn",
    "nep": "npi",
    "aze": "azj",
    "sqi": "als",
    "mon": "khk",
    "orm": "gaz",
    "pus": "pbu",
    "yid": "ydd",
    "kur": "kmr",
    "que": "quy",
    "grn": "gug",
    "nor": "nob",
}


@lru_cache(maxsize=4)
def _database(filename: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(langs, feats, sources, data) of one lang2vec archive, loaded once per process."""
    with np.load(_data_file(filename), allow_pickle=False) as db:
        return db["langs"], db["feats"], db["sources"], db["data"]


def uriel_vectors(iso3: list[str], feature_set: str) -> dict[str, np.ndarray]:
    """URIEL vectors (NaN = missing) of the languages it knows, as ``lang2vec.get_features`` returns them.

    Read straight from lang2vec's bundled ``.npz`` data with the same indexing as its ``get_named_set``:
    lang2vec itself re-reads the archive once per feature name (~30 s for these five sets), this takes
    well under a second; ``tests/test_analysis_linguistic.py`` checks equality with ``get_features``.
    """
    filename, source, prefix = _SETS[feature_set]
    langs, feats, sources, data = _database(filename)
    index = {str(code): i for i, code in enumerate(langs)}
    feat_idx = np.array([i for i, f in enumerate(feats) if str(f).startswith(prefix)])
    src_idx = np.flatnonzero(sources == source)
    out = {}
    for code in iso3:
        if code in index:
            vec = data[index[code]][feat_idx][:, src_idx].squeeze(axis=1).astype(float)
            out[code] = np.where(vec == -1, np.nan, vec)
    return out


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity over the dimensions both vectors have; NaN for a zero vector."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(1.0 - a @ b / norm) if norm > 0 else float("nan")


def language_distances(languages: list[str], notes: list[str], codes: UrielCodes = "release") -> pd.DataFrame:
    """Ordered pairs ``lang_a, lang_b`` with their URIEL codes ``iso_a, iso_b`` and one distance per feature set."""
    letter = _letter_codes()
    iso = {lang: to_iso3(lang, letter, codes) for lang in languages}
    unmapped = sorted(lang for lang, c in iso.items() if c is None)
    if unmapped:
        notes.append(f"linguistic_correlations: no ISO 639-3 code for {', '.join(unmapped)}; skipped")
    codes = sorted({c for c in iso.values() if c})
    rows = [(a, b) for a in languages for b in languages if a != b and iso[a] and iso[b]]
    out = pd.DataFrame(rows, columns=["lang_a", "lang_b"])
    out["iso_a"] = [iso[a] for a, _ in rows]
    out["iso_b"] = [iso[b] for _, b in rows]
    for fs in FEATURE_SETS:
        vecs = uriel_vectors(codes, fs)
        missing = sorted(lang for lang in languages if iso[lang] and iso[lang] not in vecs)
        if missing:
            notes.append(f"linguistic_correlations: URIEL has no {fs} vector for {', '.join(missing)}; skipped")
        dist = {}
        for a, b in rows:
            va, vb = vecs.get(iso[a]), vecs.get(iso[b])
            dist[(a, b)] = cosine_distance(va, vb) if va is not None and vb is not None else np.nan
        out[fs] = [dist[(a, b)] for a, b in rows]
    return out


def linguistic_correlations(language_pairs: pd.DataFrame, distances: pd.DataFrame) -> pd.DataFrame:
    """Per feature set: ``feature,spearman_rho,spearman_p,pearson_r,pearson_p,n`` (+ rho CI)."""
    merged = language_pairs.rename(columns={"source": "lang_a", "target": "lang_b"}).merge(
        distances, on=["lang_a", "lang_b"]
    )
    rows = []
    for fs in FEATURE_SETS:
        sub = merged[["mean", fs]].dropna() if fs in merged else merged.iloc[:0]
        n = len(sub)
        if n >= 3 and sub[fs].nunique() > 1 and sub["mean"].nunique() > 1:
            rho, rp = stats.spearmanr(sub[fs], sub["mean"])
            r, pp = stats.pearsonr(sub[fs], sub["mean"])
        else:
            rho = rp = r = pp = np.nan
        lo, hi = fisher_ci(rho, n, spearman=True)
        rows.append(
            {
                "feature": fs,
                "spearman_rho": rho,
                "spearman_p": rp,
                "pearson_r": r,
                "pearson_p": pp,
                "n": n,
                "rho_ci_low": lo,
                "rho_ci_high": hi,
                "ci_method": "Fisher z" if np.isfinite(lo) else NO_CI,
            }
        )
    return pd.DataFrame(rows)
