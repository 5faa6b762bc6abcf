"""Static figures (matplotlib, Agg): each is saved as PNG and SVG under ``OUT/figures``.

Every function takes the analysis tables and returns a matplotlib Figure, or None when the data it
needs is absent (the report then says the figure was skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

REGIME_COLORS = {"MT-ML": "#4c72b0", "MT-CL": "#55a868", "CT-ML": "#dd8452", "CT-CL": "#c44e52"}
plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _err(df: pd.DataFrame, mean: str, lo: str, hi: str) -> np.ndarray:
    """Error-bar lengths; an interval that cannot vary (NaN) draws no bar rather than a zero-length one."""
    return np.vstack([(df[mean] - df[lo]).clip(lower=0), (df[hi] - df[mean]).clip(lower=0)]).astype(float)


def regime_bars(t: dict[str, pd.DataFrame]):
    """Mean delta per regime with 95% CI."""
    df = t["regime_summary"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(
        df["regime"],
        df["mean"],
        yerr=_err(df, "mean", "ci_low", "ci_high"),
        capsize=4,
        color=[REGIME_COLORS.get(r, "grey") for r in df["regime"]],
    )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("mean delta (pp)")
    ax.set_title("Transfer by regime (95% CI)")
    return fig


def heatmap(matrix: pd.DataFrame | None, title: str, xlabel: str, ylabel: str):
    """A diverging heatmap centred at 0 with the diagonal masked."""
    if matrix is None:
        return None
    m = matrix.to_numpy(dtype=float)
    if not np.isfinite(m).any():
        return None
    lim = float(np.nanmax(np.abs(m))) or 1.0
    size = max(3.5, 0.32 * len(matrix) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(m.shape[1]), matrix.columns, rotation=90)
    ax.set_yticks(range(m.shape[0]), matrix.index)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="mean delta (pp)", shrink=0.8)
    return fig


def language_roles(t: dict[str, pd.DataFrame]):
    """Language donor vs recipient scores (MT-CL) with CIs."""
    if "language_donor_recipient" not in t:
        return None
    df = t["language_donor_recipient"].dropna(subset=["donor", "recipient"])
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.errorbar(
        df["donor"],
        df["recipient"],
        xerr=_err(df, "donor", "donor_ci_low", "donor_ci_high"),
        yerr=_err(df, "recipient", "recipient_ci_low", "recipient_ci_high"),
        fmt="o",
        ms=4,
        lw=0.7,
    )
    for _, r in df.iterrows():
        ax.annotate(r["lang"], (r["donor"], r["recipient"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("donor score (pp)")
    ax.set_ylabel("recipient score (pp)")
    ax.set_title("Language roles (MT-CL, two-stage means, 95% CI)")
    return fig


def task_roles(t: dict[str, pd.DataFrame]):
    """Task donor and recipient scores (CT-ML) with CIs."""
    if "task_donor_recipient" not in t:
        return None
    df = t["task_donor_recipient"].dropna(subset=["donor", "recipient"])
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["donor"], 0.4, yerr=_err(df, "donor", "donor_ci_low", "donor_ci_high"), label="donor", capsize=3)
    ax.bar(
        x + 0.2,
        df["recipient"],
        0.4,
        yerr=_err(df, "recipient", "recipient_ci_low", "recipient_ci_high"),
        label="recipient",
        capsize=3,
    )
    ax.set_xticks(x, df["task"], rotation=20)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("score (pp)")
    ax.set_title("Task roles (CT-ML, 95% CI)")
    ax.legend()
    return fig


def pareto(t: dict[str, pd.DataFrame]):
    """The paper's Figure 1: on-task (MT-CL) vs off-task delta per source, one panel per family."""
    df = t.get("pareto_profiles")
    if df is None or df.empty:
        return None
    families = sorted(df["family"].unique())
    fig, axes = plt.subplots(
        1, len(families), figsize=(3.4 * len(families), 3.4), squeeze=False, sharex=True, sharey=True
    )
    for ax, fam in zip(axes[0], families):
        sub = df[df["family"] == fam]
        ax.scatter(sub["on_task"], sub["off_task"], s=8, alpha=0.5, c="#4c72b0", label="source")
        front = sub[sub["pareto"]].sort_values("on_task")
        ax.plot(front["on_task"], front["off_task"], "o-", color="#c44e52", ms=4, lw=1, label="Pareto front")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(fam)
        ax.set_xlabel("on-task: mean MT-CL delta (pp)")
    axes[0][0].set_ylabel("off-task: mean other-task delta (pp)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def variance_bars(t: dict[str, pd.DataFrame]):
    """Variance shares (subset ``all``): the crossed decomposition and (if fitted) the paper's nested MixedLM; a
    component without a share (not estimable) is left out."""
    if t["variance_crossed"].empty:
        return None
    panels = [("variance_crossed", "term", "Crossed sums of squares (%)")]
    if "variance_mixedlm" in t and len(t["variance_mixedlm"]):
        panels.append(("variance_mixedlm", "component", "Nested MixedLM (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    for ax, (name, col, title) in zip(axes[0], panels):
        df = t[name][t[name]["subset"] == "all"]
        wide = df.pivot(index="scope", columns=col, values="share").reindex(columns=df[col].unique())
        wide = wide.dropna(axis=1, how="all")  # a component no fit could estimate (e.g. one model) has no bar
        wide = wide.reindex([s for s in ("overall", "MT-CL", "CT-ML", "CT-CL") if s in wide.index])
        bottom = np.zeros(len(wide))
        cmap = plt.get_cmap("tab20")
        for i, comp in enumerate(wide.columns):
            vals = wide[comp].fillna(0).to_numpy()
            ax.bar(wide.index, vals, bottom=bottom, label=comp, color=cmap(i % 20))
            bottom += vals
        ax.set_title(title)
        ax.set_ylabel("share of variance (%)")
        ax.legend(fontsize=6, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.tight_layout()
    return fig


def consistency_boxes(t: dict[str, pd.DataFrame]):
    """Distribution over sources of the mean Kendall tau between raters, per regime and rater type."""
    df = t.get("consistency_sources")
    if df is None or df.empty:
        return None
    groups = [
        (r, k)
        for k in ("model", "family", "size", "size_bucket")
        for r in ("MT-CL", "CT-ML", "CT-CL")
        if ((df["raters"] == k) & (df["regime"] == r)).any()
    ]
    data = [df[(df["raters"] == k) & (df["regime"] == r)]["tau"].dropna() for r, k in groups]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), [f"{r}\nby {k}" for r, k in groups], fontsize=7)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("mean Kendall tau-b")
    ax.set_title("Consistency index")
    return fig


def linguistic_bars(t: dict[str, pd.DataFrame]):
    """Spearman rho of URIEL distance vs MT-CL delta, with 95% CI."""
    df = t.get("linguistic_correlations")
    if df is None or df["spearman_rho"].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(
        df["feature"],
        df["spearman_rho"].fillna(0),
        yerr=_err(df.fillna(0), "spearman_rho", "rho_ci_low", "rho_ci_high"),
        capsize=3,
        color="#8172b2",
    )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("Spearman rho")
    ax.set_title("Typological distance vs MT-CL transfer")
    ax.tick_params(axis="x", rotation=20)
    return fig


def asymmetry_bars(t: dict[str, pd.DataFrame], top: int = 15):
    """The most asymmetric language pairs, delta(A->B) - delta(B->A) with 95% CI."""
    df = t.get("language_asymmetry")
    if df is None or df.empty:
        return None
    df = df.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(5, 0.25 * len(df) + 1.2))
    labels = df["lang_a"] + " -> " + df["lang_b"]
    colors = np.where(df["supported"], "#c44e52", "#aaaaaa")
    ax.barh(labels, df["asymmetry"], xerr=_err(df, "asymmetry", "ci_low", "ci_high"), color=colors, capsize=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("delta(A->B) - delta(B->A) (pp)")
    ax.set_title("Most asymmetric language pairs (red: CI excludes 0)")
    return fig


def significance_bars(t: dict[str, pd.DataFrame]):
    """Share of cells with a significant gain / harm (BH FDR) per regime."""
    df = t["significance_by_regime"]
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["sig_gain_rate"], 0.4, label="significant gain", color="#55a868")
    ax.bar(x + 0.2, df["sig_harm_rate"], 0.4, label="significant harm", color="#c44e52")
    ax.set_xticks(x, df["regime"])
    ax.set_ylabel("% of tested cells")
    ax.set_title("Per-cell tests (BH FDR)")
    ax.legend(fontsize=7)
    return fig


def figure_makers(t: dict[str, pd.DataFrame]) -> dict[str, Callable[[], object]]:
    """Figure name -> a function making it (in report order)."""
    return {
        "regime_summary": lambda: regime_bars(t),
        "significance_by_regime": lambda: significance_bars(t),
        "task_transfer_heatmap": lambda: heatmap(
            t.get("task_transfer_matrix"), "Task -> task transfer (CT-ML)", "target task", "source task"
        ),
        "language_transfer_heatmap": lambda: heatmap(
            t.get("language_transfer_matrix"),
            "Language -> language transfer (MT-CL)",
            "target language",
            "source language",
        ),
        "language_roles": lambda: language_roles(t),
        "task_roles": lambda: task_roles(t),
        "pareto_profiles": lambda: pareto(t),
        "variance_decomposition": lambda: variance_bars(t),
        "consistency_index": lambda: consistency_boxes(t),
        "linguistic_correlations": lambda: linguistic_bars(t),
        "language_asymmetry": lambda: asymmetry_bars(t),
    }


def write_figures(tables: dict[str, pd.DataFrame], folder: Path, notes: list[str]) -> dict[str, Path]:
    """Save every figure of the transfer analysis as PNG and SVG; return name -> PNG path of those made."""
    return save_figures(figure_makers(tables), folder, notes)


def save_figures(makers: dict[str, Callable[[], object]], folder: Path, notes: list[str]) -> dict[str, Path]:
    """Make each figure and save it as PNG and SVG (a maker returning None is noted as skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, make in makers.items():
        fig = make()
        if fig is None:
            notes.append(f"figure {name}: skipped (no data)")
            continue
        fig.tight_layout()  # once, rather than bbox_inches="tight" in each savefig (a layout pass per format)
        fig.savefig(folder / f"{name}.png")
        fig.savefig(folder / f"{name}.svg")
        plt.close(fig)
        made[name] = folder / f"{name}.png"
    return made
