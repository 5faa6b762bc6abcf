"""Commands of `xling grid`: plan, run, status and export a transfer grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.table import Table

from xling.cli.app import app
from xling.errors import XlingError

grid_app = typer.Typer(help="Run a whole transfer study from one YAML spec, resumably.", no_args_is_help=True)
app.add_typer(grid_app, name="grid")

SpecArg = Annotated[Path, typer.Argument(help="Grid spec (YAML).")]
console = Console()


Executor = Literal["local", "ray", "slurm"]
OutOption = Annotated[Optional[Path], typer.Option("-o", "--out", help="Output folder (overrides the spec's output).")]


def load_any_grid(spec_path: Path, out: Path | None = None, executor: str | None = None,
                  address: str | None = None, max_retries: int | None = None):
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


@grid_app.command("plan")
def plan_cmd(spec_path: SpecArg, out: OutOption = None) -> None:
    """Show the units of work, their counts and an estimate of the work; nothing runs (and nothing is downloaded)."""
    from xling.grid.run import STAGES, store_for
    from xling.grid.units import make_plan, unit_counts
    from xling.tasks.registry import is_prepared, load_items

    spec = load_any_grid(spec_path, out)
    if _is_cle(spec):
        _plan_cle(spec)
        return
    counts = unit_counts(spec)
    cells = {(c.task, c.language, spec.score.split) for c in spec.target_cells()}
    cells |= {(c.task, c.language, "train") for c in spec.source_cells()}
    unprepared = sorted(c for c in cells if not is_prepared(*c))
    table = Table(title=f"grid {spec.name}: {len(spec.models)} model(s), {len(spec.source_cells())} source cell(s), "
                        f"{len(spec.target_cells())} target cell(s), {len(spec.seeds)} seed(s)")
    for col in ("stage", "units", "done", "to run"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    if unprepared:  # unit keys hash the data: without it, what is done is unknown
        for name in STAGES:
            table.add_row(name, f"{counts[name]:,}", "unknown", "unknown")
        console.print(table)
        task, lang, split = unprepared[0]
        console.print(f"unknown until the data are prepared ({len(unprepared)} of {len(cells)} task/language/split "
                      f"sets are not, e.g. {task} {lang} {split}): which units are done, the number of items, "
                      f"choices and training examples. Fill them with: xling data prepare {spec_path}")
        return
    plan = make_plan(spec)
    store = store_for(spec)
    units = [*plan.train, *plan.score]
    for name in STAGES:
        stage = [u for u in units if u.stage == name]
        done = sum(store.done(u.key) for u in stage)
        table.add_row(name, f"{len(stage):,}", f"{done:,}", f"{len(stage) - done:,}")
    console.print(table)
    n_choices = sum(len(i.choices) for c in spec.target_cells() for i in load_items(c.task, c.language, spec.score.split))
    n_train = sum(len(load_items(c.task, c.language, "train")) for c in spec.source_cells())
    scored = len(plan.score) * n_choices
    steps = len(spec.models) * len(spec.seeds) * n_train * spec.train.epochs
    console.print(f"work: {scored:,} choice scorings ({n_choices:,} choices × {len(plan.score)} model/adapter "
                  f"evaluations); {steps:,} training examples seen ({spec.train.epochs} epoch(s))")


ExecutorOption = Annotated[Optional[Executor], typer.Option(help="Where units run (overrides the spec).")]
AddressOption = Annotated[Optional[str], typer.Option(help="Ray cluster address, e.g. 'auto'.")]
RetriesOption = Annotated[Optional[int], typer.Option(min=0, help="Retries of a failing unit (overrides the spec).")]


@grid_app.command("run")
def run_cmd(
    spec_path: SpecArg,
    out: OutOption = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    max_retries: RetriesOption = None,
    analyze: Annotated[bool, typer.Option(help="Aggregate and run the analysis and report at the end.")] = True,
) -> None:
    """Run every unit that is missing (a transfer or a CLE grid), then write the results tables and the report.
    Exit code 1 if some units failed."""
    spec = load_any_grid(spec_path, out, executor, address, max_retries)
    if _is_cle(spec):
        run_cle(spec)
        return
    run_transfer(spec, analyze and spec.analyze)


def _exit_on_failures(final) -> None:
    if any(st.failed for st in final):
        console.print("[red]some units failed; see `xling grid status`. Rerun the same command to retry them.")
        raise typer.Exit(1)


def run_cle(spec) -> None:
    """Run a CLE grid, print its per-method averages and status; exit 1 if some units failed."""
    from rich.table import Table

    from xling.study import run_cle_study

    study = run_cle_study(spec, console=console)
    averages = study.tables["cle_averages"]
    view = Table(title=f"CLE grid: mean over pairs ({spec.retrieval}, failure = MRR < {spec.fail_mrr})")
    for col in ("method", "size", "MRR", "P@1", "pairs", "failures", "errors"):
        view.add_column(col, justify="left" if col in ("method", "size") else "right")
    for row in averages.itertuples():
        view.add_row(row.method, row.size, f"{100 * row.mrr_mean:.1f}", f"{100 * row.p1_mean:.1f}",
                     str(row.pairs_done), str(row.failures), str(row.errors))
    console.print(view)
    console.print(f"tables in {Path(spec.output) / 'tables'}; report: {study.report}; rerun the same command to "
                  "resume or retry failed units")
    _print_status(study.status)
    _exit_on_failures(study.status)


def _plan_cle(spec) -> None:
    from xling.cle.grid import STAGE, store_for, units

    todo = units(spec)
    store = store_for(spec)
    done = sum(store.done(u.key) for u in todo)
    table = Table(title=f"CLE grid: {len(spec.entries())} method(s), {len(spec.pair_list())} pair(s), "
                        f"{len(spec.sizes)} dictionary size(s)")
    for col in ("stage", "units", "done", "to run"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    table.add_row(STAGE, f"{len(todo):,}", f"{done:,}", f"{len(todo) - done:,}")
    console.print(table)


def run_transfer(spec, analyze: bool) -> None:
    """Run a transfer grid to the end and print status, results, headline, top roles and notes; exit 1 if some
    units failed."""
    from xling.report.terminal import print_headline
    from xling.study import run_transfer_study

    study = run_transfer_study(spec, analyze=analyze, console=console)
    _print_status(study.status)
    console.print(f"results: {study.results} ({study.n_cells} cells), per seed: {study.seeds}")
    if study.analysis is not None:
        analysis = study.analysis
        print_headline(analysis.headline, console)
        for name, key in (("language_donor_recipient", "lang"), ("task_donor_recipient", "task")):
            roles = analysis.tables.get(name)
            if roles is not None and len(roles):
                top = {col: ", ".join(f"{r[key]} {r[col]:+.2f}" for _, r in roles.sort_values(col, ascending=False)
                                      .head(3).iterrows()) for col in ("donor", "recipient")}
                console.print(f"top {key} donors: {top['donor']} | top {key} recipients: {top['recipient']}")
        for note in analysis.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        console.print(f"report: {study.report}")
    _exit_on_failures(study.status)


@grid_app.command("status")
def status_cmd(spec_path: SpecArg, out: OutOption = None) -> None:
    """Done / failed / pending per stage, and the last error of each failed unit (a transfer or a CLE grid)."""
    spec = load_any_grid(spec_path, out)
    if _is_cle(spec):
        from xling.cle.grid import status

        _print_status(status(spec))
        return
    from xling.grid.run import status, store_for
    from xling.grid.units import make_plan

    _print_status(status(make_plan(spec), store_for(spec)))


def _print_status(stages) -> None:
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
    out: Annotated[Path, typer.Option("-o", "--out", help="Results table (release schema, CSV).")] = Path("results.csv"),
) -> None:
    """Write the results table in the Donors-and-Recipients release schema, plus the per-seed long table."""
    from xling.grid.results import export
    from xling.grid.run import store_for
    from xling.grid.units import make_plan

    spec = load_any_grid(spec_path)
    if _is_cle(spec):
        raise XlingError(f"{spec_path}: a CLE grid writes its tables when it runs (OUTPUT/tables/cle_results.csv)")
    table, seeds, n = export(make_plan(spec), store_for(spec), out)
    console.print(f"wrote {table} ({n} cells) and {seeds}")


@app.command("quickstart")
def quickstart_cmd(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("xling-out/quickstart"),
    langs: Annotated[Optional[str], typer.Option(help="Comma-separated languages (default: en,de,fr,ru).")] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated xling-mini tasks (default: numbers,region,currency,language).")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per source cell (default 2; 3 with --full).")] = None,
    full: Annotated[bool, typer.Option(help="A larger grid: all 5 tasks x 10 languages, 3 seeds, all items (hours on a CPU).")] = False,
) -> None:
    """The whole transfer study offline on CPU: built-in tasks, a shipped encoder, LoRA per cell, report."""
    from xling.quickstart import quickstart_spec

    run_transfer(quickstart_spec(out, _csv_list(langs), _csv_list(tasks), seeds, full), analyze=True)


def _csv_list(text: str | None) -> list[str] | None:
    """``"en, de,fr"`` -> ``["en", "de", "fr"]``; None stays None."""
    return [x.strip() for x in text.split(",") if x.strip()] if text else None
