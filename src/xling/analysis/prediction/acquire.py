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


def _variance(scale: np.ndarray, regime: np.ndarray, n_models: np.ndarray, n_sources: np.ndarray) -> np.ndarray:
    """The scale model's residual variance a + b_models / n_models + b_sources / n_sources per cell."""
    coef = scale[regime]
    return coef[..., 0] + coef[..., 1] / np.maximum(n_models, 1) + coef[..., 2] / np.maximum(n_sources, 1)


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
    recipient mean (over models and the other sources); their uncertainty is the sum of the variances of these means,
    with an interval's half-width as a cell's error scale, a pair's errors moving together over its targets (donor) and
    independently across pairs (recipient). Running a pair removes its cells' uncertainty and, with ``scale``
    (``TransferPredictor.scale_``), shrinks the other unrun pairs of its source and of its model as the scale model
    says one more run does. Picks are greedy, each given the earlier ones. ``candidates`` (``model_name,
    fine_tuned_dataset, fine_tuned_language``) restricts the choice. Returns those columns, ``gain`` (the reduction,
    pp^2) and ``rank`` (1 = first).
    """
    models = sorted(predictions["model_name"].unique())
    cells = sorted(set(zip(predictions["eval_dataset"], predictions["eval_language"])))
    nm, nc = len(models), len(cells)
    index = {c: i for i, c in enumerate(cells)}
    m = predictions["model_name"].map({name: i for i, name in enumerate(models)}).to_numpy()
    s = pd.Series(list(zip(predictions["fine_tuned_dataset"], predictions["fine_tuned_language"]))).map(index)
    t = pd.Series(list(zip(predictions["eval_dataset"], predictions["eval_language"]))).map(index).to_numpy()
    s = s.to_numpy()
    run = np.zeros((nm, nc), dtype=bool)
    observed = predictions["observed"].astype(bool).to_numpy()
    run[m[observed], s[observed]] = True
    half = np.zeros((nm, nc, nc))
    half[m[~observed], s[~observed], t[~observed]] = (
        predictions["delta_hi"].to_numpy()[~observed] - predictions["delta_lo"].to_numpy()[~observed]
    ) / 2.0
    unrun = np.zeros((nm, nc), dtype=bool)
    unrun[m[~observed], s[~observed]] = True
    allowed = unrun.copy()
    if candidates is not None:
        allowed[:] = False
        cm = candidates["model_name"].map({name: i for i, name in enumerate(models)})
        cs = pd.Series(list(zip(candidates["fine_tuned_dataset"], candidates["fine_tuned_language"]))).map(index)
        ok = cm.notna().to_numpy() & cs.notna().to_numpy()
        allowed[cm[ok].astype(int), cs[ok].astype(int)] = True
        allowed &= unrun

    task = np.array([sorted({c[0] for c in cells}).index(c[0]) for c in cells])
    lang = np.array([sorted({c[1] for c in cells}).index(c[1]) for c in cells])
    transfer = regime_codes(task, lang) != MTML  # (s, t)
    regime = regime_codes(task, lang)
    n_donor_cells = np.maximum(transfer.sum(axis=1), 1)  # per source
    w_recipient = 1.0 / (nm * np.maximum(transfer.sum(axis=0), 1)) ** 2  # per target
    coef = None if scale is None else scale.set_index("regime").loc[list(REGIMES)].to_numpy(dtype=float)

    def pair_uncertainty(h: np.ndarray) -> np.ndarray:
        """Each pair's share of the total: donor term (mean half-width over its transfer targets)^2 / nm^2 plus its
        cells' recipient terms."""
        donor = ((h * transfer[None]).sum(axis=2) / n_donor_cells[None]) ** 2 / nm**2
        return donor + (h**2 * transfer[None] * w_recipient[None, None, :]).sum(axis=2)

    def after_one_more(h: np.ndarray, n_models: np.ndarray, n_sources: np.ndarray, axis: str) -> np.ndarray:
        """Half-widths of every pair if its source (``axis='source'``) or its model had one more run pair."""
        if coef is None:
            return h
        nmod = np.broadcast_to(n_models[None, :, None], h.shape)
        nsrc = np.broadcast_to(n_sources[:, None, None], h.shape)
        reg = np.broadcast_to(regime[None], h.shape)
        now = _variance(coef, reg, nmod, nsrc)
        later = _variance(coef, reg, nmod + (axis == "source"), nsrc + (axis == "model"))
        return h * np.sqrt(np.where(now > 0, later / np.where(now > 0, now, 1.0), 1.0))

    picks = []
    for rank in range(1, k + 1):
        if not allowed.any():
            break
        n_models, n_sources = run.sum(axis=0), run.sum(axis=1)
        own = pair_uncertainty(half)
        src_gain = np.where(unrun, own - pair_uncertainty(after_one_more(half, n_models, n_sources, "source")), 0.0)
        mod_gain = np.where(unrun, own - pair_uncertainty(after_one_more(half, n_models, n_sources, "model")), 0.0)
        gain = own + (src_gain.sum(axis=0)[None] - src_gain) + (mod_gain.sum(axis=1)[:, None] - mod_gain)
        gain = np.where(allowed, gain, -np.inf)
        pm, ps = np.unravel_index(int(np.argmax(gain)), gain.shape)
        picks.append((models[pm], *cells[ps], float(gain[pm, ps]), rank))
        if coef is not None:  # the other unrun pairs of this source and of this model narrow
            by_source = after_one_more(half, n_models, n_sources, "source")
            by_model = after_one_more(half, n_models, n_sources, "model")
            half[:, ps] = by_source[:, ps]
            half[pm] = by_model[pm]
        half[pm, ps], run[pm, ps], unrun[pm, ps], allowed[pm, ps] = 0.0, True, False, False
    return pd.DataFrame(picks, columns=[*PAIR_KEYS, "gain", "rank"])
