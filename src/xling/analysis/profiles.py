"""On-task vs off-task profiles (the paper's Figure 1).

One point per (model, source task, source language): x = mean MT-CL delta (same task, other
languages), y = mean delta over every other-task target (CT-ML and CT-CL). A point is Pareto-optimal
when no other point of the same family is at least as good on both axes and better on one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.stats import group_summary, two_stage

SOURCE = ["model_name", "family", "size", "fine_tuned_dataset", "fine_tuned_language"]


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of points not dominated by any other point (larger is better on both axes)."""
    ge = (x[None, :] >= x[:, None]) & (y[None, :] >= y[:, None])
    gt = (x[None, :] > x[:, None]) | (y[None, :] > y[:, None])
    return ~(ge & gt).any(axis=1)


def _side(cells: pd.DataFrame, name: str, spec: AnalysisSpec) -> pd.DataFrame:
    summ = group_summary(cells, SOURCE, "delta", np.random.default_rng(spec.seed), spec.n_boot)
    return summ.set_index(SOURCE)[["mean", "ci_low", "ci_high", "n", "ci_method"]].rename(
        columns={
            "mean": f"{name}_task",
            "ci_low": f"{name}_ci_low",
            "ci_high": f"{name}_ci_high",
            "n": f"n_{name}",
            "ci_method": f"{name}_ci_method",
        }
    )


def pareto_profiles(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``model_name,family,size,fine_tuned_dataset,fine_tuned_language,on_task,off_task,...,pareto`` (CIs over
    cells)."""
    on = _side(cells[cells["regime"] == "MT-CL"], "on", spec)
    off = _side(cells[cells["regime"].isin(["CT-ML", "CT-CL"])], "off", spec)
    out = on.join(off, how="inner").reset_index()
    out["pareto"] = False
    for _, idx in out.groupby("family").groups.items():
        sub = out.loc[idx]
        out.loc[idx, "pareto"] = pareto_front(sub["on_task"].to_numpy(), sub["off_task"].to_numpy())
    return out[
        [
            *SOURCE,
            "on_task",
            "off_task",
            "on_ci_low",
            "on_ci_high",
            "off_ci_low",
            "off_ci_high",
            "n_on",
            "n_off",
            "pareto",
            "on_ci_method",
            "off_ci_method",
        ]
    ]


def task_on_off_summary(profiles: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per source task: on- and off-task two-stage means with model-resampled CIs, and the trade-off share.

    With one model the CIs resample the task's source points (one per source language) instead.

    ``tradeoff_rate`` = % of source points with on_task > 0 and off_task < 0 (helps its task, hurts others).
    """
    rng = np.random.default_rng(spec.seed)
    on, off = (
        two_stage(
            profiles.rename(columns={side: "delta"}), "fine_tuned_dataset", "delta", rng, spec.n_boot, cells="sources"
        )
        for side in ("on_task", "off_task")
    )
    out = pd.DataFrame(
        {
            "task": on["fine_tuned_dataset"],
            "on_task": on["mean"],
            "on_ci_low": on["ci_low"],
            "on_ci_high": on["ci_high"],
            "off_task": off["mean"],
            "off_ci_low": off["ci_low"],
            "off_ci_high": off["ci_high"],
            "ci_method": on["ci_method"],
        }
    )
    trade = profiles.assign(t=(profiles["on_task"] > 0) & (profiles["off_task"] < 0))
    per_task = trade.groupby("fine_tuned_dataset").agg(n=("t", "size"), tradeoff_rate=("t", "mean"))
    out["n"] = out["task"].map(per_task["n"]).to_numpy()
    out["tradeoff_rate"] = 100.0 * out["task"].map(per_task["tradeoff_rate"]).to_numpy()
    return out
