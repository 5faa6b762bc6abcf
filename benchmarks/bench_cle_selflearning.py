"""Semi-supervised self-learning: xling vs vecmap ``--semi_supervised``, side by side in one run.

Goal (issue 6): on a simulated 50K-word pair, xling's ``vecmap-semi`` reaches vecmap's P@1 within 1 point and is
>= 2x faster. Both sides run the same recipe (unit-center-unit normalisation, CSLS k=10 induction in both
directions over the 20K most frequent words, stochastic induction 0.1 doubled after ``--interval`` iterations
without improvement, final whitening/re-weighting/de-whitening) from the same text files, each in its own
process under ``/usr/bin/time -v`` (peak RSS), end to end: read ``.vec``, map, write both mapped ``.vec``.
Both outputs are then scored by one evaluator (xling's exact CSLS BLI, per dictionary line).

vecmap is not part of xling: check it out into a temporary folder outside the repository::

    git clone https://github.com/artetxem/vecmap /tmp/vecmap
    python benchmarks/bench_cle_selflearning.py --vecmap /tmp/vecmap

The issue's setting is the default (50K x 300, cutoff 20K, interval 50: several hundred iterations, i.e. hours
for vecmap on 2 CPU cores); ``--dim``, ``--cutoff`` and ``--interval`` scale it down for both sides alike.
Prints wall times, iterations, peak RSS, both P@1 values and the ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def simulate(data: Path, args: argparse.Namespace) -> None:
    """Write the simulated pair (not timed); reused when the parameters are unchanged."""
    from xling.cle.simulate import simulate_pair, write_pair

    params = dict(
        n_words=args.n_words,
        dim=args.dim,
        noise=args.noise,
        warp=args.warp,
        seed=args.seed,
        n_train=args.n_seed,
        n_test=args.n_test,
    )
    stamp = data.parent / "params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (data / "test.tsv").is_file():
        return
    t0 = time.perf_counter()
    pair = simulate_pair(
        args.n_words, args.dim, args.noise, args.warp, seed=args.seed, n_train=args.n_seed, n_test=args.n_test
    )
    write_pair(pair, data)
    stamp.write_text(json.dumps(params))
    print(f"simulated {args.n_words} x {args.dim} x 2 in {time.perf_counter() - t0:.0f} s", flush=True)


def timed(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall seconds, CPU seconds (user + system), peak RSS in GiB).

    On a shared machine wall time depends on the other jobs; CPU time is the steadier measure of work done.
    """
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([0-9.]+)", text).group(1)) for kind in ("User", "System"))
    return wall, cpu, rss_kb / 2**20


