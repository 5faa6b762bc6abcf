"""PROC + CSLS BLI: xling vs vecmap, side by side in one run (wall time, peak RSS, P@1).

Goal (issue 6): on simulated 200K x 300 spaces with a 5K training and a 2K test dictionary, xling's PROC + exact CSLS
BLI matches vecmap's ``map_embeddings.py --supervised`` + ``eval_translation.py --retrieval csls`` P@1 within 0.5
points, takes >= 3x less wall time, and peaks at <= 1.5x the memory of the two float32 matrices.

vecmap is not part of xling: check it out into a temporary folder outside the repository and pass its path::

    git clone https://github.com/artetxem/vecmap /tmp/vecmap
    python benchmarks/bench_cle_proc_csls.py --vecmap /tmp/vecmap

Each side runs in its own process under ``/usr/bin/time -v`` (peak RSS) from the same text files. The xling side
reads both ``.vec`` files once (no cache: the first read is what a new user pays), fits PROC on the training pairs,
maps the source space in place, and computes exact CSLS ranks (per unique source word, any gold correct: vecmap's
convention). The vecmap side writes and rereads the mapped spaces, as its two scripts require.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def simulate(workdir: Path, args: argparse.Namespace) -> None:
    """Write the simulated pair once per parameter set (not timed)."""
    from xling.cle.simulate import simulate_pair, write_pair

    params = dict(
        n_words=args.n_words,
        dim=args.dim,
        noise=args.noise,
        warp=args.warp,
        seed=args.seed,
        n_train=args.n_train,
        n_test=args.n_test,
    )
    stamp = workdir / "params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (workdir / "data" / "test.tsv").is_file():
        return
    t0 = time.perf_counter()
    pair = simulate_pair(
        args.n_words, args.dim, args.noise, args.warp, 0.9, args.seed, n_train=args.n_train, n_test=args.n_test
    )
    write_pair(pair, workdir / "data")
    stamp.write_text(json.dumps(params))
    print(f"simulated and wrote {args.n_words} x {args.dim} x 2 in {time.perf_counter() - t0:.0f} s", flush=True)


def xling_side(data: Path) -> None:
    """One process: read, PROC, map in place, exact CSLS BLI. Prints JSON."""
    import numpy as np

    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.vectors import read_vectors

    times = {}
    t0 = time.perf_counter()
    x = read_vectors(data / "src.vec")
    z = read_vectors(data / "tgt.vec")
    train = lookup(read_dictionary(data / "train.tsv"), x.index, z.index)
    test = lookup(read_dictionary(data / "test.tsv"), x.index, z.index)
    times["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    try:  # CLE-B's PROC when it has landed; else the same SVD in three lines
        from xling.cle.mappers.procrustes import procrustes_map

        w, proc = procrustes_map(x.vectors[train.src_rows], z.vectors[train.tgt_rows]), "xling.cle.mappers"
    except ImportError:
        u, _, vt = np.linalg.svd(x.vectors[train.src_rows].T.astype(np.float64) @ z.vectors[train.tgt_rows])
        w, proc = (u @ vt).astype(np.float32), "numpy SVD in this benchmark"
    for i in range(0, len(x), 16384):  # map in place, a block at a time: no second copy of the space
        x.vectors[i : i + 16384] = x.vectors[i : i + 16384] @ w
    times["map"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = evaluate(x.vectors, z.vectors, test, retrieval_method="csls", convention="source", inplace=True)
    times["csls_bli"] = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "p1": result.p1,
                "coverage": result.coverage,
                "n": result.n,
                "times": times,
                "proc": proc,
                "matrix_bytes": x.vectors.nbytes + z.vectors.nbytes,
            }
        )
    )


def parity_side(folder: Path, test: Path) -> None:
    """xling's exact CSLS BLI on vecmap's own mapped spaces (same mapping: only the retrieval differs). JSON."""
    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.vectors import read_vectors

    x, z = read_vectors(folder / "src.vec"), read_vectors(folder / "tgt.vec")
    found = lookup(read_dictionary(test), x.index, z.index)
    result = evaluate(x.vectors, z.vectors, found, retrieval_method="csls", convention="source", inplace=True)
    print(json.dumps({"p1": result.p1, "coverage": result.coverage}))


def timed(cmd: list[str]) -> tuple[str, float, int]:
    """Run ``cmd`` under /usr/bin/time -v: (stdout, wall seconds, peak RSS bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) * 1024
    return proc.stdout, wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vecmap", type=Path, help="a vecmap checkout (outside this repository)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xling-bench-cle"))
    parser.add_argument("--n-words", type=int, default=200000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--warp", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-vecmap", action="store_true", help="only the xling side (no ratios)")
    parser.add_argument(
        "--vecmap-proc",
        action="store_true",
        help="map with vecmap's plain orthogonal Procrustes (--orthogonal -d) instead of --supervised",
    )
    parser.add_argument("--side", choices=["xling", "parity"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "xling":
        return xling_side(args.workdir / "data")
    if args.side == "parity":
        return parity_side(args.workdir / "vecmap-out", args.workdir / "data" / "test.tsv")
    if shutil.which("/usr/bin/time") is None:
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak RSS")
    if not args.skip_vecmap and (args.vecmap is None or not (args.vecmap / "map_embeddings.py").is_file()):
        sys.exit("pass --vecmap /path/to/a/vecmap/checkout (git clone https://github.com/artetxem/vecmap)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    simulate(args.workdir, args)
    data = args.workdir / "data"

    out, x_wall, x_rss = timed([sys.executable, str(HERE), "--side", "xling", "--workdir", str(args.workdir)])
    ours = json.loads(out.strip().splitlines()[-1])
    print(
        f"xling : {x_wall:7.1f} s  peak RSS {x_rss / 2**20:7.0f} MiB  P@1 {100 * ours['p1']:.2f}  "
        f"coverage {100 * ours['coverage']:.1f}%  "
        f"steps {', '.join(f'{k} {v:.1f} s' for k, v in ours['times'].items())}"
        f"  (PROC: {ours['proc']})",
        flush=True,
    )
    matrices = ours["matrix_bytes"]
    print(f"peak RSS / two float32 matrices ({matrices / 2**20:.0f} MiB): {x_rss / matrices:.2f} (goal <= 1.5)")
    if args.skip_vecmap:
        return None

    mapped = args.workdir / "vecmap-out"
    mapped.mkdir(exist_ok=True)
    how = ["--orthogonal", "-d"] if args.vecmap_proc else ["--supervised"]
    _, m_wall, m_rss = timed(
        [
            sys.executable,
            str(args.vecmap / "map_embeddings.py"),
            *how,
            str(data / "train.tsv"),
            str(data / "src.vec"),
            str(data / "tgt.vec"),
            str(mapped / "src.vec"),
            str(mapped / "tgt.vec"),
        ]
    )
    out, e_wall, e_rss = timed(
        [
            sys.executable,
            str(args.vecmap / "eval_translation.py"),
            str(mapped / "src.vec"),
            str(mapped / "tgt.vec"),
            "-d",
            str(data / "test.tsv"),
            "--retrieval",
            "csls",
        ]
    )
    accuracy = float(re.search(r"Accuracy:\s*([\d.]+)%", out).group(1)) / 100
    v_wall = m_wall + e_wall
    print(
        f"vecmap: {v_wall:7.1f} s  peak RSS {max(m_rss, e_rss) / 2**20:7.0f} MiB  P@1 {100 * accuracy:.2f}  "
        f"(map {m_wall:.1f} s / {m_rss / 2**20:.0f} MiB, eval {e_wall:.1f} s / {e_rss / 2**20:.0f} MiB)"
    )
    print(
        f"speed-up {v_wall / x_wall:.2f}x (goal >= 3)  "
        f"|P@1 difference| {100 * abs(ours['p1'] - accuracy):.2f} points "
        f"(goal <= 0.5; PROC vs vecmap's {' '.join(how)} map)  RSS ratio vecmap/xling "
        f"{max(m_rss, e_rss) / x_rss:.2f}",
        flush=True,
    )
    out, p_wall, _ = timed([sys.executable, str(HERE), "--side", "parity", "--workdir", str(args.workdir)])
    parity = json.loads(out.strip().splitlines()[-1])
    print(
        f"same mapping (vecmap's mapped spaces): xling CSLS P@1 {100 * parity['p1']:.2f} in {p_wall:.1f} s vs "
        f"vecmap eval_translation CSLS P@1 {100 * accuracy:.2f} in {e_wall:.1f} s: difference "
        f"{100 * abs(parity['p1'] - accuracy):.2f} points, speed-up {e_wall / p_wall:.2f}x"
    )
    return None


if __name__ == "__main__":
    main()
