"""Donors and recipients of a grid whose unrun cells were predicted (an adaptive grid, or ``xling predict``).

Input: a predictions table (``PREDICTION_COLUMNS``: the observed cells with their measured delta, the predicted
ones with ``delta_pred`` and an interval ``delta_lo``..``delta_hi``, ``observed`` telling them apart; optionally
``ci_method``, the intervals' level and method). Output, pure:

- ``predicted_cells``: every cell, ``status`` observed or predicted, the predicted ones with their interval;
- ``language_donor_recipient_predicted`` / ``task_donor_recipient_predicted``: the role tables of ``roles`` from
  observed + predicted cells (MT-CL and CT-ML, as there). Each score is the two-stage mean with predicted cells
  at their predictions; ``*_ci_low/high`` resample models with the predicted cells fixed at their predictions, so
  they leave the prediction error out; ``*_pred_low/high`` put every predicted cell at the low (high) end of its
  interval: where every predicted cell lies in its interval, the score lies in that range (a bound over all
  predicted cells together, so wider than the score's own uncertainty); ``*_predicted_share`` is the percent of the
  score's cells that are predicted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.roles import role_table
from xling.contracts import KEYS

#: How the role tables with predicted cells bound a score, in words (the ``pred_method`` column).
RANGE_METHOD = "every predicted cell at the low / high end of its interval"
#: The suffix of their bootstrap intervals' ``ci_method``.
POINT_SUFFIX = " (predicted cells at their predictions)"
#: (table, regime, source column, target column, name column), as ``roles``.
ROLE_TABLES = (
    ("language_donor_recipient_predicted", "MT-CL", "fine_tuned_language", "eval_language", "lang"),
    ("task_donor_recipient_predicted", "CT-ML", "fine_tuned_dataset", "eval_dataset", "task"),
)


def predicted_cells(predictions: pd.DataFrame) -> pd.DataFrame:
    """Every cell with ``status`` (observed / predicted), ``delta`` (pp), the predicted cells' interval and its
    method; predicted cells first."""
    out = predictions.rename(columns={"delta_pred": "delta"})
    out.insert(len(KEYS) + 1, "status", np.where(out["observed"].astype(bool), "observed", "predicted"))
    out["ci_method"] = out["ci_method"].replace("", np.nan) if "ci_method" in out else np.nan
    out.loc[out["status"] == "observed", "ci_method"] = np.nan
    out = out[[*KEYS, "regime", "status", "delta", "delta_lo", "delta_hi", "ci_method"]]
    return out.sort_values(["status", *KEYS], ascending=[False, *[True] * len(KEYS)], ignore_index=True)


def _two_stage_mean(cells: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Mean per (model, key), then the mean over models, per key."""
    return cells.groupby(["model_name", key], sort=True)[value].mean().groupby(key).mean()


def roles_with_predictions(predictions: pd.DataFrame, spec: AnalysisSpec) -> dict[str, pd.DataFrame]:
    """The language and task donor/recipient tables from observed + predicted cells (a regime without cells: no
    table)."""
    cells = predictions.assign(
        delta=predictions["delta_pred"].astype(float), predicted=~predictions["observed"].astype(bool)
    )
    cells = cells.assign(
        delta_low=np.where(cells["predicted"], cells["delta_lo"], cells["delta"]),
        delta_high=np.where(cells["predicted"], cells["delta_hi"], cells["delta"]),
        share=100.0 * cells["predicted"],
    )
    out = {}
    for name, regime, source, target, key in ROLE_TABLES:
        sub = cells[cells["regime"] == regime]
        if sub.empty:
            continue
        table = role_table(sub, source, target, key, spec)
        for role, col in (("donor", source), ("recipient", target)):
            by = {c: _two_stage_mean(sub, col, c) for c in ("delta_low", "delta_high")}
            share = sub.groupby(col)["share"].mean()
            table[f"{role}_pred_low"] = table[key].map(by["delta_low"])
            table[f"{role}_pred_high"] = table[key].map(by["delta_high"])
            table[f"{role}_predicted_share"] = table[key].map(share)
            table[f"{role}_ci_method"] = table[f"{role}_ci_method"] + POINT_SUFFIX
        table["pred_method"] = RANGE_METHOD
        first = [key, "donor", "recipient", "donor_predicted_share", "recipient_predicted_share"]
        bounds = ["donor_pred_low", "donor_pred_high", "recipient_pred_low", "recipient_pred_high"]
        rest = [c for c in table.columns if c not in first and c not in bounds]
        out[name] = table[[*first, *bounds, *rest]]
    return out


def prediction_basis(predictions: pd.DataFrame) -> dict:
    """What the predicted tables rest on: cells and (model, source) pairs observed and predicted, the intervals'
    method, and a sentence saying it (the findings show it)."""
    predicted = ~predictions["observed"].astype(bool)
    pairs = predictions.drop_duplicates(KEYS[:3])
    n_pred_pairs = int((~pairs["observed"].astype(bool)).sum())
    methods = sorted(set(predictions.loc[predicted, "ci_method"].dropna()) - {""}) if "ci_method" in predictions else []
    method = "; ".join(methods) or "the intervals of the predictions table"
    text = (
        f"Donor/recipient tables *_predicted: observed + predicted cells ({int(predicted.sum())} of "
        f"{len(predictions)} cells predicted, {n_pred_pairs} of {len(pairs)} (model, source) pairs; intervals: "
        f"{method}). Their scores put predicted cells at their predictions; *_pred_low/high put every predicted "
        "cell at its interval's low/high end; their CIs resample models and leave the prediction error out. "
        "Every other table, and the named roles, use the observed cells only."
    )
    return {
        "cells": len(predictions),
        "predicted_cells": int(predicted.sum()),
        "pairs": len(pairs),
        "predicted_pairs": n_pred_pairs,
        "ci_method": method,
        "text": text,
    }
