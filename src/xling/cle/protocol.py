"""Named BLI protocols: every reading, counting and retrieval convention of a published evaluation, as one object.

A BLI number depends on choices a paper rarely spells out: how many rows of each vectors file are read, whether
vocabularies and dictionaries are lowercased, whether a repeated dictionary line counts twice, which retrieval, which
counting unit, what happens to out-of-vocabulary lines. A ``Protocol`` fixes all of them, so that
``xling cle run|bli|map --protocol NAME`` (and ``protocol: NAME`` in a ``xling cle grid`` spec) reproduces a
reference's numbers; an option given explicitly still wins, and the run record says which.

- ``glavas2019``: xling-eval as the paper ran it (``code/util.py``, ``code/eval.py``, ``code/sims.py``,
  ``code/projection.py`` of ``codogogo/xling-eval``): the first 200,000 rows of each vectors file, words
  lowercased with the first (most frequent) casing's vector kept, rows of the wrong length skipped; dictionaries
  lowercased, every line an item, repeated lines counted; plain cosine nearest neighbours; MRR (= the paper's MAP,
  one gold per line) and P@k over the in-vocabulary lines, OOV lines skipped (coverage reported); PROC-B as the
  release's ``project_proc_bootstrap_reproduce`` (see ``xling.cle.mappers.bootstrap``).
- ``vecmap``: vecmap's ``eval_translation.py`` after ``map_embeddings.py``: 200,000 rows, case kept, every source
  word an item (correct when any gold is retrieved), OOV skipped, CSLS (k = 10).
- ``muse``: MUSE's ``get_word_translation_accuracy`` with ``csls_knn_10``: 200,000 distinct lowercased words (first
  wins), rows of the wrong length skipped, every source word an item, OOV skipped.

Two details of xling-eval are not reproduced, both without effect on its published data: its loader leaves the first
row of a header-less file un-lowercased, and with a ``count dim`` header its ``topn`` counts the header as a row.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from xling.errors import XlingError, XlingNote

Retrieval = Literal["nn", "csls", "isf"]
Count = Literal["rows", "words"]


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (see the module docstring).

    ``vector_options()``, ``dictionary_options()`` and ``bli_options()`` are the keyword arguments of
    ``read_vectors``, ``read_dictionary`` and ``xling.cle.bli.evaluate``; ``params_for(method)`` the method
    parameters it implies. ``overrides`` lists the options a run changed against the named protocol.
    """

    name: str
    reference: str
    max_vocab: int | None  # vectors read per file (None or 0: all)
    count: Count  # what max_vocab counts: rows of the file or distinct (kept) words
    case: Literal["keep", "lower"]
    repeats: Literal["drop", "keep"]
    skip_bad: bool  # rows of the wrong length are skipped (True) or an error (False)
    retrieval: Retrieval
    convention: Literal["line", "source"]
    oov: Literal["skip", "wrong"]
    csls_k: int = 10
    isf_beta: float = 30.0
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def vector_options(self) -> dict[str, Any]:
        """Keyword arguments of ``read_vectors`` (without ``cache``)."""
        key = "max_rows" if self.count == "rows" else "max_vocab"
        return {key: self.max_vocab or None, "lowercase": self.case == "lower", "skip_bad": self.skip_bad}

    def dictionary_options(self) -> dict[str, Any]:
        """Keyword arguments of ``read_dictionary``."""
        return {"case": self.case, "repeats": self.repeats}

    def bli_options(self) -> dict[str, Any]:
        """Keyword arguments of ``xling.cle.bli.evaluate``."""
        return {
            "retrieval_method": self.retrieval,
            "convention": self.convention,
            "oov": self.oov,
            "csls_k": self.csls_k,
            "isf_beta": self.isf_beta,
        }

    def params_for(self, method: str) -> dict[str, Any]:
        """Method parameters this protocol implies (e.g. PROC-B's release bootstrap for ``glavas2019``)."""
        return dict(self.method_params.get(method, {}))

    def record(self) -> dict[str, Any]:
        """Everything this protocol fixes, for run records."""
        return asdict(self)


#: xling's own defaults (no ``--protocol``): distinct words, case kept, repeated lines dropped.
XLING = Protocol(
    name="xling",
    reference="xling defaults",
    max_vocab=200000,
    count="words",
    case="keep",
    repeats="drop",
    skip_bad=False,
    retrieval="nn",
    convention="line",
    oov="skip",
)

PROTOCOLS: dict[str, Protocol] = {
    "glavas2019": Protocol(
        name="glavas2019",
        reference="Glavaš et al. (2019), codogogo/xling-eval",
        max_vocab=200000,
        count="rows",
        case="lower",
        repeats="keep",
        skip_bad=True,
        retrieval="nn",
        convention="line",
        oov="skip",
        method_params={"proc-b": {"seed_duplicates": "release"}, "proc-b-iterative": {"seed_duplicates": "release"}},
    ),
    "vecmap": Protocol(
        name="vecmap",
        reference="Artetxe et al., artetxem/vecmap eval_translation.py --retrieval csls",
        max_vocab=200000,
        count="rows",
        case="keep",
        repeats="drop",
        skip_bad=False,
        retrieval="csls",
        convention="source",
        oov="skip",
    ),
    "muse": Protocol(
        name="muse",
        reference="Conneau et al. (2018), facebookresearch/MUSE get_word_translation_accuracy",
        max_vocab=200000,
        count="words",
        case="lower",
        repeats="drop",
        skip_bad=True,
        retrieval="csls",
        convention="source",
        oov="skip",
    ),
}

#: The options a run may set explicitly, on top of a protocol.
OPTIONS = ("max_vocab", "case", "retrieval", "convention", "oov", "csls_k", "isf_beta", "skip_bad")


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``, or ``XlingError`` listing the known ones."""
    if name not in PROTOCOLS:
        raise XlingError(f"unknown BLI protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def resolve(name: str | None, defaults: dict[str, Any] | None = None, **given: Any) -> Protocol:
    """The conventions of one run: protocol ``name`` (None: xling's defaults, updated by ``defaults``), with every
    option in ``given`` that is not None replacing the protocol's; for a named protocol the changed ones are
    recorded in ``overrides``."""
    unknown = set(given) - set(OPTIONS)
    if unknown:
        raise XlingError(f"unknown BLI option(s) {sorted(unknown)}; expected some of {', '.join(OPTIONS)}")
    base = get_protocol(name) if name is not None else replace(XLING, **(defaults or {}))
    changes = {k: v for k, v in given.items() if v is not None}
    overrides = {k: v for k, v in changes.items() if getattr(base, k) != v} if name is not None else {}
    if overrides:
        warnings.warn(
            f"protocol {name} with " + ", ".join(f"{k}={v}" for k, v in overrides.items()) + " (not the protocol's)",
            XlingNote,
            stacklevel=2,
        )
    return replace(base, **changes, overrides=overrides)
