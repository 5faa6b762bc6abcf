"""Commands of `xling grid` (plan, run, status and export a transfer or a CLE grid) and `xling quickstart`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xling.cli.app import app
from xling.cli.common import AddressOption, ExecutorOption, GridOutOption, JsonOption, RetriesOption, emit_json, records
from xling.errors import XlingError

grid_app = typer.Typer(
    help="Run a whole study (a transfer or a CLE grid) from one YAML spec, resumably.", no_args_is_help=True
)
app.add_typer(grid_app, name="grid")

SpecArg = Annotated[Path, typer.Argument(help="Grid spec (YAML): a transfer grid (models:) or a CLE grid (methods:).")]


def load_any_grid(
    spec_path: Path,
    out: Path | None = None,
    executor: str | None = None,
    address: str | None = None,
    max_retries: int | None = None,
):
    """A transfer grid spec (``models:``) or a CLE grid spec (``methods:``), with command-line overrides."""
    from xling.cle.grid import CLEGridSpec, load_grid_spec
    from xling.config import GridSpec, load_spec, load_yaml

    data = load_yaml(spec_path)
    spec: GridSpec | CLEGridSpec
    spec = load_grid_spec(spec_path) if isinstance(data, dict) and "methods" in data else load_spec(GridSpec, spec_path)
    if out is not None:
        spec.output = str(out)
    if executor:
        spec.executor.kind = executor
    if address:
        spec.executor.address = address
    if max_retries is not None:
        spec.max_retries = max_retries
    return spec


def _is_cle(spec) -> bool:
    from xling.cle.grid import CLEGridSpec

    return isinstance(spec, CLEGridSpec)


def _console(as_json: bool) -> Console:
    """Tables on stdout; with ``--json`` everything but the JSON line goes to stderr."""
    return Console(stderr=as_json)


@grid_app.command("plan")
def plan_cmd(spec_path: SpecArg, out: GridOutOption = None, as_json: JsonOption = False) -> None:
    """Show the units of work, their counts and an estimate of the work; nothing runs (and nothing is downloaded)."""
    spec = load_any_grid(spec_path, out)
    if _is_cle(spec):
        from xling.cle.grid import plan_summary

        summary = plan_summary(spec)
        title = f"CLE grid: {summary['methods']} method(s), {summary['pairs']} pair(s), {summary['sizes']} size(s)"
    else:
        from xling.grid.run import plan_summary

        summary = plan_summary(spec)
        title = (
            f"grid {spec.name}: {summary['models']} model(s), {summary['source_cells']} source cell(s), "
            f"{summary['target_cells']} target cell(s), {summary['seeds']} seed(s)"
        )
    if as_json:
        emit_json(summary)
        return
    console = _console(False)
    table = Table(title=title)
    for col in ("stage", "units", "done", "to run"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, st in summary["stages"].items():
        done = "unknown" if st["done"] is None else f"{st['done']:,}"
        to_run = "unknown" if st["done"] is None else f"{st['units'] - st['done']:,}"
        table.add_row(name, f"{st['units']:,}", done, to_run)
    console.print(table)
    if _is_cle(spec):
        _print_cle_plan(summary, console)
    elif summary.get("unprepared"):
        task, lang, split = summary["unprepared"][0]
        console.print(
            f"unknown until the data are prepared ({len(summary['unprepared'])} of {summary['cells']} "
            f"task/language/split sets are not, e.g. {task} {lang} {split}): which units are done, the "
            f"number of items, choices and training examples. Fill them with: xling data prepare {spec_path}"
        )
    elif "choice_scorings" in summary:
        console.print(
            f"work: {summary['choice_scorings']:,} choice scorings ({summary['choices_per_evaluation']:,} "
            f"choices per model or adapter); {summary['training_examples_seen']:,} training examples seen"
        )


def _print_cle_plan(summary: dict, console: Console) -> None:
    """A CLE grid's downstream tasks (pairs, seeds) and its missing input files, after the units table."""
    for task, info in summary["downstream"].items():
        console.print(
            f"downstream {task}: {len(info['pairs'])} pair(s) ({', '.join(info['pairs'])}), seeds {info['seeds']}"
        )
    missing = summary["missing_inputs"]
    if not missing:
        console.print("every input file is there")
        return
    console.print(f"{len(missing)} input file(s) or folder(s) missing, e.g.:")
    for path in missing[:10]:
        console.print(f"  {path}")
    if len(missing) > 10:
        console.print(f"  ... and {len(missing) - 10} more (--json lists them all)")


