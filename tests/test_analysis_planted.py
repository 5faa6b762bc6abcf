"""Planted structure is recovered from simulated grids (small grids: the test budget is minutes)."""

from __future__ import annotations

import pytest

from xling.analysis.meta import AnalysisSpec
from xling.analysis.pipeline import analyze, prepare
from xling.analysis.simulate import SimulationSpec, simulate_grid, simulate_long
from xling.analysis.variance import mixedlm_decomposition

PLANTED = {"MT-ML": 12.0, "MT-CL": 3.0, "CT-ML": 1.0, "CT-CL": -0.5}
SMALL = dict(
    models=["Llama-3.2-1B", "Llama-3.1-8B", "Qwen2.5-1.5B", "Qwen2.5-7B", "gemma-3-1b", "gemma-3-12b"],
    tasks=["arc_challenge", "global_mmlu", "hellaswag"],
    languages=["en", "de", "fr", "ru", "ja", "hi"],
)


@pytest.fixture(scope="module")
def planted():
    sim = SimulationSpec(**SMALL, hubs=["ja"], brittle=["de"], seed=7, regime_effects=PLANTED)
    spec = AnalysisSpec(n_boot=300)
    return analyze(prepare(simulate_grid(sim), spec), spec, mixed_models=False, linguistic_distances=False)


def test_planted_hub_donor_ranks_first_and_brittle_recipient_last(planted):
    roles = planted.tables["language_donor_recipient"]
    assert roles.sort_values("donor", ascending=False)["lang"].iloc[0] == "ja"
    assert roles.sort_values("recipient")["lang"].iloc[0] == "de"
    named = planted.tables["named_roles"]
    assert ((named["name"] == "ja") & (named["role"] == "hub donor")).any()
    assert ((named["name"] == "de") & (named["role"] == "brittle recipient")).any()


def test_planted_regime_means_recovered(planted):
    summary = planted.tables["regime_summary"].set_index("regime")
    for regime, value in PLANTED.items():
        assert summary.loc[regime, "mean"] == pytest.approx(value, abs=0.5)
    # and the order of the regimes is the planted one
    assert list(summary.sort_values("mean", ascending=False).index) == ["MT-ML", "MT-CL", "CT-ML", "CT-CL"]


def test_crossed_variance_finds_planted_language_effects(planted):
    crossed = planted.tables["variance_crossed"]
    overall = crossed.query("subset == 'all' and scope == 'MT-CL'").set_index("term")["share"]
    # in MT-CL the planted donor effect (hub bonus 4 pp) dominates the other main effects
    assert overall["source_language"] > overall["source_task"]
    assert overall["source_language"] > overall["model"]


def test_simulation_is_seeded_and_long_table_aggregates():
    sim = SimulationSpec(**SMALL, seed=3, n_seeds=2)
    a, b = simulate_long(sim), simulate_long(sim)
    assert a.equals(b)
    assert not a.equals(simulate_long(sim.model_copy(update={"seed": 4})))
    grid = simulate_grid(sim)
    assert len(grid) == 6 * 18 * 18 and (grid["n_seeds"] == 2).all()


def test_incomplete_grid_reports_coverage_and_skips():
    sim = SimulationSpec(**SMALL, seed=1)
    cells = simulate_grid(sim)
    cells = cells.drop(cells.sample(frac=0.3, random_state=0).index)
    spec = AnalysisSpec(n_boot=100)
    res = analyze(prepare(cells, spec), spec, mixed_models=False, linguistic_distances=False)
    assert not res.coverage["complete"] and res.coverage["coverage"] == pytest.approx(70.0, abs=0.1)
    assert any(n.startswith("incomplete grid") for n in res.notes)
    assert any(n.startswith("consistency_by_model") and "skipped" in n for n in res.notes)
    assert len(res.tables["regime_summary"]) == 4


@pytest.mark.slow
def test_mixedlm_recovers_dominant_nested_component():
    sim = SimulationSpec(
        models=SMALL["models"][:4],
        tasks=SMALL["tasks"][:2],
        languages=SMALL["languages"][:5],
        model_source_sd=3.0,
        model_target_sd=0.3,
        cell_sd=0.5,
        language_sd=0.0,
        task_sd=0.0,
        hubs=[],
        brittle=[],
        seed=5,
    )
    spec = AnalysisSpec(variance_subset_task=None)
    table = mixedlm_decomposition(prepare(simulate_grid(sim), spec), spec).query("scope == 'MT-CL'")
    table = table.set_index("component")
    assert table["share"].sum() == pytest.approx(100.0)
    assert table.loc["source (in model)", "share"] > 50
    assert table.loc["source (in model)", "share"] > 5 * table.loc["target (in model)", "share"]


def test_metric_is_selectable_and_long_table_gives_the_same_headline():
    from xling.analysis import headline_table

    sim = SimulationSpec(**SMALL, seed=2, n_seeds=2)
    long = simulate_long(sim)
    norm = headline_table(long, AnalysisSpec(n_boot=100)).set_index("regime")["mean"]
    assert norm.to_numpy() == pytest.approx(
        headline_table(simulate_grid(sim), AnalysisSpec(n_boot=100))["mean"].to_numpy()
    )
    raw = headline_table(long, AnalysisSpec(n_boot=100, metric="delta_score_mean")).set_index("regime")["mean"]
    assert not raw.to_numpy() == pytest.approx(norm.to_numpy(), abs=1e-6)  # acc and acc_norm deltas differ
    assert raw["MT-ML"] == pytest.approx(norm["MT-ML"], abs=1.0)  # ... but only by the planted raw-score noise
