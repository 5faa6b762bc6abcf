"""Does BLI rank CLE methods the way downstream tasks do? Rank correlations with bootstrap intervals.

``bli_downstream_correlation(bli, downstream)`` joins a BLI results table (one row per method, pair, size, with
``mrr``) and a downstream table (``method, pair, size, task, metric, score, n``) on (method, pair, size) and, for
every (task, metric), correlates BLI MRR with the downstream score across methods: per language pair (the points
are that pair's methods x sizes) and pooled over all pairs.

Intervals: a case bootstrap over **methods** (the units being ranked): each draw resamples methods with
replacement and keeps all rows of every drawn method, then recomputes Spearman's rho and Kendall's tau-b; the
interval is the percentile interval of the draws (draws where a side is constant give no correlation and are left
out; ``n_boot_valid`` counts the rest). With fewer than three methods there is no interval (``note`` says so), and
an interval whose draws do not vary is reported as such: neither is evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from xling.errors import XlingError

BLI_COLUMNS: tuple[str, ...] = ("method", "pair", "size", "mrr")
DOWNSTREAM_COLUMNS: tuple[str, ...] = ("method", "pair", "size", "task", "metric", "score", "n")
KEYS: list[str] = ["method", "pair", "size"]
POOLED = "pooled"
RESAMPLING = "case bootstrap over methods, percentile interval"


def _check(df: pd.DataFrame, columns: tuple[str, ...], name: str, keys: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise XlingError(f"{name} table: missing column(s) {', '.join(missing)} (expected {', '.join(columns)})")
    out = df.copy()
    out["size"] = out["size"].where(out["size"].notna(), "none").astype(str)
    duplicated = out.duplicated(keys)
    if duplicated.any():
        first = out.loc[duplicated, keys].iloc[0].to_dict()
        raise XlingError(f"{name} table: {int(duplicated.sum())} duplicate row(s) for {', '.join(keys)}, e.g. {first}")
    return out


def spearman_kendall(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho (Pearson of average ranks) and Kendall's tau-b; NaN when either side is constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    tau = float((sx * sy).sum() / np.sqrt((sx * sx).sum() * (sy * sy).sum()))
    return rho, tau


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    ok = draws[np.isfinite(draws)]
    if ok.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _correlate(group: pd.DataFrame, rng: np.random.Generator, n_boot: int, level: float) -> dict:
    x, y = group["mrr"].to_numpy(float), group["score"].to_numpy(float)
    methods = group["method"].to_numpy()
    names = np.unique(methods)
    rho, tau = spearman_kendall(x, y)
    out = {
        "n_points": len(group),
        "n_methods": len(names),
        "spearman": rho,
        "kendall": tau,
        "spearman_p": float("nan"),
        "kendall_p": float("nan"),
        "spearman_low": float("nan"),
        "spearman_high": float("nan"),
        "kendall_low": float("nan"),
        "kendall_high": float("nan"),
        "n_boot": 0,
        "n_boot_valid": 0,
        "resampling": RESAMPLING,
        "note": "",
    }
    if np.isfinite(rho):
        out["spearman_p"] = float(stats.spearmanr(x, y).pvalue) if len(x) > 2 else float("nan")
        out["kendall_p"] = float(stats.kendalltau(x, y).pvalue)
    if len(names) < 3:
        out["note"] = f"{len(names)} method(s): no interval (an interval that cannot vary is not evidence)"
        return out
    rows_of = [np.flatnonzero(methods == m) for m in names]
    draws = np.full((n_boot, 2), np.nan)
    for b in range(n_boot):
        idx = np.concatenate([rows_of[k] for k in rng.integers(0, len(names), size=len(names))])
        draws[b] = spearman_kendall(x[idx], y[idx])
    valid = np.isfinite(draws[:, 0])
    out["n_boot"], out["n_boot_valid"] = n_boot, int(valid.sum())
    out["spearman_low"], out["spearman_high"] = _interval(draws[:, 0], level)
    out["kendall_low"], out["kendall_high"] = _interval(draws[:, 1], level)
    if not np.isfinite(rho):
        out["note"] = "BLI MRR or the downstream score is constant across methods: no correlation"
    elif valid.sum() and np.ptp(draws[valid, 0]) == 0 and np.ptp(draws[valid, 1]) == 0:
        out["note"] = "bootstrap draws do not vary: the interval is not evidence"
    elif valid.sum() < n_boot:
        out["note"] = f"{n_boot - int(valid.sum())} draws with a constant side left out"
    return out


def bli_downstream_correlation(
    bli: pd.DataFrame, downstream: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Spearman and Kendall correlations of BLI MRR with each downstream score across methods, per pair and pooled.

    One row per (task, metric, pair) plus a ``pooled`` row per (task, metric); columns ``n_points, n_methods,
    spearman, spearman_low, spearman_high, spearman_p, kendall, kendall_low, kendall_high, kendall_p, n_boot,
    n_boot_valid, resampling, note``. Rows with a missing MRR or score (failed units) are left out.
    """
    if n_boot < 1:
        raise XlingError(f"n_boot must be at least 1, found {n_boot}")
    bli = _check(bli, BLI_COLUMNS, "BLI", KEYS)
    downstream = _check(downstream, DOWNSTREAM_COLUMNS, "downstream", [*KEYS, "task", "metric"])
    joined = downstream.merge(bli[[*KEYS, "mrr"]], on=KEYS, how="inner")
    joined = joined[np.isfinite(joined["mrr"].astype(float)) & np.isfinite(joined["score"].astype(float))]
    columns = [
        "task",
        "metric",
        "pair",
        "n_points",
        "n_methods",
        "spearman",
        "spearman_low",
        "spearman_high",
        "spearman_p",
        "kendall",
        "kendall_low",
        "kendall_high",
        "kendall_p",
        "n_boot",
        "n_boot_valid",
        "resampling",
        "note",
    ]
    if joined.empty:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed)
    rows = []
    for (task, metric), part in joined.groupby(["task", "metric"], sort=True):
        for pair, group in [*part.groupby("pair", sort=True), (POOLED, part)]:
            rows.append({"task": task, "metric": metric, "pair": pair, **_correlate(group, rng, n_boot, level)})
    return pd.DataFrame(rows, columns=columns)


