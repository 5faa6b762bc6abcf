"""The adaptive transfer grid (``budget:``, issue 20 item 4) on three tiny offline models: the budget, the initial
design, rounds chosen by the predictor, resuming after SIGKILL, bad specs, and the report's predicted cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_xling
from grid_fixtures import grid_spec, write_spec

from xling.analysis.meta import AnalysisSpec
from xling.analysis.predicted import predicted_cells, roles_with_predictions
from xling.analysis.prediction import TransferPredictor, initial_design
from xling.analysis.prediction.predictor import check_design
from xling.analysis.roles import language_donor_recipient, task_donor_recipient
from xling.analysis.simulate import SimulationSpec, simulate_grid
from xling.config import GridSpec, parse_spec
from xling.errors import XlingError
from xling.studies import load_study, run_study, store_for
from xling.studies.transfer import KIND
from xling.studies.transfer.adaptive import DesignLog, budget_summary
from xling.studies.transfer.units import make_plan

LANGS = ["en", "de", "fr"]
CELLS = [(t, lang) for t in ("copy", "next") for lang in LANGS]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[list[Path], list[str]]:
    """Three different tiny Llamas and the two generated tasks in three languages (6 cells)."""
    from grid_fixtures import write_tasks

    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("adaptive-assets")
    models = [build_tiny_llama(root / f"tiny{i}", seed=i) for i in range(3)]
    return models, write_tasks(root / "tasks", n_train=24, n_test=12, languages=LANGS)


def adaptive_spec(assets, out: Path, **overrides) -> dict:
    """3 models × 6 cells × 1 seed (18 training units), a budget of 15: the initial design's 12, then rounds of 2."""
    models, tasks = assets
    spec = grid_spec(
        models[0],
        tasks,
        out,
        languages=LANGS,
        seeds=[1],
        train={"epochs": 3, "lr": 1e-2, "batch_size": 4, "val_fraction": 0.25},
        budget=15,
        adaptive={"per_round": 2},
    )
    spec["models"] = [
        {"name": f"tiny-{c}", "path": str(m), "kind": "causal", "size": f"{i + 1}M"}
        for i, (c, m) in enumerate(zip("abc", models))
    ]
    spec.update(overrides)
    return spec


def _train_starts(spec: GridSpec) -> dict[str, int]:
    """How often each training unit was started (from the store's event log)."""
    train = {u.key for u in make_plan(spec).train}
    counts: dict[str, int] = {}
    for e in store_for(spec).events():
        if e["event"] == "start" and e["key"] in train:
            counts[e["key"]] = counts.get(e["key"], 0) + 1
    return counts


@pytest.fixture(scope="module")
def reference(assets, tmp_path_factory):
    """An uninterrupted adaptive run with its analysis: (spec, study, the design log's rounds)."""
    path = write_spec(
        adaptive_spec(assets, tmp_path_factory.mktemp("ref") / "out"), tmp_path_factory.mktemp("s") / "g.yaml"
    )
    spec = load_study(path)
    study = run_study(spec, progress=False)
    return spec, study, DesignLog(store_for(spec).root).rounds()


# --- the spec: bad budgets, the plan -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"budget": 0}, "at least 1"),
        ({"budget": 0.0}, "must be in (0, 1]"),
        ({"budget": 1.5}, "must be in (0, 1]"),
        ({"budget": 19}, "more than the whole grid's 18"),
        ({"budget": 11}, "less than the initial design's 12"),
        ({"budget": 12, "adaptive": {"per_source": 4}}, "more than the 3 models"),
        ({"budget": 12, "adaptive": {"per_round": 2, "speed": 1}}, "adaptive.speed"),
        ({"budget": None}, "'adaptive' is set but 'budget' is not"),
        ({"targets": [{"task": "copy", "language": "en"}]}, "the same source and target cells"),
        ({"one_model": True}, "a budget needs at least 2 models"),
    ],
)
def test_bad_budget_is_one_line_exit_2(change, says, tmp_path, monkeypatch, capsys):
    spec = adaptive_spec(([tmp_path / "m"] * 3, ["copy", "next"]), tmp_path / "out", tasks=["copy", "next"])
    if change.pop("one_model", False):
        spec["models"] = spec["models"][:1]
    spec.update(change)
    path = write_spec(spec, tmp_path / "g.yaml")
    code, out, err = run_xling(monkeypatch, capsys, "grid", "plan", path)
    assert code == 2 and err.startswith("error: ") and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "g.yaml" in err and ("budget" in err or "adaptive" in err)
    assert not (tmp_path / "out").exists()


def test_budget_counts_whole_pairs_and_fractions():
    models = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    base = dict(models=models, tasks=["t", "u"], languages=["en", "de"], seeds=[1, 2])  # 24 units; design: 16
    spec = parse_spec(GridSpec, {**base, "budget": 19})
    assert spec.budget_units() == 19 and budget_summary(spec)["training_units"] == 18  # 9 pairs x 2 seeds
    spec = parse_spec(GridSpec, {**base, "budget": 0.8})
    assert spec.budget_units() == 19 and budget_summary(spec)["initial_design"] == 16
    assert budget_summary(spec)["per_round"] == 2  # a tenth of the 12 pairs, rounded up


