"""Local multiple-choice data (JSONL, CSV, Parquet) described by a small xling task YAML.

Example ``colors.yaml``::

    name: colors
    data: data/{language}/{split}.jsonl   # relative to the YAML; {language} and {split} are filled in
    languages: [en, de]
    fields: {id: id, question: question, choices: choices, gold: answer}
    template: "Question: {{question}}\\nAnswer:"      # Jinja, over the row's fields
    target_delimiter: " "
    prompt_format: continuation                      # or letters

``fields.choices`` is a column holding a list, or a list of columns (``[option_a, option_b, …]``).
``fields.gold`` holds a 0-based index, a letter (``A``…) or the text of the right choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from xling.config import Spec, load_spec
from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.prompts import LETTERS
from xling.tasks.templates import render


class FieldMap(Spec):
    """Which columns hold the item id, the question, the choices and the gold answer."""

    id: str | None = "id"
    question: str = "question"
    choices: str | list[str] = "choices"
    gold: str = "gold"


class TaskFileSpec(Spec):
    """An xling task YAML (see the module docstring)."""

    name: str
    data: str
    languages: list[str] = Field(min_length=1)
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "test": "test"})
    fields: FieldMap = Field(default_factory=FieldMap)
    template: str = "{{question}}"
    target_delimiter: str = " "
    prompt_format: Literal["continuation", "letters"] = "continuation"


def is_xling_task_yaml(data: object) -> bool:
    """An xling task YAML has ``name`` and ``data``; an lm-eval one has ``task`` and ``doc_to_text``."""
    return isinstance(data, dict) and "data" in data and "name" in data


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON-list, CSV or Parquet file as dicts."""
    if not path.is_file():
        raise XlingError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise XlingError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
        return rows
    import pandas as pd

    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise XlingError(f"{path}: unsupported data format {suffix!r} (expected .jsonl, .json, .csv or .parquet)")
    return [
        {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def parse_choices(value: Any, where: str) -> list[str]:
    """A list of choices from a list value or a JSON-encoded list (as CSV cells hold them)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise XlingError(f"{where}: choices must be a list, found the string {value[:40]!r}") from None
    if not isinstance(value, (list, tuple)):
        raise XlingError(f"{where}: choices must be a list, found {type(value).__name__}")
    return [str(c) for c in value]


def parse_gold(value: Any, choices: list[str], where: str) -> int:
    """A 0-based gold index from an int, a digit string, a letter or the text of a choice."""
    if isinstance(value, bool):
        raise XlingError(f"{where}: gold must be an index, letter or choice text, found {value!r}")
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if len(text) == 1 and text.upper() in LETTERS:
        return LETTERS.index(text.upper())
    if text in choices:
        return choices.index(text)
    raise XlingError(f"{where}: gold {value!r} is not an index, a letter or one of the choices")


def load_task_file(path: str | Path, language: str, split: str) -> list[MCItem]:
    """Items of one language and split of the task described by the xling task YAML at ``path``."""
    path = Path(path)
    spec = load_spec(TaskFileSpec, path)
    if language not in spec.languages:
        raise XlingError(
            f"{path}: unknown language {language!r} for task {spec.name!r} (has {', '.join(spec.languages)})"
        )
    if split not in spec.splits:
        raise XlingError(f"{path}: unknown split {split!r} (has {', '.join(spec.splits)})")
    data = path.parent / spec.data.format(language=language, split=spec.splits[split])
    items = []
    for n, row in enumerate(read_rows(data)):
        where = f"{data}: row {n + 1}"
        items.append(row_to_item(row, spec, language, where, n))
    if not items:
        raise XlingError(f"{data}: no rows")
    return items


def row_to_item(row: dict[str, Any], spec: TaskFileSpec, language: str, where: str, n: int) -> MCItem:
    """One row → one ``MCItem`` with the template rendered as the context."""
    fmap = spec.fields
    missing = [
        f
        for f in [fmap.question, fmap.gold] + ([fmap.choices] if isinstance(fmap.choices, str) else fmap.choices)
        if f not in row
    ]
    if missing:
        raise XlingError(f"{where}: missing field {missing[0]!r} (has {', '.join(map(str, row))})")
    if isinstance(fmap.choices, str):
        choices = parse_choices(row[fmap.choices], where)
    else:
        choices = [str(row[c]) for c in fmap.choices]
    if not choices:
        raise XlingError(f"{where}: empty choices")
    gold = parse_gold(row[fmap.gold], choices, where)
    item_id = str(row[fmap.id]) if fmap.id and fmap.id in row else str(n)
    fields = {k: v for k, v in row.items() if isinstance(v, (str, int, float, bool))}
    fields.update(
        question=str(row[fmap.question]),
        target_delimiter=spec.target_delimiter,
        prompt_format=spec.prompt_format,
    )
    context = render(spec.template, dict(row), where)
    try:
        return MCItem(item_id, spec.name, language, context, tuple(choices), gold, fields)
    except XlingError as err:
        raise XlingError(f"{where}: {err}") from None
