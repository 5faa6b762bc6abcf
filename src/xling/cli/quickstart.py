"""`xling quickstart`: the whole transfer study offline on CPU, as one grid (``xling.quickstart``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xling.cli.app import app
from xling.cli.common import JsonOption
from xling.cli.grid import run_and_show


@app.command("quickstart")
def quickstart_cmd(
    out: Annotated[Path, typer.Option("-o", "--out", metavar="DIR", help="Output folder.")] = Path(
        "xling-out/quickstart"
    ),
    langs: Annotated[str | None, typer.Option(help="Comma-separated languages (default: en,de,fr,ru).")] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated xling-mini tasks (default: numbers,region,currency,language).")
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(help="Seeds per source cell (default 1; 2 gives every cell a seed t-test; 3 with --full)."),
    ] = None,
    full: Annotated[
        bool, typer.Option(help="A larger grid: all 5 tasks x 10 languages, 3 seeds, all items (hours on a CPU).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The whole transfer study offline on CPU: built-in tasks, a shipped encoder, LoRA per cell, report."""
    from xling.quickstart import quickstart_spec

    run_and_show(quickstart_spec(out, _csv_list(langs), _csv_list(tasks), seeds, full), as_json=as_json)


def _csv_list(text: str | None) -> list[str] | None:
    """``"en, de,fr"`` -> ``["en", "de", "fr"]``; None stays None."""
    return [x.strip() for x in text.split(",") if x.strip()] if text else None
