"""The CLE grid's report: BLI tables, method × pair matrices and figures, in the same self-contained HTML page
(``xling.report.html``) the transfer analysis uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from xling.analysis.cle import CLEAnalysis, analyze_cle
from xling.report import html as H
from xling.report.figures import plt, save_figures

# (section id, title, explanation, tables, figures); absent tables or figures are left out.
SECTIONS = [
    (
        "methods",
        "BLI by method",
        "Mean and standard deviation over language pairs (the spread of pairs, not a confidence interval); "
        "failures = pairs whose MRR is below the failure threshold; errors = units that did not finish.",
        ["cle_averages"],
        ["cle_method_mrr"],
    ),
    (
        "matrices",
        "Method × pair",
        "MRR and P@1 of every method (and dictionary size) on every pair, with the mean over pairs.",
        ["cle_mrr_matrix", "cle_p1_matrix"],
        ["cle_mrr_heatmap"],
    ),
    (
        "downstream",
        "BLI vs downstream",
        "Does BLI rank the methods as downstream tasks do? One point per (method, size, pair) per task; correlations "
        "(Spearman, Kendall) per pair and pooled, with percentile intervals from a case bootstrap over methods (no "
        "interval from fewer than three methods). Ranks: mean over pairs, 1 = best.",
        ["cle_bli_downstream_correlation", "cle_method_ranks", "cle_downstream"],
        ["cle_bli_vs_downstream"],
    ),
    (
        "units",
        "Every unit",
        "One row per (method, pair, size): its BLI result, or its status and last error.",
        ["cle_results"],
        [],
    ),
]


def method_bars(averages: pd.DataFrame | None):
    """Mean MRR over pairs per method (and size), ± the standard deviation over pairs."""
    if averages is None or averages["mrr_mean"].isna().all():
        return None
    labels = [m if s == "none" else f"{m} ({s})" for m, s in zip(averages["method"], averages["size"])]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(labels) + 2), 3.4))
    ax.bar(labels, 100 * averages["mrr_mean"], yerr=100 * averages["mrr_sd"].fillna(0), capsize=3, color="#4c72b0")
    ax.set_ylabel("MRR (%)")
    ax.set_title("BLI MRR, mean ± sd over pairs")
    ax.tick_params(axis="x", rotation=60)
    return fig


def matrix_heatmap(matrix: pd.DataFrame | None, metric: str):
    """(method, size) × pair on a 0–100 scale."""
    if matrix is None or matrix.empty:
        return None
    values = matrix.drop(columns=["method", "size", "mean"], errors="ignore")
    if values.empty:
        return None
    labels = [m if s == "none" else f"{m} ({s})" for m, s in zip(matrix["method"], matrix["size"])]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * values.shape[1] + 2.5), max(2.5, 0.35 * len(labels) + 1.5)))
    im = ax.imshow(100 * values.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(f"{metric} (%) by method and pair")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def bli_vs_downstream(results: pd.DataFrame | None, downstream: pd.DataFrame | None):
    """One panel per downstream task: BLI MRR (x) against the task's score (y), a marker per method."""
    if results is None or downstream is None or downstream.empty:
        return None
    joined = downstream.merge(
        results[["method", "pair", "size", "mrr"]].astype({"size": str}), on=["method", "pair", "size"]
    )
    tasks = sorted(joined["task"].unique())
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks) + 1.5, 3.4), squeeze=False)
    methods = sorted(joined["method"].unique())
    markers = "os^vD<>pP*X"
    for ax, task in zip(axes[0], tasks):
        part = joined[joined["task"] == task]
        for i, method in enumerate(methods):
            pts = part[part["method"] == method]
            ax.scatter(100 * pts["mrr"], 100 * pts["score"], marker=markers[i % len(markers)], label=method, s=22)
        ax.set_xlabel("BLI MRR (%)")
        ax.set_ylabel(f"{task} {part['metric'].iloc[0]} (%)")
        ax.set_title(task)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def figure_makers(t: dict[str, pd.DataFrame]) -> dict[str, Callable[[], object]]:
    return {
        "cle_method_mrr": lambda: method_bars(t.get("cle_averages")),
        "cle_mrr_heatmap": lambda: matrix_heatmap(t.get("cle_mrr_matrix"), "MRR"),
        "cle_bli_vs_downstream": lambda: bli_vs_downstream(t.get("cle_results"), t.get("cle_downstream")),
    }


def run_cle_analysis(
    results: pd.DataFrame,
    out: str | Path,
    downstream: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    inputs: dict[str, Path] | None = None,
) -> CLEAnalysis:
    """Analyse a CLE grid's results (``xling.analysis.cle.analyze_cle``) and write ``OUT/tables/*.csv``,
    ``OUT/figures/*``, ``OUT/report.html`` and ``OUT/run.json``; nothing is left at ``out`` if anything fails."""
    from xling.io import atomic_dir, file_sha256
    from xling.provenance import write_run_record

    analysis = analyze_cle(results, downstream, seed=seed, n_boot=n_boot)
    with atomic_dir(out) as tmp:
        for name, frame in analysis.tables.items():
            (tmp / "tables").mkdir(exist_ok=True)
            frame.to_csv(tmp / "tables" / f"{name}.csv", index=False)
        write_cle_report(analysis, tmp)
        record = {"notes": analysis.notes, "tables": sorted(analysis.tables), "facts": dict(analysis.facts)}
        if inputs:
            record["inputs"] = {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in inputs.items()}
        write_run_record(tmp, seed=seed, **record)
    return analysis


def write_cle_report(analysis: CLEAnalysis, out: Path) -> Path:
    """Write ``OUT/figures/*`` and ``OUT/report.html`` for a CLE analysis; return the report's path. Its facts (what
    ran: units, conventions, the failure threshold) head the page."""
    tables, notes = analysis.tables, list(analysis.notes)
    makers = {
        k: v for k, v in figure_makers(tables).items() if k != "cle_bli_vs_downstream" or "cle_downstream" in tables
    }
    figures = save_figures(makers, out / "figures", notes)
    sections = []
    for sid, title, text, table_names, figure_names in SECTIONS:
        blocks = [H.figure_html(figures[f], f.replace("_", " ")) for f in figure_names if f in figures]
        blocks += [f"<h3>{name}</h3>" + H.table_html(tables[name], name) for name in table_names if name in tables]
        if blocks:
            sections.append({"id": sid, "title": title, "text": text, "blocks": blocks})
    facts = pd.DataFrame(analysis.facts, columns=["what", "value"]).astype(str)
    facts_html = H.table_html(facts, "summary", 50)
    page = H.render("xling CLE grid", analysis.subtitle, facts_html.rsplit("<p", 1)[0], notes, sections)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
