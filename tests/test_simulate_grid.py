"""The README's quickstart commands and `xling compare`, through the real CLI entry point (small grids)."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_runner import run_xling as run_cli

from xling.analysis.results import LONG_COLUMNS, RELEASE_COLUMNS


@pytest.mark.slow
def test_quickstart_simulate_then_analyze(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small = ["--n-models", "3", "--n-tasks", "2", "--n-languages", "4", "--seeds", "2"]
    code, out, err = run_cli(monkeypatch, capsys, "simulate", "grid", "-o", "xling-out/sim.csv", *small)
    assert code == 0, err
    sim = pd.read_csv(tmp_path / "xling-out" / "sim.csv")
    assert list(sim.columns) == RELEASE_COLUMNS and len(sim) == 3 * 8 * 8
    code, out, err = run_cli(
        monkeypatch, capsys, "analyze", "xling-out/sim.csv", "-o", "xling-out/report", "--no-mixed"
    )
    assert code == 0, err
    assert "Transfer by regime" in out and "MT-CL" in out
    assert (tmp_path / "xling-out" / "report" / "report.html").is_file()


def test_simulate_long_table_and_bad_option(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "simulate",
        "grid",
        "-o",
        str(tmp_path / "l.parquet"),
        "--long",
        "--n-models",
        "2",
        "--n-tasks",
        "2",
        "--n-languages",
        "2",
        "--seeds",
        "3",
    )
    assert code == 0, err
    long = pd.read_parquet(tmp_path / "l.parquet")
    assert list(long.columns) == LONG_COLUMNS and len(long) == 2 * 4 * 4 * 3
    code, _, err = run_cli(monkeypatch, capsys, "simulate", "grid", "-o", str(tmp_path / "x.csv"), "--hubs", "xx")
    assert code == 2 and "--hubs" in err and not (tmp_path / "x.csv").exists()


def test_compare_two_tables(tmp_path, monkeypatch, capsys):
    from xling.analysis.simulate import SimulationSpec, simulate_grid

    spec = SimulationSpec(models=["Llama-3.2-1B", "Qwen2.5-1.5B"], tasks=["a", "b"], languages=["en", "de", "fr"])
    a = simulate_grid(spec)
    b = a.copy()
    b["delta_score_norm_mean"] = b["delta_score_norm_mean"] + 1.0  # B = A + 1 pp everywhere
    b = b.iloc[:-5]  # and B lacks five cells
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "compare",
        str(tmp_path / "a.csv"),
        str(tmp_path / "b.csv"),
        "-o",
        str(tmp_path / "cmp"),
        "--n-boot",
        "200",
    )
    assert code == 0, err
    overall = pd.read_csv(tmp_path / "cmp" / "tables" / "compare_overall.csv").set_index("scope")
    assert overall.loc["all", "n"] == len(a) - 5
    assert overall.loc["all", "mean_diff"] == pytest.approx(1.0)
    assert overall.loc["all", "ci_low"] == pytest.approx(1.0) and overall.loc["all", "ci_high"] == pytest.approx(1.0)
    assert overall.loc["all", "pearson_r"] == pytest.approx(1.0)
    coverage = pd.read_csv(tmp_path / "cmp" / "tables" / "compare_coverage.csv").iloc[0]
    assert (coverage["only_a"], coverage["only_b"]) == (5, 0)
    assert (tmp_path / "cmp" / "report.html").is_file() and (tmp_path / "cmp" / "run.json").is_file()
