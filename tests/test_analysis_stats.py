"""Known answers for the shared statistics: bootstrap summaries, two-stage means, FDR, tau-b, t-tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xling.analysis.stats import (
    benjamini_hochberg,
    group_summary,
    grouped_bootstrap_means,
    kendall_tau_b_matrix,
    seed_t_test,
    two_stage,
)


def test_group_summary_hand_computed():
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 3, "v": [1.0, -1.0, 3.0, 0.0, -2.0, -0.5, 5.0]})
    out = group_summary(
        df, ["g"], "v", np.random.default_rng(0), n_boot=200, positive_threshold=0.0, harm_threshold=1.0
    )
    a, b = out.set_index("g").loc["a"], out.set_index("g").loc["b"]
    assert a["n"] == 4 and a["mean"] == pytest.approx(0.75) and a["median"] == pytest.approx(0.5)
    assert a["positive_rate"] == pytest.approx(50.0)  # 1 and 3 are > 0
    assert a["harm_rate"] == pytest.approx(25.0)  # only -1 is <= -1
    assert b["mean"] == pytest.approx(2.5 / 3) and b["harm_rate"] == pytest.approx(100 / 3)
    assert a["ci_low"] <= a["mean"] <= a["ci_high"]
    assert a["ci_low"] >= -1.0 and a["ci_high"] <= 3.0  # bootstrap means stay inside the data range


def test_bootstrap_of_constant_group_is_degenerate_and_within_group():
    values = np.array([2.0, 2.0, 2.0, 7.0, 9.0])
    codes = np.array([0, 0, 0, 1, 1])
    draws = grouped_bootstrap_means(values, codes, 2, 300, np.random.default_rng(1))
    assert np.all(draws[:, 0] == 2.0)  # never mixes cells across groups
    assert set(np.unique(draws[:, 1])) <= {7.0, 8.0, 9.0}


def test_bootstrap_ci_matches_normal_theory_for_large_group():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 4000)
    out = group_summary(pd.DataFrame({"g": 0, "v": x}), ["g"], "v", rng, n_boot=2000).iloc[0]
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert out["ci_high"] - out["ci_low"] == pytest.approx(2 * half, rel=0.1)


def test_two_stage_mean_is_mean_of_model_means():
    # model A has 3 cells for key k (mean 2), model B one cell (mean 10): two-stage = 6, pooled would be 4
    df = pd.DataFrame({"model_name": ["A", "A", "A", "B"], "key": "k", "delta": [1.0, 2.0, 3.0, 10.0]})
    out = two_stage(df, "key", "delta", np.random.default_rng(0), n_boot=500).iloc[0]
    assert out["mean"] == pytest.approx(6.0)
    assert out["n_models"] == 2
    assert out["ci_low"] >= 2.0 and out["ci_high"] <= 10.0  # model resampling: any mix of the two model means


def test_benjamini_hochberg_known_values():
    p = np.array([0.01, 0.04, 0.03, 0.20, np.nan])
    q = benjamini_hochberg(p)
    # sorted p: .01 .03 .04 .20 (m = 4): q = min over later of p*m/rank -> .04 .0533 .0533 .20
    assert q[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert np.isnan(q[4])


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(12, 4)).astype(float)  # many ties
    m = kendall_tau_b_matrix(x)
    for i in range(4):
        for j in range(4):
            ref = stats.kendalltau(x[:, i], x[:, j], variant="b").statistic
            assert m[i, j] == pytest.approx(ref)


def test_seed_t_test_matches_scipy_one_sample():
    seeds = np.array([[1.0, 2.0, 4.0], [-1.0, 0.5, 0.2]])
    mean, se, n = seeds.mean(1), seeds.std(1, ddof=1) / np.sqrt(3), np.array([3, 3])
    t, p = seed_t_test(mean, se, n)
    for k in range(2):
        ref = stats.ttest_1samp(seeds[k], 0.0)
        assert t[k] == pytest.approx(ref.statistic) and p[k] == pytest.approx(ref.pvalue)
    t1, p1 = seed_t_test(np.array([1.0]), np.array([np.nan]), np.array([1]))
    assert np.isnan(p1[0])
