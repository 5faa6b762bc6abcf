"""ICP: xling's ``icp`` vs Hoshen & Wolf's code (``facebookresearch/Non-adversarialTranslation``), side by side.

Goal (issue 11): equal P@1 (within 1 point) and at least the reference's speed. Both sides run the same recipe
with the same settings: PCA restarts (``--restarts`` x 100 epochs on the ``--n-init`` most frequent words,
``--n-pca`` components), the best restart's matches to full-dimension ICP (50 epochs), then 50 epochs on mutual
pairs of the ``--n-ft`` most frequent words. The reference runs its own ``run_icp.py`` (its ``params`` module
replaced by these settings, its unseeded ``s0`` seeded, its inputs written as the ``data/*.npy`` files its
``get_data.py`` would write); xling runs ``xling cle map -m icp``. Each side is its own process under
``/usr/bin/time -v``, pinned to one thread; both maps are scored by one evaluator (xling's exact CSLS BLI).

The reference is not part of xling: check it out outside the repository. It needs faiss, fbpca and numba, and one
line of ``icp.py`` no longer imports on current numba (``numba.decorators`` moved)::

    git clone https://github.com/facebookresearch/Non-adversarialTranslation /tmp/ref/nat
    sed -i 's/from numba.decorators import jit/from numba import jit/' /tmp/ref/nat/icp.py
    pip install fbpca numba   # or: pip install --target DIR and pass --ref-pythonpath DIR
    python benchmarks/bench_cle_icp.py --reference /tmp/ref/nat

Restarts are random on both sides (the reference's differ by the signs its randomised PCA gives the components,
xling's draw them), so the two sides agree in P@1 when both find the planted map; ``--restarts`` is 20 instead of
100 so that the reference runs in minutes here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cle_reference as ref
import numpy as np

#: Runs the reference's own ``run_icp.py`` with a ``params`` module holding this benchmark's settings.
RUN_ICP = """
import sys, types, runpy
import numpy as np
reference, seed = sys.argv[1], int(sys.argv[2])
params = types.ModuleType("params")
params.__dict__.update(src_lang="src", tgt_lang="tgt", icp_init_epochs=100, icp_train_epochs=50, icp_ft_epochs=50,
                       n_pca=int(sys.argv[3]), n_icp_runs=int(sys.argv[4]), n_init_ex=int(sys.argv[5]),
                       n_ft_ex=int(sys.argv[6]), n_processes=1, cp_dir="output", method="csls_knn_10")
sys.modules["params"] = params
sys.path.insert(0, reference)
np.random.seed(seed)
runpy.run_path(reference + "/run_icp.py", run_name="__main__")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=Path("/tmp/ref/nat"), help="Non-adversarialTranslation")
    parser.add_argument("--ref-pythonpath", default="", help="extra PYTHONPATH for the reference (fbpca, numba)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "xling-bench-icp")
    parser.add_argument("--n-words", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--noise", type=float, default=0.16)
    parser.add_argument("--clusters", type=int, default=40)
    parser.add_argument("--spectrum", type=float, default=1.0)
    parser.add_argument("--n-init", type=int, default=2000, help="words of the restarts (reference: 5000)")
    parser.add_argument("--n-ft", type=int, default=3000, help="words of the fine-tuning (reference: 7500)")
    parser.add_argument("--n-pca", type=int, default=10, help="PCA components of the restarts (reference: 25)")
    parser.add_argument("--restarts", type=int, default=20, help="random restarts (reference: 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if "numba.decorators" in (args.reference / "icp.py").read_text():
        sys.exit(
            f"patch {args.reference / 'icp.py'} first: sed -i 's/from numba.decorators import jit/from numba "
            f"import jit/' {args.reference / 'icp.py'}"
        )
    data, out = args.workdir / "data", args.workdir / "out"
    (out / "reference" / "data").mkdir(parents=True, exist_ok=True)
    ref.simulate(data, ref.clustered_pair(args))
    X, Z = ref.vectors(data)

    # xling
    params = dict(n_words=args.n_init, n_refine_words=args.n_ft, n_components=args.n_pca, n_restarts=args.restarts)
    wall, cpu, rss, info = ref.xling_map("icp", data, out / "xling", params, seed=args.seed)
    W = np.load(out / "xling" / "W_src.npy")
    xl = dict(
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        fit_s=info["fit_seconds"],
        peak_rss_gib=round(rss, 2),
        p1=round(ref.p_at_1(data, X @ W, Z), 4),
    )

    # the reference: its inputs as get_data.py writes them (the first rows, float64), then its run_icp.py
    for lang, M in (("src", X), ("tgt", Z)):
        for n in (args.n_init, args.n_ft):
            np.save(out / "reference" / "data" / f"{lang}_{n}.npy", M[:n].astype(np.float64))
    env = {**ref.one_thread(), "PYTHONPATH": args.ref_pythonpath}
    wall, cpu, rss = ref.timed(
        [
            sys.executable,
            "-c",
            RUN_ICP,
            str(args.reference.resolve()),
            str(args.seed),
            str(args.n_pca),
            str(args.restarts),
            str(args.n_init),
            str(args.n_ft),
        ],
        out / "reference.log",
        cwd=out / "reference",
        env=env,
    )
    TX = np.load(out / "reference" / "output" / "src_tgt_T.npy")
    nat = dict(
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        fit_s=round(wall, 1),
        peak_rss_gib=round(rss, 2),
        p1=round(ref.p_at_1(data, (X @ TX.T).astype(np.float32), Z), 4),
    )
    ref.report(
        "reference", {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, xl, nat, "goal >= 1x"
    )


if __name__ == "__main__":
    main()
