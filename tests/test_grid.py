"""The transfer grid end to end on the tiny offline model: plan keys, run, resume after SIGKILL, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from grid_fixtures import grid_spec, write_spec

from xling.config import GridSpec, parse_spec
from xling.studies import run_grid, status, store_for
from xling.studies.transfer.results import long_table
from xling.studies.transfer.units import make_plan

pytestmark = pytest.mark.slow


def _executions(spec: GridSpec) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in store_for(spec).events():
        if e["event"] == "start":
            counts[e["key"]] = counts.get(e["key"], 0) + 1
    return counts


def test_plan_keys_follow_what_determines_results(grid_assets, tmp_path) -> None:
    model, tasks = grid_assets
    base = parse_spec(GridSpec, grid_spec(model, tasks, tmp_path))
    plan = make_plan(base)
    assert len(plan.train) == 2 * 2 * 2 and len(plan.score) == 1 + 8
    assert [u.key for u in make_plan(base).score] == [u.key for u in plan.score]
    relabelled = parse_spec(GridSpec, grid_spec(model, tasks, tmp_path, name="other"))
    assert [u.key for u in make_plan(relabelled).train] == [u.key for u in plan.train]
    changed = parse_spec(
        GridSpec,
        grid_spec(model, tasks, tmp_path, train={"epochs": 1, "lr": 2e-3, "batch_size": 4, "val_fraction": 0.25}),
    )
    plan2 = make_plan(changed)
    assert not {u.key for u in plan2.train} & {u.key for u in plan.train}  # every adapter retrains
    assert plan2.base_scores[0].key == plan.base_scores[0].key  # the base scores are reused


def test_grid_results_table_is_complete(grid_reference) -> None:
    reference = grid_reference
    assert len(reference) == 2 * 2 * 2 * 4  # sources × seeds × targets
    assert reference[["score", "score_base", "score_norm", "score_norm_base"]].notna().all().all()
    assert set(reference["fine_tuned_dataset"]) == {"copy", "next"} == set(reference["eval_dataset"])
    assert not reference.duplicated(
        ["fine_tuned_dataset", "fine_tuned_language", "seed", "eval_dataset", "eval_language"]
    ).any()


def test_rerun_executes_nothing(grid_assets, tmp_path) -> None:
    model, tasks = grid_assets
    spec = parse_spec(GridSpec, grid_spec(model, tasks, tmp_path / "out", seeds=[1]))
    run_grid(spec)
    first = _executions(spec)
    run_grid(spec)
    assert _executions(spec) == first and set(first.values()) == {1}


def test_sigkill_then_resume_gives_identical_results(grid_assets, grid_reference, tmp_path) -> None:
    model, tasks = grid_assets
    spec_dict = grid_spec(model, tasks, tmp_path / "out")
    spec_path = write_spec(spec_dict, tmp_path / "grid.yaml")
    cmd = [sys.executable, "-m", "xling", "grid", "run", str(spec_path), "--no-analyze"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    spec = parse_spec(GridSpec, spec_dict)
    events = Path(spec.output) / "store" / "events.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # kill once a few units are done, others in flight
        if events.exists() and events.read_text().count('"done"') >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = store_for(spec).done_keys()
    assert 3 <= len(done_before) < 17, "the run should be killed part-way"

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    result = long_table(make_plan(spec), store_for(spec))
    pd.testing.assert_frame_equal(result, grid_reference)
    starts: dict[str, list[str]] = {}
    for e in store_for(spec).events():
        starts.setdefault(e["key"], []).append(e["event"])
    for key in done_before:  # a unit finished before the kill never ran again
        assert starts[key].count("start") == 1, starts[key]


def test_failing_units_are_retried_and_reported(grid_assets, tmp_path) -> None:
    model, tasks = grid_assets
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated checkpoint: every unit of this model fails
    spec_dict = grid_spec(model, tasks, tmp_path / "out", seeds=[1], max_retries=2)
    spec_dict["models"].append({"name": "broken-llama", "path": str(broken), "kind": "causal"})
    spec = parse_spec(GridSpec, spec_dict)
    final = run_grid(spec)
    train, score = final
    assert train.done == 4 and len(train.failed) == 4  # the good model's units all finish
    assert score.done == 1 + 4 and len(score.failed) == 1  # its base and adapters; the broken base fails
    assert score.pending == 4  # broken adapters never exist to score
    plan = make_plan(spec)
    bad = [u for u in plan.train if u.model.name == "broken-llama"]
    assert all(len(store_for(spec).failures(u.key)) == 3 for u in bad)  # 1 try + 2 retries
    for stage in status(spec):
        assert all("broken-llama" in unit and error for unit, error in stage.failed.items())
    table = long_table(plan, store_for(spec))
    assert set(table["model_name"]) == {"tiny-llama"} and len(table) == 4 * 4


def test_paper_preset_plans_offline_before_the_data(tmp_path, monkeypatch, capsys) -> None:
    """`xling grid plan` of the paper preset works with nothing prepared: counts from the spec, the rest unknown."""
    from xling.cli import main

    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(
        sys, "argv", ["xling", "grid", "plan", str(Path(__file__).parents[1] / "configs" / "donors-recipients.yaml")]
    )
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "│ train │ 1,188 │ unknown │ unknown │" in out and "│ score │ 1,197 │ unknown │ unknown │" in out
    assert "xling data prepare" in out and not (tmp_path / "empty-cache").exists()
