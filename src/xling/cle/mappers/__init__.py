"""Mapping methods for cross-lingual word embeddings, as scikit-learn style estimators.

``METHODS`` names every method the CLI and the grid accept; ``make_mapper(name, **params)`` builds one.
Each entry also says where its seed dictionary comes from (``SEEDS``): a training dictionary, identical
strings, or nothing (fully unsupervised).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Literal

from xling.cle.mappers.base import Mapper
from xling.cle.mappers.bootstrap import ProcrustesBootstrap
from xling.cle.mappers.cca import CCA, CCAXlingEval
from xling.cle.mappers.dlv import LatentVariableMatching
from xling.cle.mappers.gwa import GromovWasserstein
from xling.cle.mappers.icp import ICP
from xling.cle.mappers.muse import MUSE
from xling.cle.mappers.procrustes import Procrustes
from xling.cle.mappers.rcsls import RCSLS
from xling.cle.mappers.selflearning import VecMapSelfLearning, identical_pairs
from xling.cle.mappers.vecmap import MultiStep, VecMapSupervised
from xling.errors import XlingError

Seed = Literal["dictionary", "identical", "none"]

#: method name -> (estimator class, fixed constructor arguments, where the seed dictionary comes from)
METHODS: dict[str, tuple[type[Mapper], dict[str, Any], Seed]] = {
    "proc": (Procrustes, {}, "dictionary"),
    "proc-b": (ProcrustesBootstrap, {"variant": "paper"}, "dictionary"),
    "proc-b-iterative": (ProcrustesBootstrap, {"variant": "iterative"}, "dictionary"),
    "cca": (CCA, {}, "dictionary"),
    "cca-xlingeval": (CCAXlingEval, {}, "dictionary"),
    "vecmap-sup": (VecMapSupervised, {}, "dictionary"),
    "vecmap-semi": (VecMapSelfLearning, {"init": "pairs"}, "dictionary"),
    "vecmap-identical": (VecMapSelfLearning, {"init": "pairs"}, "identical"),
    "vecmap-unsup": (VecMapSelfLearning, {"init": "unsupervised"}, "none"),
    "rcsls": (RCSLS, {}, "dictionary"),
    "dlv": (LatentVariableMatching, {}, "dictionary"),
    "muse": (MUSE, {}, "none"),
    "icp": (ICP, {}, "none"),
    "gwa": (GromovWasserstein, {}, "none"),
}


def check_method(name: str) -> str:
    """The name if it is a known method, else ``XlingError`` listing the known ones."""
    if name not in METHODS:
        raise XlingError(f"unknown mapping method {name!r}; expected one of {', '.join(METHODS)}")
    return name


def seed_of(name: str) -> Seed:
    """Where method ``name`` takes its seed dictionary from."""
    return METHODS[check_method(name)][2]


def make_mapper(name: str, *, seed: int | None = None, verbose: bool = False, **params: Any) -> Mapper:
    """A fresh estimator for method ``name``; ``params`` override its defaults (unknown ones → ``XlingError``).

    ``seed`` and ``verbose`` go to the methods whose constructor has them (the iterative and stochastic ones) and
    are ignored by the others.
    """
    cls, fixed, _ = METHODS[check_method(name)]
    accepted = inspect.signature(cls).parameters
    if "steps" in accepted:
        params = _multistep(name, params)
    for key in params:
        if key in fixed or key.startswith("_") or key not in accepted:
            raise XlingError(f"method {name!r}: unknown parameter {key!r}")
    if "verbose" in accepted:
        params = {"verbose": verbose, **params}
    if "seed" in accepted and seed is not None:
        params = {**params, "seed": seed}
    return cls(**{**params, **fixed})


def _multistep(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The multi-step options given one by one (``dim_reduction=100``) or as ``steps: {...}``, as one ``MultiStep``."""
    fields = {f.name for f in dataclasses.fields(MultiStep)}
    flat = {k: params[k] for k in params if k in fields}
    steps = params.get("steps", {})
    if not flat and not isinstance(steps, dict):
        return params
    if not isinstance(steps, dict) or set(steps) - fields:
        raise XlingError(f"method {name!r}: steps: expected a mapping of {', '.join(sorted(fields))}, found {steps!r}")
    rest = {k: v for k, v in params.items() if k not in fields and k != "steps"}
    return {**rest, "steps": MultiStep(**{**steps, **flat})}


__all__ = [
    "CCA",
    "CCAXlingEval",
    "GromovWasserstein",
    "ICP",
    "LatentVariableMatching",
    "METHODS",
    "MUSE",
    "Mapper",
    "Procrustes",
    "ProcrustesBootstrap",
    "RCSLS",
    "VecMapSelfLearning",
    "VecMapSupervised",
    "check_method",
    "identical_pairs",
    "make_mapper",
    "seed_of",
]
