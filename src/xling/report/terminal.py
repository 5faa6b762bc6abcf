"""The headline table in the terminal (rich)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from xling.report.html import fmt_ci


def headline_rich(headline: pd.DataFrame, title: str = "Transfer by regime (delta in pp, 95% CI)") -> Table:
    """A rich Table of ``regime_summary``."""
    table = Table(title=title)
    for col in ("regime", "n", "mean", "95% CI", "median", "positive %", "harm %"):
        table.add_column(col, justify="left" if col == "regime" else "right")
    for r in headline.itertuples(index=False):
        table.add_row(
            r.regime,
            str(int(r.n)),
            f"{r.mean:+.2f}",
            fmt_ci(r.ci_low, r.ci_high),
            f"{r.median:+.2f}",
            f"{r.positive_rate:.1f}",
            f"{r.harm_rate:.1f}",
        )
    return table


def print_headline(headline: pd.DataFrame, console: Console | None = None) -> None:
    """Print the headline table."""
    (console or Console()).print(headline_rich(headline))
