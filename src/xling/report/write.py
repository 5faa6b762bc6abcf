"""Write one transfer analysis to a folder: tables (CSV, LaTeX for the main ones), figures, report.html,
summary.md and run.json, atomically (``run_analysis``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.pipeline import Analysis
from xling.io import file_sha256
from xling.report import html as H
from xling.report.figures import write_figures
from xling.report.findings import findings_html, findings_markdown, regimes_legend

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
    "language_donor_recipient_predicted",
    "task_donor_recipient_predicted",
)

# (section id, title, explanation, tables, figures); a table or figure that is absent is left out.
SECTIONS = [
    (
        "headline",
        "Headline: transfer by regime",
        f"{regimes_legend()}. Transfer = every regime but MT-ML. positive = delta > threshold, "
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
        "Two-stage means (per model, then over models). Named roles need intervals that can vary.",
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
        "predicted",
        "Donors and recipients with the predicted cells",
        (
            "The grid ran some (model, source cell) pairs and predicted the others (xling's predictor, as `xling "
            "predict`). predicted_cells marks every cell observed or predicted, a predicted cell with its interval; "
            "the donor/recipient tables here pool observed and predicted cells."
        ),
        ["language_donor_recipient_predicted", "task_donor_recipient_predicted", "predicted_cells"],
        [],
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


def summary_markdown(a: Analysis) -> str:
    """The short written summary: the findings first, then asymmetry, interval methods and skipped analyses."""
    t = a.tables
    lines = ["# Transfer analysis summary", "", *findings_markdown(a.findings)]
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


# A table that is empty because another step found nothing to work with: the note that says why starts there.
EMPTY_BECAUSE = {"significance_by_regime": "cell_significance"}


def empty_reason(name: str, notes: list[str]) -> str:
    """The note that explains why table ``name`` has no rows ("" if none does)."""
    prefix = EMPTY_BECAUSE.get(name, name)
    for note in notes:
        head, _, rest = note.partition(": ")
        if prefix in [h.strip() for h in head.split(",")]:
            return f"{head}: {rest}" if head != name else rest
    return ""


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
        for name in (n for n in table_names if n in t):
            if t[name].empty:
                blocks.append(H.empty_html(name, empty_reason(name, a.notes)))
            else:
                blocks.append(f"<h3>{name}</h3>" + H.table_html(t[name], name))
        if sid == "roles":
            text = f"{text} {a.findings.roles_basis}".strip()
        if sid == "predicted" and a.findings.predicted:
            text = f"{text} {a.findings.predicted['text']}"
        if blocks:
            sections.append({"id": sid, "title": title, "text": text, "blocks": blocks})
    page = H.render(
        "xling transfer analysis",
        f"metric {a.spec.metric}; thresholds: positive > "
        f"{a.spec.positive_threshold} pp, harm <= -{a.spec.harm_threshold} pp; {a.spec.n_boot} bootstrap draws",
        _coverage_html(a, a.spec.metric),
        a.notes,
        sections,
        findings_html(a.findings),
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
    predictions: pd.DataFrame | None = None,
) -> Analysis:
    """Analyse ``results`` (either schema; ``xling.analysis.analyze_results``, with the ``predictions`` of its unrun
    cells where there are some) and write tables, figures, report and run record to ``out_dir``. Nothing is left
    at ``out_dir`` if anything fails."""
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
        predictions=predictions,
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
            "findings": analysis.findings.to_dict(),
        }
        if input_path is not None:
            extra["input"] = {"path": str(input_path), "sha256": file_sha256(Path(input_path))}
        write_run_record(tmp, config=spec, seed=spec.seed, **extra)
    return analysis
