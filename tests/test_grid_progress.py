"""The engine reports each unit as it is published, also when a job holds several units."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from xling.config import ExecutorSpec
from xling.grid.engine import run_units
from xling.grid.jobs import Workload
from xling.grid.store import Store


@dataclass(frozen=True)
class _Unit:
    key: str
    stage: str = "train"
    deps: tuple[str, ...] = ()
    group: str = "g"

    def describe(self) -> str:
        return f"unit {self.key}"


def _work(log: io.StringIO, store: Store, units: list[_Unit]) -> None:
    """Publish the unit; the second waits until the first one's progress line is out (or gives up after 10 s)."""
    (unit,) = units
    if unit.key == "u2":
        deadline = time.time() + 10
        while "done: unit u1" not in log.getvalue() and time.time() < deadline:
            time.sleep(0.05)
    with store.writing(unit.key, {"seen_first_line": "done: unit u1" in log.getvalue()}):
        pass


def test_each_unit_of_a_job_is_reported_when_it_is_published(tmp_path: Path) -> None:
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=200)
    store = Store(tmp_path / "store")
    units = [_Unit("u1"), _Unit("u2"), _Unit("u3")]
    workload = Workload(_work, log, chunk=lambda u: 3, isolated=lambda u: True)
    final = run_units(units, ["train"], workload, store, ExecutorSpec(), str(tmp_path), max_retries=0, console=console)
    assert final[0].done == 3
    # the first unit's line was printed while the same job still ran its second unit
    assert store.record("u2")["seen_first_line"]
    lines = [line for line in log.getvalue().splitlines() if line.startswith("train ")]
    assert lines == [f"train {i}/3 done: unit u{i}" for i in (1, 2, 3)]  # once each, in order


def test_train_and_eval_report_progress_as_lines_in_a_log(grid_assets, tmp_path, monkeypatch, capsys):
    """Not on a terminal (``xling train ... 2>log``): a line per epoch of training and per scored cell."""
    from cli_runner import run_xling

    model, tasks = grid_assets
    code, _, err = run_xling(
        monkeypatch, capsys, "train", "--model", model, "--task", tasks[0], "--lang", "en", "-o", tmp_path / "ad"
    )
    assert code == 0, err
    epochs = [line for line in err.splitlines() if line.startswith("training: epoch ")]
    assert len(epochs) == 3 and epochs[0].startswith("training: epoch 1/3: train loss ")  # the paper's 3 epochs
    code, _, err = run_xling(
        monkeypatch,
        capsys,
        "eval",
        "--model",
        model,
        "--adapter",
        tmp_path / "ad",
        "--task",
        tasks[0],
        "-o",
        tmp_path / "scores",
    )
    assert code == 0, err
    cells = [line for line in err.splitlines() if line.startswith("scoring: ")]
    assert len(cells) == 2 and all("items x 2 model(s) scored" in line for line in cells)  # en and de
