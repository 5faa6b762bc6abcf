"""The statistics every table shares: bootstrap CIs, two-stage means, FDR, Kendall tau-b.

Bootstrap intervals are percentile intervals. ``group_summary`` resamples cells within each group
(vectorised over groups, so 17k cells x 1000 draws stays fast); ``two_stage`` resamples models, the
independent units of a mean-per-model-then-mean-over-models statistic, and with a single model (nothing to
resample) the cells of each key instead. Every interval says how it was made (``ci_method``), and one that
cannot vary (one resampled unit) is NaN with ``ci_method`` = ``NO_CI``, never a zero-width interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

_CHUNK = 1 << 20  # values gathered per block (8 MB of float64)
NO_CI = "none (cannot vary)"


def bootstrap_over(units: str) -> str:
    """The ``ci_method`` label of a percentile bootstrap that resamples ``units``."""
    return f"bootstrap over {units}"


def _percentiles(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns of incomplete grids
        lo, hi = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def grouped_bootstrap_means(
    values: np.ndarray, codes: np.ndarray, n_groups: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap means of ``values`` within each group code: an array (n_boot, n_groups).

    Each draw resamples every group's cells with replacement, keeping the group's size. Groups of the same
    size share one resampling pattern (one (n_boot, n) index draw per distinct size): each group's bootstrap
    distribution is exactly the usual one, only draws of different groups are not independent, which no
    per-group CI uses. On a balanced grid this cuts the random draws by the number of groups.
    """
    order = np.argsort(codes, kind="stable")
    x = np.asarray(values, dtype=float)[order]
    sizes = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.full((n_boot, n_groups), np.nan)
    for n in np.unique(sizes[sizes > 0]):
        groups = np.flatnonzero(sizes == n)
        b_chunk = max(1, min(n_boot, _CHUNK // n))  # blocks of ~_CHUNK values stay in cache
        g_chunk = max(1, _CHUNK // (b_chunk * n))
        for b0 in range(0, n_boot, b_chunk):
            idx = rng.integers(0, n, size=(min(b_chunk, n_boot - b0), n))
            for g0 in range(0, len(groups), g_chunk):
                g = groups[g0 : g0 + g_chunk]
                out[b0 : b0 + len(idx), g] = x[starts[g][:, None, None] + idx[None]].mean(axis=2).T
    return out


def group_summary(
    df: pd.DataFrame,
    by: Sequence[str],
    value: str,
    rng: np.random.Generator,
    n_boot: int = 1000,
    positive_threshold: float = 0.0,
    harm_threshold: float = 1.0,
    units: str = "cells",
) -> pd.DataFrame:
    """Per group: ``n, mean, ci_low, ci_high, median, positive_rate, harm_rate`` (rates in %), ``ci_method``.

    positive = value > positive_threshold; harm = value <= -harm_threshold. The CI resamples the group's rows
    (``units`` names them); a group of one row has no CI.
    """
    by = list(by)
    cols = [*by, "n", "mean", "ci_low", "ci_high", "median", "positive_rate", "harm_rate", "ci_method"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    work = df[by + [value]].copy()
    work["_pos"] = (work[value] > positive_threshold) * 100.0
    work["_harm"] = (work[value] <= -harm_threshold) * 100.0
    grouped = work.groupby(by, sort=True, observed=True, dropna=False)  # an unknown size is a group too
    out = grouped[value].agg(n="size", mean="mean", median="median").reset_index()
    out["positive_rate"] = grouped["_pos"].mean().to_numpy()
    out["harm_rate"] = grouped["_harm"].mean().to_numpy()
    codes = grouped.ngroup().to_numpy()
    draws = grouped_bootstrap_means(work[value].to_numpy(), codes, len(out), n_boot, rng)
    out["ci_low"], out["ci_high"] = _percentiles(draws)
    single = out["n"].to_numpy() < 2
    out.loc[single, ["ci_low", "ci_high"]] = np.nan
    out["ci_method"] = np.where(single, NO_CI, bootstrap_over(units))
    return out[cols]


def two_stage(
    df: pd.DataFrame,
    key: str | Sequence[str],
    value: str,
    rng: np.random.Generator,
    n_boot: int = 1000,
    unit: str = "model_name",
    cells: str = "cells",
) -> pd.DataFrame:
    """Mean per (unit, key), then mean over units; CI by resampling units (models).

    Returns one row per key with ``mean, ci_low, ci_high, n_models, ci_method`` plus ``dev_low, dev_high``: the
    CI of the key's deviation from the average over keys (used to name hubs only where the CI supports it).
    With one unit there is nothing to resample: the rows of each key (``cells`` names them) are resampled
    instead, independently per key. A key whose statistic cannot vary (one model under the model bootstrap,
    one row under the row bootstrap) gets NaN intervals; so does every deviation when there is only one key.
    """
    keys = [key] if isinstance(key, str) else list(key)
    per_unit = df.groupby([unit, *keys], sort=True, observed=True)[value].mean()
    matrix = per_unit.unstack(keys) if len(keys) > 1 else per_unit.unstack(keys[0])
    m = matrix.to_numpy(dtype=float)
    n_units = m.shape[0]
    mean = np.nanmean(m, axis=0)
    n_models = np.isfinite(m).sum(axis=0)
    if n_units >= 2:
        idx = rng.integers(0, n_units, size=(n_boot, n_units))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns of incomplete grids
            draws = np.nanmean(m[idx], axis=1)  # (n_boot, n_keys)
        can_vary, method = n_models >= 2, bootstrap_over("models")
    else:
        draws, n_rows = _row_draws(df, keys, value, matrix.columns, n_boot, rng)
        can_vary, method = n_rows >= 2, bootstrap_over(f"{cells} (one model)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        dev = draws - np.nanmean(draws, axis=1, keepdims=True)
    lo, hi = _percentiles(draws)
    dlo, dhi = _percentiles(dev)
    lo[~can_vary] = hi[~can_vary] = np.nan
    dev_ok = can_vary & (len(mean) >= 2)
    dlo[~dev_ok] = dhi[~dev_ok] = np.nan
    out = matrix.columns.to_frame(index=False)
    out["mean"] = mean
    out["ci_low"], out["ci_high"] = lo, hi
    out["dev_low"], out["dev_high"] = dlo, dhi
    out["n_models"] = n_models
    out["ci_method"] = np.where(can_vary, method, NO_CI)
    return out


def _row_draws(
    df: pd.DataFrame, keys: list[str], value: str, columns: pd.Index, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(n_boot, n_keys) bootstrap means of each key's rows, resampled independently per key, and the row counts.

    Independent draws per key (unlike ``grouped_bootstrap_means``), because the deviation of a key from the
    average over keys combines the draws of different keys.
    """
    groups = {k: v.to_numpy(dtype=float) for k, v in df.groupby(keys if len(keys) > 1 else keys[0])[value]}
    draws = np.full((n_boot, len(columns)), np.nan)
    sizes = np.zeros(len(columns), dtype=int)
    for j, k in enumerate(columns):
        x = groups.get(k, np.empty(0))
        x = x[np.isfinite(x)]
        sizes[j] = len(x)
        if len(x):
            draws[:, j] = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return draws, sizes


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values; NaN p-values stay NaN and do not count as tests."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def seed_t_test(mean: np.ndarray, se: np.ndarray, n_seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided one-sample t-test of mean != 0 from the seed SE (df = n_seeds - 1); NaN when untestable."""
    mean, se, n = (np.asarray(a, dtype=float) for a in (mean, se, n_seeds))
    ok = (n >= 2) & np.isfinite(se) & (se > 0)
    t = np.full_like(mean, np.nan)
    p = np.full_like(mean, np.nan)
    t[ok] = mean[ok] / se[ok]
    p[ok] = 2 * stats.t.sf(np.abs(t[ok]), df=n[ok] - 1)
    return t, p


def kendall_tau_b_matrix(x: np.ndarray) -> np.ndarray:
    """Kendall tau-b between every pair of columns of ``x`` (rows = recipients, no NaN); (k, k) matrix.

    tau_b(a, b) = sum_ij s_a s_b / sqrt(sum s_a^2 * sum s_b^2) with s = sign(x_i - x_j) over pairs i < j,
    which is scipy's tau-b with ties handled; vectorised over all column pairs at once.
    """
    i, j = np.triu_indices(x.shape[0], k=1)
    s = np.sign(x[i] - x[j])
    num = s.T @ s
    norm = np.sqrt(np.diag(num))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.outer(norm, norm)


def fisher_ci(r: float, n: int, level: float = 0.95, spearman: bool = False) -> tuple[float, float]:
    """CI of a correlation by Fisher's z (Spearman uses the Fieller et al. SE 1.03/sqrt(n-3))."""
    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    se = (1.03 if spearman else 1.0) / np.sqrt(n - 3)
    q = stats.norm.ppf(0.5 + level / 2)
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def t_interval(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval for means given sd and n (NaN where n < 2)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + level / 2, np.where(n >= 2, n - 1, np.nan)) * np.asarray(sd) / np.sqrt(n)
    return np.asarray(mean) - half, np.asarray(mean) + half
