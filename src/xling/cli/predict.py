"""``xling predict``: fill the unrun cells of a partial transfer grid, or cross-validate the predictors."""

from __future__ import annotations

from pathlib import Path

import typer

from xling.cli.app import app
from xling.cli.common import HeadlineMetric, JsonOption, emit_json
from xling.jsonable import records


@app.command("predict")
def predict_cmd(
    results: Path = typer.Argument(..., help="Results table of the run cells: release schema or per-seed long table."),
    out: Path | None = typer.Option(
        None, "-o", "--out", metavar="DIR", help="Output folder; required unless --evaluate."
    ),
    level: float = typer.Option(0.9, min=0.5, max=0.99, help="Nominal coverage of the prediction intervals."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds over the run pairs that calibrate the intervals."),
    evaluate: bool = typer.Option(
        False, "--evaluate", help="Cross-validate xling against an additive and a gradient-boosted baseline."
    ),
    observed: float = typer.Option(
        0.25, min=0.01, max=0.99, help="--evaluate: the fraction of each model's run pairs a fold fits on."
    ),
    metric: HeadlineMetric | None = typer.Option(None, help="Delta to predict (default: delta_score_norm_mean)."),
    linguistic: bool = typer.Option(
        None, "--linguistic/--no-linguistic", help="URIEL (lang2vec) distances as features (default: on)."
    ),
    seed: int = typer.Option(0, help="Seed of the folds."),
    as_json: JsonOption = False,
) -> None:
    """Predict every unrun (model, source cell) pair's transfer with calibrated intervals: OUT/predictions.csv."""
    from rich.console import Console

    from xling.analysis.results import read_results
    from xling.contracts import HEADLINE_METRIC
    from xling.errors import XlingError
    from xling.report.predict import run_evaluation, run_prediction

    if out is None and not evaluate:
        raise XlingError("xling predict: -o/--out is required (the folder for predictions.csv), unless --evaluate")
    metric = metric or HEADLINE_METRIC
    options = {"level": level, "n_folds": folds, "linguistic": linguistic is not False, "metric": metric, "seed": seed}
    table = read_results(results, metric)
    console = Console(stderr=as_json)
    if evaluate:
        with console.status("cross-validating"):
            per_fold, summary = run_evaluation(
                table, out, observed=observed, source=str(results), input_path=results, **options
            )
        if as_json:
            emit_json({"out": str(out) if out else None, "summary": records(summary), "folds": records(per_fold)})
            return
        _print_evaluation(summary, observed, level, console)
        if out is not None:
            console.print(f"wrote {out}/evaluation.csv, {out}/evaluation_folds.csv")
        return
    with console.status("predicting"):
        summary = run_prediction(table, out, source=str(results), input_path=results, **options)
    if as_json:
        emit_json(summary)
        return
    console.print(
        f"{summary['predicted_pairs']} unrun (model, source) pairs predicted ({summary['predicted_cells']} cells) "
        f"from {summary['run_pairs']} run pairs; {level:.0%} intervals: {summary['calibration']['ci_method']}"
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"wrote {out}/predictions.csv")


def _print_evaluation(summary, observed: float, level: float, console) -> None:
    from rich.table import Table

    table = Table(title=f"Leave-sources-out cross-validation ({observed:.0%} of pairs run per fold, held-out cells)")
    for col in ("method", "Spearman", "MAE (pp)", "NDCG@3", f"coverage ({level:.0%})", "width (pp)"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in summary.itertuples(index=False):
        table.add_row(
            r.method,
            f"{r.spearman:.3f}",
            f"{r.mae:.2f}",
            f"{r.ndcg_at_3:.3f}",
            f"{100 * r.coverage:.1f}%",
            f"{r.width:.2f}",
        )
    console.print(table)
