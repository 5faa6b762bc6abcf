"""Commands of `xling grid`: plan, run, status and export a study of any kind (``xling.studies``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from xling.cli.app import app
from xling.cli.common import AddressOption, ExecutorOption, GridOutOption, JsonOption, RetriesOption, emit_json

grid_app = typer.Typer(
    help="Run a whole study (a transfer or a CLE grid) from one YAML spec, resumably.", no_args_is_help=True
)
app.add_typer(grid_app, name="grid")

SpecArg = Annotated[
    Path,
    typer.Argument(
        metavar="SPEC.yaml",
        help="Grid spec (YAML): a transfer grid (models:) or a CLE grid (methods:); paths in it are relative to it.",
    ),
]


def console_for(as_json: bool) -> Console:
    """Tables on stdout; with ``--json`` everything but the JSON line goes to stderr."""
    return Console(stderr=as_json)


@grid_app.command("plan")
def plan_cmd(spec_path: SpecArg, out: GridOutOption = None, as_json: JsonOption = False) -> None:
    """Show the units of work, their counts and what else can be known offline; nothing runs or is downloaded."""
    from xling.studies import load_study, plan_summary

    summary = plan_summary(load_study(spec_path, out=out))
    if as_json:
        emit_json(summary)
        return
    console = console_for(False)
    table = Table(title=summary["title"])
    for col in ("stage", "units", "done", "to run"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, st in summary["stages"].items():
        done = "unknown" if st["done"] is None else f"{st['done']:,}"
        to_run = "unknown" if st["done"] is None else f"{st['units'] - st['done']:,}"
        table.add_row(name, f"{st['units']:,}", done, to_run)
    console.print(table)
    for line in summary.get("lines", []):
        console.print(line.replace("SPEC", str(spec_path)), markup=False, highlight=False)


@grid_app.command("run")
def run_cmd(
    spec_path: SpecArg,
    out: GridOutOption = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    max_retries: RetriesOption = None,
    analyze: Annotated[bool, typer.Option(help="Write the analysis and report at the end.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Run every unit that is missing, then write the results tables, the analysis and the report.
    Exit code 1 if some units failed."""
    from xling.studies import load_study

    run_and_show(
        load_study(spec_path, out=out, executor=executor, address=address, max_retries=max_retries), analyze, as_json
    )


def run_and_show(spec: Any, analyze: bool = True, as_json: bool = False) -> None:
    """Run a study to the end and print its status and results (one JSON line with ``--json``); exit 1 if some
    units failed."""
    from xling.studies import kind_of, run_study

    console = console_for(as_json)
    study = run_study(spec, analyze=analyze, console=Console(stderr=True))
    kind = kind_of(spec)
    if as_json:
        emit_json({"kind": kind.name, "status": status_records(study.status), **kind.json_summary(study)})
    else:
        print_status(study.status, console)
        kind.show(study, console)
    exit_on_failures(study.status, console)


@grid_app.command("status")
def status_cmd(spec_path: SpecArg, out: GridOutOption = None, as_json: JsonOption = False) -> None:
    """Done / failed / pending per stage, and the last error of each failed unit. Exit code 1 if some units failed."""
    from xling.studies import load_study, status

    final = status(load_study(spec_path, out=out))
    console = console_for(as_json)
    if as_json:
        emit_json({"status": status_records(final)})
    else:
        print_status(final, console)
    exit_on_failures(final, console)


@grid_app.command("export")
def export_cmd(
    spec_path: SpecArg,
    out: Annotated[Path, typer.Option("-o", "--out", metavar="DIR", help="Folder for the results tables.")] = Path(
        "results"
    ),
    as_json: JsonOption = False,
) -> None:
    """Write the results tables of the finished units (a transfer grid: the release schema and the per-seed table;
    a CLE grid: BLI and downstream results), e.g. while a grid still runs."""
    from xling.io import atomic_dir
    from xling.studies import kind_of, load_study, store_for
    from xling.studies.run import write_tables

    spec = load_study(spec_path)
    kind = kind_of(spec)
    tables = kind.results(spec, store_for(spec, create=False), kind.units(spec))
    with atomic_dir(out) as tmp:
        written = write_tables(tables, tmp)
    paths = {name: str(Path(out) / path.name) for name, path in written.items()}
    if as_json:
        emit_json({"tables": paths, "rows": {name: len(t) for name, t in tables.items()}})
        return
    for name, path in paths.items():
        console_for(False).print(f"wrote {path} ({len(tables[name])} rows)")


def status_records(stages) -> list[dict]:
    """Each stage's counts and failed units, for ``--json``."""
    return [
        {
            "stage": st.name,
            "done": st.done,
            "failed": len(st.failed),
            "pending": st.pending,
            "total": st.total,
            "errors": st.failed,
        }
        for st in stages
    ]


def print_status(stages, console: Console) -> None:
    """Each stage's counts, then each failed unit with its last error."""
    table = Table(title="grid status")
    for col in ("stage", "done", "failed", "pending", "total"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for st in stages:
        table.add_row(st.name, str(st.done), str(len(st.failed)), str(st.pending), str(st.total))
    console.print(table)
    for st in stages:
        for unit, error in st.failed.items():
            console.print(f"[red]failed[/red] {unit}: {error}")


def exit_on_failures(final, console: Console) -> None:
    """Exit code 1 when a unit failed for good."""
    if any(st.failed for st in final):
        console.print("[red]some units failed; see `xling grid status`. Rerun the same command to retry them.")
        raise typer.Exit(1)
