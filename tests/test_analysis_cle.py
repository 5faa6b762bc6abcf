"""BLI-vs-downstream correlations: known answers, scipy's point estimates, a methods bootstrap, honest non-intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xling.analysis.cle import RESAMPLING, bli_downstream_correlation, spearman_kendall
from xling.errors import XlingError

METHODS = ["proc", "proc-b", "cca", "vecmap-sup", "unsup"]


def _tables(downstream_of, pairs=("en-de", "en-fi"), sizes=("1k", "5k")):
    """BLI MRR per (method, pair, size) and one downstream task whose score is ``downstream_of(mrr, method)``."""
    rng = np.random.default_rng(0)
    bli, down = [], []
    for pair in pairs:
        for m, method in enumerate(METHODS):
            for size in sizes:
                mrr = 0.1 * m + 0.05 * sizes.index(size) + rng.uniform(0, 0.01) + (0.2 if pair == "en-de" else 0)
                bli.append({"method": method, "pair": pair, "size": size, "mrr": mrr, "p1": mrr - 0.1})
                down.append(
                    {
                        "method": method,
                        "pair": pair,
                        "size": size,
                        "task": "cldc",
                        "metric": "accuracy",
                        "score": downstream_of(mrr, m),
                        "n": 100,
                    }
                )
    return pd.DataFrame(bli), pd.DataFrame(down)


def test_monotone_agreement_and_reversal_are_recovered():
    bli, down = _tables(lambda mrr, m: 0.5 + mrr / 2)
    table = bli_downstream_correlation(bli, down, n_boot=200)
    assert list(table["pair"]) == ["en-de", "en-fi", "pooled"]
    assert np.allclose(table[["spearman", "kendall"]], 1.0)
    assert (table["spearman_high"] == 1.0).all() and table["resampling"].eq(RESAMPLING).all()
    assert (table["n_methods"] == 5).all() and list(table["n_points"]) == [10, 10, 20]
    reversed_ = bli_downstream_correlation(bli, down.assign(score=1 - down["score"]), n_boot=200)
    assert np.allclose(reversed_[["spearman", "kendall"]], -1.0)


def test_point_estimates_equal_scipy_and_intervals_cover_them():
    rng = np.random.default_rng(1)
    bli, down = _tables(lambda mrr, m: rng.uniform())
    table = bli_downstream_correlation(bli, down, n_boot=300, seed=2)
    for pair, row in table.set_index("pair").iterrows():
        joined = down.merge(bli, on=["method", "pair", "size"])
        part = joined if pair == "pooled" else joined[joined["pair"] == pair]
        assert row["spearman"] == pytest.approx(stats.spearmanr(part["mrr"], part["score"]).statistic)
        assert row["kendall"] == pytest.approx(stats.kendalltau(part["mrr"], part["score"]).statistic)
        assert row["spearman_low"] < row["spearman"] < row["spearman_high"]
        assert row["kendall_low"] < row["kendall"] < row["kendall_high"]
    again = bli_downstream_correlation(bli, down, n_boot=300, seed=2)
    pd.testing.assert_frame_equal(table, again)  # seeded


def test_the_bootstrap_resamples_methods_not_rows():
    """Two sizes per method at identical points: resampling rows would give 10 independent points, resampling methods
    keeps each method's rows together, so an interval is as wide as five points allow."""
    x = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    y = np.array([0.2, 0.1, 0.4, 0.3, 0.5])
    bli = pd.DataFrame(
        [{"method": m, "pair": "p", "size": s, "mrr": x[i]} for i, m in enumerate(METHODS) for s in ("a", "b")]
    )
    down = pd.DataFrame(
        [
            {"method": m, "pair": "p", "size": s, "task": "t", "metric": "acc", "score": y[i], "n": 1}
            for i, m in enumerate(METHODS)
            for s in ("a", "b")
        ]
    )
    rng = np.random.default_rng(5)
    by_method = bli_downstream_correlation(bli, down, n_boot=2000, seed=5).iloc[0]
    five = [spearman_kendall(x[i], y[i])[0] for i in (rng.integers(0, 5, 5) for _ in range(2000))]
    lo, hi = np.nanpercentile(five, [2.5, 97.5])
    assert by_method["spearman_low"] == pytest.approx(lo, abs=0.1) and by_method["spearman_high"] == pytest.approx(
        hi, abs=0.1
    )


def test_too_few_methods_give_no_interval_and_constant_scores_no_correlation():
    bli, down = _tables(lambda mrr, m: mrr)
    two = bli_downstream_correlation(bli[bli["method"].isin(METHODS[:2])], down, n_boot=50)
    assert two["spearman_low"].isna().all() and two["note"].str.contains("no interval").all()
    flat = bli_downstream_correlation(bli, down.assign(score=0.5), n_boot=50)
    assert flat["spearman"].isna().all() and flat["note"].str.contains("constant").all()


def test_failed_units_are_left_out_and_unsupervised_sizes_match():
    bli, down = _tables(lambda mrr, m: mrr)
    bli.loc[0, "mrr"] = np.nan
    bli.loc[bli["method"] == "unsup", "size"] = None  # methods without a dictionary: size "none"
    down.loc[down["method"] == "unsup", "size"] = "none"
    down = down.drop_duplicates(["method", "pair", "size"])
    bli = bli.drop_duplicates(["method", "pair", "size"])
    table = bli_downstream_correlation(bli, down, n_boot=20).set_index("pair")
    assert table.loc["en-de", "n_points"] == 8 and table.loc["en-de", "n_methods"] == 5


def test_bad_tables_are_named():
    bli, down = _tables(lambda mrr, m: mrr)
    with pytest.raises(XlingError, match="downstream table: missing column"):
        bli_downstream_correlation(bli, down.drop(columns="score"))
    with pytest.raises(XlingError, match="BLI table: 1 duplicate row"):
        bli_downstream_correlation(pd.concat([bli, bli.iloc[:1]]), down)
