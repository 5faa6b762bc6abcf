"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLI_DATA = SHARED / "data" / "xling-eval-bli"


@pytest.fixture(autouse=True)
def _own_cache_folder(monkeypatch, tmp_path_factory):
    """Every test gets an empty cache folder of its own: no test reads or writes the user's ~/.cache/xling."""
    monkeypatch.setenv("XLING_CACHE", str(tmp_path_factory.mktemp("xling-cache")))


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module: small models on a shared 2-core runner are much faster so."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def bli_data() -> Path:
    """The real xling-eval BLI dictionaries in ../shared, or skip when they are not there."""
    if not BLI_DATA.is_dir():
        pytest.skip("../shared/data/xling-eval-bli is not present")
    return BLI_DATA


@pytest.fixture(scope="session")
def grid_assets(tmp_path_factory) -> tuple[Path, list[str]]:
    """The tiny offline Llama and two generated local tasks (see grid_fixtures.py)."""
    from grid_fixtures import write_tasks

    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("grid-assets")
    return build_tiny_llama(root / "tiny"), write_tasks(root / "tasks")


@pytest.fixture(scope="session")
def grid_reference(grid_assets, tmp_path_factory):
    """The per-seed results table of an uninterrupted local run of the small grid."""
    from grid_fixtures import grid_spec

    from xling.config import GridSpec, parse_spec
    from xling.studies import run_grid, store_for
    from xling.studies.transfer.results import long_table
    from xling.studies.transfer.units import make_plan

    model, tasks = grid_assets
    spec = parse_spec(GridSpec, grid_spec(model, tasks, tmp_path_factory.mktemp("ref") / "out"))
    final = run_grid(spec)
    assert all(not st.failed and st.pending == 0 for st in final)
    return long_table(make_plan(spec), store_for(spec))


@pytest.fixture
def xling_host_reads(monkeypatch):
    """Counts, by (method, file, line), the reads of tensor values into Python (``item``, ``bool``, ``float``,
    ``int``, ``tolist``, ``cpu``, ``numpy``) that xling's own code makes: on a GPU each one waits for the device."""
    import collections
    import sys

    import torch

    import xling

    package = str(Path(xling.__file__).parent)
    counts: collections.Counter = collections.Counter()
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(package):
                counts[(_name, caller.f_code.co_filename, caller.f_lineno)] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts
