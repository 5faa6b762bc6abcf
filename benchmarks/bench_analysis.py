"""Speed of `xling analyze` on a simulated 9 x 44 x 44 grid (17,424 cells), as the issue sets it.

Goals: every table, figure and the report without the mixed-model fits in <= 10 s; with them <= 60 s
(2 cores). Anchor, measured in the same run: reading and validating the results CSV (pandas), so the
ratios say how many "read the table" times the analysis costs on this machine, whatever its load.

    python benchmarks/bench_analysis.py [--skip-mixed]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from xling.analysis.results import read_results
from xling.analysis.simulate import simulate_grid
from xling.report import run_analysis


def timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result). The analysis runs on one thread, so on a machine
    shared with other jobs the CPU seconds are what the wall time would be on an idle one."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-mixed", action="store_true", help="only the fast path")
    args = parser.parse_args()
    grid = simulate_grid()
    print(
        f"grid: {grid['model_name'].nunique()} models x {len(grid) // grid['model_name'].nunique()} cell pairs "
        f"= {len(grid)} rows; cpus available: {len(os.sched_getaffinity(0))}; load avg {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "sim.csv"
        grid.to_csv(csv, index=False)
        anchor, _, _ = timed(read_results, csv)
        print(f"anchor (read + validate the CSV): {anchor:.2f} s")
        runs = [("without mixed models", False, 10.0)] + (
            [] if args.skip_mixed else [("with mixed models", True, 60.0)]
        )
        for label, mixed, goal in runs:
            seconds, cpu, analysis = timed(
                run_analysis, read_results(csv), Path(tmp) / f"out-{mixed}", mixed_models=mixed
            )
            status = "meets" if seconds <= goal else "MISSES"
            print(
                f"{label}: {seconds:.1f} s wall, {cpu:.1f} s CPU (goal <= {goal:.0f} s: wall {status}; "
                f"{seconds / anchor:.0f}x anchor)"
            )
            slowest = sorted(analysis.timings.items(), key=lambda kv: -kv[1])[:6]
            print("  slowest steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in slowest))


if __name__ == "__main__":
    main()
