"""``xling analyze`` and ``xling compare``: results tables of any kind in, analysis and report out."""

from __future__ import annotations

from pathlib import Path

import typer

from xling.cli.app import app
from xling.cli.common import HeadlineMetric, JsonOption, emit_json
from xling.jsonable import records


@app.command("analyze")
def analyze_cmd(
    results: Path = typer.Argument(
        ...,
        help="Results table (CSV or Parquet): release schema, per-seed long table, or a CLE grid's cle_results.csv.",
    ),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Output folder."),
    config: Path = typer.Option(
        None, "--config", "-c", help="Analysis YAML: thresholds, model/task metadata, language groups."
    ),
    metric: HeadlineMetric | None = typer.Option(
        None, help="Headline column (default: the config's, delta_score_norm_mean)."
    ),
    mixed: bool = typer.Option(
        None, "--mixed/--no-mixed", help="Fit the paper's MixedLM variance decomposition (slow)."
    ),
    linguistic: bool = typer.Option(
        None, "--linguistic/--no-linguistic", help="URIEL (lang2vec) distance correlations."
    ),
    n_boot: int | None = typer.Option(
        None, "--n-boot", min=1, help="Bootstrap draws per CI (default: the config's, 1000)."
    ),
    seed: int | None = typer.Option(None, min=0, help="Bootstrap seed (default: the config's, 0)."),
    as_json: JsonOption = False,
) -> None:
    """Analyse a results table: a transfer grid's (the donor-recipient analysis: tables, figures, report.html,
    summary.md) or a CLE grid's (cle_results.csv, with cle_downstream.csv beside it when there is one)."""
    from rich.console import Console

    from xling.analysis.cle import is_cle_results
    from xling.analysis.findings import UNITS
    from xling.analysis.meta import AnalysisSpec, load_analysis_spec
    from xling.analysis.results import read_table
    from xling.config import parse_spec
    from xling.report import run_analysis
    from xling.report.terminal import print_findings

    table = read_table(results)
    if is_cle_results(table):
        given = {"--config": config, "--metric": metric, "--mixed/--no-mixed": mixed, "--linguistic": linguistic}
        _analyze_cle(table, results, out, n_boot, seed, [k for k, v in given.items() if v is not None], as_json)
        return
    updates = {k: v for k, v in {"metric": metric, "n_boot": n_boot, "seed": seed}.items() if v is not None}
    spec = parse_spec(AnalysisSpec, {**load_analysis_spec(config).model_dump(), **updates}, "analyze options")
    console = Console(stderr=as_json)
    with console.status("analysing") as status:
        analysis = run_analysis(
            table,
            out,
            spec,
            mixed_models=mixed,
            linguistic_distances=linguistic,
            source=str(results),
            input_path=results,
            progress=lambda step: status.update(f"analysing: {step}"),
        )
    if as_json:
        emit_json(
            {
                "out": str(out),
                "findings": analysis.findings.to_dict(),
                "headline": records(analysis.headline),
                "units": UNITS,
                "notes": analysis.notes,
                "coverage": analysis.coverage,
                "tables": sorted(analysis.tables),
            }
        )
        return
    print_findings(analysis.findings, console)
    for note in analysis.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"wrote {out}/report.html, {out}/summary.md, {len(analysis.tables)} tables in {out}/tables")


def _analyze_cle(
    table, path: Path, out: Path, n_boot: int | None, seed: int | None, transfer_only: list[str], as_json: bool
) -> None:
    """A CLE grid's results table: its analysis and report (``xling.report.cle.run_cle_analysis``)."""
    from rich.console import Console

    from xling.analysis.results import read_table
    from xling.errors import XlingError
    from xling.report.cle import run_cle_analysis
    from xling.report.terminal import print_cle_averages

    if transfer_only:
        raise XlingError(f"{path}: a CLE results table; {', '.join(transfer_only)} apply to transfer tables only")
    console = Console(stderr=as_json)
    sibling = path.with_name("cle_downstream.csv")
    downstream = read_table(sibling) if sibling.is_file() else None
    inputs = {"cle_results": path, **({"cle_downstream": sibling} if downstream is not None else {})}
    if downstream is not None:
        console.print(f"downstream results: {sibling}")
    analysis = run_cle_analysis(table, out, downstream, seed=seed or 0, n_boot=n_boot or 1000, inputs=inputs)
    if as_json:
        averages = analysis.tables["cle_averages"]
        emit_json({"out": str(out), "kind": "cle", "averages": records(averages), "notes": analysis.notes})
        return
    print_cle_averages(analysis.tables["cle_averages"], console)
    for note in analysis.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"wrote {out}/report.html, {len(analysis.tables)} tables in {out}/tables")


@app.command("compare")
def compare_cmd(
    a: Path = typer.Argument(..., help="First results table (reference)."),
    b: Path = typer.Argument(..., help="Second results table."),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Output folder."),
    metric: HeadlineMetric | None = typer.Option(None, help="Column to compare (default: delta_score_norm_mean)."),
    n_boot: int | None = typer.Option(
        None, "--n-boot", min=1, help="Bootstrap draws for the mean-difference CI (default: 1000)."
    ),
    as_json: JsonOption = False,
) -> None:
    """Compare two results tables on their shared cells: correlation, mean difference, sign agreement."""
    from rich.console import Console
    from rich.table import Table

    from xling.analysis.compare import compare_tables
    from xling.analysis.meta import AnalysisSpec
    from xling.analysis.results import read_results
    from xling.io import atomic_dir
    from xling.provenance import write_run_record
    from xling.report.compare import write_compare

    metric, n_boot = metric or AnalysisSpec().metric, n_boot or AnalysisSpec().n_boot
    ta, tb = read_results(a, metric), read_results(b, metric)
    tables = compare_tables(ta, tb, metric, n_boot=n_boot)
    with atomic_dir(out) as tmp:
        write_compare(tables, tmp, str(a), str(b), metric)
        write_run_record(tmp, config={"a": str(a), "b": str(b), "metric": metric, "n_boot": n_boot}, seed=0)
    if as_json:
        emit_json({"out": str(out), "overall": records(tables["compare_overall"])})
        return
    table = Table(title=f"{b.name} - {a.name} on shared cells ({metric}, pp)")
    for col in ("scope", "n", "mean diff", "95% CI", "Pearson r", "Spearman rho", "sign agree %"):
        table.add_column(col, justify="left" if col == "scope" else "right")
    for r in tables["compare_overall"].itertuples(index=False):
        table.add_row(
            r.scope,
            str(r.n),
            f"{r.mean_diff:+.2f}",
            f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
            f"{r.pearson_r:.3f}",
            f"{r.spearman_rho:.3f}",
            f"{r.sign_agreement:.1f}",
        )
    Console().print(table)
    Console().print(f"wrote {out}/report.html and tables in {out}/tables")
