"""How much fine-tuning helps or harms: global uplift, regimes, MT-CL harm, per-cell significance.

All functions take annotated cells (``delta`` = the chosen metric in pp, ``delta_se`` its seed SE)
and return tables whose column names are the report's contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.results import REGIMES, TRANSFER_REGIMES
from xling.analysis.stats import benjamini_hochberg, group_summary, seed_t_test

SUMMARY = ["n", "mean", "median", "positive_rate", "harm_rate", "ci_low", "ci_high", "ci_method"]


def _summary(df: pd.DataFrame, by: list[str], spec: AnalysisSpec) -> pd.DataFrame:
    out = group_summary(
        df, by, "delta", np.random.default_rng(spec.seed), spec.n_boot, spec.positive_threshold, spec.harm_threshold
    )
    return out[[*by, *SUMMARY]]


def regime_summary(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``regime,n,mean,median,positive_rate,harm_rate`` (+ CI) in the order MT-ML, MT-CL, CT-ML, CT-CL."""
    out = _summary(cells, ["regime"], spec).set_index("regime")
    return out.reindex([r for r in REGIMES if r in out.index]).reset_index()


def global_uplift(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """One row for every cell, one for transfer cells (all but MT-ML), one for the trained cells."""
    scoped = pd.concat(
        [
            cells.assign(scope="all"),
            cells[cells["regime"] != "MT-ML"].assign(scope="transfer"),
            cells[cells["regime"] == "MT-ML"].assign(scope="trained (MT-ML)"),
        ]
    )
    out = _summary(scoped, ["scope"], spec).set_index("scope")
    return out.reindex([s for s in ("all", "transfer", "trained (MT-ML)") if s in out.index]).reset_index()


def mtcl_harm_breakdown(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """MT-CL cells by target language, target task, size bucket and family: ``group,key,...``."""
    mtcl = cells[cells["regime"] == "MT-CL"]
    parts = [_summary(mtcl.assign(group="overall", key="all"), ["group", "key"], spec)]
    for group, col in (
        ("target_language", "eval_language"),
        ("target_task", "eval_dataset"),
        ("size_bucket", "size_bucket"),
        ("family", "family"),
    ):
        parts.append(_summary(mtcl.assign(group=group, key=mtcl[col].astype(str)), ["group", "key"], spec))
    return pd.concat(parts, ignore_index=True)


def mtcl_by_construction_type(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """MT-CL cells overall and by the target task's construction (human- vs machine-translated)."""
    mtcl = cells[cells["regime"] == "MT-CL"]
    both = pd.concat([mtcl.assign(subset="all"), mtcl.assign(subset=mtcl["construction"])])
    return _summary(both, ["subset"], spec)


def cell_significance(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per cell: t-test of delta != 0 from its seed SE (df = n_seeds - 1), BH q-values over all tested cells."""
    t, p = seed_t_test(cells["delta"], cells["delta_se"], cells["n_seeds"])
    q = benjamini_hochberg(p)
    out = cells[
        ["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language", "regime"]
    ].copy()
    out["delta"] = cells["delta"].to_numpy()
    out["se"] = cells["delta_se"].to_numpy()
    out["n_seeds"] = cells["n_seeds"].to_numpy()
    out["t"], out["p"], out["q"] = t, p, q
    sig = np.isfinite(q) & (q < spec.alpha)
    out["call"] = np.where(sig & (out["delta"] > 0), "gain", np.where(sig & (out["delta"] < 0), "harm", "n.s."))
    out.loc[~np.isfinite(q), "call"] = "untested"
    return out


def significance_by_regime(significance: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of tested cells with a significant gain or harm (BH FDR), per regime and for all transfer."""
    tested = significance[significance["call"] != "untested"]
    frames = [
        tested.assign(scope=tested["regime"]),
        tested[tested["regime"].isin(TRANSFER_REGIMES)].assign(scope="transfer"),
    ]
    both = pd.concat(frames)
    rows = []
    for scope in [*REGIMES, "transfer"]:
        sub = both[both["scope"] == scope]
        if sub.empty:
            continue
        rows.append(
            {
                "regime": scope,
                "n_cells": int((significance["regime"] == scope).sum())
                if scope != "transfer"
                else int(significance["regime"].isin(TRANSFER_REGIMES).sum()),
                "n_tested": len(sub),
                "sig_gain_rate": 100.0 * (sub["call"] == "gain").mean(),
                "sig_harm_rate": 100.0 * (sub["call"] == "harm").mean(),
            }
        )
    return pd.DataFrame(rows, columns=["regime", "n_cells", "n_tested", "sig_gain_rate", "sig_harm_rate"])
