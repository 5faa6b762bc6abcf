"""Results tables in, validated cell statistics out.

Two schemas are accepted: the Donors-and-Recipients release schema (one row per model and ordered
cell pair, seed statistics already aggregated) and xling's per-seed long table (one row per seed),
which ``aggregate_seeds`` turns into the release schema. Every check that fails raises one
``XlingError`` line naming the file, the column and how many rows are affected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xling.contracts import (  # noqa: F401  (the table contracts, re-exported for the analysis modules)
    DELTAS,
    HEADLINE_METRIC,
    KEYS,
    LONG_COLUMNS,
    METRICS,
    NORM_METRIC_COLUMN,
    OPTIONAL_COLUMNS,
    REGIMES,
    RELEASE_COLUMNS,
    TRANSFER_REGIMES,
    aggregate_seeds,
    regime_of,
)
from xling.errors import XlingError


def se_column(metric: str) -> str:
    """The standard-error column of a ``*_mean`` column (``delta_score_norm_mean`` -> ``delta_score_norm_se``)."""
    return metric[: -len("_mean")] + "_se" if metric.endswith("_mean") else metric + "_se"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; unreadable files raise ``XlingError``."""
    path = Path(path)
    if not path.is_file():
        raise XlingError(f"{path}: cannot read results table (no such file)")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=True)
    except Exception as err:  # pandas/pyarrow raise many types for a malformed file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise XlingError(f"{path}: cannot read results table ({first})") from None


def read_results(path: str | Path, metric: str = HEADLINE_METRIC) -> pd.DataFrame:
    """Read a results table in either schema and return validated release-schema cells.

    The long table is recognised by its ``seed`` column and aggregated with ``aggregate_seeds``.
    """
    path = Path(path)
    raw = read_table(path)
    if "seed" in raw.columns:
        return aggregate_seeds(validate_long(raw, source=str(path)))
    return validate_release(raw, source=str(path), metric=metric)


def _check_columns(df: pd.DataFrame, expected: list[str], source: str, schema: str) -> None:
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise XlingError(
            f"{source}: column {missing[0]!r} missing ({len(missing)} missing in all: {', '.join(missing)}); "
            f"expected the {schema} schema, {len(df)} rows read"
        )
    unknown = [c for c in df.columns if c not in expected and c not in OPTIONAL_COLUMNS]
    if unknown:
        raise XlingError(
            f"{source}: unknown column {unknown[0]!r} ({len(unknown)} unknown in all: {', '.join(map(str, unknown))}); "
            f"expected exactly the {schema} columns, {len(df)} rows read"
        )


def _check_keys(df: pd.DataFrame, keys: list[str], source: str) -> None:
    for col in keys:
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            raise XlingError(f"{source}: column {col!r}: {int(bad.sum())} rows are empty or NaN")
    dup = df.duplicated(subset=keys, keep=False)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].tolist()
        raise XlingError(
            f"{source}: columns {', '.join(keys)}: {int(dup.sum())} rows share a key with another row "
            f"(duplicate keys, e.g. {first})"
        )


def _check_finite(df: pd.DataFrame, columns: list[str], source: str, allow_nan: pd.Series | None = None) -> None:
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce")
        non_numeric = values.isna() & df[col].notna()
        if non_numeric.any():
            raise XlingError(f"{source}: column {col!r}: {int(non_numeric.sum())} rows are not numbers")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if allow_nan is not None:
            bad &= ~(values.isna().to_numpy() & allow_nan.to_numpy())
        if bad.any():
            raise XlingError(f"{source}: column {col!r}: {int(bad.sum())} rows are NaN or infinite")


def _normalise_keys(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in KEYS:
        df[col] = df[col].astype(str).str.strip()
    return df


def model_size_billions(sizes: pd.Series) -> pd.Series:
    """Model sizes in billions: numbers stay, strings such as ``1.5B`` or ``22M`` are parsed, others are NaN."""
    from xling.config import parse_size

    numeric = pd.to_numeric(sizes, errors="coerce")
    parsed = sizes.map(lambda v: parse_size(str(v)) if pd.notna(v) else float("nan"))
    return numeric.fillna(parsed).astype(float)


def validate_release(df: pd.DataFrame, source: str = "results", metric: str = HEADLINE_METRIC) -> pd.DataFrame:
    """Check a release-schema table and return it with a clean ``regime`` column."""
    _check_columns(df, RELEASE_COLUMNS, source, "release")
    if len(df) == 0:
        raise XlingError(f"{source}: no rows")
    _check_keys(df, KEYS, source)
    df = _normalise_keys(df)
    if metric not in RELEASE_COLUMNS or not metric.endswith("_mean"):
        raise XlingError(f"{source}: metric {metric!r} is not a *_mean column of the release schema")
    _check_finite(df, ["n_seeds", metric], source)
    multi_seed = pd.to_numeric(df["n_seeds"]) >= 2
    _check_finite(df, [se_column(metric)], source, allow_nan=~multi_seed)
    df["model_size"] = model_size_billions(df["model_size"])
    numeric = [c for c in RELEASE_COLUMNS if c not in KEYS and c not in ("regime", "model_size")]
    for col in numeric:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        if np.isinf(vals).any():
            raise XlingError(f"{source}: column {col!r}: {int(np.isinf(vals).sum())} rows are infinite")
        df[col] = vals
    implied = regime_of(df)
    given = df["regime"].astype(str).str.strip().str.upper().str.replace("_", "-")
    wrong = given != implied
    if wrong.any():
        i = wrong.to_numpy().nonzero()[0][0]
        raise XlingError(
            f"{source}: column 'regime': {int(wrong.sum())} rows contradict the keys "
            f"(e.g. row {i + 2}: {df['regime'].iloc[i]!r}, keys imply {implied.iloc[i]!r})"
        )
    df["regime"] = implied
    return df.reset_index(drop=True)


def validate_long(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """Check a per-seed long table (scores must be finite proportions in [0, 1])."""
    _check_columns(df, LONG_COLUMNS, source, "per-seed long")
    if len(df) == 0:
        raise XlingError(f"{source}: no rows")
    _check_keys(df, KEYS + ["seed"], source)
    df = _normalise_keys(df)
    _check_finite(df, ["seed", *METRICS], source)
    size = model_size_billions(df["model_size"])
    if np.isinf(size).any():
        raise XlingError(f"{source}: column 'model_size': {int(np.isinf(size).sum())} rows are infinite")
    for col in METRICS:
        vals = pd.to_numeric(df[col]).to_numpy(dtype=float)
        out = (vals < 0) | (vals > 1)
        if out.any():
            raise XlingError(f"{source}: column {col!r}: {int(out.sum())} rows outside [0, 1] (scores are proportions)")
        df[col] = vals
    df["model_size"] = size.astype(float)
    return df.reset_index(drop=True)
