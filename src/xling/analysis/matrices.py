"""Source x target transfer matrices: task -> task (CT-ML cells) and language -> language (MT-CL cells).

Each entry is the mean delta over the cells it pools (models x languages, or models x tasks) with a
bootstrap CI over those cells; the diagonal is empty by construction (it is another regime).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.stats import group_summary


def _pairs(sub: pd.DataFrame, source: str, target: str, spec: AnalysisSpec) -> pd.DataFrame:
    out = group_summary(
        sub,
        [source, target],
        "delta",
        np.random.default_rng(spec.seed),
        spec.n_boot,
        spec.positive_threshold,
        spec.harm_threshold,
    )
    return out.rename(columns={source: "source", target: "target"})[
        ["source", "target", "n", "mean", "ci_low", "ci_high", "ci_method"]
    ]


def _matrix(pairs: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    m = pairs.pivot(index="source", columns="target", values="mean").reindex(index=labels, columns=labels)
    for label in labels:
        m.loc[label, label] = np.nan
    m.index.name = "source"
    return m


def task_transfer(cells: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matrix, long pairs with n/mean/CI) of mean CT-ML delta, source task rows x target task columns."""
    pairs = _pairs(cells[cells["regime"] == "CT-ML"], "fine_tuned_dataset", "eval_dataset", spec)
    labels = sorted(set(cells["fine_tuned_dataset"]) | set(cells["eval_dataset"]))
    return _matrix(pairs, labels), pairs


def language_transfer(cells: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matrix, long pairs with n/mean/CI) of mean MT-CL delta, source language rows x target language columns."""
    pairs = _pairs(cells[cells["regime"] == "MT-CL"], "fine_tuned_language", "eval_language", spec)
    labels = sorted(set(cells["fine_tuned_language"]) | set(cells["eval_language"]))
    return _matrix(pairs, labels), pairs
