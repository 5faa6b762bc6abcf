"""What a kind of grid is (``GridKind``), and what running one gives back (``Study``).

Every study is a grid of units on the one engine (``xling.grid``). A grid kind says what its spec is, which units
it makes, how they run, which results tables its store gives, and how they are analysed and reported; ``run_study``
(``xling.studies.run``) does the rest the same way for every kind. The kinds are registered in
``xling.registry.GRID_KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from xling.config import Spec
from xling.grid.engine import StageStatus, Unit
from xling.grid.jobs import Workload
from xling.grid.store import Store


@dataclass
class Study:
    """A finished (or partly finished) study: the status of its units, its results tables (where they were written),
    its analysis and report."""

    spec: Any
    kind: str
    status: list[StageStatus]
    tables: dict[str, pd.DataFrame]
    written: dict[str, Path]
    analysis: Any = None
    report: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        """Units that failed for good."""
        return sum(len(st.failed) for st in self.status)


class GridKind(Protocol):
    """One kind of grid: the transfer grid of the PEFT protocol, the CLE grid, or one to come."""

    #: The kind's name (``kind:`` in a spec; the registry's key).
    name: str
    #: The pydantic spec a YAML of this kind is validated as.
    spec_class: type[Spec]

    def detect(self, data: dict[str, Any]) -> bool:
        """Whether a spec mapping without ``kind:`` is of this kind (by its required fields)."""

    def resolve_paths(self, spec: Any, folder: Path) -> Any:
        """The spec with its relative input and output paths made relative to ``folder`` (the spec file's)."""

    def stages(self, spec: Any) -> list[str]:
        """The stages of its units, in order (for progress and status)."""

    def units(self, spec: Any) -> list[Unit]:
        """Every unit the spec asks for (or, for an adaptive grid, the units chosen so far)."""

    def job_shape(self, spec: Any) -> Workload:
        """How its units run: the work function, units per job, resources."""

    def more_units(self, spec: Any, store: Store, units: list[Unit]) -> list[Unit]:
        """Units to run next once ``units`` have run (an adaptive grid's next round); none for a fixed grid."""

    def results(self, spec: Any, store: Store, units: list[Unit]) -> dict[str, pd.DataFrame]:
        """The results tables of the finished units (a partial grid gives what it has), by name: each is written
        as ``OUTPUT/NAME.csv``."""

    def report(self, study: Study, out: Path) -> None:
        """Analyse ``study.tables`` and write the analysis and report under ``out`` (setting ``study.analysis``,
        ``study.report`` and ``study.notes``)."""

    def summary(self, spec: Any, store: Store) -> dict[str, Any]:
        """What ``xling grid plan`` shows: units per stage (``stages``: ``{name: {units, done}}``, ``done`` None
        where it cannot be known before the data are prepared) and what else the kind can say offline."""

    def show(self, study: Study, console: Any) -> None:
        """Print a finished study's results on the terminal."""

    def json_summary(self, study: Study) -> dict[str, Any]:
        """A finished study's results as the ``--json`` line has them."""
