"""Default threads against one thread: the default must not be badly worse (issue 21, item 8).

Runs a compute command as a user would — ``xling cle run -m icp`` on a simulated pair, in a fresh process whose
environment sets no thread variable — with xling's default thread count, with ``--threads 1``, and with one thread
per core (``--threads CPUS``: the libraries' own default, which xling used before it chose), in turn, ``--repeats``
times each, and compares the best wall times. With one thread per core ``cle run -m icp`` took 102 s where one
thread took 6 s on a loaded 2-core machine. Exit code 1 if the default is more than ``--max-ratio`` times slower than
one thread.

    python benchmarks/bench_threads.py               # ICP on 3,000 words x 30 dimensions
    python benchmarks/bench_threads.py --method proc # Procrustes + CSLS BLI
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def xling(*args: str, env: dict[str, str]) -> tuple[float, dict]:
    """Run ``xling ARGS --json`` in a fresh process; (wall seconds, its JSON line)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "xling", *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"xling {' '.join(args)} failed:\n{done.stderr}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="icp")
    parser.add_argument("--n-words", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.mkdtemp(prefix="xling-bench-threads-")))
    args = parser.parse_args()

    from xling.threads import allowed_cpus, default_threads

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "XLING_THREADS_PID"}
    pair = args.workdir / "pair"
    if not (pair / "src.vec").exists():
        sim = ["cle", "simulate", "-o", pair, "--n-words", args.n_words, "--dim", args.dim, "--n-train", "500"]
        sim += ["--n-test", "500", "--noise", "0.16", "--warp", "0.05", "--clusters", "40", "--lang-clusters", "2"]
        sim += ["--rank-noise", "0.1", "--overlap", "1.0", "--spectrum", "1.0", "--seed", "7"]  # ICP finds this map
        subprocess.run([sys.executable, "-m", "xling", *map(str, sim)], env=env, check=True)
    params = ["--param", "n_restarts=20", "--param", "n_words=1000", "--param", "n_refine_words=2000"]
    params += ["--param", "n_components=10"]
    run = ["cle", "run", "-m", args.method, "--src", pair / "src.vec", "--tgt", pair / "tgt.vec"]
    run += ["--test-dict", pair / "test.tsv", "--train-dict", pair / "train.tsv", "--no-cache"]
    run += params if args.method == "icp" else []
    run = [str(a) for a in run]

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, {allowed_cpus()} allowed to this process, load {load:.2f}")
    print(f"default thread count chosen now: {default_threads()}")
    per_core = os.cpu_count() or 1
    runs = {"default": [], "one": ["--threads", "1"], "per-core": ["--threads", str(per_core)]}
    times: dict[str, list[float]] = {name: [] for name in runs}
    p1 = {}
    for _ in range(args.repeats):
        for name, extra in runs.items():
            wall, result = xling(*run, *extra, env=env)
            times[name].append(wall)
            p1[name] = result["p1"]
            print(f"  {name:8s} {wall:6.1f} s  P@1 {result['p1']:.4f}")
    best = {name: min(t) for name, t in times.items()}
    ratio = best["default"] / best["one"]
    print(
        f"{args.method}: default threads {best['default']:.1f} s, one thread {best['one']:.1f} s, one per core "
        f"({per_core}) {best['per-core']:.1f} s (best of {args.repeats}); default / one = {ratio:.2f} "
        f"(goal <= {args.max_ratio})"
    )
    sys.exit(0 if ratio <= args.max_ratio else 1)


if __name__ == "__main__":
    main()
