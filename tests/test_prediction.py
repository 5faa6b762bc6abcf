"""Predicting a transfer grid from a fraction of its runs (``xling.analysis.prediction``, ``xling predict``) and the
simulator's planted interactions: known answers, planted structure, calibrated intervals, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_xling
from scipy import stats

from xling.analysis.linguistic import language_distances
from xling.analysis.prediction import TransferPredictor, choose_next, evaluate_predictors, initial_design
from xling.analysis.prediction.conformal import check_calibration, conformal_quantiles, fit_scale
from xling.analysis.prediction.data import encode, to_rows
from xling.analysis.prediction.evaluate import ndcg_at_k, outer_folds
from xling.analysis.prediction.models import optimal_shrinkage
from xling.analysis.simulate import DEFAULT_LANGUAGES, DEFAULT_MODELS, SimulationSpec, simulate_grid, simulate_long
from xling.contracts import KEYS, PREDICTION_COLUMNS
from xling.errors import XlingError

TASKS = ["arc", "mmlu", "hs", "tqa"]


def spec(**kw) -> SimulationSpec:
    """8 models x (4 tasks x 6 languages), with a rank-2 interaction and relatedness planted unless overridden."""
    base = dict(
        models=DEFAULT_MODELS[:8],
        tasks=TASKS,
        languages=DEFAULT_LANGUAGES[:6],
        n_seeds=2,
        interaction_rank=2,
        relatedness=1.5,
        seed=0,
    )
    return SimulationSpec(**{**base, **kw})


def run_pairs(grid: pd.DataFrame, pairs: np.ndarray) -> pd.DataFrame:
    """The rows of ``grid`` whose (model, source) pair is in the mask ``pairs``."""
    keys = to_rows(encode(grid), pairs)[KEYS]
    return grid.merge(keys, on=KEYS)


@pytest.fixture(scope="module")
def planted():
    """The issue's scenario: a simulated grid with interactions, a quarter of each model's source cells run (a
    different quarter per model, every source run by two models)."""
    grid = simulate_grid(spec())
    tensor = encode(grid)
    train = outer_folds(tensor.observed, 0.25, np.random.default_rng(0))[0]
    return grid, tensor, train


# --- item 5: the simulator plants interactions, and leaves the old tables as they were --------------------------------


def test_simulation_without_interactions_is_byte_identical_to_before():
    small = SimulationSpec(
        models=["Llama-3.2-1B", "Qwen2.5-1.5B", "gemma-3-4b"], tasks=["a", "b"], languages=["en", "de", "fr"], seed=3
    )
    digest = lambda df: hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()  # noqa: E731
    # the hashes of the same tables written by the code before the interaction options existed
    assert digest(simulate_grid(small)) == "e5105a7a2dbf3104051d1cae3a06431b32b36c6341cdb35499a44fb0e5852966"
    assert digest(simulate_long(small)) == "ba75605453be5fd000d5eb9198edac29ca8e5a959d9df5246e63c42565a4ea96"


def test_simulation_plants_a_low_rank_interaction_and_relatedness():
    plain = simulate_grid(spec(interaction_rank=0, relatedness=0.0))
    inter = simulate_grid(spec(relatedness=0.0, interaction_sd=3.0))
    related = simulate_grid(spec(interaction_rank=0, relatedness=2.0))
    # the other draws do not move: the difference is exactly the planted term
    diff = (inter["delta_score_norm_mean"] - plain["delta_score_norm_mean"]).to_numpy()
    nc = 24
    matrix = diff.reshape(8, nc, nc)
    assert np.allclose(matrix, matrix[0], atol=1e-6)  # shared by all models
    sv = np.linalg.svd(matrix[0], compute_uv=False)
    assert sv[1] > 1.0 and sv[2] < 1e-6 * sv[0]  # rank 2
    assert matrix[0].std() == pytest.approx(3.0, rel=1e-6)
    # relatedness: cross-language pairs only, and closer languages (URIEL syntax) transfer more
    rel = related.assign(d=related["delta_score_norm_mean"] - plain["delta_score_norm_mean"])
    same_lang = rel["fine_tuned_language"] == rel["eval_language"]
    assert np.allclose(rel.loc[same_lang, "d"], 0.0, atol=1e-6)
    by_pair = rel[~same_lang].groupby(["fine_tuned_language", "eval_language"])["d"].mean()
    assert by_pair[("es", "it")] > 0 > by_pair[("es", "de")]  # Spanish gives Italian more than German
    assert by_pair.std(ddof=0) == pytest.approx(2.0, rel=1e-3)
    uriel = language_distances(DEFAULT_LANGUAGES[:6], []).set_index(["lang_a", "lang_b"])["syntax_knn"]
    assert stats.spearmanr(by_pair.round(9), uriel.reindex(by_pair.index))[0] == pytest.approx(-1.0)


def test_relatedness_needs_languages_uriel_knows():
    with pytest.raises(XlingError, match="unknown: xx"):
        simulate_grid(spec(languages=["en", "de", "xx"], interaction_rank=0))


def test_simulate_cli_interaction_options(tmp_path, monkeypatch, capsys):
    small = ["--n-models", "2", "--n-tasks", "2", "--n-languages", "3", "--seeds", "2"]
    code, out, err = run_xling(monkeypatch, capsys, "simulate", "grid", "-o", tmp_path / "a.csv", *small)
    assert code == 0, err
    code, out, err = run_xling(
        monkeypatch, capsys, "simulate", "grid", "-o", tmp_path / "b.csv", *small, "--interaction-rank", "1"
    )
    assert code == 0 and "interaction rank 1" in out, err
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert not np.allclose(a["delta_score_norm_mean"], b["delta_score_norm_mean"])


# --- items 1-2: the predictor ----------------------------------------------------------------------------------------


def test_done_when_beats_additive_and_intervals_cover(planted):
    """Quarter of each model's sources run: Spearman with the held-out cells beats the additive baseline's by a clear
    margin; the 90 % intervals cover 85-95 % of the held-out cells (seeds 0-7 of this grid: margin 0.15-0.22, coverage
    91.0-94.6 %)."""
    grid, tensor, train = planted
    per_model = [set(np.flatnonzero(row)) for row in train]
    assert len({frozenset(s) for s in per_model}) == len(per_model)  # a different quarter per model
    assert 0.2 < train.mean() < 0.3 and train.any(axis=0).all()
    part = run_pairs(grid, train)
    held = {}
    for method in ("xling", "additive"):
        pred = TransferPredictor(method).fit(part).predict(include_observed=False)
        merged = pred.merge(grid[[*KEYS, "delta_score_norm_mean"]], on=KEYS)
        assert len(merged) == (~train).sum() * 24
        y = merged["delta_score_norm_mean"]
        held[method] = (
            stats.spearmanr(merged["delta_pred"], y)[0],
            ((merged["delta_lo"] <= y) & (y <= merged["delta_hi"])).mean(),
        )
    assert held["xling"][0] > held["additive"][0] + 0.1, held
    assert 0.85 <= held["xling"][1] <= 0.95, held


def test_recovers_a_planted_interaction_almost_exactly():
    """Little noise: the held-out cells are predicted to within a small error, which the interaction term makes."""
    quiet = spec(
        interaction_rank=1,
        interaction_sd=3.0,
        relatedness=0.0,
        model_source_sd=0.0,
        model_target_sd=0.0,
        cell_sd=0.05,
        seed_sd=0.0,
    )
    grid = simulate_grid(quiet)
    tensor = encode(grid)
    train = outer_folds(tensor.observed, 0.25, np.random.default_rng(1))[0]
    errors = {}
    for rank in (None, 0):
        predictor = TransferPredictor(linguistic=False, rank=rank).fit(run_pairs(grid, train))
        rows = predictor.predict_pairs(~train)
        errors[rank] = np.abs(rows["delta_pred"].to_numpy() - tensor.y[rows["m"], rows["s"], rows["t"]]).mean()
    assert errors[None] < 0.1 < 1.0 < errors[0], errors


def test_family_effect_carries_to_an_unrun_model():
    """A planted family x source effect (Qwen models gain a source-specific bonus): an unrun Qwen pair is predicted
    with the bonus the other Qwen models showed on that source."""
    grid = simulate_grid(spec(interaction_rank=0, relatedness=0.0))
    tensor = encode(grid)
    bonus = np.random.default_rng(5).normal(0, 3.0, len(tensor.cells))
    qwen = np.array([m.startswith("Qwen") for m in tensor.models])
    src = grid[["fine_tuned_dataset", "fine_tuned_language"]].apply(tuple, axis=1).map(tensor.cells.index)
    grid["delta_score_norm_mean"] += np.where(grid["model_name"].str.startswith("Qwen"), bonus[src], 0.0)
    train = outer_folds(tensor.observed, 0.34, np.random.default_rng(0))[0]
    pred = TransferPredictor(linguistic=False).fit(run_pairs(grid, train)).predict_pairs(~train)
    pair = pred.groupby(["m", "s"])["delta_pred"].mean().unstack()  # models x sources, unrun pairs
    other_mean = pair[~qwen].mean(axis=0)
    ran = train[qwen].any(axis=0)  # sources some Qwen model ran
    unrun_qwen = [(m, s) for m in np.flatnonzero(qwen) for s in np.flatnonzero(ran & ~train[m])]
    shift = np.array([pair.loc[m, s] - other_mean[s] for m, s in unrun_qwen])
    assert len(unrun_qwen) >= 10 and stats.pearsonr(shift, bonus[[s for _, s in unrun_qwen]])[0] > 0.8


def test_predictions_table_contract(planted):
    grid, tensor, train = planted
    predictor = TransferPredictor(level=0.8).fit(run_pairs(grid, train))
    table = predictor.predict()
    assert list(table.columns) == PREDICTION_COLUMNS
    assert len(table) == 8 * 24 * 24 and not table.duplicated(KEYS).any()
    run = table[table["observed"]]
    assert len(run) == train.sum() * 24 and run["delta_lo"].isna().all()
    merged = run.merge(grid[[*KEYS, "delta_score_norm_mean", "regime"]], on=KEYS, suffixes=("", "_in"))
    assert np.allclose(merged["delta_pred"], merged["delta_score_norm_mean"])
    assert (merged["regime"] == merged["regime_in"]).all()
    new = table[~table["observed"]]
    assert (new["delta_lo"] < new["delta_pred"]).all() and (new["delta_pred"] < new["delta_hi"]).all()
    wider = TransferPredictor(level=0.95).fit(run_pairs(grid, train)).predict()
    assert (wider.loc[~wider["observed"], "delta_hi"] - wider.loc[~wider["observed"], "delta_lo"]).mean() > (
        new["delta_hi"] - new["delta_lo"]
    ).mean()
    assert predictor.calibration_["ci_method"].startswith("conformal, 5-fold cross-validation")


def test_intervals_are_wider_where_fewer_models_ran_the_source(planted):
    grid, tensor, train = planted
    train = train.copy()
    train[:, 0] = False
    train[:4, 0] = True  # source 0 run by four models, the others by two
    predictor = TransferPredictor().fit(run_pairs(grid, train))
    rows = predictor.predict_pairs(~train)
    width = (rows["delta_hi"] - rows["delta_lo"]).groupby([rows["s"] == 0, rows["regime"]]).mean()
    assert (width[True] < width[False]).all()


# --- conformal and scoring pieces, known answers ----------------------------------------------------------------------


def test_conformal_quantile_and_calibration_check():
    scores = np.arange(1.0, 20.0)  # 19 held-out scores
    q = conformal_quantiles(scores, np.zeros(19, dtype=int), 0.9)
    assert q[0] == 18.0 and np.isinf(q[1:]).all()  # ceil(0.9 * 20) = 18th smallest; no cells, no interval
    check_calibration(np.zeros(9, dtype=int), np.array([0]), 0.9)  # 9 cells suffice for 90 %
    with pytest.raises(XlingError, match="regime MT-ML: 8 .need 9."):
        check_calibration(np.zeros(8, dtype=int), np.array([0]), 0.9)


def test_residual_model_recovers_planted_variances():
    rng = np.random.default_rng(0)
    n_pairs, cells = 4000, 20
    n_models = rng.integers(1, 5, n_pairs)
    pair_err = rng.normal(0, np.sqrt(2.0 * (1 + 1 / n_models)))
    regime = rng.integers(0, 4, (n_pairs, cells))
    resid = pair_err[:, None] + rng.normal(0, np.sqrt([1.0, 3.0, 5.0, 7.0])[regime])
    var = fit_scale(resid.ravel(), regime.ravel(), np.repeat(np.arange(n_pairs), cells), np.repeat(n_models, cells))
    assert var[:, 0] == pytest.approx([1.0, 3.0, 5.0, 7.0], rel=0.05)
    assert var[0, 1] == pytest.approx(2.0, rel=0.1)


def test_optimal_shrinkage_keeps_signal_and_drops_noise():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(60, 1)), rng.normal(size=(40, 1))
    signal = 0.5 * u @ v.T
    true = np.linalg.norm(signal, 2)
    sv = np.linalg.svd(signal + rng.normal(size=signal.shape), compute_uv=False)
    kept = optimal_shrinkage(sv, 1.0, signal.shape)
    assert abs(kept[0] - true) < abs(sv[0] - true)  # the signal's value, less the noise's inflation
    assert kept[0] > 0.75 * sv[0] and kept[1] < 0.25 * sv[1] and (kept[5:] == 0).all()  # noise goes, signal stays


def test_ndcg_known_answers():
    truth = np.array([[3.0], [2.0], [1.0], [0.0]])
    valid = np.ones_like(truth, dtype=bool)
    assert ndcg_at_k(truth, truth, valid)[0] == pytest.approx(1.0)
    reverse = ndcg_at_k(-truth, truth, valid)[0]  # ranks 0, 1, 2 on top: gains 0, 1, 2
    expected = (0 + 1 / np.log2(3) + 2 / np.log2(4)) / (3 + 2 / np.log2(3) + 1 / np.log2(4))
    assert reverse == pytest.approx(expected)


# --- item 3: cross-validation -----------------------------------------------------------------------------------------


def test_evaluate_compares_three_methods_on_the_same_folds():
    grid = simulate_grid(spec(models=DEFAULT_MODELS[:4], languages=DEFAULT_LANGUAGES[:4], tasks=TASKS[:3]))
    per_fold, summary = evaluate_predictors(grid, observed=0.5, n_folds=4)
    assert list(summary["method"]) == ["xling", "additive", "boosted"] and (summary["n_folds"] == 2).all()
    cells = per_fold.pivot(index="fold", columns="method", values="n_cells")
    assert (cells.nunique(axis=1) == 1).all()  # the same held-out cells for every method
    s = summary.set_index("method")
    assert s.loc["xling", "spearman"] > s.loc["additive", "spearman"]
    assert ((s["coverage"] > 0.75) & (s["coverage"] <= 1.0)).all() and (s["width"] > 0).all()


# --- item 4's building blocks: the first design and the next runs -----------------------------------------------------


def test_initial_design_covers_every_cell_twice_and_balances_models():
    cells = [(t, lang) for t in TASKS for lang in DEFAULT_LANGUAGES]  # 44 cells
    design = initial_design(DEFAULT_MODELS, cells, per_source=2, seed=0)
    per_cell = design.groupby(["fine_tuned_dataset", "fine_tuned_language"])["model_name"].nunique()
    assert len(per_cell) == 44 and (per_cell == 2).all() and not design.duplicated().any()
    load = design["model_name"].value_counts()
    assert len(load) == 9 and load.max() - load.min() <= 1
    # every model sees several tasks and languages as sources (not one task's cells)
    assert (design.groupby("model_name")["fine_tuned_dataset"].nunique() >= 3).all()
    assert (design.groupby("model_name")["fine_tuned_language"].nunique() >= 7).all()
    assert design.equals(initial_design(DEFAULT_MODELS, cells, per_source=2, seed=0))
    with pytest.raises(XlingError, match="per_source"):
        initial_design(DEFAULT_MODELS[:2], cells, per_source=3)


def test_initial_design_is_enough_to_predict():
    grid = simulate_grid(spec())
    tensor = encode(grid)
    design = initial_design(tensor.models, tensor.cells, per_source=2)
    table = TransferPredictor().fit(grid.merge(design, on=KEYS[:3])).predict()
    assert (~table["observed"]).sum() == (8 * 24 - 48) * 24


def test_choose_next_targets_the_least_known_source(planted):
    grid, tensor, train = planted
    train = train.copy()
    s = 5
    train[:, s] = False
    train[0, s] = True  # source 5 run by one model only: its predictions are the least certain
    predictor = TransferPredictor().fit(run_pairs(grid, train))
    picks = choose_next(predictor.predict(), 3, scale=predictor.scale_)
    assert list(picks.columns) == [*KEYS[:3], "gain", "rank"] and list(picks["rank"]) == [1, 2, 3]
    assert tuple(picks.iloc[0][KEYS[1:3]]) == tensor.cells[s]
    assert picks["gain"].is_monotonic_decreasing and not picks.duplicated(KEYS[:3]).any()
    run = {(tensor.models[m], *tensor.cells[c]) for m, c in zip(*np.nonzero(train))}
    assert not any(tuple(r) in run for r in picks[KEYS[:3]].itertuples(index=False))
    only = pd.DataFrame([picks.iloc[1][KEYS[:3]]])
    restricted = choose_next(predictor.predict(), 5, scale=predictor.scale_, candidates=only)
    assert len(restricted) == 1 and tuple(restricted.iloc[0][KEYS[:3]]) == tuple(only.iloc[0])


# --- bad input: one line each ---------------------------------------------------------------------------------------


@pytest.fixture()
def part_csv(tmp_path, planted):
    grid, _, train = planted
    path = tmp_path / "part.csv"
    run_pairs(grid, train).to_csv(path, index=False)
    return path


def bad_input(monkeypatch, capsys, tmp_path, table: pd.DataFrame) -> str:
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    code, _, err = run_xling(monkeypatch, capsys, "predict", path, "-o", tmp_path / "out")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    return err


def test_bad_input_one_model(monkeypatch, capsys, tmp_path, part_csv):
    table = pd.read_csv(part_csv)
    one = table[table["model_name"] == table["model_name"].iloc[0]]
    err = bad_input(monkeypatch, capsys, tmp_path, one)
    assert "one model" in err and "at least 2 models" in err


def test_bad_input_source_never_run(monkeypatch, capsys, tmp_path, part_csv):
    table = pd.read_csv(part_csv)
    never = table[~((table["fine_tuned_dataset"] == "hs") & (table["fine_tuned_language"] == "de"))]
    err = bad_input(monkeypatch, capsys, tmp_path, never)
    assert "source cell hs/de was not run for any model" in err


def test_bad_input_missing_base_scores(monkeypatch, capsys, tmp_path, part_csv):
    table = pd.read_csv(part_csv)
    table.loc[[3, 10], "score_norm_base_mean"] = np.nan
    err = bad_input(monkeypatch, capsys, tmp_path, table)
    assert "'score_norm_base_mean': 2 rows have no base score (e.g. row 5)" in err


def test_bad_input_incomplete_pair_and_no_out(monkeypatch, capsys, tmp_path, part_csv):
    table = pd.read_csv(part_csv).drop(index=[0])
    err = bad_input(monkeypatch, capsys, tmp_path, table)
    assert "1 of 24 target cells missing" in err
    code, _, err = run_xling(monkeypatch, capsys, "predict", part_csv)
    assert code == 2 and "-o/--out is required" in err and len(err.strip().splitlines()) == 1


# --- the command ------------------------------------------------------------------------------------------------------


def test_predict_cli_writes_table_summary_and_record(monkeypatch, capsys, tmp_path, part_csv):
    code, out, err = run_xling(monkeypatch, capsys, "predict", part_csv, "-o", tmp_path / "p", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert len(out.strip().splitlines()) == 1
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 8 * 24 * 24
    assert summary["predicted_cells"] == (~table["observed"]).sum() and summary["calibration"]["level"] == 0.9
    record = json.loads((tmp_path / "p" / "run.json").read_text())
    assert record["calibration"]["ci_method"] == summary["calibration"]["ci_method"]
    assert record["input"]["path"] == str(part_csv) and record["config"]["level"] == 0.9


def test_predict_cli_evaluate(monkeypatch, capsys, tmp_path):
    grid = simulate_grid(spec(models=DEFAULT_MODELS[:4], languages=DEFAULT_LANGUAGES[:3], tasks=TASKS[:3]))
    grid.to_csv(tmp_path / "full.csv", index=False)
    args = ["predict", tmp_path / "full.csv", "--evaluate", "--observed", "0.5", "--folds", "3", "--no-linguistic"]
    code, out, err = run_xling(monkeypatch, capsys, *args, "-o", tmp_path / "ev")
    assert code == 0, err
    assert "xling" in out and "additive" in out and "boosted" in out and "NDCG@3" in out
    summary = pd.read_csv(tmp_path / "ev" / "evaluation.csv")
    assert list(summary["method"]) == ["xling", "additive", "boosted"]
    assert len(pd.read_csv(tmp_path / "ev" / "evaluation_folds.csv")) == 2 * 3


def test_predict_reads_the_per_seed_table_and_names_unknown_languages(monkeypatch, capsys, tmp_path):
    small = spec(models=DEFAULT_MODELS[:6], tasks=TASKS[:3], languages=["en", "de", "xx"], relatedness=0.0)
    long = simulate_long(small)
    tensor = encode(simulate_grid(small))
    train = outer_folds(tensor.observed, 0.5, np.random.default_rng(0))[0]
    keys = to_rows(tensor, train)[KEYS[:3]].drop_duplicates()
    long.merge(keys, on=KEYS[:3]).to_csv(tmp_path / "long.csv", index=False)
    code, out, err = run_xling(monkeypatch, capsys, "predict", tmp_path / "long.csv", "-o", tmp_path / "p", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["run_pairs"] == train.sum() and any("xx" in note for note in summary["notes"])
    code, out, err = run_xling(
        monkeypatch, capsys, "predict", tmp_path / "long.csv", "-o", tmp_path / "q", "--json", "--no-linguistic"
    )
    assert code == 0 and json.loads(out)["notes"] == [], err
