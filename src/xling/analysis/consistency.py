"""Consistency index: do models agree on which recipients a source helps most?

For each source cell (task, language) and regime, the mean Kendall tau-b between every pair of
raters over the recipients (MT-CL: target languages; CT-ML: target tasks; CT-CL: target cells).
Raters are models (``by_model``), families with sizes averaged (``by_family``), exact model sizes with
families averaged (``by_size``: the release's raters, e.g. Llama-3.2-1B and gemma-3-1b pooled as 1B) or
size buckets S/M/L with families averaged (``by_size_bucket``). Only recipients every rater has are used (a
complete block; the release drops missing recipients per rater pair, the same on a complete grid); a source
with fewer than 3 such recipients or 2 raters is skipped and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xling.analysis.meta import AnalysisSpec
from xling.analysis.results import TRANSFER_REGIMES
from xling.analysis.stats import NO_CI, bootstrap_over, kendall_tau_b_matrix

RECIPIENT = {"MT-CL": ["eval_language"], "CT-ML": ["eval_dataset"], "CT-CL": ["eval_dataset", "eval_language"]}
SOURCE = ["fine_tuned_dataset", "fine_tuned_language"]
MIN_RECIPIENTS = 3
# table suffix -> the column whose values are the raters
RATERS = {"model": "model_name", "family": "family", "size": "size", "size_bucket": "size_bucket"}


def source_consistency(cells: pd.DataFrame, rater: str) -> tuple[pd.DataFrame, int]:
    """Per (regime, source): ``regime,fine_tuned_dataset,fine_tuned_language,n_recipients,n_raters,tau`` and the
    skip count."""
    rows, skipped = [], 0
    for regime in TRANSFER_REGIMES:
        sub = cells[cells["regime"] == regime]
        if sub.empty:
            continue
        rec = RECIPIENT[regime]
        table = sub.groupby([*SOURCE, *rec, rater], observed=True)["delta"].mean().unstack(rater)
        for src, block in table.groupby(level=[0, 1], sort=True):
            x = block.dropna(axis=1, how="all").dropna(axis=0, how="any").to_numpy(dtype=float)
            if x.shape[0] < MIN_RECIPIENTS or x.shape[1] < 2:
                skipped += 1
                continue
            taus = kendall_tau_b_matrix(x)[np.triu_indices(x.shape[1], k=1)]
            taus = taus[np.isfinite(taus)]
            rows.append(
                {
                    "regime": regime,
                    "fine_tuned_dataset": src[0],
                    "fine_tuned_language": src[1],
                    "n_recipients": x.shape[0],
                    "n_raters": x.shape[1],
                    "tau": float(taus.mean()) if len(taus) else np.nan,
                }
            )
    cols = ["regime", *SOURCE, "n_recipients", "n_raters", "tau"]
    return pd.DataFrame(rows, columns=cols), skipped


def summarize(per_source: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per regime: ``regime,median,q1,q3,n`` over sources, plus the mean tau with a bootstrap CI over sources."""
    rows = []
    for regime in TRANSFER_REGIMES:
        tau = per_source.loc[per_source["regime"] == regime, "tau"].dropna().to_numpy()
        if len(tau) == 0:
            continue
        rng = np.random.default_rng(spec.seed)
        boots = tau[rng.integers(0, len(tau), size=(spec.n_boot, len(tau)))].mean(axis=1)
        vary = len(tau) >= 2
        rows.append(
            {
                "regime": regime,
                "median": float(np.median(tau)),
                "q1": float(np.quantile(tau, 0.25)),
                "q3": float(np.quantile(tau, 0.75)),
                "n": len(tau),
                "mean": float(tau.mean()),
                "ci_low": float(np.percentile(boots, 2.5)) if vary else np.nan,
                "ci_high": float(np.percentile(boots, 97.5)) if vary else np.nan,
                "ci_method": bootstrap_over("sources") if vary else NO_CI,
            }
        )
    cols = ["regime", "median", "q1", "q3", "n", "mean", "ci_low", "ci_high", "ci_method"]
    return pd.DataFrame(rows, columns=cols)


def consistency_tables(cells: pd.DataFrame, spec: AnalysisSpec, notes: list[str]) -> dict[str, pd.DataFrame]:
    """``consistency_by_{model,family,size,size_bucket}`` and the per-source taus (``consistency_sources``)."""
    out = {}
    per_source_all = []
    for name, rater in RATERS.items():
        per_source, skipped = source_consistency(cells, rater)
        if skipped:
            notes.append(
                f"consistency_by_{name}: {skipped} (source, regime) blocks skipped "
                f"(fewer than {MIN_RECIPIENTS} recipients shared by all raters, or one rater)"
            )
        out[f"consistency_by_{name}"] = summarize(per_source, spec)
        per_source_all.append(per_source.assign(raters=name))
    out["consistency_sources"] = pd.concat(per_source_all, ignore_index=True)
    return out
