"""One mapping run on embedding files: seed dictionary → fit → mapped spaces, written atomically or evaluated.

Used by ``xling cle map``, ``xling cle run`` and the grid. The seed dictionary follows the method
(``xling.cle.mappers.seed_of``): a training dictionary looked up in the two vocabularies, identically spelled
words, or none at all.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xling.cle.dictionaries import Dictionary, lookup
from xling.cle.mappers import Mapper, identical_pairs, make_mapper, seed_of
from xling.cle.protocol import Protocol
from xling.cle.vectors import Embeddings
from xling.errors import XlingError


@dataclass
class Mapped:
    """Both spaces after mapping, the fitted estimator, and what the run did (for ``run.json``)."""

    method: str
    mapper: Mapper
    src: Embeddings
    tgt: Embeddings
    info: dict[str, Any] = field(default_factory=dict)


def seed_pairs(
    method: str, src: Embeddings, tgt: Embeddings, train: Dictionary | None
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The seed pairs (rows) method ``method`` starts from, and a note of where they came from."""
    seed = seed_of(method)
    if seed == "dictionary":
        if train is None:
            raise XlingError(f"method {method!r} needs a training dictionary (--train-dict)")
        found = lookup(train, src.index, tgt.index)
        if len(found.src_rows) == 0:
            raise XlingError(
                f"{train.source}: no training line has both words in the vocabularies "
                f"({found.n_lines} lines; check case and --max-vocab)"
            )
        return np.c_[found.src_rows, found.tgt_rows], {
            "seed": "dictionary",
            "train_dict": train.source,
            "train_lines": found.n_lines,
            "train_pairs": int(len(found.src_rows)),
            "train_coverage": found.line_coverage,
        }
    if seed == "identical":
        pairs = identical_pairs(src.words, tgt.words)
        if len(pairs) == 0:
            raise XlingError(f"method {method!r}: the two vocabularies share no identically spelled word")
        return pairs, {"seed": "identical", "train_pairs": int(len(pairs))}
    return None, {"seed": "none", **({"train_dict_ignored": train.source} if train is not None else {})}


def fitted_info(mapper: Mapper) -> dict[str, Any]:
    """What the estimator learned besides its maps: iterations, objective, how it ended, dictionary sizes."""
    keys = (
        "n_pairs_",
        "n_iter_",
        "objective_",
        "converged_",
        "status_",
        "criterion_",
        "selected_",
        "sizes_",
        "device_",
        "step_seconds_",
        "expected_seconds_",
    )
    out = {k.rstrip("_"): getattr(mapper, k) for k in keys if hasattr(mapper, k)}
    if hasattr(mapper, "pairs_"):
        out["final_pairs"] = int(len(mapper.pairs_))
    return out


def map_embeddings(
    method: str,
    src: Embeddings,
    tgt: Embeddings,
    train: Dictionary | None = None,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    verbose: bool = False,
    protocol: Protocol | None = None,
    overwrite: bool = False,
) -> Mapped:
    """Fit method ``method`` on the two spaces and return both mapped spaces.

    ``protocol``: its method parameters apply under ``params`` (e.g. PROC-B's release bootstrap for
    ``glavas2019``). ``overwrite=True`` normalises and maps ``src.vectors``/``tgt.vectors`` in place (no second copy
    of either space; the inputs are gone afterwards), as ``xling cle run`` does.
    """
    params = {**(protocol.params_for(method) if protocol is not None else {}), **(params or {})}
    mapper = make_mapper(method, seed=seed, verbose=verbose, **params)
    pairs, info = seed_pairs(method, src, tgt, train)
    fit_params = {}
    if "train_lines" in info and "n_seed_lines" in inspect.signature(mapper.fit).parameters:
        fit_params["n_seed_lines"] = info["train_lines"]
    start = time.perf_counter()
    Xm, Zm = mapper.fit_transform(src.vectors, tgt.vectors, pairs, overwrite=overwrite, **fit_params)
    info = {
        "method": method,
        "params": mapper.get_params(),
        **info,
        **fitted_info(mapper),
        "fit_seconds": round(time.perf_counter() - start, 3),
    }
    if protocol is not None:
        info["protocol"] = protocol.name
    return Mapped(method, mapper, Embeddings(src.words, Xm), Embeddings(tgt.words, Zm), info)


def write_mapped(
    mapped: Mapped,
    out_dir: str | Path,
    *,
    config: dict[str, Any],
    seed: int,
    vectors: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``src.vec``/``tgt.vec`` (mapped, float32 exactly), ``W_src.npy``/``W_tgt.npy`` and ``run.json``
    atomically."""
    from xling.cle.vectors import write_vec
    from xling.io import atomic_dir
    from xling.provenance import write_run_record

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if vectors:  # 9 significant digits: every float32 reads back exactly, so a later command sees this map
            write_vec(tmp / "src.vec", mapped.src.words, mapped.src.vectors, precision=9)
            write_vec(tmp / "tgt.vec", mapped.tgt.words, mapped.tgt.vectors, precision=9)
        np.save(tmp / "W_src.npy", mapped.mapper.W_src_, allow_pickle=False)
        np.save(tmp / "W_tgt.npy", mapped.mapper.W_tgt_, allow_pickle=False)
        if extra is not None:
            (tmp / "result.json").write_text(json.dumps(extra, indent=2, default=str) + "\n")
        write_run_record(tmp, config=config, seed=seed, mapping=mapped.info)
    return out_dir


def load_for_mapping(
    method: str, src: Path, tgt: Path, train_dict: Path | None, conv: Protocol, cache: bool
) -> tuple[Dictionary | None, Embeddings, Embeddings, dict[str, Any]]:
    """What mapping ``method`` reads, as ``conv`` reads it: the training dictionary (a method that needs one and
    has none fails first, before any vectors are read), both vector files, and the options they were read with."""
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.vectors import read_vectors

    if seed_of(method) == "dictionary" and train_dict is None:
        raise XlingError(f"method {method!r} needs a training dictionary (--train-dict)")
    train = read_dictionary(train_dict, **conv.dictionary_options()) if train_dict is not None else None
    options = {**conv.vector_options(), "cache": cache}
    return train, read_vectors(src, **options), read_vectors(tgt, **options), options


def describe_fit(info: dict[str, Any]) -> str:
    """One line about a fit (``Mapped.info``): seed pairs, iterations, how it ended, criterion, time."""
    parts = []
    if "train_pairs" in info:
        parts.append(f"{info['train_pairs']} seed pairs ({info['seed']})")
    if "n_iter" in info:
        ended = info.get("status", "converged" if info.get("converged", True) else "max_iter")
        parts.append(
            f"{info['n_iter']} iterations"
            + {"converged": "", "max_iter": ", stopped at max_iter"}.get(ended, f", {ended}")
        )
    if "criterion" in info:
        parts.append(f"mean cosine {info['criterion']:.4f} ({info['selected']})")
    if "sizes" in info:
        parts.append("dictionary sizes " + " → ".join(str(s) for s in info["sizes"]))
    parts.append(f"{info['fit_seconds']:.1f} s")
    return ", ".join(parts)
