"""``benchmarks/gpu.sh --smoke``: the GPU run's script at tiny sizes on a CPU prints every row of issue 18's table
with its goal (so the script is right before GPU time is spent on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

ROWS = {"1", "2", "3", "4", "5", "6", "7"}  # the table, one number per row


def test_gpu_script_smoke_prints_every_row_with_its_goal(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = (tmp_path / "rows.txt").read_text().splitlines()
    assert {line.split("]")[0].removeprefix("[row ") for line in rows} == ROWS
    for line in rows:
        fields = line.split(" | ")
        assert len(fields) == 4 and fields[2].startswith("goal: ") and fields[3] in {"met", "NOT met", "n/a"}, line
    log = (tmp_path / "gpu-bench.txt").read_text()
    assert "] cut at" not in log and "] failed (exit" not in log
    assert log.index("[row 1]") < log.index("== step scoring done")  # printed as measured, not at the end
