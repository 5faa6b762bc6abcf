"""Write one transfer analysis to a folder: tables (CSV, LaTeX for the main ones), figures, report.html,
summary.md and run.json, atomically (``run_analysis``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.pipeline import Analysis
from xling.analysis.stats import NO_CI, bootstrap_over
from xling.io import file_sha256
from xling.report import html as H
from xling.report.figures import write_figures

# Tables also written as LaTeX (the ones a paper would show).
MAIN_TABLES = (
    "global_uplift",
    "regime_summary",
    "mtcl_by_construction_type",
    "language_donor_recipient",
    "task_donor_recipient",
    "task_on_off_summary",
    "linguistic_correlations",
    "variance_mixedlm",
    "variance_crossed",
    "consistency_by_model",
    "consistency_by_family",
    "consistency_by_size",
    "consistency_by_size_bucket",
    "significance_by_regime",
)

# (section id, title, explanation, tables, figures); a table or figure that is absent is left out.
SECTIONS = [
    (
        "headline",
        "Headline: transfer by regime",
        "MT-ML is the trained cell; transfer = every other cell. positive = delta > threshold, "
        "harm = delta <= -harm threshold.",
        ["regime_summary", "global_uplift"],
        ["regime_summary"],
    ),
    (
        "significance",
        "Per-cell significance",
        "t-test of delta != 0 from the seed SE of each cell (df = n_seeds - 1), Benjamini-Hochberg FDR over all cells.",
        ["significance_by_regime"],
        ["significance_by_regime"],
    ),
    (
        "mtcl",
        "Cross-lingual harm (MT-CL)",
        "MT-CL cells broken down by target, size bucket (S <= 1.5B < M < 7B <= L), family and task construction.",
        ["mtcl_harm_breakdown", "mtcl_by_construction_type"],
        [],
    ),
    (
        "roles",
        "Donors and recipients",
        (
            "Two-stage means (per model, then over models). Named roles need a deviation CI that excludes 0 "
            "and intervals that can vary."
        ),
        [
            "language_donor_recipient",
            "task_donor_recipient",
            "named_roles",
            "language_group_roles",
            "language_roles_by_task_subset",
            "task_subset_agreement",
        ],
        ["language_roles", "task_roles"],
    ),
    (
        "matrices",
        "Transfer matrices",
        "Mean delta of the cells each entry pools, bootstrap CI over cells.",
        [],
        ["task_transfer_heatmap", "language_transfer_heatmap"],
    ),
    (
        "profiles",
        "On-task vs off-task profiles",
        "One point per (model, source task, source language).",
        ["task_on_off_summary", "pareto_profiles"],
        ["pareto_profiles"],
    ),
    (
        "typology",
        "Typology (URIEL / lang2vec)",
        "Cosine distance of lang2vec vectors vs the pair's mean MT-CL delta.",
        ["linguistic_correlations"],
        ["linguistic_correlations"],
    ),
    (
        "variance",
        "Variance decomposition",
        (
            "Crossed: sequential sums of squares of the five crossed factors and their two-way interactions. "
            "MixedLM: the paper's model (model random intercept, source and target variance components nested in "
            "model). Fitted as the release does, on transfer cells (subset all; the figure), and on its two "
            "subsets: cells involving the subset task (Global-MMLU) and the others (translated-only)."
        ),
        ["variance_crossed", "variance_mixedlm"],
        ["variance_decomposition"],
    ),
    (
        "consistency",
        "Consistency index",
        (
            "Mean Kendall tau-b between raters over a source's recipients; summaries over sources. Raters: "
            "models, families (sizes averaged), exact sizes (families averaged; the release's by-size raters), "
            "size buckets."
        ),
        ["consistency_by_model", "consistency_by_family", "consistency_by_size", "consistency_by_size_bucket"],
        ["consistency_index"],
    ),
    (
        "asymmetry",
        "Asymmetry",
        "delta(A->B) - delta(B->A): language pairs (bootstrap over model x task) and cell pairs "
        "(t interval over models).",
        ["language_asymmetry", "cell_asymmetry"],
        ["language_asymmetry"],
    ),
    (
        "intervals",
        "How each interval was made",
        (
            "Percentile bootstrap over the named units (95%), Student t or Fisher z; 'none (cannot vary)' marks "
            "an interval left out because only one unit was there to resample."
        ),
        ["interval_methods"],
        [],
    ),
    ("coverage-table", "Coverage per model", "", ["coverage"], []),
]
MATRIX_INDEXED = {"task_transfer_matrix", "language_transfer_matrix"}


def write_tables(tables: dict[str, pd.DataFrame], folder: Path, latex: tuple[str, ...]) -> None:
    """``NAME.csv`` for every table, ``NAME.tex`` for the main ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=name in MATRIX_INDEXED, float_format="%.6g")
        if name in latex:
            (folder / f"{name}.tex").write_text(
                df.to_latex(index=False, float_format="%.2f", na_rep="--", escape=True), encoding="utf-8"
            )


