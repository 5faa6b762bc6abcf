"""The options every command shares, declared once, and the one way a command prints JSON.

The convention (README, "Command-line conventions"; ``tests/test_cli_convention.py`` checks every command):
``-o/--out`` is the output path; ``--json`` prints the command's results as one JSON line on stdout (progress and
notes go to stderr); enumerated options are typed, so ``--help`` lists their choices and a wrong value fails
before any work; an option name means one thing with one default everywhere; exit codes are 0 success, 1 some
units failed, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from xling.contracts import RELEASE_COLUMNS
from xling.registry import MODEL_KINDS

Kind = MODEL_KINDS.choices()
Executor = Literal["local", "ray", "slurm"]

#: A headline column of the release schema (a ``*_mean`` column).
HeadlineMetric = Literal[tuple(c for c in RELEASE_COLUMNS if c.endswith("_mean"))]  # type: ignore[valid-type]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as one JSON line (progress on stderr).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML with lora/train/score sections.")]
KindOption = Annotated[Kind, typer.Option(help="Model kind of a folder or hub id given as --model.")]
ExecutorOption = Annotated[Executor | None, typer.Option(help="Where units run (overrides the spec).")]
AddressOption = Annotated[str | None, typer.Option(help="Ray cluster address, e.g. 'auto'.")]
RetriesOption = Annotated[int | None, typer.Option(min=0, help="Retries of a failing unit (overrides the spec).")]
GridOutOption = Annotated[Path | None, typer.Option("-o", "--out", help="Output folder (overrides the spec's).")]


def emit_json(data: Any) -> None:
    """Print ``data`` as one JSON line on stdout (NaN as null)."""
    print(json.dumps(_clean(data), default=str, allow_nan=False))
    sys.stdout.flush()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def records(frame) -> list[dict]:
    """A DataFrame as JSON-able records."""
    return _clean(frame.to_dict(orient="records"))
