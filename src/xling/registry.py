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
        return Literal[self.names()]  # type: ignore[valid-type]


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
