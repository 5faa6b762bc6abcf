"""The results-table contracts: what producers write and the analysis reads, for both protocols.

A neutral module below both sides: the transfer grid (``xling.studies.transfer``) and the CLE grid
(``xling.studies.cle``) write tables with these columns; the analysis (``xling.analysis``) validates and reads them.

- Transfer, per seed (``LONG_COLUMNS``): one row per model, source cell, seed and target cell, with the fine-tuned
  and base scores as proportions; ``aggregate_seeds`` turns it into the Donors-and-Recipients release schema
  (``RELEASE_COLUMNS``): one row per model and ordered cell pair, mean/std/se over seeds, deltas in pp.
- Predicted transfer (``PREDICTION_COLUMNS``, ``xling predict``): one row per model, source cell and target cell,
  the run cells with their measured delta (``observed`` true) and the unrun ones with a prediction and its interval.
- CLE (``CLE_RESULT_COLUMNS``): one row per (method, pair, dictionary size) with its BLI result, the conventions it
  ran with, or its status;
  downstream (``CLE_DOWNSTREAM_COLUMNS``): one row per unit and downstream task (score: the mean over seeds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xling.errors import XlingError

if TYPE_CHECKING:
    import pandas as pd

KEYS = ["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language"]
REGIMES = ("MT-ML", "MT-CL", "CT-ML", "CT-CL")
TRANSFER_REGIMES = ("MT-CL", "CT-ML", "CT-CL")
METRICS = ("score", "score_base", "score_norm", "score_norm_base")
DELTAS = ("delta_score", "delta_score_norm")

RELEASE_COLUMNS = [
    "model_name",
    "model_size",
    "fine_tuned_dataset",
    "fine_tuned_language",
    "eval_dataset",
    "eval_language",
    "regime",
    "score_mean",
    "score_std",
    "score_base_mean",
    "score_base_std",
    "score_norm_mean",
    "score_norm_std",
    "score_norm_base_mean",
    "score_norm_base_std",
    "delta_score_mean",
    "delta_score_std",
    "delta_score_norm_mean",
    "delta_score_norm_std",
    "n_seeds",
    "score_se",
    "score_base_se",
    "score_norm_se",
    "score_norm_base_se",
    "delta_score_se",
    "delta_score_norm_se",
]
LONG_COLUMNS = [
    "model_name",
    "model_size",
    "fine_tuned_dataset",
    "fine_tuned_language",
    "eval_dataset",
    "eval_language",
    "seed",
    "score",
    "score_base",
    "score_norm",
    "score_norm_base",
]
HEADLINE_METRIC = "delta_score_norm_mean"
# Optional in both schemas: which metric ``score_norm`` holds for the row (``acc_norm`` or ``acc``; the release
# takes acc_norm where the lm-eval task reports it, else acc). The published release file does not have it.
NORM_METRIC_COLUMN = "score_norm_metric"
OPTIONAL_COLUMNS = [NORM_METRIC_COLUMN]

#: ``xling predict``'s table: deltas in pp; ``delta_lo``/``delta_hi`` bound the interval (empty for observed rows).
PREDICTION_COLUMNS = [*KEYS, "regime", "delta_pred", "delta_lo", "delta_hi", "observed"]


def regime_of(df: pd.DataFrame) -> pd.Series:
    """The regime each row's keys imply: MT-ML, MT-CL, CT-ML or CT-CL."""
    import numpy as np
    import pandas as pd

    same_task = df["fine_tuned_dataset"].astype(str).to_numpy() == df["eval_dataset"].astype(str).to_numpy()
    same_lang = df["fine_tuned_language"].astype(str).to_numpy() == df["eval_language"].astype(str).to_numpy()
    code = same_task.astype(int) * 2 + same_lang.astype(int)
    names = np.array(["CT-CL", "CT-ML", "MT-CL", "MT-ML"])
    return pd.Series(names[code], index=df.index, name="regime")


def aggregate_seeds(long_df: pd.DataFrame) -> pd.DataFrame:
    """Per-seed rows -> one release-schema row per cell: mean, std (ddof 1), se = std/sqrt(n), deltas in pp.
    A ``score_norm_metric`` column is carried over (one value per cell)."""
    import numpy as np

    df = long_df.copy()
    df["delta_score"] = 100.0 * (df["score"] - df["score_base"])
    df["delta_score_norm"] = 100.0 * (df["score_norm"] - df["score_norm_base"])
    grouped = df.groupby(KEYS + ["model_size"], sort=True, dropna=False)
    out = grouped.size().rename("n_seeds").reset_index()
    for col in (*METRICS, *DELTAS):
        stats = grouped[col].agg(["mean", "std"]).reset_index(drop=True)
        out[f"{col}_mean"] = stats["mean"].to_numpy()
        out[f"{col}_std"] = stats["std"].to_numpy()
    for col in (*METRICS, *DELTAS):
        out[f"{col}_se"] = out[f"{col}_std"] / np.sqrt(out["n_seeds"])
    out["regime"] = regime_of(out)
    if out.duplicated(subset=KEYS).any():
        raise XlingError("per-seed table: one model has two different model_size values")
    columns = list(RELEASE_COLUMNS)
    if NORM_METRIC_COLUMN in df.columns:
        metrics = grouped[NORM_METRIC_COLUMN].agg(["first", "nunique"]).reset_index(drop=True)
        if (metrics["nunique"] > 1).any():
            raise XlingError(
                f"per-seed table: column {NORM_METRIC_COLUMN!r}: the seeds of a cell use different metrics"
            )
        out[NORM_METRIC_COLUMN] = metrics["first"].to_numpy()
        columns.append(NORM_METRIC_COLUMN)
    return out[columns].reset_index(drop=True)


# --- CLE --------------------------------------------------------------------------------------------------------------

CLE_KEYS = ["method", "pair", "size"]
CLE_RESULT_COLUMNS = [
    "method",
    "pair",
    "src",
    "tgt",
    "size",
    "p1",
    "p5",
    "p10",
    "mrr",
    "coverage",
    "n",
    "train_pairs",
    "fit_seconds",
    "failed",
    "fail_mrr",
    "status",
    "error",
    # the conventions the unit ran with (from its record)
    "protocol",
    "retrieval",
    "convention",
    "oov",
    "case",
    "max_vocab",
]
CLE_DOWNSTREAM_COLUMNS = [
    "method",
    "pair",
    "size",
    "task",
    "model",
    "metric",
    "score",
    "score_sd",
    "n_seeds",
    "n",
    "coverage",
    "coverage_src",
    "status",
    "error",
]