def method_ranks(bli: pd.DataFrame, downstream: pd.DataFrame) -> pd.DataFrame:
    """How BLI and each downstream task rank the methods: per (task, metric) and (method, size), the mean BLI MRR
    and the mean downstream score over the pairs both have, and the rank of each (1 = best; ties share the best
    rank). ``rank_shift`` = BLI rank - downstream rank (positive: the task ranks the method higher than BLI)."""
    bli = _check(bli, BLI_COLUMNS, "BLI", KEYS)
    downstream = _check(downstream, DOWNSTREAM_COLUMNS, "downstream", [*KEYS, "task", "metric"])
    joined = downstream.merge(bli[[*KEYS, "mrr"]], on=KEYS, how="inner")
    columns = [
        "task",
        "metric",
        "method",
        "size",
        "pairs",
        "mrr_mean",
        "score_mean",
        "bli_rank",
        "downstream_rank",
        "rank_shift",
    ]
    if joined.empty:
        return pd.DataFrame(columns=columns)
    means = (
        joined.groupby(["task", "metric", "method", "size"], sort=True)
        .agg(pairs=("pair", "nunique"), mrr_mean=("mrr", "mean"), score_mean=("score", "mean"))
        .reset_index()
    )
    by = means.groupby(["task", "metric"], sort=False)
    means["bli_rank"] = by["mrr_mean"].rank(ascending=False, method="min").astype(int)
    means["downstream_rank"] = by["score_mean"].rank(ascending=False, method="min").astype(int)
    means["rank_shift"] = means["bli_rank"] - means["downstream_rank"]
    return means.sort_values(["task", "metric", "downstream_rank", "method", "size"])[columns].reset_index(drop=True)


# --- a CLE grid's analysis ------------------------------------------------------------------------------------------

#: The conventions a BLI row records (``CLE_RESULT_COLUMNS``), as the report names them.
CONVENTION_FACTS = {
    "protocol": "protocol",
    "retrieval": "retrieval",
    "convention": "counting convention",
    "oov": "OOV",
    "case": "case",
    "max_vocab": "max vocabulary",
}