def test_initial_design_covers_every_task_and_language_and_plan_shows_budget(assets, tmp_path, monkeypatch, capsys):
    path = write_spec(adaptive_spec(assets, tmp_path / "out"), tmp_path / "g.yaml")
    spec = load_study(path)
    units = KIND.units(spec)
    train = [u for u in units if u.stage == "train"]
    assert len(train) == 12 and len([u for u in units if u.stage == "score"]) == 3 + 12
    sources = [(u.source.language, Path(u.source.task).stem) for u in train]
    assert {t for _, t in sources} == {"copy", "next"} and {lang for lang, _ in sources} == set(LANGS)
    assert all(sources.count(s) == 2 for s in set(sources))  # every source cell for per_source = 2 models
    assert sorted(len([u for u in train if u.model.name == m]) for m in ("tiny-a", "tiny-b", "tiny-c")) == [4, 4, 4]

    code, out, err = run_xling(monkeypatch, capsys, "grid", "plan", path)
    assert code == 0, err
    assert "budget: at most 15 of the grid's 18 training units" in " ".join(out.split())
    code, out, _ = run_xling(monkeypatch, capsys, "grid", "plan", path, "--json")
    summary = json.loads(out)
    assert summary["budget"]["initial_design"] == 12 and summary["stages"]["train"]["units"] == 15
    assert not (tmp_path / "out").exists()  # plan creates nothing


def test_initial_design_that_cannot_calibrate_is_refused_before_work(assets, tmp_path, monkeypatch, capsys):
    # 2 languages: 4 cells, 8 pairs held out at most, so 8 MT-ML cells to calibrate a 90 % interval that needs 9
    spec = adaptive_spec(assets, tmp_path / "out", languages=["en", "de"], budget=12)
    code, _, err = run_xling(monkeypatch, capsys, "grid", "run", write_spec(spec, tmp_path / "g.yaml"))
    assert code == 2 and "cannot calibrate" in err and "MT-ML" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before any work: no store, no run record


def test_design_log_drops_a_torn_line(tmp_path):
    log = DesignLog(tmp_path)
    log.append({"round": 0, "pairs": [["a", "t", "en"]]})
    with open(log.path, "ab") as fh:
        fh.write(b'{"round": 1, "pai')  # a writer killed mid-line
    assert [r["round"] for r in log.rounds()] == [0]
    log.append({"round": 1, "pairs": [["b", "t", "de"]]})
    assert [r["round"] for r in log.rounds()] == [0, 1]
    assert log.path.read_text().count("\n") == 2


# --- the predictor's side: the calibration check, roles with predicted cells ----------------------------------------


@pytest.mark.parametrize(
    ("languages", "per_source", "level", "ok"), [(2, 2, 0.9, False), (3, 2, 0.9, True), (2, 2, 0.8, True)]
)
def test_check_design_agrees_with_fit(languages, per_source, level, ok):
    grid = simulate_grid(
        SimulationSpec(models=["m-1B", "m-2B", "m-3B"], tasks=["a", "b"], languages=["en", "de", "fr"][:languages])
    )
    cells = sorted(set(zip(grid["eval_dataset"], grid["eval_language"])))
    design = initial_design(sorted(set(grid["model_name"])), cells, per_source=per_source)
    fitted = True
    try:
        TransferPredictor(level=level).fit(grid.merge(design))
    except XlingError:
        fitted = False
    checked = True
    try:
        check_design(design, cells, level=level)
    except XlingError:
        checked = False
    assert fitted == checked == ok


def test_roles_with_predictions_known_answer():
    """Predicted cells at their true values give the complete grid's role tables; the ranges move each predicted
    cell to its interval's ends (-1 / +2 pp here), so they are the score minus / plus the share predicted."""
    grid = simulate_grid(
        SimulationSpec(models=["m-1B", "m-2B", "m-3B"], tasks=["a", "b"], languages=["en", "de", "fr"])
    )
    cells = grid.assign(delta=grid["delta_score_norm_mean"])
    spec = AnalysisSpec()
    run = ~grid["fine_tuned_language"].eq("fr") | grid["model_name"].eq("m-1B")  # fr run by one model only
    pred = grid.assign(
        delta_pred=grid["delta_score_norm_mean"],
        delta_lo=np.where(run, np.nan, grid["delta_score_norm_mean"] - 1),
        delta_hi=np.where(run, np.nan, grid["delta_score_norm_mean"] + 2),
        observed=run,
    )
    tables = roles_with_predictions(pred, spec)
    for name, full in (
        ("language_donor_recipient_predicted", language_donor_recipient(cells, spec)),
        ("task_donor_recipient_predicted", task_donor_recipient(cells, spec)),
    ):
        got = tables[name]
        for col in ("donor", "recipient", "donor_ci_low", "donor_ci_high", "recipient_ci_low", "n_models"):
            np.testing.assert_allclose(got[col], full[col])
        share = got["donor_predicted_share"] / 100
        np.testing.assert_allclose(got["donor_pred_low"], got["donor"] - share)
        np.testing.assert_allclose(got["donor_pred_high"], got["donor"] + 2 * share)
        assert got["donor_ci_method"].str.endswith("(predicted cells at their predictions)").all()
    lang = tables["language_donor_recipient_predicted"].set_index("lang")
    # fr as a donor: 2 of 3 models predicted; as a recipient (MT-CL: from en, de): predicted where the source is
    # fr only, so never
    assert lang.loc["fr", "donor_predicted_share"] == pytest.approx(200 / 3)
    assert lang.loc["fr", "recipient_predicted_share"] == 0
    marked = predicted_cells(pred)
    assert (marked["status"] == "predicted").sum() == (~run).sum() and marked["status"].iloc[0] == "predicted"
    assert marked.loc[marked["status"] == "observed", "delta_lo"].isna().all()


