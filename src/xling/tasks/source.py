"""What xling needs of a task, whatever its source (``xling.tasks.registry.resolve_task`` picks the source)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from xling.errors import XlingError
from xling.tasks.items import MCItem, check_aligned

SPLITS = ("train", "test")


class TaskSource(ABC):
    """What xling needs of a task, whatever its source. Subclasses set ``norm_metric`` and implement ``languages``
    and ``_load``; ``is_prepared`` and ``run_record`` have defaults for sources that need no download."""

    #: The metric a task's ``score_norm`` uses, as the release's ``parse_lm_eval_output.py`` picks it: ``acc_norm``
    #: where the task reports it, else ``acc``.
    norm_metric: str = "acc_norm"

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def languages(self) -> list[str]:
        """The languages the task offers."""

    @abstractmethod
    def _load(self, language: str, split: str) -> list[MCItem]:
        """The items as the source gives them (``items`` checks them)."""

    def items(self, language: str, split: str) -> list[MCItem]:
        """Items in ``language`` and ``split`` (``train`` or ``test``), ids checked unique."""
        if split not in SPLITS:
            raise XlingError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        items = self._load(language, split)
        check_aligned({language: items}, self.name)
        return items

    def is_prepared(self, language: str, split: str) -> bool:
        """Whether loading needs no download (a missing local file is reported when it is loaded)."""
        return True

    @classmethod
    def run_record(cls, names: Sequence[str], benchmark_format: str) -> dict[str, Any]:
        """What a scoring run records about the evaluation format of the tasks of this source it scored."""
        return {}
