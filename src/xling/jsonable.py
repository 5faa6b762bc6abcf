"""Values as JSON has them: NaN as null, numpy scalars as Python numbers, tables as records (``--json`` lines and
summaries)."""

from __future__ import annotations

from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with NaN as None and numpy scalars as Python values, through dicts, lists and tuples."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


def records(frame) -> list[dict]:
    """A DataFrame as JSON-able records."""
    return jsonable(frame.to_dict(orient="records"))
