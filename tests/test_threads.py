"""Thread counts that do not oversubscribe a machine (issue 21, item 8): the choice, its inputs, and that every
compute command applies and records it."""

from __future__ import annotations

import json
import os

import pytest
from cli_runner import run_xling
from threadpoolctl import threadpool_info

from xling.threads import (
    THREAD_VARIABLES,
    cgroup_cpu_quota,
    choose_threads,
    current_threads,
    default_threads,
    limit_threads,
    user_threads,
)


@pytest.mark.parametrize(
    "allowed, machine, load, expected",
    [
        (2, 2, 0.1, 2),  # a quiet 2-core machine: both cores
        (2, 2, 1.2, 1),  # one core busy elsewhere
        (2, 2, 6.0, 1),  # a loaded machine (the 102 s vs 6 s): one thread, never zero
        (8, 8, 3.4, 5),  # 4.6 cores free
        (4, 64, 10.0, 4),  # a quota of 4 CPUs on a big, half-idle host: the quota
        (16, 16, 0.0, 16),
    ],
)
def test_threads_are_the_free_cpus_this_process_may_use(allowed, machine, load, expected):
    assert choose_threads(allowed, machine, load) == expected


def test_cgroup_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_a_users_omp_num_threads_wins_but_not_one_inherited_from_xling():
    me = str(os.getpid())
    assert user_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert user_threads({"OMP_NUM_THREADS": "3", "XLING_THREADS_PID": me}) == 3  # chosen by this very process
    assert user_threads({"OMP_NUM_THREADS": "3", "XLING_THREADS_PID": "1"}) is None  # another process chose it
    assert user_threads({"OMP_NUM_THREADS": "zero"}) is None and user_threads({"OMP_NUM_THREADS": "0"}) is None
    assert user_threads({}) is None


def test_default_uses_the_users_setting(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("XLING_THREADS_PID", raising=False)
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= default_threads() <= (os.cpu_count() or 1)


def test_limit_threads_applies_to_every_pool_and_restores_them(monkeypatch):
    import numpy  # noqa: F401  (a BLAS pool to limit)
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    with limit_threads(2) as n:
        assert n == 2 and current_threads() == 2
        assert all(os.environ[v] == "2" for v in THREAD_VARIABLES)  # libraries loaded from here on
        assert torch.get_num_threads() == 2
        assert {pool["num_threads"] for pool in threadpool_info()} == {2}
    assert current_threads() is None and os.environ["OMP_NUM_THREADS"] == "1"
    assert "XLING_THREADS_PID" not in os.environ and torch.get_num_threads() == 1


def test_every_compute_command_records_its_threads(monkeypatch, capsys, tmp_path):
    args = ["cle", "simulate", "-o", tmp_path / "sim", "--n-words", "200", "--dim", "4", "--n-train", "20"]
    code, _, err = run_xling(monkeypatch, capsys, *args, "--n-test", "20", "--clusters", "4", "--threads", "1")
    assert code == 0, err
    assert json.loads((tmp_path / "sim" / "run.json").read_text())["threads"] == 1
