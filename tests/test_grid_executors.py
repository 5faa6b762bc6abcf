"""Ray (a local cluster on loopback, 2 CPU workers) and submitit's local executor give the local table.

One seed of the small grid keeps the process start-ups (a fresh Python per submitit job) affordable.
"""

from __future__ import annotations

import pandas as pd
import pytest
from grid_fixtures import grid_spec

from xling.config import GridSpec, parse_spec
from xling.errors import XlingError
from xling.studies import run_grid, store_for
from xling.studies.transfer.results import long_table
from xling.studies.transfer.units import make_plan

pytestmark = pytest.mark.slow


def _seed1(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["seed"] == 1].reset_index(drop=True)


def _run(spec_dict: dict) -> pd.DataFrame:
    spec = parse_spec(GridSpec, spec_dict)
    final = run_grid(spec)
    assert all(not st.failed and st.pending == 0 for st in final), final
    return long_table(make_plan(spec), store_for(spec))


def test_ray_executor_matches_local(grid_assets, grid_reference, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    model, tasks = grid_assets
    try:
        table = _run(grid_spec(model, tasks, tmp_path / "out", seeds=[1], executor={"kind": "ray", "num_workers": 2}))
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(table, _seed1(grid_reference))


def test_submitit_local_executor_matches_local(grid_assets, grid_reference, tmp_path) -> None:
    pytest.importorskip("submitit")
    model, tasks = grid_assets
    executor = {"kind": "slurm", "slurm": {"cluster": "local", "time_min": 20, "cpus_per_task": 1}}
    table = _run(grid_spec(model, tasks, tmp_path / "out", seeds=[1], executor=executor))
    pd.testing.assert_frame_equal(table, _seed1(grid_reference))


def test_unreachable_ray_address_is_a_one_line_error(grid_assets, tmp_path) -> None:
    pytest.importorskip("ray")
    model, tasks = grid_assets
    spec = parse_spec(
        GridSpec, grid_spec(model, tasks, tmp_path / "out", executor={"kind": "ray", "address": "127.0.0.1:1"})
    )
    with pytest.raises(XlingError, match="ray: cannot connect"):
        run_grid(spec)


def test_cle_grid_runs_on_ray(tmp_path) -> None:
    """The CLE grid goes through the same engine: on Ray it gives the table the local executor gives."""
    ray = pytest.importorskip("ray")
    from xling.cle.simulate import simulate_pair, write_pair
    from xling.studies import load_study, run_study

    for pair, seed in (("aa-bb", 1), ("aa-cc", 2)):
        write_pair(simulate_pair(400, 12, 0.1, 0.0, seed=seed, n_train=150, n_test=100, n_clusters=8), tmp_path / pair)
    (tmp_path / "spec.yaml").write_text(
        "methods: [proc, cca]\npairs: [aa-bb, aa-cc]\nsizes: ['150']\nsrc_vectors: '{pair}/src.vec'\n"
        "tgt_vectors: '{pair}/tgt.vec'\ntrain_dict: '{pair}/train.tsv'\ntest_dict: '{pair}/test.tsv'\n"
    )
    spec = load_study(tmp_path / "spec.yaml")
    local = run_study(spec.model_copy(update={"output": str(tmp_path / "local")}), progress=False)
    remote_spec = spec.model_copy(update={"output": str(tmp_path / "ray")}, deep=True)
    remote_spec.executor.kind, remote_spec.executor.num_workers = "ray", 2
    try:
        remote = run_study(remote_spec, analyze=False, progress=False).tables["cle_results"]
    finally:
        ray.shutdown()
    local = local.tables["cle_results"]
    assert set(remote["status"]) == {"done"} and len(remote) == 4
    cols = ["method", "pair", "size", "p1", "p5", "p10", "mrr", "coverage", "n"]
    pd.testing.assert_frame_equal(remote[cols], local[cols])
