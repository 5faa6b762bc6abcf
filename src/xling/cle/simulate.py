"""Simulated pairs of embedding spaces with a planted cross-lingual map of known difficulty.

Both languages embed words of one shared latent space of *concepts*:

1. **Concepts** ``h`` (unit vectors) around cluster centres. Concepts both languages name (``overlap``) sit in shared
   clusters; each language's own concepts sit in clusters only that language has (language-specific clusters).
   ``spectrum > 0`` scales latent dimension ``j`` by ``(j + 1) ** -spectrum`` before the concepts are renormalised:
   the point clouds then have a decaying principal spectrum, as real embeddings do, instead of a round one.
2. **Frequencies**: each concept has a Zipf frequency; each language perturbs it (``rank_noise``, log scale), so the
   frequency ranks differ across languages. Files list words by their own language's frequency, as real ``.vec`` do.
3. **Source vectors** ``x = h + s(rank) e``; **target vectors** ``z = warp(h) W + s(rank) e`` with ``W`` a random
   orthogonal matrix (the planted map) and ``e ~ N(0, I/dim)``. Noise grows with frequency rank:
   ``s(rank) = noise * (0.5 + log(1 + rank) / log(1 + n_words))``, so rare words are noisier.
4. **Non-isomorphism**: ``warp(h) = unit((1 - warp) h + warp unit(sin(3 A h)))`` with a fixed random Gaussian ``A``:
   a smooth map that keeps close concepts close but bends the space so that no linear map fits it (``sin`` is not
   monotone, so unlike ``tanh``/``sign`` it does not preserve angles). ``warp = 0`` keeps the spaces isomorphic
   (``z = x W`` exactly when ``noise = 0``); ``warp = 1`` leaves nothing for a linear map to recover.
5. **Dictionaries**: the ``n_train`` most frequent source words with a translation (like xling-eval's frequency-based
   dictionaries) and ``n_test`` other translated source words at random. A ``synonyms`` share of translated concepts
   has a second target word (two gold translations); an ``identical`` share is spelled the same in both languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xling.errors import XlingError

#: Rows generated at a time (bounds the temporary memory of large simulations).
_CHUNK = 16384


@dataclass
class SimulatedPair:
    """Two embedding spaces (rows in frequency order), their dictionaries and the planted truth."""

    src_words: list[str]
    src_vectors: np.ndarray
    tgt_words: list[str]
    tgt_vectors: np.ndarray
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]
    mapping: np.ndarray  # planted orthogonal W: with warp = 0, target rows = source rows @ W + noise
    params: dict = field(default_factory=dict)
    # the planted truth behind each row (not written by ``write_pair``; downstream simulation reads it)
    src_concepts: np.ndarray | None = None  # concept of each source row
    tgt_concepts: np.ndarray | None = None  # concept of each target row (a second gold word shares its concept)
    latent: np.ndarray | None = None  # unit concept vectors h, one row per concept
    concept_clusters: np.ndarray | None = None  # cluster of each concept (shared clusters first)
    n_shared: int = 0  # concepts 0 .. n_shared - 1 are named in both languages


def _unit(x: np.ndarray) -> np.ndarray:
    """Unit rows of the latent space, written apart from ``xling.cle.normalize.unit_rows`` on purpose: the simulated
    spaces, and every number measured on them (README, tests), depend on this exact rounding."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def simulate_pair(
    n_words: int = 20000,
    dim: int = 300,
    noise: float = 0.3,
    warp: float = 0.0,
    overlap: float = 0.9,
    seed: int = 0,
    *,
    n_train: int = 5000,
    n_test: int = 2000,
    n_clusters: int = 100,
    lang_clusters: int = 20,
    cluster_spread: float = 1.0,
    zipf: float = 1.0,
    rank_noise: float = 1.0,
    synonyms: float = 0.05,
    identical: float = 0.0,
    spectrum: float = 0.0,
) -> SimulatedPair:
    """Simulate a source and a target space of ``n_words`` words each, ``dim`` dimensions, with a planted map.

    ``noise``: noise scale (relative to unit concepts); ``warp`` in [0, 1]: non-isomorphism; ``overlap`` in (0, 1]:
    share of each vocabulary whose concept the other language names too; ``cluster_spread``: spread of concepts around
    their cluster centre (smaller = tighter, harder clusters); ``zipf``: Zipf exponent; ``rank_noise``: how much the
    two languages' frequency ranks disagree; ``spectrum``: decay of the latent dimensions' scales (0: round point
    clouds). Deterministic for a given ``seed``.
    """
    _validate(n_words, dim, noise, warp, overlap, n_train, n_test, synonyms, identical, spectrum)
    rng = np.random.default_rng(seed)
    n_shared = int(round(overlap * n_words))
    n_syn = int(round(synonyms * n_shared))
    n_src_own = n_words - n_shared
    n_tgt_own = max(0, n_words - n_shared - n_syn)
    n_syn = min(n_syn, n_words - n_shared - n_tgt_own)
    if n_train + n_test > n_shared:
        raise XlingError(
            f"n_train + n_test = {n_train + n_test} exceeds the {n_shared} translated words "
            f"(overlap {overlap} x n_words {n_words}); lower them or raise overlap"
        )

    # 1. concepts: shared ones, then source-only, then target-only, each around its own clusters
    centres = _unit(rng.standard_normal((n_clusters + 2 * lang_clusters, dim))).astype(np.float32)
    groups = [
        (n_shared, 0, n_clusters),
        (n_src_own, n_clusters, lang_clusters),
        (n_tgt_own, n_clusters + lang_clusters, lang_clusters),
    ]
    n_concepts = n_shared + n_src_own + n_tgt_own
    latent = np.empty((n_concepts, dim), dtype=np.float32)
    concept_clusters = np.empty(n_concepts, dtype=np.int64)
    row = 0
    for size, first, count in groups:
        for i, j in _chunks(size):
            which = first + rng.integers(0, count, size=j - i)
            spread = cluster_spread * rng.standard_normal((j - i, dim)).astype(np.float32) / np.sqrt(dim)
            latent[row + i : row + j] = _unit(centres[which] + spread)
            concept_clusters[row + i : row + j] = which
        row += size
    if spectrum > 0:  # a decaying principal spectrum (draws no random numbers: other pairs stay as they were)
        scales = (np.arange(1, dim + 1) ** -spectrum).astype(np.float32)
        for i, j in _chunks(n_concepts):
            latent[i:j] = _unit(latent[i:j] * scales)

    # 2. frequencies: a shared Zipf base, perturbed per language
    base = -zipf * np.log1p(rng.permutation(n_concepts)).astype(np.float64)
    src_concepts = np.arange(n_shared + n_src_own)
    tgt_concepts = np.concatenate([np.arange(n_shared), np.arange(n_shared + n_src_own, n_concepts)])
    syn_of = rng.choice(n_shared, size=n_syn, replace=False)  # shared concepts with a second target word
    tgt_entries = np.concatenate([tgt_concepts, syn_of])
    src_order = src_concepts[
        np.argsort(-(base[src_concepts] + rank_noise * rng.standard_normal(len(src_concepts))), kind="stable")
    ]
    tgt_perm = np.argsort(-(base[tgt_entries] + rank_noise * rng.standard_normal(len(tgt_entries))), kind="stable")

    # 3-4. vectors: the planted map and warp, noise growing with rank
    mapping = _orthogonal(rng, dim)
    warp_matrix = rng.standard_normal((dim, dim)).astype(np.float32)
    src_vectors = _noisy(latent, src_order, noise, rng)
    tgt_vectors = _noisy(latent, tgt_entries[tgt_perm], noise, rng, warp=warp, warp_matrix=warp_matrix, mapping=mapping)

    # words: the same spelling for an `identical` share of the shared concepts
    same = np.zeros(n_concepts, dtype=bool)
    same[rng.choice(n_shared, size=int(round(identical * n_shared)), replace=False)] = True
    src_words = [f"w{c}" if same[c] else f"s{c}" for c in src_order.tolist()]
    is_syn = np.zeros(len(tgt_entries), dtype=bool)
    is_syn[len(tgt_concepts) :] = True
    tgt_words = [
        (f"t{c}_2" if syn else f"w{c}" if same[c] else f"t{c}")
        for c, syn in zip(tgt_entries[tgt_perm].tolist(), is_syn[tgt_perm].tolist())
    ]

    # 5. dictionaries: frequent translated source words for training, others at random for testing
    translated = src_order[src_order < n_shared]
    train_concepts = translated[:n_train]
    test_concepts = np.sort(rng.choice(translated[n_train:], size=n_test, replace=False))
    has_syn = np.zeros(n_concepts, dtype=bool)
    has_syn[syn_of] = True

    def lines(concepts: np.ndarray) -> list[tuple[str, str]]:
        out = []
        for c in concepts.tolist():
            src = f"w{c}" if same[c] else f"s{c}"
            out.append((src, f"w{c}" if same[c] else f"t{c}"))
            if has_syn[c]:
                out.append((src, f"t{c}_2"))
        return out

    params = dict(
        n_words=n_words,
        dim=dim,
        noise=noise,
        warp=warp,
        overlap=overlap,
        seed=seed,
        n_train=n_train,
        n_test=n_test,
        n_clusters=n_clusters,
        lang_clusters=lang_clusters,
        cluster_spread=cluster_spread,
        zipf=zipf,
        rank_noise=rank_noise,
        synonyms=synonyms,
        identical=identical,
        spectrum=spectrum,
    )
    return SimulatedPair(
        src_words,
        src_vectors,
        tgt_words,
        tgt_vectors,
        lines(train_concepts),
        lines(test_concepts),
        mapping,
        params,
        src_concepts=src_order,
        tgt_concepts=tgt_entries[tgt_perm],
        latent=latent,
        concept_clusters=concept_clusters,
        n_shared=n_shared,
    )


