"""Write a comparison of two results tables: tables, a scatter figure, report.html, summary.md."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from xling.report import html as H
from xling.report.figures import REGIME_COLORS


def scatter(cells: pd.DataFrame, name_a: str, name_b: str):
    """Cell deltas of B against A, coloured by regime, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for regime, sub in cells.groupby("regime"):
        ax.scatter(sub["a"], sub["b"], s=6, alpha=0.5, label=regime, color=REGIME_COLORS.get(regime, "grey"))
    lo, hi = float(min(cells["a"].min(), cells["b"].min())), float(max(cells["a"].max(), cells["b"].max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlabel(f"A: {name_a} (pp)")
    ax.set_ylabel(f"B: {name_b} (pp)")
    ax.legend(fontsize=7)
    ax.set_title("Shared cells")
    return fig


def write_compare(tables: dict[str, pd.DataFrame], out: Path, name_a: str, name_b: str, metric: str) -> None:
    """Everything ``xling compare`` writes except ``run.json``."""
    (out / "tables").mkdir(parents=True)
    (out / "figures").mkdir()
    for name, df in tables.items():
        df.to_csv(out / "tables" / f"{name}.csv", index=False, float_format="%.6g")
    tables["compare_overall"].to_latex(
        out / "tables" / "compare_overall.tex", index=False, float_format="%.3f", na_rep="--"
    )
    fig = scatter(tables["compare_cells"], Path(name_a).name, Path(name_b).name)
    for ext in ("png", "svg"):
        fig.savefig(out / "figures" / f"compare_scatter.{ext}", bbox_inches="tight")
    plt.close(fig)
    sections = [
        {
            "id": "overall",
            "title": "Agreement on shared cells",
            "text": "mean_diff = B - A in pp, bootstrap CI over cells.",
            "blocks": [
                H.figure_html(out / "figures" / "compare_scatter.png", "B against A"),
                H.table_html(tables["compare_overall"], "compare_overall"),
                H.table_html(tables["compare_coverage"], "compare_coverage"),
            ],
        }
    ]
    page = H.render("xling compare", f"A = {name_a}; B = {name_b}; metric {metric}", "", [], sections)
    (out / "report.html").write_text(page, encoding="utf-8")
    o = tables["compare_overall"]
    lines = [
        "# Comparison",
        "",
        f"A = `{name_a}`, B = `{name_b}`, metric `{metric}` (pp).",
        "",
        "| scope | n | mean diff (B-A) | 95% CI | Pearson r | Spearman rho | sign agreement % |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scope} | {r.n} | {r.mean_diff:+.2f} | {H.fmt_ci(r.ci_low, r.ci_high)} | {r.pearson_r:.3f} | "
        f"{r.spearman_rho:.3f} | {r.sign_agreement:.1f} |"
        for r in o.itertuples(index=False)
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
