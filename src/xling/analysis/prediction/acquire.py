"""Which (model, source cell) pairs to run: a first design that covers every source cell, then the pairs whose runs
most reduce the uncertainty of the donor and recipient conclusions. Pure functions of tables; the adaptive grid
calls them between rounds of training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xling.analysis.prediction.data import MTML, regime_codes
from xling.contracts import KEYS, REGIMES
from xling.errors import XlingError

PAIR_KEYS = KEYS[:3]  # model_name, fine_tuned_dataset, fine_tuned_language


def initial_design(
    models: Sequence[str], source_cells: Sequence[tuple[str, str]], per_source: int = 2, seed: int = 0
) -> pd.DataFrame:
    """The first pairs to run: every source cell for ``per_source`` different models, so every task and every
    language is a source at least once and the predictor can calibrate (a pair can be held out only where its source
    was run for another model). Greedy and balanced: a cell goes to the models that have the fewest pairs so far,
    then the fewest of its task, then the fewest of its language, then at random (seeded). Returns ``model_name,
    fine_tuned_dataset, fine_tuned_language``; the models' numbers of pairs differ by at most one."""
    models, cells = list(models), [tuple(c) for c in source_cells]
    if not 1 <= per_source <= len(models):
        raise XlingError(f"per_source must be between 1 and the number of models ({len(models)}); got {per_source}")
    if len(set(cells)) != len(cells) or not cells:
        raise XlingError("source_cells must be distinct (task, language) pairs, at least one")
    rng = np.random.default_rng(seed)
    load = np.zeros(len(models), dtype=int)
    task_use: dict[tuple[int, str], int] = {}
    lang_use: dict[tuple[int, str], int] = {}
    rows = []
    for i in rng.permutation(len(cells)):
        task, lang = cells[i]
        tiebreak = rng.random(len(models))
        order = sorted(
            range(len(models)),
            key=lambda m: (load[m], task_use.get((m, task), 0), lang_use.get((m, lang), 0), tiebreak[m]),
        )
        for m in order[:per_source]:
            load[m] += 1
            task_use[m, task] = task_use.get((m, task), 0) + 1
            lang_use[m, lang] = lang_use.get((m, lang), 0) + 1
            rows.append((models[m], task, lang))
    return pd.DataFrame(rows, columns=PAIR_KEYS).sort_values(PAIR_KEYS, ignore_index=True)


def _encode_pairs(frame: pd.DataFrame, models: list[str], cells: list[tuple[str, str]]) -> tuple[np.ndarray, ...]:
    """(model index, source index, known) of each row's (model, source) pair."""
    m = frame["model_name"].map({name: i for i, name in enumerate(models)})
    s = pd.Series(list(zip(frame["fine_tuned_dataset"], frame["fine_tuned_language"])), index=frame.index)
    s = s.map({c: i for i, c in enumerate(cells)})
    known = (m.notna() & s.notna()).to_numpy()
    return m.fillna(0).to_numpy(dtype=int), s.fillna(0).to_numpy(dtype=int), known


def choose_next(
    predictions: pd.DataFrame,
    k: int,
    *,
    scale: pd.DataFrame | None = None,
    candidates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``k`` unrun (model, source) pairs whose runs most reduce the uncertainty of the conclusions, in order.

    ``predictions`` is ``TransferPredictor.predict()`` (run and unrun rows, intervals on the unrun ones). The
    conclusions are each source cell's donor mean (over models and its transfer targets) and each target cell's
    recipient mean (over models and the other sources); their uncertainty is the sum of the variances of these
    means, with an interval's half-width as a cell's error scale, a pair's errors moving together over its targets
    (donor) and independently across pairs (recipient). Running a pair removes its cells' uncertainty and, with
    ``scale`` (``TransferPredictor.scale_``), narrows the other unrun pairs of its source as the residual model says
    one more model running the source does. Picks are greedy, each given the earlier ones. ``candidates``
    (``model_name, fine_tuned_dataset, fine_tuned_language``) restricts the choice. Returns those columns, ``gain``
    (the reduction in the sum of variances, pp^2 in half-width units) and ``rank`` (1 = first).
    """
    models = sorted(predictions["model_name"].unique())
    cells = sorted(set(zip(predictions["eval_dataset"], predictions["eval_language"])))
    nm, nc = len(models), len(cells)
    m, s, _ = _encode_pairs(predictions, models, cells)
    t = pd.Series(list(zip(predictions["eval_dataset"], predictions["eval_language"])))
    t = t.map({c: i for i, c in enumerate(cells)}).to_numpy()
    new = ~predictions["observed"].astype(bool).to_numpy()
    half = np.zeros((nm, nc, nc))
    half[m[new], s[new], t[new]] = (predictions["delta_hi"].to_numpy() - predictions["delta_lo"].to_numpy())[new] / 2
    unrun = np.zeros((nm, nc), dtype=bool)
    unrun[m[new], s[new]] = True
    n_models = np.bincount(s[~new & (t == 0)], minlength=nc)  # models that ran each source (one row per pair)
    allowed = unrun.copy()
    if candidates is not None:
        cm, cs, known = _encode_pairs(candidates, models, cells)
        allowed[:] = False
        allowed[cm[known], cs[known]] = True
        allowed &= unrun

    tasks, langs = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
    regime = regime_codes(np.array([tasks.index(c[0]) for c in cells]), np.array([langs.index(c[1]) for c in cells]))
    transfer = regime != MTML  # (s, t)
    per_donor = np.maximum(transfer.sum(axis=1), 1)
    w_recipient = 1.0 / (nm * np.maximum(transfer.sum(axis=0), 1)) ** 2
    var = None if scale is None else scale.set_index("regime").loc[list(REGIMES)].to_numpy(dtype=float)

    def pair_uncertainty(h: np.ndarray) -> np.ndarray:
        """Each pair's share of the total: (mean half-width over its transfer targets / models)^2 for its source's
        donor mean, plus its cells' shares of the recipient means."""
        donor = ((h * transfer[None]).sum(axis=2) / per_donor[None] / nm) ** 2
        return donor + (h**2 * transfer[None] * w_recipient[None, None, :]).sum(axis=2)

    def one_more_model(h: np.ndarray) -> np.ndarray:
        """Every pair's half-widths if one more model had run its source: sd ratio of the residual model."""
        if var is None:
            return h
        now = var[regime, 0] + var[regime, 1] * (1 + 1 / np.maximum(n_models, 1))[:, None]
        later = var[regime, 0] + var[regime, 1] * (1 + 1 / (n_models + 1))[:, None]
        return h * np.sqrt(later / np.where(now > 0, now, 1.0))[None]

    picks = []
    for rank in range(1, k + 1):
        if not allowed.any():
            break
        own = pair_uncertainty(half)
        spill = np.where(unrun, own - pair_uncertainty(one_more_model(half)), 0.0)  # to the source's other pairs
        gain = np.where(allowed, own + spill.sum(axis=0)[None] - spill, -np.inf)
        pm, ps = np.unravel_index(int(np.argmax(gain)), gain.shape)
        picks.append((models[pm], *cells[ps], float(gain[pm, ps]), rank))
        half[:, ps] = one_more_model(half)[:, ps]
        half[pm, ps], unrun[pm, ps], allowed[pm, ps] = 0.0, False, False
        n_models[ps] += 1
    return pd.DataFrame(picks, columns=[*PAIR_KEYS, "gain", "rank"])