# --- end to end on the tiny models ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_adaptive_grid_runs_the_budget_and_predicts_the_rest(reference):
    spec, study, rounds = reference
    assert [len(r["pairs"]) for r in rounds] == [12, 2, 1]  # the initial design, then rounds of 2 up to 15
    pairs = [tuple(p) for r in rounds for p in r["pairs"]]
    assert len(set(pairs)) == 15
    starts = _train_starts(spec)
    assert len(starts) == 15 and set(starts.values()) == {1}  # exactly the budget, each unit once
    results = pd.read_csv(Path(spec.output) / "results.csv")
    assert len(results) == 15 * 6
    pred = pd.read_csv(Path(spec.output) / "predictions.csv")
    assert len(pred) == 18 * 6 and (~pred["observed"]).sum() == 3 * 6
    run = set(zip(results["model_name"], results["fine_tuned_dataset"], results["fine_tuned_language"]))
    assert run == set(pairs)
    observed = pred[pred["observed"]].merge(results, on=list(pred.columns[:5]))
    np.testing.assert_allclose(observed["delta_pred"], observed["delta_score_norm_mean"])
    guess = pred[~pred["observed"]]
    assert (guess["delta_lo"] <= guess["delta_pred"]).all() and (guess["delta_pred"] <= guess["delta_hi"]).all()
    assert guess["ci_method"].str.startswith("90% conformal").all()

    again = run_study(spec, analyze=False, progress=False)  # a rerun runs nothing and chooses nothing
    assert _train_starts(spec) == starts and DesignLog(store_for(spec).root).rounds() == rounds
    pd.testing.assert_frame_equal(again.tables["predictions"].reset_index(drop=True), study.tables["predictions"])


@pytest.mark.slow
def test_report_marks_predicted_cells(reference):
    spec, study, _ = reference
    out = Path(spec.output) / "analysis"
    cells = pd.read_csv(out / "tables" / "predicted_cells.csv")
    assert (cells["status"] == "predicted").sum() == 18 and (cells["status"] == "observed").sum() == 90
    marked = cells[cells["status"] == "predicted"]
    assert marked[["delta_lo", "delta_hi"]].notna().all().all()
    for name in ("language_donor_recipient_predicted", "task_donor_recipient_predicted"):
        table = pd.read_csv(out / "tables" / f"{name}.csv")
        assert (table["donor_pred_low"] <= table["donor"]).all() and (table["donor"] <= table["donor_pred_high"]).all()
        assert table["donor_predicted_share"].between(0, 100).all() and table["donor_predicted_share"].gt(0).any()
    html = (out / "report.html").read_text()
    assert 'id="predicted"' in html and "t-predicted_cells" in html
    basis = study.analysis.findings.predicted
    assert basis["predicted_cells"] == 18 and "90% conformal" in basis["text"]
    assert basis["text"] in (out / "summary.md").read_text()


@pytest.mark.slow
def test_sigkill_then_rerun_chooses_the_same_rounds_and_tables(assets, reference, tmp_path):
    _, ref_study, ref_rounds = reference
    spec_dict = adaptive_spec(assets, tmp_path / "out")
    path = write_spec(spec_dict, tmp_path / "g.yaml")
    cmd = [sys.executable, "-m", "xling", "grid", "run", str(path), "--no-analyze"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    spec = load_study(path)
    log = DesignLog(tmp_path / "out" / "store")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # kill as soon as round 1 is chosen
        if len(log.rounds()) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and len(log.rounds()) >= 2, "the run should be killed after round 1"
    done_before = store_for(spec).done_keys()
    assert len(_train_starts(spec)) < 15

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert log.rounds() == ref_rounds
    for name in ("results", "predictions"):
        got = pd.read_csv(tmp_path / "out" / f"{name}.csv")
        want = pd.read_csv(Path(reference[0].output) / f"{name}.csv")
        pd.testing.assert_frame_equal(got, want)
    starts: dict[str, int] = {}
    for e in store_for(spec).events():
        starts[e["key"]] = starts.get(e["key"], 0) + (e["event"] == "start")
    assert all(starts[k] == 1 for k in done_before)  # nothing finished before the kill ran again
    assert ref_study.tables["results"].shape[0] == 90