def _coverage_html(a: Analysis, metric: str) -> str:
    c = a.coverage
    rows = [
        ("metric", metric),
        ("models", c["models"]),
        ("tasks", c["tasks"]),
        ("languages", c["languages"]),
        ("source cells", c["source_cells"]),
        ("target cells", c["target_cells"]),
        ("cells present / expected", f"{c['cells']} / {c['expected']} ({c['coverage']:.1f}%)"),
        ("seeds per cell", f"{c['n_seeds_min']}–{c['n_seeds_max']}"),
    ]
    return H.table_html(pd.DataFrame(rows, columns=["what", "value"]).astype(str), "coverage_summary", 50).rsplit(
        "<p", 1
    )[0]


def _count(n: int, noun: str) -> str:
    """``1 model``, ``3 models``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def roles_interval_text(t: dict[str, pd.DataFrame]) -> str:
    """What the donor/recipient intervals resampled, in words (the report and summary say it next to the roles)."""
    methods = set()
    for name in ("language_donor_recipient", "task_donor_recipient"):
        if name in t:
            methods |= set(t[name]["donor_ci_method"]) | set(t[name]["recipient_ci_method"])
    parts = []
    if any("one model" in m for m in methods):
        parts.append(
            "One model: the two-stage bootstrap has no models to resample, so each interval resamples the cells "
            "of its language (task) within that model. It shows how consistent those cells are, not how "
            "another model would behave."
        )
    elif bootstrap_over("models") in methods:
        parts.append("Intervals resample models.")
    if NO_CI in methods:
        parts.append("An interval marked 'none (cannot vary)' rests on one model or one cell and names no role.")
    return " ".join(parts)


def _methods_line(df: pd.DataFrame, column: str = "ci_method") -> str:
    """``Intervals: a; b.`` from a table's method column."""
    return "Intervals: " + "; ".join(sorted(set(df[column]))) + "." if column in df and len(df) else ""


