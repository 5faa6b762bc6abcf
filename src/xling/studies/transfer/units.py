"""Units of work of a grid and their keys.

A grid is two kinds of unit: ``train(model, source cell, seed)`` produces an adapter, and
``score(model, base | adapter, targets)`` produces the scores of that model on every target cell. A unit's key
hashes everything that determines its result (model revision, data fingerprint, prompt format, hyper-parameters,
seed, the version of the training or scoring rules) and nothing that does not (labels such as the model's display
name), so rerunning a spec skips finished units and changing one hyper-parameter reruns exactly the units it affects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from xling.config import Cell, GridSpec, ModelSpec
from xling.errors import XlingError
from xling.grid.store import unit_key

# Bump when a change to train.py or score.py changes results, so stale units are recomputed.
TRAINING_RULES_VERSION = "train-1"
SCORING_RULES_VERSION = "lm-eval-0.4-mc-1"


@dataclass(frozen=True)
class TrainUnit:
    """Fine-tune ``model`` with LoRA on one source cell with one seed."""

    key: str
    model: ModelSpec
    source: Cell
    seed: int
    stage = "train"
    deps = ()

    @property
    def group(self) -> str:
        """Training units of one base model can share a worker."""
        return self.model.name

    def describe(self) -> str:
        return f"train {self.model.name} {self.source.name} seed={self.seed}"


@dataclass(frozen=True)
class ScoreUnit:
    """Score the base model (``adapter is None``) or one adapter on every target cell."""

    key: str
    model: ModelSpec
    adapter: TrainUnit | None
    targets: tuple[Cell, ...]
    labels: tuple[tuple[str, str], ...] = ()  # (task name, the label its items carry), as the data say

    stage = "score"

    @property
    def label(self) -> str:
        """The adapter's name in score tables: ``base`` or the train unit's key."""
        return "base" if self.adapter is None else self.adapter.key

    @property
    def deps(self) -> tuple[str, ...]:
        """An adapter is scored once it is trained; the base model needs nothing."""
        return () if self.adapter is None else (self.adapter.key,)

    @property
    def group(self) -> str:
        """The base and the adapters of one model are scored together, the base model loaded once."""
        return self.model.name

    def describe(self) -> str:
        who = "base" if self.adapter is None else f"{self.adapter.source.name} seed={self.adapter.seed}"
        return f"score {self.model.name} {who} on {len(self.targets)} targets"


@dataclass
class Plan:
    """Every unit of a grid, with the task labels read from the data."""

    spec: GridSpec
    train: list[TrainUnit] = field(default_factory=list)
    score: list[ScoreUnit] = field(default_factory=list)
    task_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_units(cls, spec: GridSpec, units: list) -> Plan:
        """The plan of a list of units (the engine's view of a grid) for the results tables."""
        score = [u for u in units if isinstance(u, ScoreUnit)]
        labels = {task: label for u in score for task, label in u.labels}
        return cls(spec, [u for u in units if isinstance(u, TrainUnit)], score, labels)

    @property
    def units(self) -> list[TrainUnit | ScoreUnit]:
        """Every unit, training units first."""
        return [*self.train, *self.score]

    @property
    def base_scores(self) -> list[ScoreUnit]:
        return [u for u in self.score if u.adapter is None]

    @property
    def adapter_scores(self) -> list[ScoreUnit]:
        return [u for u in self.score if u.adapter is not None]


def model_fingerprint(model: ModelSpec) -> dict[str, object]:
    """What identifies a model's weights: hub id + revision, or a local folder's config and file sizes."""
    ident: dict[str, object] = {
        "location": model.location,
        "revision": model.revision,
        "kind": model.kind,
        "dtype": model.dtype,
        "chat_template": model.chat_template,
    }
    folder = Path(model.location)
    if folder.is_dir():
        ident["location"] = "local"
        ident["content"] = _folder_digest(folder)
    return ident


@cache
def _folder_digest(folder: Path) -> str:
    """Hash of a model folder: the text of its JSON configs and the names and sizes of its other files."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith("."):
            continue
        h.update(rel.encode())
        if path.suffix == ".json" and path.stat().st_size < 1_000_000:
            h.update(path.read_bytes())
        else:
            h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


def check_cells(spec: GridSpec) -> tuple[list[Cell], list[Cell]]:
    """The spec's source and target cells, checked for shape (no data is read)."""
    sources, targets = spec.source_cells(), spec.target_cells()
    if not sources or not targets:
        raise XlingError("grid spec: the grid is empty (no source or no target cells)")
    for cell in [*sources, *targets]:
        if cell.task not in spec.tasks or cell.language not in spec.languages:
            raise XlingError(f"grid spec: cell {cell.name} uses a task or language not listed in 'tasks'/'languages'")
    target_names = {c.name for c in targets}
    missing = [c.name for c in sources if c.name not in target_names]
    if missing:
        raise XlingError(
            f"grid spec: source cells {', '.join(missing[:3])} are not among the targets; "
            "the regime analysis needs every source cell scored"
        )
    return sources, targets


def unit_counts(spec: GridSpec) -> dict[str, int]:
    """How many units of each stage the spec makes, from the spec alone (works before any data is prepared)."""
    sources, _ = check_cells(spec)
    n_adapters = len(spec.models) * len(sources) * len(spec.seeds)
    return {"train": n_adapters, "score": len(spec.models) + n_adapters}


def make_plan(spec: GridSpec) -> Plan:
    """Expand a grid spec into its train and score units (nothing runs; the data are read for their fingerprints)."""
    from xling.tasks.registry import items_fingerprint, load_items

    sources, targets = check_cells(spec)
    plan = Plan(spec=spec)
    target_prints = []
    for cell in targets:  # loading validates task and language names early, with one-line errors
        items = load_items(cell.task, cell.language, spec.score.split)
        plan.task_labels[cell.task] = items[0].task
        target_prints.append(items_fingerprint(items))
    score_params = spec.score.model_dump(exclude={"batch_size", "adapters_per_batch"})
    train_params = {"lora": spec.lora.model_dump(), "train": spec.train.model_dump()}
    labels = tuple(plan.task_labels.items())

    for model in spec.models:
        mprint = model_fingerprint(model)
        base = {"rules": SCORING_RULES_VERSION, "model": mprint, "targets": target_prints, "score": score_params}
        plan.score.append(
            ScoreUnit(unit_key({"unit": "score", "adapter": "base", **base}), model, None, tuple(targets), labels)
        )
        for cell in sources:
            data = items_fingerprint(load_items(cell.task, cell.language, "train"))
            for seed in spec.seeds:
                tkey = unit_key(
                    {
                        "unit": "train",
                        "rules": TRAINING_RULES_VERSION,
                        "model": mprint,
                        "data": data,
                        "language": cell.language,
                        "seed": seed,
                        **train_params,
                    }
                )
                tu = TrainUnit(tkey, model, cell, seed)
                plan.train.append(tu)
                skey = unit_key({"unit": "score", "adapter": tkey, **base})
                plan.score.append(ScoreUnit(skey, model, tu, tuple(targets), labels))
    return plan