def p_at_1(data: Path, src: Path, tgt: Path) -> float:
    """One evaluator for both outputs: exact CSLS BLI on the test dictionary, per line."""
    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.vectors import read_vectors

    result = bli(
        read_vectors(src, max_vocab=None),
        read_vectors(tgt, max_vocab=None),
        read_dictionary(data / "test.tsv"),
        retrieval_method="csls",
        inplace=True,
    )
    return result.p1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vecmap", type=Path, default=Path("/tmp/vecmap"), help="vecmap checkout (not committed)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xling-bench-selflearning")
    parser.add_argument("--n-words", type=int, default=50000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--warp", type=float, default=0.15)
    parser.add_argument("--n-seed", type=int, default=500, help="seed dictionary size (most frequent words)")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--cutoff", type=int, default=20000, help="vocabulary cutoff of dictionary induction")
    parser.add_argument("--interval", type=int, default=50, help="stochastic interval (iterations w/o improvement)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.vecmap / "map_embeddings.py").is_file():
        sys.exit(f"no vecmap checkout at {args.vecmap}: git clone https://github.com/artetxem/vecmap {args.vecmap}")
    data, out = args.workdir / "data", args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    simulate(data, args)

    # xling: the CLI end to end (read, self-learning, write both mapped spaces)
    xl = out / "xling"
    xl_wall, xl_cpu, xl_rss = timed(
        [
            sys.executable,
            "-m",
            "xling",
            "cle",
            "map",
            "-m",
            "vecmap-semi",
            "--src",
            str(data / "src.vec"),
            "--tgt",
            str(data / "tgt.vec"),
            "--train-dict",
            str(data / "train.tsv"),
            "-o",
            str(xl),
            "--max-vocab",
            "0",
            "--no-cache",
            "--seed",
            str(args.seed),
            "--param",
            f"vocabulary_cutoff={args.cutoff}",
            "--param",
            f"stochastic_interval={args.interval}",
        ],
        out / "xling.log",
    )
    xl_info = json.loads((xl / "run.json").read_text())["mapping"]

    # vecmap: the same recipe, its own defaults for the rest
    vm_log = out / "vecmap_iterations.tsv"
    vm_wall, vm_cpu, vm_rss = timed(
        [
            sys.executable,
            str(args.vecmap / "map_embeddings.py"),
            "--semi_supervised",
            str(data / "train.tsv"),
            str(data / "src.vec"),
            str(data / "tgt.vec"),
            str(out / "vecmap_src.vec"),
            str(out / "vecmap_tgt.vec"),
            "--vocabulary_cutoff",
            str(args.cutoff),
            "--stochastic_interval",
            str(args.interval),
            "--seed",
            str(args.seed),
            "--log",
            str(vm_log),
        ],
        out / "vecmap.log",
    )
    vm_rows = [line.split("\t") for line in vm_log.read_text().splitlines() if line.strip()]
    vm_loop = sum(float(r[-1]) for r in vm_rows)

    xl_p1 = p_at_1(data, xl / "src.vec", xl / "tgt.vec")
    vm_p1 = p_at_1(data, out / "vecmap_src.vec", out / "vecmap_tgt.vec")
    matrices_gib = 2 * args.n_words * args.dim * 4 / 2**30
    print(
        json.dumps(
            {
                "setting": vars(args) | {"vecmap": str(args.vecmap), "workdir": str(args.workdir)},
                "xling": {
                    "wall_s": round(xl_wall, 1),
                    "cpu_s": round(xl_cpu, 1),
                    "fit_s": xl_info["fit_seconds"],
                    "iterations": xl_info["n_iter"],
                    "peak_rss_gib": round(xl_rss, 2),
                    "p1": round(xl_p1, 4),
                },
                "vecmap": {
                    "wall_s": round(vm_wall, 1),
                    "cpu_s": round(vm_cpu, 1),
                    "loop_s": round(vm_loop, 1),
                    "iterations": len(vm_rows),
                    "peak_rss_gib": round(vm_rss, 2),
                    "p1": round(vm_p1, 4),
                },
            },
            default=str,
        )
    )
    print(
        f"P@1: xling {100 * xl_p1:.2f}, vecmap {100 * vm_p1:.2f} (difference {100 * (xl_p1 - vm_p1):+.2f} points; "
        f"goal within 1)"
    )
    print(
        f"wall time: xling {xl_wall:.0f} s, vecmap {vm_wall:.0f} s -> {vm_wall / xl_wall:.2f}x faster (goal >= 2x); "
        f"self-learning alone: xling {xl_info['fit_seconds']:.0f} s / {xl_info['n_iter']} iterations, "
        f"vecmap {vm_loop:.0f} s / {len(vm_rows)} iterations -> "
        f"{(vm_loop / len(vm_rows)) / (xl_info['fit_seconds'] / xl_info['n_iter']):.2f}x per iteration"
    )
    print(f"CPU time (user + system): xling {xl_cpu:.0f} s, vecmap {vm_cpu:.0f} s -> {vm_cpu / xl_cpu:.2f}x less")
    print(
        f"peak RSS: xling {xl_rss:.2f} GiB, vecmap {vm_rss:.2f} GiB (two float32 matrices: {matrices_gib:.2f} GiB; "
        f"xling {xl_rss / matrices_gib:.1f}x of that)"
    )


if __name__ == "__main__":
    main()
