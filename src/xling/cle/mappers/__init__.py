"""Mapping methods for cross-lingual word embeddings, as scikit-learn style estimators.

The methods the CLI and the grid accept are the entries of ``xling.registry.MAPPERS``; ``make_mapper(name,
**params)`` builds one. Each entry also says where its seed dictionary comes from (``seed_of``): a training
dictionary, identical strings, or nothing (fully unsupervised).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
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
from xling.registry import MAPPERS

Seed = Literal["dictionary", "identical", "none"]


def check_method(name: str) -> str:
    """The name if it is a registered method (``xling.registry.MAPPERS``), else ``XlingError`` listing them."""
    return MAPPERS.check(name)


def seed_of(name: str) -> Seed:
    """Where method ``name`` takes its seed dictionary from."""
    return MAPPERS.meta(name)["seed"]


def mapper_class(name: str) -> type[Mapper]:
    """The estimator class of method ``name``."""
    return MAPPERS.load(name)


def make_mapper(name: str, *, seed: int | None = None, verbose: bool = False, **params: Any) -> Mapper:
    """A fresh estimator for method ``name``; ``params`` override its defaults (unknown ones → ``XlingError``).

    ``seed`` and ``verbose`` go to the methods whose constructor has them (the iterative and stochastic ones) and
    are ignored by the others.
    """
    cls, fixed = mapper_class(name), MAPPERS.meta(name).get("fixed", {})
    accepted = inspect.signature(cls).parameters
    if "steps" in accepted:
        params = _multistep(name, params)
    for key in params:
        if key in fixed or key.startswith("_") or key not in accepted:
            raise XlingError(f"method {name!r}: unknown parameter {key!r}")
    check_param_types(name, cls, params)
    if "verbose" in accepted:
        params = {"verbose": verbose, **params}
    if "seed" in accepted and seed is not None:
        params = {**params, "seed": seed}
    return cls(**{**params, **fixed})


def check_param_types(name: str, cls: type, params: dict[str, Any]) -> None:
    """``XlingError`` for a parameter whose value does not fit its type in ``cls`` (a constructor, or a dataclass
    such as ``MultiStep``): ``limit=lots`` where an integer is expected, an unknown ``normalize`` step. Checked when
    the estimator is made, before any vectors are read; scalar types (numbers, booleans, strings, choices, optional
    ones) and normalisation steps are checked, the relations between values are left to ``fit``."""
    from pydantic import TypeAdapter, ValidationError

    from xling.cle.normalize import check_steps

    hints = typing.get_type_hints(cls if dataclasses.is_dataclass(cls) else cls.__init__)
    for key, value in params.items():
        hint = hints.get(key)
        if key == "normalize":
            check_steps(value, f"method {name!r}: normalize")
        elif isinstance(value, MultiStep):
            check_param_types(name, MultiStep, dataclasses.asdict(value))
        elif hint is not None and _scalar(hint):
            try:
                TypeAdapter(hint).validate_python(value)
            except ValidationError:
                raise XlingError(f"method {name!r}: {key}: expected {_describe(hint)}, found {value!r}") from None


def _describe(hint: Any) -> str:
    """A type as a user reads it: ``int``, ``one of 'a', 'b'``, ``int or None``."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _scalar(hint: Any) -> bool:
    """Whether ``hint`` is a number, boolean, string or choice type (or an optional one)."""
    if hint in (int, float, bool, str, type(None)):
        return True
    if typing.get_origin(hint) is Literal:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_scalar(h) for h in typing.get_args(hint))
    return False


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
    "MUSE",
    "Mapper",
    "Procrustes",
    "ProcrustesBootstrap",
    "RCSLS",
    "VecMapSelfLearning",
    "VecMapSupervised",
    "check_method",
    "check_param_types",
    "identical_pairs",
    "make_mapper",
    "mapper_class",
    "seed_of",
]