@grid_app.command("run")
def run_cmd(
    spec_path: SpecArg,
    out: GridOutOption = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    max_retries: RetriesOption = None,
    analyze: Annotated[bool, typer.Option(help="Aggregate and run the analysis and report at the end.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Run every unit that is missing (a transfer or a CLE grid), then write the results tables and the report.
    Exit code 1 if some units failed."""
    spec = load_any_grid(spec_path, out, executor, address, max_retries)
    if _is_cle(spec):
        run_cle(spec, as_json)
    else:
        run_transfer(spec, analyze and spec.analyze, as_json)


def run_transfer(spec, analyze: bool, as_json: bool = False) -> None:
    """Run a transfer grid to the end and print status, results, headline, top roles and notes; exit 1 if some
    units failed."""
    from xling.analysis.findings import UNITS
    from xling.report.terminal import print_findings
    from xling.study import run_transfer_study

    console = _console(as_json)
    study = run_transfer_study(spec, analyze=analyze, console=Console(stderr=True))
    if as_json:
        emit_json(
            {
                "status": _status_records(study.status),
                "results": str(study.results),
                "seeds": str(study.seeds),
                "cells": study.n_cells,
                "report": str(study.report) if study.report else None,
                "findings": study.analysis.findings.to_dict() if study.analysis else None,
                "headline": records(study.analysis.headline) if study.analysis else None,
                "units": UNITS,
                "notes": study.analysis.notes if study.analysis else [],
            }
        )
        _exit_on_failures(study.status, console)
        return
    _print_status(study.status, console)
    console.print(f"results: {study.results} ({study.n_cells} cells), per seed: {study.seeds}")
    if study.analysis is not None:
        analysis = study.analysis
        print_findings(analysis.findings, console)
        for name, key in (("language_donor_recipient", "lang"), ("task_donor_recipient", "task")):
            roles = analysis.tables.get(name)
            if roles is not None and len(roles):
                top = {
                    col: ", ".join(f"{r[key]} {r[col]:+.2f} pp" for _, r in roles.nlargest(3, col).iterrows())
                    for col in ("donor", "recipient")
                }
                console.print(f"top {key} donors: {top['donor']} | top {key} recipients: {top['recipient']}")
        for note in analysis.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        console.print(f"report: {study.report}")
    _exit_on_failures(study.status, console)


def run_cle(spec, as_json: bool = False) -> None:
    """Run a CLE grid, print its per-method averages and status; exit 1 if some units failed."""
    from xling.study import run_cle_study

    console = _console(as_json)
    study = run_cle_study(spec, console=Console(stderr=True))
    averages = study.tables["cle_averages"]
    if as_json:
        emit_json(
            {
                "status": _status_records(study.status),
                "averages": records(averages),
                "tables": str(Path(spec.output) / "tables"),
                "report": str(study.report),
            }
        )
        _exit_on_failures(study.status, console)
        return
    view = Table(title=f"CLE grid: mean over pairs ({spec.conventions().retrieval}, failure = MRR < {spec.fail_mrr})")
    for col in ("method", "size", "MRR %", "P@1 %", "pairs", "failures", "errors"):
        view.add_column(col, justify="left" if col in ("method", "size") else "right")
    for row in averages.itertuples():
        view.add_row(
            row.method,
            row.size,
            f"{100 * row.mrr_mean:.1f}",
            f"{100 * row.p1_mean:.1f}",
            str(row.pairs_done),
            str(row.failures),
            str(row.errors),
        )
    console.print(view)
    console.print(
        f"tables in {Path(spec.output) / 'tables'}; report: {study.report}; rerun the same command to "
        "resume or retry failed units"
    )
    _print_status(study.status, console)
    _exit_on_failures(study.status, console)


def _exit_on_failures(final, console: Console) -> None:
    if any(st.failed for st in final):
        console.print("[red]some units failed; see `xling grid status`. Rerun the same command to retry them.")
        raise typer.Exit(1)


@grid_app.command("status")
def status_cmd(spec_path: SpecArg, out: GridOutOption = None, as_json: JsonOption = False) -> None:
    """Done / failed / pending per stage, and the last error of each failed unit (a transfer or a CLE grid).
    Exit code 1 if some units failed."""
    spec = load_any_grid(spec_path, out)
    if _is_cle(spec):
        from xling.cle.grid import status

        final = status(spec)
    else:
        from xling.grid.run import status, store_for
        from xling.grid.units import make_plan

        final = status(make_plan(spec), store_for(spec, create=False))
    console = _console(as_json)
    if as_json:
        emit_json({"status": _status_records(final)})
    else:
        _print_status(final, console)
    _exit_on_failures(final, console)


def _status_records(stages) -> list[dict]:
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


def _print_status(stages, console: Console) -> None:
    table = Table(title="grid status")
    for col in ("stage", "done", "failed", "pending", "total"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for st in stages:
        table.add_row(st.name, str(st.done), str(len(st.failed)), str(st.pending), str(st.total))
    console.print(table)
    for st in stages:
        for unit, error in st.failed.items():
            console.print(f"[red]failed[/red] {unit}: {error}")


@grid_app.command("export")
def export_cmd(
    spec_path: SpecArg,
    out: Annotated[
        Path, typer.Option("-o", "--out", metavar="FILE", help="Results table (release schema, CSV).")
    ] = Path("results.csv"),
) -> None:
    """Write the results table in the Donors-and-Recipients release schema, plus the per-seed long table."""
    from xling.grid.results import export
    from xling.grid.run import store_for
    from xling.grid.units import make_plan

    spec = load_any_grid(spec_path)
    if _is_cle(spec):
        raise XlingError(f"{spec_path}: a CLE grid writes its tables when it runs (OUTPUT/tables/cle_results.csv)")
    table, seeds, n = export(make_plan(spec), store_for(spec, create=False), out)
    Console().print(f"wrote {table} ({n} cells) and {seeds}")


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

    run_transfer(quickstart_spec(out, _csv_list(langs), _csv_list(tasks), seeds, full), analyze=True, as_json=as_json)


def _csv_list(text: str | None) -> list[str] | None:
    """``"en, de,fr"`` -> ``["en", "de", "fr"]``; None stays None."""
    return [x.strip() for x in text.split(",") if x.strip()] if text else None
