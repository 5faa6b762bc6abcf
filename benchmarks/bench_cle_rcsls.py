"""RCSLS: xling's ``rcsls`` vs fastText's ``alignment/align.py``, side by side on one simulated pair.

Goal (issue 11): same inputs and settings => NN P@1 within 1 point of ``align.py --lr 25 --niter 10``, and at least
the reference's speed. Both sides read the same text files (dictionaries written with a space separator, which
``align.py``'s ``load_pairs`` needs), use the same negatives (``--maxneg``), and are scored the way ``align.py``
scores: nearest neighbour, per unique source word, any gold correct, out-of-vocabulary words counted as wrong
(xling: ``--retrieval nn --convention source --oov wrong``). Each runs in its own process under ``/usr/bin/time -v``
(peak RSS); the optimisation alone is timed from ``align.py``'s flushed progress lines (from its Procrustes start to
its final line, which includes its two NN evaluations) and from xling's ``fit_seconds``.

fastText is not part of xling: check it out into a temporary folder outside the repository::

    git clone https://github.com/facebookresearch/fastText /tmp/fastText
    python benchmarks/bench_cle_rcsls.py --fasttext /tmp/fastText

The default (50K x 300 words, 5K training pairs, 20K negatives) runs in a few minutes on 2 CPU cores and keeps
``align.py``'s dense float64 score matrices (pairs x negatives, twice) near 1.6 GB; ``--maxneg 200000`` is its own
default (8 GB per matrix at 5K pairs).
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


def simulate(workdir: Path, args: argparse.Namespace) -> Path:
    """Write the simulated pair and space-separated dictionaries once per parameter set (not timed)."""
    from xling.cle.simulate import simulate_pair, write_pair

    data = workdir / "data"
    params = {
        "n_words": args.n_words,
        "dim": args.dim,
        "noise": args.noise,
        "warp": args.warp,
        "seed": args.seed,
        "n_train": args.n_train,
        "n_test": args.n_test,
    }
    stamp = workdir / "params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (data / "test.txt").is_file():
        return data
    t0 = time.perf_counter()
    pair = simulate_pair(
        args.n_words, args.dim, args.noise, args.warp, seed=args.seed, n_train=args.n_train, n_test=args.n_test
    )
    write_pair(pair, data)
    for name in ("train", "test"):  # align.py's load_pairs splits on one space
        (data / f"{name}.txt").write_text((data / f"{name}.tsv").read_text().replace("\t", " "))
    stamp.write_text(json.dumps(params))
    print(f"simulated {args.n_words} x {args.dim} x 2 in {time.perf_counter() - t0:.0f} s", flush=True)
    return data


def timed(cmd: list[str], log: Path) -> tuple[float, float, float, list[tuple[float, str]]]:
    """Run ``cmd`` under ``/usr/bin/time -v``: wall s, CPU s, peak RSS GiB, and each stdout line with its arrival."""
    t0 = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        ["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        for line in proc.stdout:
            lines.append((time.perf_counter() - t0, line.rstrip("\n")))
        err = proc.stderr.read()
    wall = time.perf_counter() - t0
    log.write_text("\n".join(text for _, text in lines) + "\n" + err)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([0-9.]+)", err).group(1)) for kind in ("User", "System"))
    return wall, cpu, rss_kb / 2**20, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--fasttext", type=Path, default=Path("/tmp/fastText"), help="fastText checkout (not committed)"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xling-bench-rcsls")
    parser.add_argument("--n-words", type=int, default=50000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--warp", type=float, default=0.15)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--maxneg", type=int, default=20000, help="negatives of each side (align.py --maxneg)")
    parser.add_argument("--lr", type=float, default=25.0)
    parser.add_argument("--niter", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    align = args.fasttext / "alignment" / "align.py"
    if not align.is_file():
        sys.exit(
            f"no fastText checkout at {args.fasttext}: git clone https://github.com/facebookresearch/fastText "
            f"{args.fasttext}"
        )
    out = args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    data = simulate(args.workdir, args)
    files = ["--src", data / "src.vec", "--tgt", data / "tgt.vec"]

    # xling: read, RCSLS, NN BLI the way align.py counts
    xl_wall, xl_cpu, xl_rss, xl_lines = timed(
        [
            sys.executable,
            "-m",
            "xling",
            "cle",
            "run",
            "-m",
            "rcsls",
            *map(str, files),
            "--train-dict",
            str(data / "train.txt"),
            "--test-dict",
            str(data / "test.txt"),
            "--retrieval",
            "nn",
            "--convention",
            "source",
            "--oov",
            "wrong",
            "--no-cache",
            "--json",
            "--param",
            f"lr={args.lr}",
            "--param",
            f"n_iter={args.niter}",
            "--param",
            f"maxneg={args.maxneg}",
        ],
        out / "xling.log",
    )
    xl = json.loads(xl_lines[-1][1])

    # fastText: align.py with the same settings (its own loader, Procrustes start, loop and NN evaluation)
    ref_wall, ref_cpu, ref_rss, ref_lines = timed(
        [
            sys.executable,
            str(align),
            "--src_emb",
            str(data / "src.vec"),
            "--tgt_emb",
            str(data / "tgt.vec"),
            "--dico_train",
            str(data / "train.txt"),
            "--dico_test",
            str(data / "test.txt"),
            "--lr",
            str(args.lr),
            "--niter",
            str(args.niter),
            "--maxneg",
            str(args.maxneg),
        ],
        out / "align.log",
    )
    start = next(t for t, text in ref_lines if text.startswith("[init -- Procrustes]"))
    final_t, final = next((t, text) for t, text in ref_lines if text.startswith("[final]"))
    ref_p1 = float(re.search(r"NN = ([0-9.]+)", final).group(1))
    ref_loop = final_t - start

    print(
        json.dumps(
            {
                "setting": vars(args) | {"fasttext": str(args.fasttext), "workdir": str(args.workdir)},
                "xling": {
                    "wall_s": round(xl_wall, 1),
                    "cpu_s": round(xl_cpu, 1),
                    "fit_s": xl["fit_seconds"],
                    "peak_rss_gib": round(xl_rss, 2),
                    "p1": xl["p1"],
                },
                "align.py": {
                    "wall_s": round(ref_wall, 1),
                    "cpu_s": round(ref_cpu, 1),
                    "loop_s": round(ref_loop, 1),
                    "peak_rss_gib": round(ref_rss, 2),
                    "p1": ref_p1,
                },
            },
            default=str,
        )
    )
    print(
        f"NN P@1 (per source word, OOV wrong): xling {100 * xl['p1']:.2f}, align.py {100 * ref_p1:.2f} "
        f"(difference {100 * (xl['p1'] - ref_p1):+.2f} points; goal within 1)"
    )
    print(
        f"wall time: xling {xl_wall:.0f} s, align.py {ref_wall:.0f} s -> {ref_wall / xl_wall:.2f}x; optimisation: "
        f"xling {xl['fit_seconds']:.0f} s, align.py {ref_loop:.0f} s -> {ref_loop / xl['fit_seconds']:.2f}x "
        f"(goal >= 1x)"
    )
    print(
        f"CPU time: xling {xl_cpu:.0f} s, align.py {ref_cpu:.0f} s; peak RSS: xling {xl_rss:.2f} GiB, "
        f"align.py {ref_rss:.2f} GiB ({ref_rss / xl_rss:.1f}x)"
    )


if __name__ == "__main__":
    main()