def summary_markdown(a: Analysis) -> str:
    """The short written summary: headline table, named roles, coverage, skipped analyses."""
    c, t = a.coverage, a.tables
    lines = [
        "# Transfer analysis summary",
        "",
        (
            f"Metric `{a.spec.metric}` (pp). {_count(c['models'], 'model')}, {_count(c['tasks'], 'task')}, "
            f"{_count(c['languages'], 'language')}; {c['cells']} of {c['expected']} cells ({c['coverage']:.1f}%)."
        ),
        "",
        "## Transfer by regime",
        "",
        "| regime | n | mean | 95% CI | median | positive % | harm % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in t["regime_summary"].itertuples(index=False):
        lines.append(
            f"| {r.regime} | {r.n} | {r.mean:+.2f} | {H.fmt_ci(r.ci_low, r.ci_high)} | {r.median:+.2f} | "
            f"{r.positive_rate:.1f} | {r.harm_rate:.1f} |"
        )
    lines += ["", _methods_line(t["regime_summary"])]
    named = t.get("named_roles", pd.DataFrame())
    lines += ["", "## Named roles (CI of the deviation from the average excludes 0)", ""]
    roles_text = roles_interval_text(t)
    if roles_text:
        lines += [roles_text, ""]
    if named.empty:
        lines.append("None: no language or task stands out beyond its uncertainty.")
    for r in named.itertuples(index=False):
        lines.append(
            f"- {r.kind} **{r.name}**: {r.role}, score {r.score:+.2f} pp {H.fmt_ci(r.ci_low, r.ci_high)} "
            f"({r.ci_method})"
        )
    asym = t.get("language_asymmetry", pd.DataFrame())
    if len(asym):
        top = asym[asym["supported"]].head(5)
        lines += ["", "## Most asymmetric language pairs (CI excludes 0)", ""]
        lines += [
            f"- {r.lang_a} → {r.lang_b}: {r.asymmetry:+.2f} pp {H.fmt_ci(r.ci_low, r.ci_high)} ({r.ci_method})"
            for r in top.itertuples(index=False)
        ] or ["None."]
    methods = t.get("interval_methods", pd.DataFrame())
    if len(methods):
        lines += ["", "## How each interval was made", ""]
        for method, sub in methods.groupby("ci_method", sort=True):
            lines.append(f"- {method}: " + ", ".join(f"`{n}`" for n in dict.fromkeys(sub["table"])))
    if a.notes:
        lines += ["", "## Skipped or partial", ""] + [f"- {n}" for n in a.notes]
    lines += [
        "",
        "Tables: `tables/*.csv` (LaTeX: `tables/*.tex`); figures: `figures/`; full report: `report.html`.",
        "",
    ]
    return "\n".join(lines)


def write_report(a: Analysis, cells: pd.DataFrame, out: Path) -> None:
    """Everything ``xling analyze`` writes except ``run.json``."""
    t = a.tables
    write_tables(t, out / "tables", MAIN_TABLES)
    figures = write_figures(t, out / "figures", a.notes)
    heatmaps = {
        "matrices": [
            H.heatmap_html(t[f"{kind}_transfer_pairs"], list(t[f"{kind}_transfer_matrix"].columns), title)
            for kind, title in (
                ("task", "Task → task (CT-ML), interactive"),
                ("language", "Language → language (MT-CL), interactive"),
            )
            if f"{kind}_transfer_pairs" in t
        ]
    }
    sections = []
    for sid, title, text, table_names, figure_names in SECTIONS:
        blocks = list(heatmaps.get(sid, []))
        blocks += [H.figure_html(figures[f], f.replace("_", " ")) for f in figure_names if f in figures]
        blocks += [f"<h3>{name}</h3>" + H.table_html(t[name], name) for name in table_names if name in t]
        if sid == "roles":
            text = f"{text} {roles_interval_text(t)}".strip()
        if blocks:
            sections.append({"id": sid, "title": title, "text": text, "blocks": blocks})
    page = H.render(
        "xling transfer analysis",
        f"metric {a.spec.metric}; thresholds: positive > "
        f"{a.spec.positive_threshold} pp, harm <= -{a.spec.harm_threshold} pp; {a.spec.n_boot} bootstrap draws",
        _coverage_html(a, a.spec.metric),
        a.notes,
        sections,
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(a), encoding="utf-8")


def run_analysis(
    results: pd.DataFrame,
    out_dir: str | Path,
    spec: AnalysisSpec | None = None,
    *,
    mixed_models: bool | None = None,
    linguistic_distances: bool | None = None,
    source: str = "results",
    input_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Analysis:
    """Analyse ``results`` (either schema; ``xling.analysis.analyze_results``) and write tables, figures, report
    and run record to ``out_dir``. Nothing is left at ``out_dir`` if anything fails."""
    from xling.analysis.pipeline import analyze_results
    from xling.io import atomic_dir
    from xling.provenance import write_run_record

    spec = spec or AnalysisSpec()
    analysis, cells = analyze_results(
        results,
        spec,
        mixed_models=mixed_models,
        linguistic_distances=linguistic_distances,
        source=source,
        progress=progress,
    )
    with atomic_dir(out_dir) as tmp:
        if progress is not None:
            progress("figures and report")
        start = time.perf_counter()
        write_report(analysis, cells, tmp)
        analysis.timings["report"] = time.perf_counter() - start
        extra = {
            "coverage": analysis.coverage,
            "notes": analysis.notes,
            "timings_s": analysis.timings,
            **analysis.options,
            "tables": sorted(analysis.tables),
            "interval_methods": analysis.tables["interval_methods"].to_dict(orient="records"),
        }
        if input_path is not None:
            extra["input"] = {"path": str(input_path), "sha256": file_sha256(Path(input_path))}
        write_run_record(tmp, config=spec, seed=spec.seed, **extra)
    return analysis
