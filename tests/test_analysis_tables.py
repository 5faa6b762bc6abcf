"""Known answers for every analysis table on the hand-made release-schema file (tests/data/analysis).

The file holds 2 models x 2 tasks x 2 languages with delta = regime base (MT-ML 10, MT-CL 2, CT-ML 1,
CT-CL -1) + 2 for the Qwen model + 1 for MT-CL cells whose source language is en; every seed SE is
0.5/sqrt(3). All expected values below follow from that by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xling.analysis.meta import AnalysisSpec, parse_family, parse_size, size_bucket
from xling.analysis.pipeline import analyze, prepare
from xling.analysis.results import read_results
from xling.analysis.variance import crossed_decomposition

TINY = Path(__file__).parent / "data" / "analysis" / "release_tiny.csv"


@pytest.fixture(scope="module")
def tiny():
    spec = AnalysisSpec(n_boot=200)
    return analyze(prepare(read_results(TINY), spec), spec, mixed_models=False).tables


def test_regime_summary(tiny):
    t = tiny["regime_summary"].set_index("regime")
    assert list(t.index) == ["MT-ML", "MT-CL", "CT-ML", "CT-CL"]
    assert list(tiny["regime_summary"].columns[:6]) == ["regime", "n", "mean", "median", "positive_rate", "harm_rate"]
    assert t.loc["MT-ML", "mean"] == pytest.approx(11.0)
    assert t.loc["MT-CL", ["mean", "median", "positive_rate", "harm_rate"]].tolist() == pytest.approx(
        [3.5, 3.5, 100, 0]
    )
    assert t.loc["CT-ML", "mean"] == pytest.approx(2.0)
    assert t.loc["CT-CL", ["mean", "median", "positive_rate", "harm_rate"]].tolist() == pytest.approx([0, 0, 50, 50])
    assert (t["n"] == 8).all()
    assert t.loc["MT-CL", "ci_low"] >= 2.0 and t.loc["MT-CL", "ci_high"] <= 5.0


def test_global_uplift(tiny):
    t = tiny["global_uplift"].set_index("scope")
    assert t.loc["transfer", "n"] == 24 and t.loc["transfer", "mean"] == pytest.approx(44 / 24)
    assert t.loc["all", "mean"] == pytest.approx((44 + 88) / 32)


def test_mtcl_breakdown_by_size_and_family(tiny):
    t = tiny["mtcl_harm_breakdown"].set_index(["group", "key"])["mean"]
    assert t[("size_bucket", "S")] == pytest.approx(2.5) and t[("size_bucket", "L")] == pytest.approx(4.5)
    assert t[("family", "Llama")] == pytest.approx(2.5) and t[("family", "Qwen")] == pytest.approx(4.5)
    assert t[("target_language", "de")] == pytest.approx(4.0)  # sources are en there: (3 + 5) / 2


def test_donor_recipient_roles(tiny):
    lang = tiny["language_donor_recipient"].set_index("lang")
    assert list(tiny["language_donor_recipient"].columns[:3]) == ["lang", "donor", "recipient"]
    assert lang.loc["en", "donor"] == pytest.approx(4.0) and lang.loc["de", "donor"] == pytest.approx(3.0)
    assert lang.loc["en", "recipient"] == pytest.approx(3.0) and lang.loc["de", "recipient"] == pytest.approx(4.0)
    task = tiny["task_donor_recipient"].set_index("task")
    assert task["donor"].tolist() == pytest.approx([2.0, 2.0]) and task["recipient"].tolist() == pytest.approx(
        [2.0, 2.0]
    )


def test_transfer_matrices(tiny):
    lm = tiny["language_transfer_matrix"]
    assert lm.loc["en", "de"] == pytest.approx(4.0) and lm.loc["de", "en"] == pytest.approx(3.0)
    assert np.isnan(lm.loc["en", "en"])
    tm = tiny["task_transfer_matrix"]
    assert tm.loc["t1", "t2"] == pytest.approx(2.0) and np.isnan(tm.loc["t1", "t1"])


def test_profiles(tiny):
    p = tiny["pareto_profiles"].set_index(["model_name", "fine_tuned_dataset", "fine_tuned_language"])
    assert p.loc[("Llama-3.2-1B", "t1", "en"), ["on_task", "off_task"]].tolist() == pytest.approx([3.0, 0.0])
    assert p.loc[("Qwen2.5-7B", "t1", "de"), ["on_task", "off_task"]].tolist() == pytest.approx([4.0, 2.0])
    summary = tiny["task_on_off_summary"].set_index("task")
    assert summary.loc["t1", "on_task"] == pytest.approx(3.5) and summary.loc["t1", "off_task"] == pytest.approx(1.0)


def test_asymmetry(tiny):
    row = tiny["language_asymmetry"].iloc[0]
    assert (row["lang_a"], row["lang_b"]) == ("de", "en")
    assert row["asymmetry"] == pytest.approx(-1.0) and row["ci_low"] == pytest.approx(-1.0)
    assert row["ci_high"] == pytest.approx(-1.0) and bool(row["supported"]) and row["n"] == 4


def test_cell_significance(tiny):
    sig = tiny["cell_significance"]
    row = sig[(sig["model_name"] == "Llama-3.2-1B") & (sig["regime"] == "MT-ML")].iloc[0]
    t = 10 / (0.5 / np.sqrt(3))
    assert row["t"] == pytest.approx(t, rel=1e-5)
    assert row["p"] == pytest.approx(2 * stats.t.sf(t, 2), rel=1e-4)
    assert (sig["call"] == "gain").sum() + (sig["call"] == "harm").sum() + (sig["call"] == "n.s.").sum() == 32
    by = tiny["significance_by_regime"].set_index("regime")
    assert by.loc["MT-ML", "sig_gain_rate"] == pytest.approx(100.0)


def test_consistency_skips_blocks_too_small(tiny):
    # 2 languages and 2 tasks: every source has < 3 recipients in every regime, so nothing is computed
    assert tiny["consistency_by_model"].empty


def test_consistency_known_tau():
    # two models that rank 3 recipients identically (tau 1) and a third that reverses them (tau -1 with both)
    rows = []
    for model, deltas in (("Llama-3.2-1B", [1, 2, 3]), ("Qwen2.5-1.5B", [2, 4, 6]), ("gemma-3-1b", [3, 2, 1])):
        for lang, d in zip(["b", "c", "d"], deltas):
            rows.append(
                {
                    "model_name": model,
                    "fine_tuned_dataset": "t",
                    "fine_tuned_language": "a",
                    "eval_dataset": "t",
                    "eval_language": lang,
                    "regime": "MT-CL",
                    "delta": float(d),
                    "family": parse_family(model),
                    "size_bucket": "S",
                }
            )
    from xling.analysis.consistency import source_consistency

    per_source, skipped = source_consistency(pd.DataFrame(rows), "model_name")
    assert skipped == 0 and per_source["tau"].iloc[0] == pytest.approx((1 - 1 - 1) / 3)


def test_crossed_decomposition_matches_statsmodels_type1_anova():
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(0)
    grid = pd.MultiIndex.from_product(
        [["m1", "m2", "m3"], ["s", "u"], ["a", "b", "c"], ["s", "u"], ["a", "b", "c"]],
        names=["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language"],
    ).to_frame(index=False)
    grid = grid.drop(rng.choice(len(grid), 40, replace=False)).reset_index(drop=True)  # unbalanced
    grid["delta"] = rng.normal(size=len(grid)) + (grid["fine_tuned_language"] == "a") * 2.0
    grid["regime"] = "CT-CL"  # per-regime fits need >= 50 rows of a regime; here only the overall one is checked
    ours = crossed_decomposition(grid).query("scope == 'overall'").set_index("term")
    f = ["C(model_name)", "C(fine_tuned_dataset)", "C(fine_tuned_language)", "C(eval_dataset)", "C(eval_language)"]
    pairs = [f"{a}:{b}" for i, a in enumerate(f) for b in f[i + 1 :]]
    ref = anova_lm(ols("delta ~ " + " + ".join(f + pairs), data=grid).fit(), typ=1)
    assert ours["ss"].iloc[:15].to_numpy() == pytest.approx(ref["sum_sq"].iloc[:15].to_numpy(), rel=1e-6, abs=1e-8)
    assert ours["ss"].iloc[15] == pytest.approx(ref["sum_sq"].iloc[15], rel=1e-6)
    assert ours["share"].sum() == pytest.approx(100.0)


def test_model_name_parsing():
    assert parse_family("Llama-3.2-1B-Instruct") == "Llama" and parse_size("Llama-3.2-1B-Instruct") == 1.0
    assert parse_family("Qwen2.5-1.5B") == "Qwen" and parse_size("Qwen2.5-1.5B") == 1.5
    assert parse_family("gemma-3-12b-it") == "Gemma" and parse_size("gemma-3-12b-it") == 12.0
    assert parse_size("smollm-360M") == pytest.approx(0.36) and parse_family("smollm-360M") == "smollm"
    assert [size_bucket(s) for s in (1.5, 1.6, 6.9, 7.0)] == ["S", "M", "M", "L"]


def test_config_overrides_family_size_and_construction():
    spec = AnalysisSpec(models={"Qwen2.5-7B": {"family": "Q", "size": 0.5}}, tasks={"t1": {"construction": "human"}})
    cells = prepare(read_results(TINY), spec)
    q = cells[cells["model_name"] == "Qwen2.5-7B"].iloc[0]
    assert (q["family"], q["size"], q["size_bucket"]) == ("Q", 0.5, "S")
    assert set(cells.loc[cells["eval_dataset"] == "t1", "construction"]) == {"human"}
    assert set(cells.loc[cells["eval_dataset"] == "t2", "construction"]) == {"unspecified"}
