"""What one analysis found, as data: the headline transfer per regime, the named roles, and what this run cannot
support and why. The report layer prints it first (terminal, ``summary.md``, ``report.html``) and ``--json``
carries it (``Findings.to_dict``); nothing here formats or writes.

Units (one rule for every table, the terminal, JSON and the report, never rescaled on the way): scores are
proportions (0-1), as in the release schema; a delta, a mean or median of deltas, their intervals and role scores
are percentage points (pp = 100 x the difference of two proportions); rates, shares and coverage are percent
(0-100). ``UNITS`` says it per column.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xling.analysis.results import REGIMES
from xling.analysis.stats import NO_CI, bootstrap_over

# MT/CT = matched/cross task, ML/CL = matched/cross language, between the source cell an adapter was trained on
# and the target cell it is scored on (``xling.contracts.regime_of``).
REGIME_NAMES = {
    "MT-ML": ("matched task, matched language", "the trained cell itself"),
    "MT-CL": ("matched task, cross language", "the trained task in the other languages"),
    "CT-ML": ("cross task, matched language", "the other tasks in the trained language"),
    "CT-CL": ("cross task, cross language", "the other tasks in the other languages"),
}

UNITS = {
    "proportion (0-1)": "scores: score*, score_base* (the release schema), acc, acc_norm",
    "pp (percentage points)": (
        "deltas and everything made from them: delta*, mean, median, ci_low, ci_high, donor, recipient, score of "
        "a named role, asymmetry, mean_diff"
    ),
    "percent (0-100)": "rates, shares and coverage: *_rate, share, coverage, sign_agreement",
}

# Consistency raters other than models: (table suffix, column of the annotated cells, noun).
_RATERS = (
    ("family", "family", "family"),
    ("size", "size", "model size"),
    ("size_bucket", "size_bucket", "size bucket"),
)


@dataclass
class Findings:
    """The findings of one analysis (``to_dict`` for JSON).

    ``scope``: what was analysed (counts, model names, seeds, coverage, metric); ``regimes``: one dict per regime
    (``regime, name, meaning, n, mean, ci_low, ci_high, ci_method, median, positive_rate, harm_rate``); ``roles``: the
    named roles (rows of ``named_roles``); ``roles_basis``: what the role intervals resampled, in words;
    ``limits``: what this run cannot support (``what``) and why (``why``); ``predicted``: where unrun cells were
    predicted, what the predicted tables rest on (``xling.analysis.predicted.prediction_basis``; empty otherwise).
    """

    scope: dict = field(default_factory=dict)
    regimes: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    roles_basis: str = ""
    limits: list[dict] = field(default_factory=list)
    predicted: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-able copy: plain Python values, NaN (an interval that cannot vary) as None."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python values and NaN as None, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def find(cells: pd.DataFrame, tables: dict[str, pd.DataFrame], coverage: dict, metric: str) -> Findings:
    """The findings of an analysis from its annotated cells, tables and coverage (``pipeline.analyze``)."""
    models = sorted(cells["model_name"].unique())
    scope = {
        **{k: coverage[k] for k in ("models", "tasks", "languages", "cells", "expected", "coverage")},
        "model_names": models,
        "seeds_min": coverage["n_seeds_min"],
        "seeds_max": coverage["n_seeds_max"],
        "metric": metric,
    }
    return Findings(
        scope=scope,
        regimes=regime_findings(tables["regime_summary"]),
        roles=tables.get("named_roles", pd.DataFrame()).to_dict(orient="records"),
        roles_basis=roles_basis(tables),
        limits=limits(cells, tables, coverage),
    )


def regime_findings(summary: pd.DataFrame) -> list[dict]:
    """One dict per regime of ``regime_summary``, with its name spelled out."""
    cols = ["regime", "n", "mean", "ci_low", "ci_high", "ci_method", "median", "positive_rate", "harm_rate"]
    out = []
    for rec in summary[cols].to_dict(orient="records"):
        name, meaning = REGIME_NAMES[rec["regime"]]
        out.append({"regime": rec["regime"], "name": name, "meaning": meaning, **{c: rec[c] for c in cols[1:]}})
    return out


def roles_basis(tables: dict[str, pd.DataFrame]) -> str:
    """What the donor/recipient intervals resampled, in words (shown next to the roles)."""
    methods: set[str] = set()
    for name in ("language_donor_recipient", "task_donor_recipient"):
        if name in tables:
            methods |= set(tables[name]["donor_ci_method"]) | set(tables[name]["recipient_ci_method"])
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
    if methods:
        parts.append("A role is named only where the CI of its deviation from the average excludes 0.")
    return " ".join(parts)


def limits(cells: pd.DataFrame, tables: dict[str, pd.DataFrame], coverage: dict) -> list[dict]:
    """What this run cannot support, each with why: ``[{"what": ..., "why": ...}]``, most basic first."""
    out: list[dict] = []

    def add(what: str, why: str) -> None:
        out.append({"what": what, "why": why})

    if not coverage["complete"]:
        add(
            "a complete grid",
            f"{coverage['cells']} of {coverage['expected']} cells ({coverage['coverage']:.1f} %) are present; "
            "every analysis uses the cells present",
        )
    missing = [r for r in REGIMES if r not in set(cells["regime"])]
    if missing:
        add(f"{', '.join(missing)} results", "the table has no such cells; the analyses that need them are skipped")
    calls = tables["cell_significance"]["call"]
    untested = int((calls == "untested").sum())
    if coverage["n_seeds_max"] < 2:
        add(
            "a test of any single cell",
            "one seed per cell, so no cell has a seed SE to test against (two seeds give one)",
        )
    elif untested:
        add(
            f"a test of {untested} of {len(calls)} cells",
            "fewer than two seeds, or every seed scored the same (zero SE)",
        )
    if coverage["models"] < 2:
        add(
            "claims about other models",
            "one model, so role intervals resample its cells (how consistent they are, not how another model "
            "would behave), the variance decompositions cannot estimate a model share, and the consistency index "
            "has no second model to compare with",
        )
    else:
        for suffix, col, noun in _RATERS:
            if cells[col].nunique(dropna=False) < 2 and f"consistency_by_{suffix}" in tables:
                add(f"consistency by {noun}", f"one {noun}, so no second rater to compare with")
    for name, col in (("variance_mixedlm", "component"), ("variance_crossed", "term")):
        df = tables.get(name)
        if df is None or df.empty or "estimable" not in df:
            continue
        head = df[(df["subset"] == "all") & (df["scope"] == "overall") & ~df["estimable"].astype(bool)]
        if coverage["models"] < 2:  # said once above
            head = head[~head["reason"].str.startswith("one model")]
        for reason, sub in head.groupby("reason", sort=False):
            terms = ", ".join(sub[col])
            add(f"a variance share for {terms} ({name})", f"not estimable, {reason}")
    return out
