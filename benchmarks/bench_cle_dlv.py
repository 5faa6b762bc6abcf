"""DLV: xling's ``dlv`` vs ``map_embeddings.py --ruder_emnlp2018`` of latent-variable-vecmap, and PROC from the same
seed, side by side on one simulated pair.

Goals (issue 11): from a 500-pair seed DLV beats PROC from the same seed on a hard pair; xling's DLV reaches the
reference's P@1 (within 1 point) at least as fast. Every side runs in its own process under ``/usr/bin/time -v``
(peak RSS) from the same text files and writes both mapped spaces; one evaluator (xling's exact BLI, NN and CSLS,
per unique source word as vecmap's ``eval_translation.py`` counts) scores all outputs.

The reference is not part of xling: check it out outside the repository and give it a Python that has its ``lap``
dependency (a virtual environment, e.g.)::

    git clone https://github.com/sebastianruder/latent-variable-vecmap /tmp/latent-variable-vecmap
    python -m venv --system-site-packages /tmp/ref-venv && /tmp/ref-venv/bin/pip install lap
    python benchmarks/bench_cle_dlv.py --reference /tmp/latent-variable-vecmap \
        --reference-python /tmp/ref-venv/bin/python

The release keeps the full cutoff x cutoff similarity matrix (6.4 GB at its 40K cutoff), so the default cutoff here
is 10K for both sides (``--cutoff``).
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
    """Write the simulated pair once per parameter set (not timed)."""
    from xling.cle.simulate import simulate_pair, write_pair

    data = workdir / "data"
    params = {
        "n_words": args.n_words,
        "dim": args.dim,
        "noise": args.noise,
        "warp": args.warp,
        "seed": args.seed,
        "n_train": args.n_seed,
        "n_test": args.n_test,
    }
    stamp = workdir / "params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (data / "test.tsv").is_file():
        return data
    t0 = time.perf_counter()
    pair = simulate_pair(
        args.n_words, args.dim, args.noise, args.warp, seed=args.seed, n_train=args.n_seed, n_test=args.n_test
    )
    write_pair(pair, data)
    stamp.write_text(json.dumps(params))
    print(f"simulated {args.n_words} x {args.dim} x 2 in {time.perf_counter() - t0:.0f} s", flush=True)
    return data


def timed(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall seconds, CPU seconds, peak RSS in GiB); output to ``log``."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([0-9.]+)", text).group(1)) for kind in ("User", "System"))
    return wall, cpu, rss_kb / 2**20


def scores(data: Path, src: Path, tgt: Path) -> dict[str, float]:
    """One evaluator for every output: exact BLI, per unique source word, NN and CSLS P@1."""
    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.vectors import read_vectors

    x, z = read_vectors(src, max_vocab=None), read_vectors(tgt, max_vocab=None)
    found = lookup(read_dictionary(data / "test.tsv"), x.index, z.index)
    return {
        f"p1_{r}": evaluate(x.vectors, z.vectors, found, retrieval_method=r, convention="source").p1
        for r in ("nn", "csls")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reference",
        type=Path,
        default=Path("/tmp/latent-variable-vecmap"),
        help="latent-variable-vecmap checkout (not committed)",
    )
    parser.add_argument("--reference-python", default=sys.executable, help="a Python with the reference's `lap`")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xling-bench-dlv")
    parser.add_argument("--n-words", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--warp", type=float, default=0.2)
    parser.add_argument("--n-seed", type=int, default=500, help="seed dictionary size (most frequent words)")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--cutoff", type=int, default=10000, help="words matched per side (both implementations)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.reference / "map_embeddings.py").is_file():
        sys.exit(f"no latent-variable-vecmap checkout at {args.reference}")
    out = args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    data = simulate(args.workdir, args)
    src, tgt, train = str(data / "src.vec"), str(data / "tgt.vec"), str(data / "train.tsv")
    rows = {}

    for method in ("proc", "dlv"):  # xling: read, map, write both mapped spaces
        folder = out / f"xling-{method}"
        extra = ["--param", f"vocabulary_cutoff={args.cutoff}"] if method == "dlv" else []
        wall, cpu, rss = timed(
            [
                sys.executable,
                "-m",
                "xling",
                "cle",
                "map",
                "-m",
                method,
                "--src",
                src,
                "--tgt",
                tgt,
                "--train-dict",
                train,
                "-o",
                str(folder),
                "--max-vocab",
                "0",
                "--no-cache",
                *extra,
            ],
            out / f"xling-{method}.log",
        )
        info = json.loads((folder / "run.json").read_text())["mapping"]
        rows[f"xling {method}"] = {
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "peak_rss_gib": round(rss, 2),
            "fit_s": info["fit_seconds"],
            "iterations": info.get("n_iter"),
            **scores(data, folder / "src.vec", folder / "tgt.vec"),
        }

    # the reference: --ruder_emnlp2018 with the same cutoff, verbose iterations on stderr
    wall, cpu, rss = timed(
        [
            args.reference_python,
            str(args.reference / "map_embeddings.py"),
            "--ruder_emnlp2018",
            "-d",
            train,
            src,
            tgt,
            str(out / "ref_src.vec"),
            str(out / "ref_tgt.vec"),
            "--vocabulary_cutoff",
            str(args.cutoff),
            "-v",
        ],
        out / "reference.log",
    )
    log = (out / "reference.log").read_text()
    loop = sum(float(s) for s in re.findall(r"ITERATION \d+ \(([0-9.]+)s\)", log))
    rows["reference dlv"] = {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_gib": round(rss, 2),
        "fit_s": round(loop, 1),
        "iterations": len(re.findall(r"ITERATION \d+", log)),
        **scores(data, out / "ref_src.vec", out / "ref_tgt.vec"),
    }

    print(
        json.dumps(
            {"setting": vars(args) | {"reference": str(args.reference), "workdir": str(args.workdir)}, **rows},
            default=str,
        )
    )
    xl, ref, proc = rows["xling dlv"], rows["reference dlv"], rows["xling proc"]
    for r in ("nn", "csls"):
        print(
            f"P@1 {r}: xling dlv {100 * xl[f'p1_{r}']:.2f}, reference dlv {100 * ref[f'p1_{r}']:.2f} "
            f"(difference {100 * (xl[f'p1_{r}'] - ref[f'p1_{r}']):+.2f}; goal within 1), proc from the same seed "
            f"{100 * proc[f'p1_{r}']:.2f}"
        )
    print(
        f"wall time: xling {xl['wall_s']:.0f} s, reference {ref['wall_s']:.0f} s -> "
        f"{ref['wall_s'] / xl['wall_s']:.2f}x; self-learning: xling {xl['fit_s']:.0f} s / {xl['iterations']} "
        f"iterations, reference {ref['fit_s']:.0f} s / {ref['iterations']} iterations"
    )
    print(f"peak RSS: xling {xl['peak_rss_gib']:.2f} GiB, reference {ref['peak_rss_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
