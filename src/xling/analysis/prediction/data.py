"""A release-schema results table as a dense (model x source cell x target cell) tensor, checked once at the edge.

A transfer grid's results are a tensor: ``y[m, s, t]`` is the delta (pp) of model ``m`` fine-tuned on source cell
``s`` and scored on target cell ``t``. A partial grid runs some (model, source) pairs; each run pair is scored on
every target cell, so ``y`` is observed in whole rows ``y[m, s, :]``. The predictor fills the other rows. Source
cells are the target cells (a cell is a (task, language) pair); the base model's score on every cell is known from
any row that scores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xling.contracts import HEADLINE_METRIC, KEYS, REGIMES
from xling.errors import XlingError

#: The delta columns a predictor can fill, and the base-score column that goes with each.
BASE_OF_DELTA = {"delta_score_norm_mean": "score_norm_base_mean", "delta_score_mean": "score_base_mean"}
#: Regime codes: ``REGIMES[code]`` (MT-ML, MT-CL, CT-ML, CT-CL).
MTML, MTCL, CTML, CTCL = range(4)


@dataclass
class TransferTensor:
    """The encoded grid. ``y`` is NaN outside the run pairs; ``observed[m, s]`` says which pairs were run.

    Attributes: ``models`` (names), ``cells`` ((task, language) pairs, sorted), ``tasks``, ``languages``,
    ``cell_task`` / ``cell_lang`` (indices of each cell's task and language), ``regime`` (codes of every (source,
    target) pair, ``REGIMES`` order), ``base`` (the base model's score on each cell, per model, as a proportion),
    ``families``, ``log_size`` (log2 of the size in billions, NaN where unknown), ``metric``.
    """

    models: list[str]
    cells: list[tuple[str, str]]
    tasks: list[str]
    languages: list[str]
    cell_task: np.ndarray
    cell_lang: np.ndarray
    regime: np.ndarray
    y: np.ndarray
    observed: np.ndarray
    base: np.ndarray
    families: list[str]
    log_size: np.ndarray
    metric: str = HEADLINE_METRIC
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """(models, cells)."""
        return len(self.models), len(self.cells)

    def masked(self, pairs: np.ndarray) -> TransferTensor:
        """The same grid with only ``pairs`` (a subset of the run pairs) observed."""
        y = np.where(pairs[:, :, None], self.y, np.nan)
        return TransferTensor(**{**self.__dict__, "y": y, "observed": pairs.copy(), "notes": list(self.notes)})


def regime_codes(cell_task: np.ndarray, cell_lang: np.ndarray) -> np.ndarray:
    """(source, target) -> regime code: MT-ML 0, MT-CL 1, CT-ML 2, CT-CL 3 (the order of ``REGIMES``)."""
    same_task = cell_task[:, None] == cell_task[None, :]
    same_lang = cell_lang[:, None] == cell_lang[None, :]
    return np.where(same_task, np.where(same_lang, MTML, MTCL), np.where(same_lang, CTML, CTCL))


def encode(table: pd.DataFrame, metric: str = HEADLINE_METRIC, source: str = "results") -> TransferTensor:
    """A validated release-schema table -> ``TransferTensor``; what the predictor cannot use is one ``XlingError``.

    Checked: the metric is a delta; at least two models; every source cell is a target cell; every target cell is
    run as a source for at least one model; every run pair is scored on every target cell; no base score is missing.
    """
    from xling.config import parse_family

    if metric not in BASE_OF_DELTA:
        raise XlingError(f"{source}: metric {metric!r} cannot be predicted; expected one of {', '.join(BASE_OF_DELTA)}")
    base_col = BASE_OF_DELTA[metric]
    models = sorted(table["model_name"].unique())
    if len(models) < 2:
        raise XlingError(
            f"{source}: one model ({models[0]}); predicting unrun cells needs at least 2 models, since what a source "
            "cell transfers is learned from the models that ran it"
        )
    missing_base = table[base_col].isna()
    if missing_base.any():
        i = int(np.flatnonzero(missing_base.to_numpy())[0])
        raise XlingError(
            f"{source}: column {base_col!r}: {int(missing_base.sum())} rows have no base score (e.g. row {i + 2}); "
            "the predictor needs the base model's score on every cell"
        )
    target_cells = sorted(set(zip(table["eval_dataset"], table["eval_language"])))
    source_cells = set(zip(table["fine_tuned_dataset"], table["fine_tuned_language"]))
    stray = sorted(source_cells - set(target_cells))
    if stray:
        raise XlingError(
            f"{source}: source cell {'/'.join(stray[0])} is not among the target cells ({len(stray)} such); "
            "every source cell must also be scored as a target"
        )
    never = [c for c in target_cells if c not in source_cells]
    if never:
        raise XlingError(
            f"{source}: source cell {'/'.join(never[0])} was not run for any model ({len(never)} of "
            f"{len(target_cells)} cells never run); run each cell as a source for at least one model"
        )
    tasks = sorted({t for t, _ in target_cells})
    languages = sorted({lang for _, lang in target_cells})
    cell_task = np.array([tasks.index(t) for t, _ in target_cells])
    cell_lang = np.array([languages.index(lang) for _, lang in target_cells])
    cell_index = {c: i for i, c in enumerate(target_cells)}
    nm, nc = len(models), len(target_cells)
    mi = table["model_name"].map({m: i for i, m in enumerate(models)}).to_numpy()
    si = pd.Series(list(zip(table["fine_tuned_dataset"], table["fine_tuned_language"]))).map(cell_index).to_numpy()
    ti = pd.Series(list(zip(table["eval_dataset"], table["eval_language"]))).map(cell_index).to_numpy()

    y = np.full((nm, nc, nc), np.nan)
    y[mi, si, ti] = table[metric].to_numpy(dtype=float)
    observed = np.zeros((nm, nc), dtype=bool)
    observed[mi, si] = True
    scored = np.isfinite(y).sum(axis=2)
    short = observed & (scored < nc)
    if short.any():
        m, s = np.argwhere(short)[0]
        raise XlingError(
            f"{source}: model {models[m]}, source cell {'/'.join(target_cells[s])}: {nc - scored[m, s]} of {nc} "
            f"target cells missing ({int(short.sum())} run pairs incomplete); every run pair must be scored on every "
            "target cell"
        )
    base_sum = np.zeros((nm, nc))
    np.add.at(base_sum, (mi, ti), table[base_col].to_numpy(dtype=float))
    base = base_sum / np.maximum(np.bincount(mi * nc + ti, minlength=nm * nc).reshape(nm, nc), 1)

    sizes = table.groupby("model_name")["model_size"].first().reindex(models).to_numpy(dtype=float)
    return TransferTensor(
        models=models,
        cells=target_cells,
        tasks=tasks,
        languages=languages,
        cell_task=cell_task,
        cell_lang=cell_lang,
        regime=regime_codes(cell_task, cell_lang),
        y=y,
        observed=observed,
        base=base,
        families=[parse_family(m) for m in models],
        log_size=np.log2(np.where(sizes > 0, sizes, np.nan)),
        metric=metric,
    )


def to_rows(tensor: TransferTensor, pairs: np.ndarray) -> pd.DataFrame:
    """Key columns and ``regime`` of every (model, source, target) cell of ``pairs`` (a (models, cells) mask), in
    model, source, target order, with the flat indices ``m, s, t``."""
    m, s = np.nonzero(pairs)
    nc = len(tensor.cells)
    m, s, t = np.repeat(m, nc), np.repeat(s, nc), np.tile(np.arange(nc), len(m))
    cells = np.array(tensor.cells, dtype=object).reshape(-1, 2)
    return pd.DataFrame(
        {
            KEYS[0]: np.array(tensor.models, dtype=object)[m],
            KEYS[1]: cells[s, 0],
            KEYS[2]: cells[s, 1],
            KEYS[3]: cells[t, 0],
            KEYS[4]: cells[t, 1],
            "regime": np.array(REGIMES, dtype=object)[tensor.regime[s, t]],
            "m": m,
            "s": s,
            "t": t,
        }
    )
