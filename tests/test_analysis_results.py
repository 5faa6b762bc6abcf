"""Reading results: the release schema (hand-made file), the per-seed long table, and every bad-input class."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_xling as run_cli

from xling.analysis.results import (
    RELEASE_COLUMNS,
    aggregate_seeds,
    read_results,
    regime_of,
)
from xling.errors import XlingError

DATA = Path(__file__).parent / "data" / "analysis"
TINY = DATA / "release_tiny.csv"


def test_hand_made_release_file_reads_with_regimes():
    cells = read_results(TINY)
    assert list(cells.columns) == RELEASE_COLUMNS and len(cells) == 32
    assert cells["regime"].value_counts().to_dict() == {"CT-CL": 8, "MT-CL": 8, "CT-ML": 8, "MT-ML": 8}


def test_regime_of_keys():
    df = pd.DataFrame(
        {
            "fine_tuned_dataset": ["a", "a", "a", "a"],
            "fine_tuned_language": ["x"] * 4,
            "eval_dataset": ["a", "a", "b", "b"],
            "eval_language": ["x", "y", "x", "y"],
        }
    )
    assert regime_of(df).tolist() == ["MT-ML", "MT-CL", "CT-ML", "CT-CL"]


def _long(seeds: dict[int, tuple[float, float, float, float]]) -> pd.DataFrame:
    rows = [
        {
            "model_name": "m",
            "model_size": 1.0,
            "fine_tuned_dataset": "t",
            "fine_tuned_language": "en",
            "eval_dataset": "t",
            "eval_language": "de",
            "seed": s,
            "score": v[0],
            "score_base": v[1],
            "score_norm": v[2],
            "score_norm_base": v[3],
        }
        for s, v in seeds.items()
    ]
    return pd.DataFrame(rows)


def test_aggregate_seeds_known_answer():
    long = _long({0: (0.60, 0.50, 0.70, 0.50), 1: (0.62, 0.50, 0.74, 0.50), 2: (0.67, 0.50, 0.72, 0.50)})
    row = aggregate_seeds(long).iloc[0]
    assert row["n_seeds"] == 3 and row["regime"] == "MT-CL"
    assert row["score_mean"] == pytest.approx(0.63)
    assert row["score_std"] == pytest.approx(np.std([0.60, 0.62, 0.67], ddof=1))
    assert row["score_se"] == pytest.approx(np.std([0.60, 0.62, 0.67], ddof=1) / math.sqrt(3))
    assert row["delta_score_mean"] == pytest.approx(13.0)  # 100 * (0.63 - 0.50)
    assert row["delta_score_norm_mean"] == pytest.approx(22.0)
    assert row["delta_score_norm_std"] == pytest.approx(2.0)  # deltas 20, 24, 22
    assert row["delta_score_norm_se"] == pytest.approx(2.0 / math.sqrt(3))
    assert row["score_base_std"] == 0.0


def test_long_table_file_is_detected_and_aggregated(tmp_path):
    path = tmp_path / "long.parquet"
    _long({0: (0.6, 0.5, 0.6, 0.5), 1: (0.7, 0.5, 0.7, 0.5)}).to_parquet(path)
    cells = read_results(path)
    assert len(cells) == 1 and cells["delta_score_norm_mean"].iloc[0] == pytest.approx(15.0)


# --- bad input: one line naming the file, the column and the row count; exit 2; no OUT ------------------------


def _bad_tables() -> dict[str, tuple[pd.DataFrame, str]]:
    good = pd.read_csv(TINY)
    good["delta_score_norm_mean"] = good["delta_score_norm_mean"].astype(float)
    nan = good.copy()
    nan.loc[[1, 2], "delta_score_norm_mean"] = np.nan
    inf = good.copy()
    inf.loc[3, "delta_score_norm_mean"] = np.inf
    regime = good.copy()
    regime.loc[regime.index[regime["regime"] == "CT-CL"][:2], "regime"] = "MT-ML"
    dup = pd.concat([good, good.iloc[[0, 1]]])
    return {
        "missing": (good.drop(columns=["score_std"]), "column 'score_std' missing"),
        "unknown": (good.assign(extra=1), "unknown column 'extra'"),
        "duplicate": (dup, "4 rows share a key"),
        "nan": (nan, "column 'delta_score_norm_mean': 2 rows are NaN"),
        "inf": (inf, "column 'delta_score_norm_mean': 1 rows are NaN or infinite"),
        "regime": (regime, "column 'regime': 2 rows contradict the keys"),
    }


@pytest.mark.parametrize("case", ["missing", "unknown", "duplicate", "nan", "inf", "regime"])
def test_bad_input_raises_one_line(tmp_path, case):
    table, expected = _bad_tables()[case]
    path = tmp_path / f"{case}.csv"
    table.to_csv(path, index=False)
    with pytest.raises(XlingError) as err:
        read_results(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message


def test_bad_long_table_score_out_of_range(tmp_path):
    path = tmp_path / "long.csv"
    _long({0: (1.2, 0.5, 0.6, 0.5), 1: (0.7, 0.5, 0.7, 0.5)}).to_csv(path, index=False)
    with pytest.raises(XlingError, match=r"column 'score': 1 rows outside \[0, 1\]"):
        read_results(path)


@pytest.mark.parametrize("case", ["unreadable", "regime"])
def test_cli_bad_input_exit_2_and_no_output(tmp_path, monkeypatch, capsys, case):
    path = tmp_path / "in.csv"
    if case == "unreadable":
        path.write_bytes(b'\x00\x01 not,a\ncsv\x00"')
        path = tmp_path / "missing.csv"  # and a file that does not exist at all
    else:
        _bad_tables()["regime"][0].to_csv(path, index=False)
    out = tmp_path / "OUT"
    code, _, err = run_cli(monkeypatch, capsys, "analyze", str(path), "-o", str(out), "--no-mixed", "--no-linguistic")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and str(path) in err
    assert not out.exists() and not any(p.name.startswith(".OUT") for p in tmp_path.iterdir())


def test_garbage_file_is_unreadable(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(XlingError, match="cannot read results table"):
        read_results(path)
