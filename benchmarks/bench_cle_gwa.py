"""GWA: xling's ``gwa`` vs otalign (Alvarez-Melis & Jaakkola's code), side by side on one simulated pair.

Goal (issue 11): equal P@1 (within 1 point) and at least the reference's speed. Both sides solve entropic
Gromov-Wasserstein on the ``--n-gw`` most frequent words with the same epsilon and iteration cap, then fit
Procrustes on the coupling's mutual argmax pairs. otalign runs through its own classes (``gromov_bilind``: fit
with its defaults — cosine distances, mean-normalised, uniform marginals, warm-started Sinkhorn — no plots, no
monitoring dictionary); xling runs ``xling cle map -m gwa``. Each side is its own process under
``/usr/bin/time -v``, pinned to one thread; both outputs are scored by one evaluator (xling's exact CSLS BLI, per
line) after the reference's own export normalisation (the fitted words and the rest each centred on their mean).

otalign is not part of xling: check it out outside the repository (it needs POT, scipy, matplotlib)::

    git clone https://github.com/dmelis/otalign /tmp/ref/otalign
    python benchmarks/bench_cle_gwa.py --otalign /tmp/ref/otalign

The default pair (20K x 20, 40 clusters, a decaying spectrum) is one where GW finds the planted map; epsilon is
5e-3 because otalign's 5e-4 underflows on these 20-dimensional distances (both sides say so and score ~0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cle_reference as ref

#: The reference's fit, through its own classes, timed inside its process (the vectors are read by its reader).
OTALIGN = """
import json, sys, time
import numpy as np
import src.embeddings as embeddings
from src.bilind import gromov_bilind
n, eps, max_iter, data, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sw, xs = embeddings.read(open(data + "/src.vec"), n)
tw, xt = embeddings.read(open(data + "/tgt.vec"), n)
t0 = time.perf_counter()
bli = gromov_bilind(xs, xt, "src", "tgt", sw, tw, {w: i for i, w in enumerate(sw)}, {w: i for i, w in enumerate(tw)},
                    None, metric="cosine", normalize_vecs="both", normalize_dists="mean", score_type="coupling",
                    adjust="none", distribs="uniform")
bli.init_optimizer(metric="cosine", normalize_dists="mean", entropic=True, entreg=eps, tol=1e-8, gpu=False)
bli.fit(maxiter=max_iter, plot_every=10**9, print_every=10, verbose=False, save_plots=None)
np.save(out + "/P.npy", bli.mapping)
json.dump({"fit_s": time.perf_counter() - t0}, open(out + "/fit.json", "w"))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otalign", type=Path, default=Path("/tmp/ref/otalign"), help="otalign checkout")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xling-bench-gwa")
    parser.add_argument("--n-words", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--clusters", type=int, default=40)
    parser.add_argument("--spectrum", type=float, default=1.0)
    parser.add_argument("--n-gw", type=int, default=2000, help="most frequent words in the GW problem (otalign: 2000)")
    parser.add_argument("--epsilon", type=float, default=5e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    if not (args.otalign / "src" / "bilind.py").is_file():
        sys.exit(f"no otalign checkout at {args.otalign}: git clone https://github.com/dmelis/otalign {args.otalign}")
    data, out = args.workdir / "data", args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    ref.simulate(data, ref.clustered_pair(args))
    X, Z = ref.vectors(data)
    from xling.cle.mappers.gwa import split_normalize

    Xn, Zn = split_normalize(X, args.n_gw), split_normalize(Z, args.n_gw)

    # xling
    params = dict(n_words=args.n_gw, epsilon=args.epsilon, max_iter=args.max_iter)
    wall, cpu, rss, info = ref.xling_map("gwa", data, out / "xling", params, seed=0)
    import numpy as np

    W_tgt = np.load(out / "xling" / "W_tgt.npy")
    xl = dict(
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        fit_s=info["fit_seconds"],
        iterations=info["n_iter"],
        status=info["status"],
        peak_rss_gib=round(rss, 2),
        p1=round(ref.p_at_1(data, Xn, Zn @ W_tgt), 4),
    )

    # otalign: its mapping P maps the target onto the source (xt @ P.T), as its export does
    wall, cpu, rss = ref.timed(
        [sys.executable, "-c", OTALIGN, str(args.n_gw), str(args.epsilon), str(args.max_iter), str(data), str(out)],
        out / "otalign.log",
        cwd=args.otalign,
        env=ref.one_thread(),
    )
    P = np.load(out / "P.npy")
    ot = dict(
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        fit_s=round(json.loads((out / "fit.json").read_text())["fit_s"], 1),
        peak_rss_gib=round(rss, 2),
        p1=round(ref.p_at_1(data, Xn, Zn @ P.T.astype(np.float32)), 4),
    )
    ref.report(
        "otalign", {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, xl, ot, "goal >= 1x"
    )


if __name__ == "__main__":
    main()
