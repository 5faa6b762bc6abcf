"""The plug-in families, each one registry: the only lists of names in xling.

A registry maps a name to ``"module:attribute"`` (and optional metadata) and imports the module only when an entry is
used, so listing the names (for validating a spec, for ``--help``'s choices) imports nothing heavy. Config fields and
CLI options take their choices from here (``choices()``); ``tests/test_cli_convention.py`` checks that every registry
and the CLI agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Literal

from xling.errors import XlingError


@dataclass(frozen=True)
class Entry:
    """One plug-in: where it lives and what its family needs to know of it without importing it."""

    name: str
    target: str
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """Named plug-ins of one family (``what`` names the family in error messages)."""

    def __init__(self, what: str, entries: list[Entry]) -> None:
        self.what = what
        self.entries = {e.name: e for e in entries}

    def names(self) -> tuple[str, ...]:
        """Every name, in registration order."""
        return tuple(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def check(self, name: str) -> str:
        """``name`` if registered, else one ``XlingError`` line listing the names."""
        if name not in self.entries:
            raise XlingError(f"unknown {self.what} {name!r}; expected one of {', '.join(self.entries)}")
        return name

    def meta(self, name: str) -> Mapping[str, Any]:
        """What the family records of ``name`` besides its target."""
        return self.entries[self.check(name)].meta

    def load(self, name: str) -> Any:
        """The registered object (a class or a function), its module imported now."""
        module, _, attr = self.entries[self.check(name)].target.partition(":")
        return getattr(import_module(module), attr)

    def choices(self) -> Any:
        """``Literal[names...]``: typed choices for a pydantic field or a typer option."""
        return choices(self.names())


def choices(names: tuple[str, ...]) -> Any:
    """``Literal[names...]``: typed choices for a pydantic field or a typer option."""
    return Literal[names]  # type: ignore[valid-type]


#: How a model is loaded, trained and scored (``xling.models.base.ModelKind``).
MODEL_KINDS = Registry(
    "model kind",
    [
        Entry("causal", "xling.models.causal:CausalKind"),
        Entry("encoder", "xling.models.encoder:EncoderKind"),
    ],
)

#: Kinds of grid a study can be (``xling.studies.base.GridKind``).
GRID_KINDS = Registry(
    "grid kind",
    [
        Entry("transfer", "xling.studies.transfer:KIND"),
        Entry("cle", "xling.studies.cle:KIND"),
    ],
)

#: Mapping methods for cross-lingual word embeddings (``xling.cle.mappers``, scikit-learn style estimators).
#: ``seed``: where the method's seed dictionary comes from (a training dictionary, identical strings, or nothing);
#: ``fixed``: constructor arguments the name fixes.
MAPPERS = Registry(
    "mapping method",
    [
        Entry("proc", "xling.cle.mappers.procrustes:Procrustes", {"seed": "dictionary"}),
        Entry(
            "proc-b",
            "xling.cle.mappers.bootstrap:ProcrustesBootstrap",
            {"seed": "dictionary", "fixed": {"variant": "paper"}},
        ),
        Entry(
            "proc-b-iterative",
            "xling.cle.mappers.bootstrap:ProcrustesBootstrap",
            {"seed": "dictionary", "fixed": {"variant": "iterative"}},
        ),
        Entry("cca", "xling.cle.mappers.cca:CCA", {"seed": "dictionary"}),
        Entry("cca-xlingeval", "xling.cle.mappers.cca:CCAXlingEval", {"seed": "dictionary"}),
        Entry("vecmap-sup", "xling.cle.mappers.vecmap:VecMapSupervised", {"seed": "dictionary"}),
        Entry(
            "vecmap-semi",
            "xling.cle.mappers.selflearning:VecMapSelfLearning",
            {"seed": "dictionary", "fixed": {"init": "pairs"}},
        ),
        Entry(
            "vecmap-identical",
            "xling.cle.mappers.selflearning:VecMapSelfLearning",
            {"seed": "identical", "fixed": {"init": "pairs"}},
        ),
        Entry(
            "vecmap-unsup",
            "xling.cle.mappers.selflearning:VecMapSelfLearning",
            {"seed": "none", "fixed": {"init": "unsupervised"}},
        ),
        Entry("rcsls", "xling.cle.mappers.rcsls:RCSLS", {"seed": "dictionary"}),
        Entry("dlv", "xling.cle.mappers.dlv:LatentVariableMatching", {"seed": "dictionary"}),
        Entry("muse", "xling.cle.mappers.muse:MUSE", {"seed": "none"}),
        Entry("icp", "xling.cle.mappers.icp:ICP", {"seed": "none"}),
        Entry("gwa", "xling.cle.mappers.gwa:GromovWasserstein", {"seed": "none"}),
    ],
)

#: Downstream tasks of CLE evaluation (``xling.cle.downstream``): each entry is the task's data loader;
#: ``metrics``: what the task reports, the headline first (the one the paper reports); ``seeded``: whether its models
#: draw random numbers (a retrieval model does not: one run whatever the seeds).
DOWNSTREAM_TASKS = Registry(
    "downstream task",
    [
        Entry(
            "cldc",
            "xling.cle.downstream.data:load_cldc",
            {"metrics": ("micro_f1", "accuracy", "macro_f1", "f1_positive"), "seeded": True},
        ),
        Entry("xnli", "xling.cle.downstream.data:load_xnli", {"metrics": ("accuracy", "macro_f1"), "seeded": True}),
        Entry("clir", "xling.cle.downstream.data:load_clir", {"metrics": ("map", "map_reference"), "seeded": False}),
    ],
)

#: Models of the downstream tasks: an estimator class or a ranking function whose keyword defaults are its
#: parameters and whose ``CHOICES`` say where each default comes from; ``task``: the task it serves (the first
#: registered for a task is its default).
DOWNSTREAM_MODELS = Registry(
    "downstream model",
    [
        Entry("cnn", "xling.cle.downstream.models:CNNClassifier", {"task": "cldc"}),
        Entry("mean", "xling.cle.downstream.models:MeanClassifier", {"task": "cldc"}),
        Entry("esim", "xling.cle.downstream.models:ESIMClassifier", {"task": "xnli"}),
        Entry("bwe-agg", "xling.cle.downstream.clir:bwe_agg", {"task": "clir"}),
        Entry("tbt-qt", "xling.cle.downstream.clir:tbt_qt", {"task": "clir"}),
    ],
)


def downstream_models(task: str) -> tuple[str, ...]:
    """The models registered for a downstream task, its default first."""
    return tuple(n for n in DOWNSTREAM_MODELS.names() if DOWNSTREAM_MODELS.meta(n)["task"] == task)


def downstream_metrics() -> tuple[str, ...]:
    """Every metric some downstream task reports, each once."""
    return tuple(dict.fromkeys(m for t in DOWNSTREAM_TASKS.names() for m in DOWNSTREAM_TASKS.meta(t)["metrics"]))
