"""The multiple-choice item every loader produces and every scorer and trainer consumes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xling.errors import XlingError


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice item of one task in one language.

    ``id`` is shared by the translations of the same item across languages (aligned ids).
    ``context`` is the question/prompt text; ``choices`` the answer options; ``gold`` the index of the
    correct one. ``fields`` carries anything else a prompt template may use.
    """

    id: str
    task: str
    language: str
    context: str
    choices: tuple[str, ...]
    gold: int
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.choices:
            raise XlingError(f"task {self.task!r} language {self.language!r} item {self.id!r}: no choices")
        if any(not str(c).strip() for c in self.choices):
            raise XlingError(f"task {self.task!r} language {self.language!r} item {self.id!r}: empty choice")
        if not 0 <= self.gold < len(self.choices):
            raise XlingError(
                f"task {self.task!r} language {self.language!r} item {self.id!r}: gold index {self.gold} "
                f"out of range for {len(self.choices)} choices"
            )


def check_aligned(items_by_language: Mapping[str, Iterable[MCItem]], task: str) -> None:
    """Raise ``XlingError`` unless every language of ``task`` has exactly the same item ids."""
    ids = {lang: sorted(item.id for item in items) for lang, items in items_by_language.items()}
    if not ids:
        return
    ref_lang = next(iter(ids))
    ref = set(ids[ref_lang])
    for lang, lang_ids in ids.items():
        if len(lang_ids) != len(set(lang_ids)):
            raise XlingError(f"task {task!r} language {lang!r}: duplicate item ids")
        diff = ref.symmetric_difference(lang_ids)
        if diff:
            example = sorted(diff)[0]
            raise XlingError(
                f"task {task!r}: languages {ref_lang!r} and {lang!r} have different item ids "
                f"({len(diff)} differ, e.g. {example!r})"
            )
