"""Asymmetry: does A help B as much as B helps A?

For language pairs (MT-CL) the paired unit is a (model, task): d = delta(A->B) - delta(B->A), with a
bootstrap CI over units. For cell pairs (any two source/target cells) the unit is the model and the
CI is a Student-t interval (with at most a few models per pair a bootstrap would be too coarse, and
~15k pairs are tested). ``supported`` marks pairs whose CI excludes zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.stats import NO_CI, group_summary, t_interval

COLUMNS = ["delta_ab", "delta_ba", "asymmetry", "ci_low", "ci_high", "n", "supported", "ci_method"]


def _paired(cells: pd.DataFrame, a: list[str], b: list[str], unit: list[str]) -> pd.DataFrame:
    """Rows with delta(a->b) and delta(b->a) for every unit, one row per unordered pair (a < b)."""
    fwd = cells[[*unit, *a, *b, "delta"]]
    rev = fwd.rename(columns={**dict(zip(a, b)), **dict(zip(b, a)), "delta": "delta_rev"})
    both = fwd.merge(rev, on=[*unit, *a, *b])
    key_a, key_b = _join(both, a), _join(both, b)
    keep = key_a < key_b
    both = both[keep].assign(pair_a=key_a[keep], pair_b=key_b[keep])
    return both.assign(d=both["delta"] - both["delta_rev"])


def _join(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    out = df[cols[0]].astype(str)
    for c in cols[1:]:
        out = out + "|" + df[c].astype(str)
    return out


def language_asymmetry(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``lang_a,lang_b,delta_ab,delta_ba,asymmetry,ci_low,ci_high,n,supported`` over MT-CL cells, most asymmetric
    first."""
    mtcl = cells[cells["regime"] == "MT-CL"]
    pairs = _paired(mtcl, ["fine_tuned_language"], ["eval_language"], ["model_name", "fine_tuned_dataset"])
    if pairs.empty:
        return pd.DataFrame(columns=["lang_a", "lang_b", *COLUMNS])
    summ = group_summary(
        pairs, ["pair_a", "pair_b"], "d", np.random.default_rng(spec.seed), spec.n_boot, units="model x task pairs"
    )
    means = pairs.groupby(["pair_a", "pair_b"])[["delta", "delta_rev"]].mean().reset_index()
    out = summ.merge(means, on=["pair_a", "pair_b"]).rename(
        columns={
            "pair_a": "lang_a",
            "pair_b": "lang_b",
            "delta": "delta_ab",
            "delta_rev": "delta_ba",
            "mean": "asymmetry",
        }
    )
    out["supported"] = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    return (
        out[["lang_a", "lang_b", *COLUMNS]].sort_values("asymmetry", key=np.abs, ascending=False).reset_index(drop=True)
    )


def cell_asymmetry(cells: pd.DataFrame) -> pd.DataFrame:
    """``cell_a,cell_b,...`` for every pair of cells (task|language) measured both ways, most asymmetric first."""
    transfer = cells[cells["regime"] != "MT-ML"]
    pairs = _paired(
        transfer, ["fine_tuned_dataset", "fine_tuned_language"], ["eval_dataset", "eval_language"], ["model_name"]
    )
    if pairs.empty:
        return pd.DataFrame(columns=["cell_a", "cell_b", *COLUMNS])
    g = pairs.groupby(["pair_a", "pair_b"])
    out = g.agg(
        delta_ab=("delta", "mean"),
        delta_ba=("delta_rev", "mean"),
        asymmetry=("d", "mean"),
        sd=("d", "std"),
        n=("d", "size"),
    ).reset_index()
    out["ci_low"], out["ci_high"] = t_interval(out["asymmetry"], out["sd"], out["n"])
    out["supported"] = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    out["ci_method"] = np.where(out["n"] >= 2, "t over models", NO_CI)
    out = out.rename(columns={"pair_a": "cell_a", "pair_b": "cell_b"})
    return (
        out[["cell_a", "cell_b", *COLUMNS]].sort_values("asymmetry", key=np.abs, ascending=False).reset_index(drop=True)
    )
