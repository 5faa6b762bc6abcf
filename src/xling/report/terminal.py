"""The findings in the terminal (rich): the regime table with the regimes spelled out, the named roles and what the
run cannot support, the same sentences as ``summary.md`` and the top of ``report.html``."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xling.analysis.findings import Findings
from xling.report.findings import (
    NO_ROLES,
    REGIME_COLUMNS,
    REGIMES_CAPTION,
    UNITS_LINE,
    regime_rows,
    role_text,
    scope_text,
)


def regimes_rich(findings: Findings, title: str = "Transfer by regime (delta in pp, 95% CI)") -> Table:
    """A rich Table of the regimes (``regime_summary``), each spelled out; how the intervals were made is in the
    caption (a narrow terminal has no room for it as a column)."""
    methods = "; ".join(dict.fromkeys(r["ci_method"] for r in findings.regimes))
    table = Table(title=title, caption=f"{REGIMES_CAPTION} Intervals: {methods}.")
    keep = [i for i, col in enumerate(REGIME_COLUMNS) if col != "interval from"]
    for i in keep:
        col = REGIME_COLUMNS[i]
        table.add_column(col, justify="left" if col in ("regime", "what it is") else "right")
    for row in regime_rows(findings):
        table.add_row(*(escape(row[i]) for i in keep))
    return table


def print_findings(findings: Findings, console: Console | None = None) -> None:
    """Print what the analysis found: scope, regimes, named roles, what this run cannot support, units."""
    console = console or Console()
    console.print(f"[bold]Findings[/bold]: {escape(scope_text(findings))}")
    console.print(regimes_rich(findings))
    console.print("[bold]Named roles[/bold] (CI of the deviation from the average excludes 0)")
    if findings.roles_basis:
        console.print(escape(findings.roles_basis), style="dim")
    for r in findings.roles:
        console.print("  " + role_text(r, f"[bold]{escape(str(r['name']))}[/bold]"))
    if not findings.roles:
        console.print("  " + NO_ROLES)
    if findings.predicted:
        console.print(f"[bold]Predicted cells[/bold]: {escape(findings.predicted['text'])}")
    if findings.limits:
        console.print("[bold]What this run cannot support[/bold]")
        for lim in findings.limits:
            console.print(f"  [yellow]{escape(lim['what'])}[/yellow]: {escape(lim['why'])}")
    console.print(UNITS_LINE, style="dim")


def print_top_roles(tables: dict, console: Console) -> None:
    """The top three language and task donors and recipients (two-stage means, pp), of the observed cells and,
    where the grid predicted its unrun cells, of observed + predicted cells."""
    for suffix, where in (("", ""), ("_predicted", " (observed + predicted cells)")):
        for name, key in (("language_donor_recipient", "lang"), ("task_donor_recipient", "task")):
            roles = tables.get(name + suffix)
            if roles is not None and len(roles):
                top = {
                    col: ", ".join(f"{r[key]} {r[col]:+.2f} pp" for _, r in roles.nlargest(3, col).iterrows())
                    for col in ("donor", "recipient")
                }
                console.print(
                    f"top {key} donors{where}: {top['donor']} | top {key} recipients{where}: {top['recipient']}",
                    markup=False,
                )


def print_cle_averages(averages, console: Console) -> None:
    """A CLE grid's mean MRR and P@1 over pairs per method and size (%), pairs done, failures and errors."""
    thresholds = ", ".join(f"{t:g}" for t in sorted(set(averages["fail_mrr"].dropna())))
    view = Table(title=f"CLE grid: mean over pairs (failure = MRR < {thresholds})")
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