@dataclass
class CLEAnalysis:
    """A CLE grid's results analysed: ``tables`` (the results and what is computed from them), ``facts`` (what ran,
    from the rows: units, conventions, failure threshold) and ``notes``."""

    tables: dict[str, pd.DataFrame]
    facts: list[tuple[str, object]]
    notes: list[str] = field(default_factory=list)
    subtitle: str = ""


def is_cle_results(frame: pd.DataFrame) -> bool:
    """Whether a table is a CLE grid's results (``cle_results.csv``), not a transfer table."""
    return {"method", "pair", "size", "mrr"} <= set(frame.columns)


def analyze_cle(
    results: pd.DataFrame, downstream: pd.DataFrame | None = None, *, seed: int = 0, n_boot: int = 1000
) -> CLEAnalysis:
    """Analyse a CLE grid's results table (``CLE_RESULT_COLUMNS``) and, if given, its downstream table
    (``CLE_DOWNSTREAM_COLUMNS``): method × pair matrices of MRR and P@1 with the mean over pairs, per-method averages
    (mean and sd over pairs: the spread of pairs, not an interval), failures and errors; with downstream results the
    BLI-vs-downstream correlations (case bootstrap over methods) and the methods' ranks. Pure: tables in, tables
    out."""
    from xling.contracts import CLE_RESULT_COLUMNS

    missing = [c for c in CLE_RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise XlingError(f"CLE results table: missing column(s) {', '.join(missing)}")
    tables = {"cle_results": results, **summary_tables(results)}
    done = results[results["status"] == "done"]
    notes = []
    if downstream is not None:
        tables["cle_downstream"] = downstream
        down = downstream[downstream["status"] == "done"] if "status" in downstream else downstream
        tables["cle_bli_downstream_correlation"] = bli_downstream_correlation(done, down, n_boot=n_boot, seed=seed)
        tables["cle_method_ranks"] = method_ranks(done, down)
    errors = int((results["status"] == "error").sum())
    if errors:
        notes.append(f"{errors} unit(s) did not finish (status error): their rows have no scores")
    facts: list[tuple[str, object]] = [("units", len(results)), ("done", len(done)), ("errors", errors)]
    for column, what in CONVENTION_FACTS.items():
        values = sorted({str(v) for v in done[column].dropna()})
        facts.append((what, ", ".join(values) if values else "no unit finished"))
    thresholds = sorted(set(results["fail_mrr"].dropna()))
    facts.append(("method failure", ", ".join(f"MRR < {t:g}" for t in thresholds) or "unknown"))
    subtitle = (
        f"{results['method'].nunique()} method(s) × {results['pair'].nunique()} pair(s) × "
        f"{results['size'].nunique()} dictionary size(s)"
    )
    return CLEAnalysis(tables, facts, notes, subtitle)


def summary_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Method x pair matrices of MRR and P@1 (with the mean over pairs) and per-method averages and failures."""
    done = table[table["status"] == "done"]
    out = {}
    for metric in ("mrr", "p1"):
        matrix = done.pivot_table(index=["method", "size"], columns="pair", values=metric, aggfunc="first")
        matrix["mean"] = matrix.mean(axis=1)
        out[f"cle_{metric}_matrix"] = matrix.reset_index()
    groups = table.groupby(["method", "size"], sort=False)
    averages = groups.apply(
        lambda g: pd.Series(
            {
                "mrr_mean": g.loc[g.status == "done", "mrr"].mean(),
                "mrr_sd": g.loc[g.status == "done", "mrr"].std(),
                "p1_mean": g.loc[g.status == "done", "p1"].mean(),
                "p1_sd": g.loc[g.status == "done", "p1"].std(),
                "pairs_done": int((g.status == "done").sum()),
                "failures": int(g.loc[g.status == "done", "failed"].astype(bool).sum()),
                "errors": int((g.status == "error").sum()),
                "fail_mrr": g["fail_mrr"].max(),
            }
        ),
        include_groups=False,
    )
    counts = ["pairs_done", "failures", "errors"]
    averages[counts] = averages[counts].astype(int)
    out["cle_averages"] = averages.reset_index()
    return out
