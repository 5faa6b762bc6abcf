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


def print_bli(result: dict, dictionary, x, z) -> None:
    """A BLI result as a table (%), with the dictionary's lines, the vocabularies and OOV items."""
    title = f"BLI ({result['retrieval']}, per {result['convention']}, OOV {result['oov']})"
    if result.get("protocol"):
        title = f"BLI, protocol {result['protocol']} ({result['retrieval']}, per {result['convention']})"
    table = Table(title=title)
    for col in ("P@1 %", "P@5 %", "P@10 %", "MRR %", "coverage %", "n"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{100 * result[k]:.2f}" for k in ("p1", "p5", "p10", "mrr", "coverage")), str(result["n"]))
    console = Console()
    console.print(table)
    repeats = f"{dictionary.repeats} repeated lines " + ("counted" if dictionary.kept_repeats else "dropped")
    notes = [
        f"{len(dictionary)} dictionary lines ({repeats})",
        f"{len(x)} source / {len(z)} target vectors",
        f"{result['n_oov']} OOV items",
    ]
    if x.skipped or z.skipped:
        notes.append(f"{x.skipped} + {z.skipped} bad vector rows skipped")
    console.print("; ".join(notes))


def print_downstream(result) -> None:
    """A downstream result: every metric (%; * the headline), coverage, per-topic scores (TED), time."""
    table = Table(title=f"{result.task} ({result.model}): train on source, test on target")
    for col in ("metric", "score %", "n", "coverage (tgt) %", "coverage (src) %"):
        table.add_column(col, justify="right")
    for name, value in result.metrics.items():
        table.add_row(
            name + (" *" if name == result.metric else ""),
            f"{100 * value:.2f}",
            str(result.n),
            f"{100 * result.coverage:.2f}",
            f"{100 * result.coverage_src:.2f}",
        )
    console = Console()
    console.print(table)
    units = result.details.get("units", [])
    if len(units) > 1:
        per = Table(title="per topic")
        for col in ("topic", "accuracy %", "macro_f1 %", "n_test"):
            per.add_column(col, justify="right")
        for u in units:
            per.add_row(u["name"], f"{100 * u['accuracy']:.2f}", f"{100 * u['macro_f1']:.2f}", str(u["n_test"]))
        console.print(per)
    console.print(f"* headline score; {result.seconds:.1f} s")
