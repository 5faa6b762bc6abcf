"""Two results tables on their shared cells (e.g. your grid against the published one).

Correlation (Pearson, Spearman), mean difference B - A with a bootstrap CI over shared cells, sign
agreement, and the same per regime. Cells only one table has are counted, not compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from xling.analysis.results import KEYS, REGIMES, TRANSFER_REGIMES
from xling.analysis.stats import group_summary
from xling.errors import XlingError

COLUMNS = [
    "scope",
    "n",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci_low",
    "ci_high",
    "pearson_r",
    "spearman_rho",
    "sign_agreement",
    "ci_method",
]


def shared_cells(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Cells in both tables: keys, regime, ``a``, ``b`` and ``diff = b - a``."""
    merged = a[[*KEYS, "regime", metric]].merge(b[[*KEYS, metric]], on=KEYS, suffixes=("_a", "_b"))
    if merged.empty:
        raise XlingError("compare: the two tables share no cells (model, source and target keys must match)")
    return pd.DataFrame(
        {
            **{k: merged[k] for k in [*KEYS, "regime"]},
            "a": merged[f"{metric}_a"],
            "b": merged[f"{metric}_b"],
            "diff": merged[f"{metric}_b"] - merged[f"{metric}_a"],
        }
    )


def _row(scope: str, d: pd.DataFrame, ci: pd.Series) -> dict:
    n = len(d)
    ok = n >= 3 and d["a"].nunique() > 1 and d["b"].nunique() > 1
    return {
        "scope": scope,
        "n": n,
        "mean_a": d["a"].mean(),
        "mean_b": d["b"].mean(),
        "mean_diff": d["diff"].mean(),
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        "pearson_r": stats.pearsonr(d["a"], d["b"])[0] if ok else np.nan,
        "spearman_rho": stats.spearmanr(d["a"], d["b"])[0] if ok else np.nan,
        "sign_agreement": 100.0 * (np.sign(d["a"]) == np.sign(d["b"])).mean(),
        "ci_method": ci["ci_method"],
    }


def compare_tables(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """``compare_overall`` (all, transfer, each regime), ``compare_cells`` and ``compare_coverage``."""
    cells = shared_cells(a, b, metric)
    scoped = pd.concat(
        [
            cells.assign(scope="all"),
            cells[cells["regime"].isin(TRANSFER_REGIMES)].assign(scope="transfer"),
            cells.assign(scope=cells["regime"]),
        ]
    )
    ci = group_summary(scoped, ["scope"], "diff", np.random.default_rng(seed), n_boot).set_index("scope")
    rows = [_row(s, scoped[scoped["scope"] == s], ci.loc[s]) for s in ("all", "transfer", *REGIMES) if s in ci.index]
    coverage = pd.DataFrame([{"only_a": len(a) - len(cells), "only_b": len(b) - len(cells), "shared": len(cells)}])
    return {
        "compare_overall": pd.DataFrame(rows, columns=COLUMNS),
        "compare_cells": cells,
        "compare_coverage": coverage,
    }
