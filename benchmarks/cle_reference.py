"""Shared by the benchmarks that run xling's unsupervised mappers beside their reference implementations.

A simulated pair written once per parameter set, each side run in its own process under ``/usr/bin/time -v``, and
one evaluator for both outputs (xling's exact CSLS BLI on the test dictionary, per line). The reference checkouts
live outside the repository; nothing of theirs is copied here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def clustered_pair(args) -> dict:
    """The simulated pair of the unsupervised benchmarks: clustered, a decaying spectrum, near-isomorphic (the
    sizes and noise from the command line)."""
    return dict(
        n_words=args.n_words,
        dim=args.dim,
        noise=args.noise,
        warp=0.05,
        seed=7,
        n_train=500,
        n_test=2000,
        n_clusters=args.clusters,
        lang_clusters=2,
        cluster_spread=0.7,
        rank_noise=0.1,
        overlap=1.0,
        spectrum=args.spectrum,
    )


def simulate(data: Path, params: dict) -> None:
    """Write the simulated pair (not timed) unless one with the same parameters is already there."""
    from xling.cle.simulate import simulate_pair, write_pair

    stamp = data.parent / f"{data.name}.params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (data / "test.tsv").is_file():
        return
    t0 = time.perf_counter()
    write_pair(simulate_pair(**params), data)
    stamp.write_text(json.dumps(params))
    print(f"simulated {params['n_words']} x {params['dim']} x 2 in {time.perf_counter() - t0:.0f} s", flush=True)


def timed(
    cmd: list[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall seconds, CPU seconds (user + system), peak RSS in GiB)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", *cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
    wall = time.perf_counter() - t0
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([0-9.]+)", text).group(1)) for kind in ("User", "System"))
    return wall, cpu, rss_kb / 2**20


def one_thread() -> dict[str, str]:
    """Environment that pins BLAS, OpenMP (torch, faiss, numba) to one thread: on a shared machine, spinning
    threads of one side would slow the other's measurements unpredictably."""
    return {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def p_at_1(data: Path, Xm: np.ndarray, Zm: np.ndarray) -> float:
    """One evaluator for both sides: exact CSLS BLI of the mapped spaces on the test dictionary, per line."""
    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.vectors import Embeddings, read_vectors

    src, tgt = read_vectors(data / "src.vec", max_vocab=None), read_vectors(data / "tgt.vec", max_vocab=None)
    return bli(
        Embeddings(src.words, Xm),
        Embeddings(tgt.words, Zm),
        read_dictionary(data / "test.tsv"),
        retrieval_method="csls",
        inplace=True,
    ).p1


def vectors(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both spaces of the pair as float32 matrices, in file (frequency) order."""
    from xling.cle.vectors import read_vectors

    return (
        read_vectors(data / "src.vec", max_vocab=None).vectors,
        read_vectors(data / "tgt.vec", max_vocab=None).vectors,
    )


def xling_map(method: str, data: Path, out: Path, params: dict, seed: int) -> tuple[float, float, float, dict]:
    """``xling cle map`` end to end (read, fit, write the maps): (wall, cpu, peak RSS GiB, the run's mapping info)."""
    cmd = [
        sys.executable,
        "-m",
        "xling",
        "cle",
        "map",
        "-m",
        method,
        "--src",
        str(data / "src.vec"),
        "--tgt",
        str(data / "tgt.vec"),
        "-o",
        str(out),
        "--max-vocab",
        "0",
        "--no-cache",
        "--no-write-vectors",
        "--seed",
        str(seed),
    ]
    for key, value in params.items():
        cmd += ["--param", f"{key}={value}"]
    wall, cpu, rss = timed(cmd, out.parent / f"{out.name}.log", env=one_thread())
    return wall, cpu, rss, json.loads((out / "run.json").read_text())["mapping"]


def report(name: str, setting: dict, xl: dict, ref: dict, goal: str) -> None:
    """Print both sides, the ratios and the machine's load (the numbers depend on it)."""
    load = os.getloadavg()
    print(
        json.dumps(
            {"setting": setting, "xling": xl, name: ref, "load_average_1_5_15": [round(v, 2) for v in load]},
            default=str,
        )
    )
    print(
        f"P@1 (CSLS, per line): xling {100 * xl['p1']:.2f}, {name} {100 * ref['p1']:.2f} "
        f"(difference {100 * (xl['p1'] - ref['p1']):+.2f} points; goal within 1)"
    )
    print(
        f"wall time: xling {xl['wall_s']:.0f} s, {name} {ref['wall_s']:.0f} s -> "
        f"{ref['wall_s'] / xl['wall_s']:.2f}x ({goal}); fit alone: xling {xl['fit_s']:.0f} s, "
        f"{name} {ref['fit_s']:.0f} s -> {ref['fit_s'] / xl['fit_s']:.2f}x"
    )
    print(
        f"CPU time: xling {xl['cpu_s']:.0f} s, {name} {ref['cpu_s']:.0f} s -> {ref['cpu_s'] / xl['cpu_s']:.2f}x; "
        f"peak RSS: xling {xl['peak_rss_gib']:.2f} GiB, {name} {ref['peak_rss_gib']:.2f} GiB"
    )
    print(
        f"load average (1/5/15 min) at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs"
    )
