"""How many CPU threads the numeric libraries (BLAS, OpenMP, torch) use: as many as the machine has free.

Their default is one thread per core, whatever else runs. On a shared or loaded machine that oversubscribes the
cores and the threads wait on each other: ``xling cle run -m icp`` took 102 s with the default threads and 6 s with
``OMP_NUM_THREADS=1`` on a loaded 2-core machine. xling's default is therefore the CPUs this process may use (its
CPU affinity, capped by a cgroup CPU quota) less the machine's load (the 1-minute load average), and at least one;
a user's ``OMP_NUM_THREADS`` wins over that, and ``--threads`` over both.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

#: The variables thread pools read when their library loads (OpenMP, OpenBLAS, MKL; torch reads the first).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Set (to this process's id) beside ``THREAD_VARIABLES`` while xling limits threads: a worker process that
#: inherits the variables knows they are xling's choice for another machine, not the user's.
_MARK = "XLING_THREADS_PID"

_CURRENT: ContextVar[int | None] = ContextVar("xling_threads", default=None)


def allowed_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup's CPU quota (containers, Slurm)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(n, math.ceil(quota)) if quota else n)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or None
    when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def choose_threads(allowed: int, machine_cpus: int, load: float) -> int:
    """The CPUs of ``allowed`` that a machine of ``machine_cpus`` with ``load`` runnable threads leaves free,
    rounded, at least one."""
    free = machine_cpus - load
    return max(1, min(allowed, int(free + 0.5)))


def user_threads(environ: dict[str, str] | None = None) -> int | None:
    """The user's ``OMP_NUM_THREADS`` (a positive integer), or None: unset, not a number, or inherited from an
    xling process that chose it (a grid worker on another machine chooses again)."""
    environ = os.environ if environ is None else environ
    value = environ.get("OMP_NUM_THREADS", "").strip()
    if not value.isdigit() or int(value) < 1:
        return None
    if _MARK in environ and environ[_MARK] != str(os.getpid()):
        return None
    return int(value)


def default_threads() -> int:
    """The thread count a command uses unless ``--threads`` says: the user's ``OMP_NUM_THREADS``, else the CPUs
    this process may use that the machine's load leaves free (at least one)."""
    chosen = user_threads()
    if chosen is not None:
        return chosen
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return choose_threads(allowed_cpus(), os.cpu_count() or 1, load)


def current_threads() -> int | None:
    """The thread count in force (``limit_threads``), or None outside one."""
    return _CURRENT.get()


@contextmanager
def limit_threads(n: int | None = None) -> Iterator[int]:
    """Run the block with ``n`` threads (None: ``default_threads()``) in every numeric library: the pools already
    loaded (threadpoolctl, torch) and those loaded inside the block (their environment variables); restored after."""
    from threadpoolctl import threadpool_limits

    n = default_threads() if n is None else n
    saved = {k: os.environ.get(k) for k in (*THREAD_VARIABLES, _MARK)}
    os.environ.update({k: str(n) for k in THREAD_VARIABLES})
    os.environ[_MARK] = str(os.getpid())
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    token = _CURRENT.set(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        _CURRENT.reset(token)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if torch_before is not None:
            torch.set_num_threads(torch_before)
