"""The adaptive transfer grid: run a budget of training units, chosen round by round, and predict the rest.

A grid spec with ``budget:`` runs, first, an initial design that runs every source cell for ``adaptive.per_source``
models (so every task and every language is a source at least that often, and the predictor can calibrate on
sources run by another model: ``xling.analysis.prediction.initial_design``), every model's base scores with it.
After each round the predictor (``TransferPredictor``) is fitted on the finished cells and the next
``adaptive.per_round`` (model, source cell) pairs are those whose runs most reduce the uncertainty of the donor and
recipient means (``choose_next``), until the budget's training units are spent. A pair is trained with every seed,
so a budget that is not a multiple of the seeds runs fewer units, never more.

Every round is one line of ``OUTPUT/store/design.jsonl`` (append-only, written in one write and synced): a rerun
replays the log instead of choosing again, so after Ctrl-C or a kill it runs the same units as a run that was never
stopped, and chooses the next round from the same finished units. Pairs are named by model, dataset label and
language (``model_name, fine_tuned_dataset, fine_tuned_language`` of the results table), not by file paths.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from xling.config import AdaptiveSpec, GridSpec
from xling.errors import XlingError
from xling.grid.store import Store
from xling.studies.transfer.units import Plan, ScoreUnit, TrainUnit, make_plan

#: The design log's file name in the store folder.
DESIGN_LOG = "design.jsonl"
PAIR = ("model_name", "fine_tuned_dataset", "fine_tuned_language")


class DesignLog:
    """The rounds chosen so far, one JSON line each (``round``, ``pairs``, ``training_units``); a torn last line of a
    killed writer is not a round (it is dropped before the next line is written)."""

    def __init__(self, store_root: str | Path) -> None:
        self.path = Path(store_root) / DESIGN_LOG

    def rounds(self) -> list[dict]:
        """Every complete round, in order."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        out = []
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break
        return out

    def append(self, record: dict) -> None:
        """Add one round: a torn tail is cut first, then the line is written in one ``write`` and synced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            data = os.read(fd, os.fstat(fd).st_size) if os.fstat(fd).st_size else b""
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                os.ftruncate(fd, keep)
            os.lseek(fd, keep, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def settings(spec: GridSpec) -> AdaptiveSpec:
    """The spec's ``adaptive`` settings (defaults where it has none)."""
    return spec.adaptive or AdaptiveSpec()


def per_round(spec: GridSpec) -> int:
    """Pairs chosen per round: ``adaptive.per_round``, else a tenth of the grid's pairs (at least one)."""
    n_pairs = len(spec.models) * len(spec.source_cells())
    return settings(spec).per_round or max(1, math.ceil(n_pairs / 10))


def budget_pairs(spec: GridSpec) -> int:
    """The most (model, source cell) pairs the budget runs: each is trained with every seed."""
    return spec.budget_units() // len(spec.seeds)


def budget_summary(spec: GridSpec) -> dict:
    """What ``xling grid plan`` shows of a budget, from the spec alone: the training units that run at most (of
    the grid's), the initial design's, the pairs per round, and one line saying it."""
    a, seeds = settings(spec), len(spec.seeds)
    total = len(spec.models) * len(spec.source_cells()) * seeds
    units = budget_pairs(spec) * seeds
    first = a.per_source * len(spec.source_cells()) * seeds
    k = per_round(spec)
    line = (
        f"budget: at most {units:,} of the grid's {total:,} training units ({100 * units / total:.0f} %); initial "
        f"design: {first:,} training units (every source cell for {a.per_source} models); then rounds of {k} "
        f"(model, source cell) pair{'s' if k > 1 else ''} ({k * seeds} training units) chosen by the predictor; the "
        f"other cells are predicted with {a.level:.0%} intervals"
    )
    return {
        "training_units": units,
        "grid_training_units": total,
        "initial_design": first,
        "per_round": k,
        "line": line,
    }


def pair_of(plan: Plan, unit: TrainUnit) -> tuple[str, str, str]:
    """A training unit's (model name, dataset label, language)."""
    return unit.model.name, plan.task_labels[unit.source.task], unit.source.language


def source_labels(spec: GridSpec, plan: Plan) -> list[tuple[str, str]]:
    """The source cells as (dataset label, language), in the spec's order; labels must tell the tasks apart."""
    labels = list(plan.task_labels.values())
    if len(set(labels)) != len(labels):
        raise XlingError(
            f"grid spec: field 'budget': two tasks carry the same label ({', '.join(sorted(labels))}); the adaptive "
            "grid tells source cells apart by label"
        )
    return [(plan.task_labels[c.task], c.language) for c in spec.source_cells()]


def first_design(spec: GridSpec, plan: Plan) -> pd.DataFrame:
    """The initial design's pairs (``PAIR`` columns), checked to calibrate the predictor's intervals."""
    from xling.analysis.prediction import initial_design
    from xling.analysis.prediction.predictor import check_design

    a = settings(spec)
    cells = source_labels(spec, plan)
    design = initial_design([m.name for m in spec.models], cells, per_source=a.per_source, seed=a.seed)
    try:
        check_design(design, cells, level=a.level, n_folds=a.n_folds, seed=a.seed)
    except XlingError as err:
        raise XlingError(
            f"grid spec: field 'budget': the initial design cannot calibrate the predicted cells' intervals: {err}"
        ) from None
    return design


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [tuple(p) for p in frame[list(PAIR)].itertuples(index=False, name=None)]


