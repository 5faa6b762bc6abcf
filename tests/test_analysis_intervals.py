"""Honest intervals (issue 9, item 7): with one model the two-stage CIs resample cells, an interval that cannot
vary is never shown as evidence, no role is named on one, and every table and the report say how each CI was made."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from xling.analysis.meta import AnalysisSpec
from xling.analysis.results import aggregate_seeds
from xling.analysis.roles import named_roles
from xling.analysis.stats import NO_CI, group_summary, two_stage
from xling.report import run_analysis

ONE_MODEL = "bootstrap over cells (one model)"


def test_two_stage_with_one_model_resamples_each_keys_cells():
    df = pd.DataFrame(
        {
            "model_name": "m",
            "key": ["a", "a", "a", "b", "b", "b", "c"],
            "delta": [0.0, 10.0, 5.0, -1.0, -1.0, -1.0, 3.0],
        }
    )
    out = two_stage(df, "key", "delta", np.random.default_rng(0), n_boot=2000).set_index("key")
    assert out["mean"].tolist() == pytest.approx([5.0, -1.0, 3.0])
    a = out.loc["a"]
    assert 0.0 <= a["ci_low"] < 5.0 < a["ci_high"] <= 10.0 and a["ci_method"] == ONE_MODEL
    # b's cells are all equal: its CI has zero width (it could vary, it did not); c has one cell: no CI at all
    assert out.loc["b", "ci_low"] == out.loc["b", "ci_high"] == -1.0
    assert np.isnan(out.loc["c", ["ci_low", "ci_high", "dev_low", "dev_high"]].astype(float)).all()
    assert out.loc["c", "ci_method"] == NO_CI
    # the deviation from the average over keys varies with the other keys' draws
    assert out.loc["b", "dev_high"] > out.loc["b", "dev_low"]


def test_two_stage_with_models_resamples_models_and_drops_keys_one_model_has():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "model_name": ["m1", "m2", "m3"] * 2 + ["m1"],
            "key": ["a"] * 3 + ["b"] * 3 + ["c"],
            "delta": rng.normal(size=7),
        }
    )
    out = two_stage(df, "key", "delta", np.random.default_rng(0), n_boot=500).set_index("key")
    assert (out.loc[["a", "b"], "ci_method"] == "bootstrap over models").all()
    assert (out.loc[["a", "b"], "ci_high"] > out.loc[["a", "b"], "ci_low"]).all()
    assert out.loc["c", "ci_method"] == NO_CI and np.isnan(out.loc["c", "ci_low"])
    assert out.loc["c", "n_models"] == 1


def test_one_key_has_no_deviation_interval_and_one_cell_groups_no_ci():
    df = pd.DataFrame({"model_name": ["m1", "m2", "m3"], "key": "a", "delta": [1.0, 2.0, 4.0]})
    out = two_stage(df, "key", "delta", np.random.default_rng(0), n_boot=200).iloc[0]
    assert out["ci_high"] > out["ci_low"] and np.isnan(out["dev_low"]) and np.isnan(out["dev_high"])
    g = group_summary(
        pd.DataFrame({"g": ["x", "y", "y"], "v": [1.0, 2.0, 3.0]}), ["g"], "v", np.random.default_rng(0), 200
    ).set_index("g")
    assert np.isnan(g.loc["x", "ci_low"]) and g.loc["x", "ci_method"] == NO_CI
    assert g.loc["y", "ci_method"] == "bootstrap over cells" and g.loc["y", "ci_high"] > g.loc["y", "ci_low"]


def test_no_role_is_named_on_an_interval_that_cannot_vary():
    row = {
        "lang": "fr",
        "donor": 0.0,
        "recipient": -0.0,
        "n_models": 1,
        "donor_ci_low": 0.1,
        "donor_ci_high": 0.5,
        "donor_dev_low": 0.2,
        "donor_dev_high": 0.6,
        "recipient_ci_low": -0.0,
        "recipient_ci_high": -0.0,
        "recipient_dev_low": -0.3,
        "recipient_dev_high": -0.1,
        "donor_ci_method": ONE_MODEL,
        "recipient_ci_method": ONE_MODEL,
    }
    zero_dev = {
        **row,
        "lang": "de",
        "donor_dev_low": 0.2,
        "donor_dev_high": 0.2,
        "recipient_ci_low": np.nan,
        "recipient_ci_high": np.nan,
    }
    named = named_roles(pd.DataFrame([row, zero_dev]), None)
    # fr's recipient score has a zero-width CI, de's donor deviation too: only fr as donor is named
    assert named[["name", "role"]].values.tolist() == [["fr", "hub donor"]]
    assert named["ci_method"].tolist() == [ONE_MODEL]


def _one_model_table(constant_recipients: bool) -> pd.DataFrame:
    """A per-seed table of one model (2 seeds), 3 tasks x 4 languages, in xling's long schema.

    ``constant_recipients``: every transfer cell's delta depends only on its target language (fr -0.2 pp, the
    rest 0), the case that named "fr: brittle recipient" on a zero-width interval; otherwise deltas vary.
    """
    rng = np.random.default_rng(3)
    cells = list(itertools.product(["t1", "t2", "t3"], ["en", "de", "fr", "ru"]))
    rows = []
    for (st, sl), (et, el) in itertools.product(cells, cells):
        trained = (st, sl) == (et, el)
        shift = 0.10 if trained else (-0.002 if el == "fr" else 0.0) if constant_recipients else rng.normal(0, 0.02)
        for seed, noise in ((17, 0.01), (42, -0.01)):
            score = 0.5 + shift + (noise if trained or not constant_recipients else 0.0)
            rows.append(
                {
                    "model_name": "all-MiniLM-L6-v2",
                    "model_size": "22M",
                    "fine_tuned_dataset": st,
                    "fine_tuned_language": sl,
                    "eval_dataset": et,
                    "eval_language": el,
                    "seed": seed,
                    "score": score,
                    "score_base": 0.5,
                    "score_norm": score,
                    "score_norm_base": 0.5,
                }
            )
    return aggregate_seeds(pd.DataFrame(rows))


@pytest.mark.parametrize("constant", [True, False])
def test_one_model_report_names_no_role_on_a_zero_width_interval(tmp_path, constant):
    out = tmp_path / "out"
    analysis = run_analysis(
        _one_model_table(constant), out, AnalysisSpec(n_boot=200), mixed_models=False, linguistic_distances=False
    )
    t = analysis.tables
    lang = t["language_donor_recipient"]
    assert set(lang["donor_ci_method"]) | set(lang["recipient_ci_method"]) == {ONE_MODEL}
    named = t["named_roles"]
    assert (named["ci_high"] > named["ci_low"]).all()
    assert (named["deviation_ci_high"] > named["deviation_ci_low"]).all()
    if constant:
        assert not (named["name"] == "fr").any()  # its recipient CI is [-0.20, -0.20]: no longer a role
    else:
        assert len(named) == 0 or (named["ci_method"] == ONE_MODEL).all()
    summary = (out / "summary.md").read_text()
    assert "One model: the two-stage bootstrap has no models to resample" in summary
    assert "## How each interval was made" in summary and ONE_MODEL in summary
    for line in summary.splitlines():
        if line.startswith(("- language **", "- task **")):
            lo, hi = line.split("[")[1].split("]")[0].split(", ")
            assert float(lo) < float(hi), line
    assert "nan" not in summary.lower()  # an interval that cannot vary is "n/a", never a number
    page = (out / "report.html").read_text()
    assert "One model: the two-stage bootstrap" in page and "interval_methods" in page
    header = (out / "tables" / "language_donor_recipient.csv").read_text().splitlines()[0]
    assert header.endswith("donor_ci_method,recipient_ci_method")
    record = json.loads((out / "run.json").read_text())
    methods = {(r["table"], r["ci_method"]) for r in record["interval_methods"]}
    assert ("language_donor_recipient", ONE_MODEL) in methods and ("regime_summary", "bootstrap over cells") in methods
    config = record["config"]
    assert config["variance_cells"] == "transfer" and config["uriel_codes"] == "release"
    assert config["variance_subset_task"] == "global_mmlu" and config["language_groups"]["Romance"][1] == "fr"
    # per-cell significance is tested with two seeds
    assert t["significance_by_regime"]["n_tested"].sum() > 0