def _chunks(n: int):
    for i in range(0, n, _CHUNK):
        yield i, min(n, i + _CHUNK)


def _noisy(
    latent: np.ndarray,
    concepts: np.ndarray,
    noise: float,
    rng: np.random.Generator,
    *,
    warp: float = 0.0,
    warp_matrix: np.ndarray | None = None,
    mapping: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ``warp(h) W + s(rank) e`` for the given concepts, in that (frequency) order."""
    n, dim = len(concepts), latent.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for i, j in _chunks(n):
        h = latent[concepts[i:j]]
        if warp > 0:
            bent = _unit(np.sin(3.0 * (h @ warp_matrix.T)))
            h = _unit((1.0 - warp) * h + warp * bent)
        if mapping is not None:
            h = h @ mapping
        scale = noise * (0.5 + np.log1p(np.arange(i, j)) / np.log1p(n))
        out[i:j] = h + (scale[:, None] * rng.standard_normal((j - i, dim)) / np.sqrt(dim)).astype(np.float32)
    return out


def _validate(
    n_words: int,
    dim: int,
    noise: float,
    warp: float,
    overlap: float,
    n_train: int,
    n_test: int,
    synonyms: float,
    identical: float,
    spectrum: float,
) -> None:
    checks = [
        ("n_words", n_words, n_words >= 2, "at least 2"),
        ("dim", dim, dim >= 2, "at least 2"),
        ("noise", noise, noise >= 0, ">= 0"),
        ("warp", warp, 0 <= warp <= 1, "in [0, 1]"),
        ("overlap", overlap, 0 < overlap <= 1, "in (0, 1]"),
        ("n_train", n_train, n_train >= 0, ">= 0"),
        ("n_test", n_test, n_test >= 0, ">= 0"),
        ("synonyms", synonyms, 0 <= synonyms <= 1, "in [0, 1]"),
        ("identical", identical, 0 <= identical <= 1, "in [0, 1]"),
        ("spectrum", spectrum, spectrum >= 0, ">= 0"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise XlingError(f"simulate: {name} must be {expected}, found {value}")


def write_pair(
    pair: SimulatedPair, out_dir: str | Path, *, precision: int = 6, downstream: dict | None = None
) -> dict[str, Path]:
    """Write ``src.vec``, ``tgt.vec``, ``train.tsv``, ``test.tsv``, ``mapping.npy`` and ``run.json`` atomically.

    ``downstream``: also simulate CLDC, XNLI and CLIR data from the pair's concepts into ``downstream/`` (keyword
    options of ``xling.cle.downstream.simulate.simulate_downstream``; ``{}`` for the defaults).
    """
    from xling.cle.dictionaries import write_dictionary
    from xling.cle.vectors import write_vec
    from xling.io import atomic_dir
    from xling.provenance import write_run_record

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        write_vec(tmp / "src.vec", pair.src_words, pair.src_vectors, precision=precision)
        write_vec(tmp / "tgt.vec", pair.tgt_words, pair.tgt_vectors, precision=precision)
        write_dictionary(tmp / "train.tsv", pair.train)
        write_dictionary(tmp / "test.tsv", pair.test)
        np.save(tmp / "mapping.npy", pair.mapping, allow_pickle=False)
        write_run_record(tmp, config=pair.params, seed=pair.params.get("seed"))
        if downstream is not None:
            from xling.cle.downstream.simulate import simulate_downstream, write_downstream

            write_downstream(simulate_downstream(pair, **downstream), tmp / "downstream")
    names = ("src.vec", "tgt.vec", "train.tsv", "test.tsv", "mapping.npy") + (
        ("downstream",) if downstream is not None else ()
    )
    return {name: out_dir / name for name in names}