def logged_pairs(spec: GridSpec, plan: Plan, log: DesignLog) -> list[list[tuple[str, str, str]]]:
    """The pairs of every round so far: the log's, checked against this spec, or the initial design alone."""
    design = _pairs(first_design(spec, plan))
    rounds = [[tuple(p) for p in r["pairs"]] for r in log.rounds()]
    if not rounds:
        return [design]
    if rounds[0] != design:
        raise XlingError(
            f"{log.path}: its initial design is not this spec's (models, source cells or adaptive settings changed); "
            "use another output folder for the changed grid"
        )
    known = {pair_of(plan, u) for u in plan.train}
    stray = [p for r in rounds for p in r if p not in known]
    if stray:
        raise XlingError(f"{log.path}: pair {'/'.join(stray[0])} is not in this grid; use another output folder")
    n = sum(len(r) for r in rounds)
    if n > budget_pairs(spec):
        raise XlingError(
            f"{log.path}: {n * len(spec.seeds)} training units were chosen already, more than the budget's "
            f"{spec.budget_units()}; raise the budget or use another output folder"
        )
    return rounds


def select(plan: Plan, pairs: set[tuple[str, str, str]]) -> list[TrainUnit | ScoreUnit]:
    """The units of ``pairs``: their training units (every seed), every model's base scores and their adapters'."""
    train = [u for u in plan.train if pair_of(plan, u) in pairs]
    keys = {u.key for u in train}
    score = [u for u in plan.score if u.adapter is None or u.adapter.key in keys]
    return [*train, *score]


def chosen_units(spec: GridSpec, store_root: str | Path) -> list[TrainUnit | ScoreUnit]:
    """The units of every round chosen so far (the initial design before the first round is logged); reads the
    log, writes nothing."""
    plan = make_plan(spec)
    rounds = logged_pairs(spec, plan, DesignLog(store_root))
    return select(plan, {p for r in rounds for p in r})


def predict_grid(spec: GridSpec, table: pd.DataFrame) -> tuple[pd.DataFrame, object]:
    """Fit the predictor on the finished cells (release schema) and predict the others: the ``PREDICTION_COLUMNS``
    table plus ``ci_method`` (the interval's level and method on predicted rows, none on observed ones), and the
    fitted predictor."""
    from xling.analysis.prediction import TransferPredictor

    a = settings(spec)
    predictor = TransferPredictor(level=a.level, n_folds=a.n_folds, seed=a.seed).fit(table, "the finished cells")
    out = predictor.predict()
    method = f"{a.level:.0%} {predictor.calibration_['ci_method']}"
    out["ci_method"] = np.where(out["observed"].astype(bool), None, method)
    return out, predictor


def next_round(spec: GridSpec, store: Store, units: list, table: pd.DataFrame, say) -> list:
    """The units of the next round chosen from the finished cells ``table`` (release schema), logged; none once
    the budget is spent, no pair is left, or the predictor cannot be fitted (``say`` tells why)."""
    from xling.analysis.prediction import choose_next

    plan = make_plan(spec)
    log = DesignLog(store.root)
    rounds = logged_pairs(spec, plan, log)
    seeds, budget = len(spec.seeds), spec.budget_units()
    if not log.rounds():
        log.append({"round": 0, "pairs": rounds[0], "training_units": len(rounds[0]) * seeds})
        say(f"round 0 (initial design): {_n_pairs(rounds[0])}, {_spent(rounds, spec)}")
    chosen = {p for r in rounds for p in r}
    room = budget_pairs(spec) - len(chosen)
    if room <= 0:
        say(f"budget spent: {len(chosen) * seeds}/{budget} training units; the other cells are predicted")
        return []
    try:
        predictions, predictor = predict_grid(spec, table)
    except XlingError as err:
        say(f"adaptive grid: stopped with {len(chosen) * seeds}/{budget} training units run: {err}")
        return []
    candidates = pd.DataFrame([pair_of(plan, u) for u in plan.train], columns=list(PAIR)).drop_duplicates()
    candidates = candidates[[p not in chosen for p in _pairs(candidates)]]
    picks = choose_next(predictions, min(per_round(spec), room), scale=predictor.scale_, candidates=candidates)
    if picks.empty:
        say(f"no pair left to choose: {len(chosen) * seeds}/{budget} training units run")
        return []
    new = _pairs(picks)
    rounds.append(new)
    log.append({"round": len(rounds) - 1, "pairs": new, "training_units": len(new) * seeds})
    say(f"round {len(rounds) - 1}: {_n_pairs(new)} chosen, {_spent(rounds, spec)}")
    have = {u.key for u in units}
    return [u for u in select(plan, set(new)) if u.key not in have]


def _n_pairs(pairs: list) -> str:
    return f"{len(pairs)} (model, source cell) pair{'' if len(pairs) == 1 else 's'}"


def _spent(rounds: list[list], spec: GridSpec) -> str:
    n = sum(len(r) for r in rounds) * len(spec.seeds)
    return f"{n}/{spec.budget_units()} training units of the budget"
