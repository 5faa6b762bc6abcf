"""Speed and accuracy of `xling predict` on simulated paper-size grids (9 models x 44 x 44 = 17,424 cells).

Goals (issue 20): fit + predict <= 60 s on 2 cores with a quarter of the (model, source) pairs run; `--evaluate`
(the leave-sources-out cross-validation of xling's predictor and the two baselines on the same folds) <= 5 min.
Prints, for two simulated grids, the cross-validation table (mean over folds, fold sd in brackets): the simulator's
default (additive effects, model x cell effects, noise) and one with a planted rank-3 source x target interaction
(sd 2 pp) and relatedness (1.5 pp per sd of URIEL syntax closeness). Wall and CPU seconds of this process and the load
average say how busy the machine was.

    python benchmarks/bench_predict.py [--observed 0.25] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from xling.analysis.prediction import TransferPredictor, evaluate_predictors
from xling.analysis.prediction.data import encode, to_rows
from xling.analysis.prediction.evaluate import outer_folds
from xling.analysis.simulate import SimulationSpec, simulate_grid
from xling.contracts import KEYS


def timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu, out


def fit_predict(table):
    predictor = TransferPredictor().fit(table)
    return predictor, predictor.predict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observed", type=float, default=0.25, help="fraction of (model, source) pairs run")
    parser.add_argument("--seed", type=int, default=0, help="simulation and fold seed")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}; load average at start {os.getloadavg()[0]:.1f}")
    grids = {
        "simulator default (no source x target interaction)": SimulationSpec(seed=args.seed),
        "interaction rank 3 (sd 2 pp) + relatedness 1.5 pp/sd": SimulationSpec(
            seed=args.seed, interaction_rank=3, interaction_sd=2.0, relatedness=1.5
        ),
    }
    for label, spec in grids.items():
        grid = simulate_grid(spec)
        tensor = encode(grid)
        train = outer_folds(tensor.observed, args.observed, np.random.default_rng(args.seed))[0]
        part = grid.merge(to_rows(tensor, train)[KEYS], on=KEYS)
        wall, cpu, (predictor, table) = timed(fit_predict, part)
        print(
            f"\n{label}: {len(grid)} cells; {int(train.sum())} of {train.size} pairs run ({len(part)} cells)\n"
            f"fit + predict: {wall:.1f} s wall, {cpu:.1f} s CPU (goal <= 60 s: {'meets' if wall <= 60 else 'MISSES'}); "
            f"{(~table['observed']).sum()} cells predicted; interaction rank chosen: {predictor.model_.rank_}; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        wall, cpu, (_, summary) = timed(evaluate_predictors, grid, observed=args.observed, seed=args.seed)
        print(
            f"--evaluate ({int(summary['n_folds'].iloc[0])} folds, {args.observed:.0%} of pairs run each): "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU (goal <= 300 s: {'meets' if wall <= 300 else 'MISSES'}); "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print(f"{'method':<9} {'Spearman':>15} {'MAE pp':>13} {'NDCG@3':>15} {'coverage 90%':>15} {'width pp':>13}")
        for r in summary.itertuples(index=False):
            print(
                f"{r.method:<9} {r.spearman:>7.3f} ({r.spearman_sd:.3f}) {r.mae:>6.2f} ({r.mae_sd:.2f}) "
                f"{r.ndcg_at_3:>7.3f} ({r.ndcg_at_3_sd:.3f}) {100 * r.coverage:>7.1f} ({100 * r.coverage_sd:.1f}) "
                f"{r.width:>6.2f} ({r.width_sd:.2f})"
            )


if __name__ == "__main__":
    main()
