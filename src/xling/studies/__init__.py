"""Studies: every kind of grid behind one interface (``GridKind``) and one way through (``run_study``).

The transfer grid (``xling.studies.transfer``) and the CLE grid (``xling.studies.cle``) are grid kinds; the engine
they run on (``xling.grid``) knows nothing of either.
"""

from xling.studies.base import GridKind, Study
from xling.studies.run import kind_of, load_study, plan_summary, run_grid, run_study, status, store_for, workload

__all__ = [
    "GridKind",
    "Study",
    "kind_of",
    "load_study",
    "plan_summary",
    "run_grid",
    "run_study",
    "status",
    "store_for",
    "workload",
]
