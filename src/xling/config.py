"""Pydantic specs: YAML in, validated, extra fields forbidden.

Every spec a user writes (a model, LoRA and training parameters, scoring options, a grid) is a
``Spec``; ``load_spec`` reads YAML safely and turns validation errors into one-line ``XlingError``s
that name the file and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xling.errors import XlingError
from xling.registry import MODEL_KINDS

S = TypeVar("S", bound="Spec")


class Spec(BaseModel):
    """Base of every spec: unknown fields are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: ``source: field a.b: message (got value)`` for the first error, plus a count of the rest."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    got = first.get("input")
    got_txt = "" if first["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
    more = len(err.errors()) - 1
    tail = f"; and {more} more error(s)" if more else ""
    return f"{source}: field '{loc}': {first['msg']}{got_txt}{tail}"


def parse_spec(cls: type[S], data: object, source: str = "config") -> S:
    """Validate ``data`` as ``cls``; raise ``XlingError`` naming ``source`` and the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise XlingError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise XlingError(format_validation_error(err, source)) from None


def load_yaml(path: str | Path) -> object:
    """Read a YAML file with ``yaml.safe_load``; unreadable or malformed files raise ``XlingError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise XlingError(f"{path}: cannot read file ({err.strerror or err})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise XlingError(f"{path}:{where} invalid YAML: {problem}") from None


def load_spec(cls: type[S], path: str | Path) -> S:
    """Load and validate a YAML spec file."""
    return parse_spec(cls, load_yaml(path), str(path))


# --- models, adapters, training, scoring: shared by train.py, score.py and the grid -----------------

_FAMILIES = (("llama", "Llama"), ("qwen", "Qwen"), ("gemma", "Gemma"), ("mistral", "Mistral"), ("phi", "Phi"))
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([bBmM])(?![A-Za-z])")


def parse_family(name: str) -> str:
    """Model family from a name: Llama/Qwen/Gemma/... by substring, else the name without its size part."""
    low = name.lower()
    for needle, family in _FAMILIES:
        if needle in low:
            return family
    stem = _SIZE.split(name)[0].rstrip("-_ ./")
    return stem or name


def parse_size(name: str) -> float:
    """Size in billions from a name (``1.5B`` -> 1.5, ``270M`` -> 0.27); NaN when none is written."""
    match = _SIZE.search(name)
    if match is None:
        return float("nan")
    value = float(match.group(1))
    return value / 1000.0 if match.group(2).lower() == "m" else value


class ModelSpec(Spec):
    """A model to fine-tune and score.

    ``kind`` is ``causal`` (multiple-choice by continuation log-likelihood, lm-eval rules) or ``encoder``
    (a sentence encoder: score(choice) = cosine(enc(context), enc(choice))).
    ``path`` is a hub id or a local folder; ``family`` and ``size`` are parsed from the name when empty.
    ``chat_template`` wraps prompts in the model's chat template (``train.chat_template`` and
    ``score.chat_template`` override it per phase; the paper trained without and evaluated with it).
    ``attn_implementation`` is passed to transformers (``None``: its default, SDPA); scoring packs the choices
    of an item into one row only where the implementation takes a 4-D mask (``eager``, ``sdpa``).
    """

    name: str
    path: str | None = None
    kind: MODEL_KINDS.choices() = "causal"  # type: ignore[valid-type]
    revision: str | None = None
    family: str | None = None
    size: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template: bool = False
    attn_implementation: str | None = None

    @property
    def location(self) -> str:
        """Where to load the weights from: ``path`` if given, else ``name``."""
        return self.path or self.name

    @property
    def size_billions(self) -> float:
        """``size`` (else the name) in billions of parameters; NaN when neither says."""
        size = parse_size(self.size) if self.size else math.nan
        return size if math.isfinite(size) else parse_size(self.name)


PAPER_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSpec(Spec):
    """LoRA adapter parameters (the paper's: r 32, alpha 64, peft's default dropout 0).

    ``target_modules``: module names (the paper's seven attention and MLP projections, ``PAPER_LORA_MODULES``)
    or ``all-linear`` (every linear layer but the output head: the same set on Llama, Qwen and Gemma text models).
    """

    r: int = Field(32, gt=0)
    alpha: int = Field(64, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainSpec(Spec):
    """Fine-tuning of one source cell; the defaults are the release's ``finetune.py`` (HF Trainer) settings.

    - ``prompt_format``: ``auto`` trains on the task's evaluation format (loss on the answer); ``paper`` on the
      release's examples (``xling.tasks.prompts.train_example``): prompt and target tokenised separately without
      special tokens and left-truncated (ARC, Global-MMLU, HellaSwag), TruthfulQA as language modelling with the
      tokenizer's own special tokens, padded to its length, right-truncated; ARC rows whose answer is not A–D are
      dropped before the split;
    - ``max_length``: tokens per example; ``None`` = the task's own (the paper's: ARC 256, TruthfulQA 128,
      others 512);
    - ``val_fraction``/``split_seed``: the validation split is ``datasets``' ``train_test_split(test_size=
      val_fraction, seed=split_seed)`` over the training rows in their release order (the paper: 0.1, 42);
    - ``max_grad_norm``: gradient clipping (Trainer's default 1.0; ``None`` = off);
    - AdamW with ``weight_decay`` (the Trainer's 0), linear warm-up over ``warmup_ratio × steps`` steps from 0,
      rounded up (``warmup_rounding: ceil``, the Trainer's) or to the nearest step (``round``), then linear decay
      (transformers' ``get_linear_schedule_with_warmup``); validation loss after every epoch as the Trainer
      computes it (the mean over batches of each batch's token-mean loss, weighted by rows); the adapter of the
      best epoch is kept (``keep_best_epoch``);
    - ``chat_date``: the date a chat template prints when ``chat_template`` is on (``None``: today's).
    - ``batch_size: auto``: the Trainer's ``auto_find_batch_size``: start at 8 and, on a CUDA out-of-memory error,
      halve it and train again from the start (the size used and the restarts are in ``train_log.json``).
    """

    epochs: int = Field(3, gt=0)
    lr: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    batch_size: PositiveInt | Literal["auto"] = 8
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = 42
    max_train_items: int | None = Field(None, gt=0)
    max_length: int | None = Field(None, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_rounding: Literal["ceil", "round"] = "ceil"
    gradient_checkpointing: bool = False
    keep_best_epoch: bool = True
    prompt_format: Literal["auto", "paper", "letters", "continuation", "lm"] = "auto"
    temperature: float = Field(0.05, gt=0)
    chat_template: bool | None = None
    chat_date: str | None = "26 Jul 2024"


class ScoreSpec(Spec):
    """Multiple-choice scoring options.

    - ``benchmark_format``: a paper benchmark's lm-eval task format (``lm-eval``: okapi ``arc_{lang}`` with its
      text clean-up, ``truthfulqa_{lang}_mc1`` with the six-shot QA primer and ``Q:/A:``, gold at index 0;
      inferred from the release's task names, its YAMLs are not released) or ``plain`` (``Question: …\\nAnswer:``
      and the option text, no clean-up; TruthfulQA gold = the true label);
    - ``chat_date``: the date a chat template prints (Llama-3 templates print today's unless given; ``None``:
      today's), so scores do not depend on the day they were computed;
    - ``merge``: score each adapter merged into the base weights in the model's dtype, one at a time, as the
      release did (merge, then lm-eval); otherwise adapters stay unmerged and are mixed in one forward;
    - ``pack_choices``: the choices of an item share one row behind their context (a 4-D mask; only used where
      the attention implementation takes one).
    A CUDA out-of-memory error halves ``batch_size`` (then ``adapters_per_batch``) and retries the batch;
    ``batch_size: auto`` takes, on a GPU, as many rows per batch as the free memory holds by the formula
    ``xling.models.causal.forward_bytes`` (the encoder kind: 64), and 16 on a CPU; the size used is recorded in
    ``run.json``.
    """

    batch_size: PositiveInt | Literal["auto"] = 16
    max_items: int | None = Field(None, gt=0)
    split: str = "test"
    prompt_format: Literal["auto", "letters", "continuation"] = "auto"
    benchmark_format: Literal["lm-eval", "plain"] = "lm-eval"
    adapters_per_batch: int = Field(8, gt=0)
    chat_template: bool | None = None
    chat_date: str | None = "26 Jul 2024"
    merge: bool = False
    pack_choices: bool = True


class EngineConfig(Spec):
    """``--config`` of ``xling train``/``xling eval``: LoRA, training and scoring options (all optional)."""

    model: ModelSpec | None = None
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    score: ScoreSpec = Field(default_factory=ScoreSpec)


# --- the transfer grid -------------------------------------------------------------------------------


class Cell(Spec):
    """One task × language cell."""

    task: str
    language: str

    @property
    def name(self) -> str:
        return f"{self.task}/{self.language}"


class SlurmSpec(Spec):
    """Slurm job-array settings (submitit). ``cluster: local`` runs the same jobs as local subprocesses."""

    partition: str | None = None
    time_min: int = Field(240, gt=0)
    gpus_per_node: int = Field(1, ge=0)
    cpus_per_task: int = Field(4, gt=0)
    mem_gb: int = Field(32, gt=0)
    array_parallelism: int = Field(64, gt=0)
    folder: str | None = None
    cluster: Literal["slurm", "local", "debug"] | None = None
    additional_parameters: dict[str, str] = Field(default_factory=dict)


class ExecutorSpec(Spec):
    """Where units of work run, for every kind of grid. ``cpus_per_unit`` is each job's CPU request (Ray); GPUs are
    requested by the grid kind where GPUs exist."""

    kind: Literal["local", "ray", "slurm"] = "local"
    address: str | None = None
    cpus_per_unit: float = Field(1.0, gt=0)
    num_workers: int | None = Field(None, gt=0)
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)


class TransferExecutorSpec(ExecutorSpec):
    """The transfer grid's executor: GPUs per training and per scoring job, and ``train_units_per_job``: training
    units of one base model that one worker trains in turn, the base model loaded once (a fresh adapter each unit;
    the same bytes as a fresh process per unit)."""

    gpus_per_train: float = Field(1.0, ge=0)
    gpus_per_score: float = Field(1.0, ge=0)
    train_units_per_job: int = Field(8, gt=0)


class AdaptiveSpec(Spec):
    """How a grid with a ``budget`` chooses what to run (``xling.studies.transfer.adaptive``).

    - ``per_source``: models that run each source cell in the initial design (at least 2, so the predictor can
      calibrate its intervals on sources run by another model);
    - ``per_round``: (model, source cell) pairs chosen per round after it (``None``: a tenth of the grid's pairs,
      at least one);
    - ``level``: the nominal coverage of the predicted cells' intervals; ``n_folds``: the cross-validation folds
      that calibrate them; ``seed``: the initial design's and the folds' random seed.
    """

    per_source: int = Field(2, ge=2)
    per_round: PositiveInt | None = None
    level: float = Field(0.9, ge=0.5, lt=1.0)
    n_folds: int = Field(5, ge=2)
    seed: int = 0


class GridSpec(Spec):
    """A whole transfer study: models × source cells × seeds trained, base and adapters scored on every target.

    ``budget`` makes it an adaptive grid: at most that many training units run (an integer: a number of units; a
    decimal in (0, 1]: a fraction of the grid's), chosen as ``adaptive`` says, and the other cells are predicted.
    """

    name: str = "grid"
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    sources: list[Cell] | None = None
    targets: list[Cell] | None = None
    seeds: list[int] = Field(default_factory=lambda: [17, 42, 101], min_length=1)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    score: ScoreSpec = Field(default_factory=ScoreSpec)
    executor: TransferExecutorSpec = Field(default_factory=TransferExecutorSpec)
    output: str = "xling-out/grid"
    max_retries: int = Field(2, ge=0)
    analyze: bool = True
    adaptive: AdaptiveSpec | None = None
    budget: StrictInt | StrictFloat | None = None  # after ``adaptive``: its check reads it

    @field_validator("budget")
    @classmethod
    def _budget_fits(cls, value: int | float | None, info: ValidationInfo) -> int | float | None:
        """A budget is positive, no larger than the grid and at least the initial design, with two models or more
        (the predictor learns what a source transfers from the other models that ran it) and the same source and
        target cells."""
        data = info.data
        needed = {"models", "tasks", "languages", "sources", "targets", "seeds", "adaptive"}
        if value is None or not needed <= data.keys():
            return value
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError(
                "a fraction of the grid's training units must be in (0, 1]; for a number of units write an integer"
            )
        if isinstance(value, int) and value < 1:
            raise ValueError("the number of training units must be at least 1")
        n_models = len(data["models"])
        if n_models < 2:
            raise ValueError(
                "a budget needs at least 2 models: the cells that are not run are predicted from the models that "
                "ran the same source cell"
            )
        every = {(t, lang) for t in data["tasks"] for lang in data["languages"]}
        sources = {(c.task, c.language) for c in data["sources"]} if data["sources"] is not None else every
        targets = {(c.task, c.language) for c in data["targets"]} if data["targets"] is not None else every
        if sources != targets:
            raise ValueError(
                "a budget needs the same source and target cells: a cell is predicted as a source from what it "
                "transfers as a target"
            )
        adaptive = data["adaptive"] or AdaptiveSpec()
        if adaptive.per_source > n_models:
            raise ValueError(f"adaptive.per_source is {adaptive.per_source}, more than the {n_models} models")
        n_seeds = len(data["seeds"])
        total = n_models * len(sources) * n_seeds
        units = value if isinstance(value, int) else math.floor(value * total + 1e-9)
        if units > total:
            raise ValueError(
                f"{units} training units is more than the whole grid's {total}; leave budget out to run all"
            )
        first = adaptive.per_source * len(sources) * n_seeds
        if units < first:
            raise ValueError(
                f"{units} training units is less than the initial design's {first} (every source cell for "
                f"{adaptive.per_source} models, {n_seeds} seed(s) each); raise it"
            )
        return value

    @model_validator(mode="after")
    def _adaptive_needs_budget(self) -> GridSpec:
        if self.adaptive is not None and self.budget is None:
            raise ValueError("'adaptive' is set but 'budget' is not; an adaptive grid needs a budget")
        return self

    def budget_units(self) -> int | None:
        """The most training units the grid may run (``None``: no budget, the whole grid)."""
        if self.budget is None:
            return None
        total = len(self.models) * len(self.source_cells()) * len(self.seeds)
        return self.budget if isinstance(self.budget, int) else math.floor(self.budget * total + 1e-9)

    def relative_to(self, folder: str | Path) -> GridSpec:
        """The spec with ``output``, task files (``*.yaml``) and local model folders relative to ``folder`` (its
        file's folder, as every path in a spec); a model ``path`` that is no folder there stays as written (a hub
        id)."""
        folder = Path(folder)

        def under(path: str) -> str:
            p = Path(path).expanduser()
            return str(p if p.is_absolute() else folder / p)

        def task(name: str) -> str:
            return under(name) if name.endswith((".yaml", ".yml")) else name

        self.output = under(self.output)
        self.tasks = [task(t) for t in self.tasks]
        for cell in [*(self.sources or []), *(self.targets or [])]:
            cell.task = task(cell.task)
        for model in self.models:
            if model.path and not Path(model.path).is_absolute() and (folder / model.path).is_dir():
                model.path = str(folder / model.path)
        return self

    def source_cells(self) -> list[Cell]:
        """The cells adapters are trained on (default: every task × language)."""
        return self.sources if self.sources is not None else self.all_cells()

    def target_cells(self) -> list[Cell]:
        """The cells every model is scored on (default: every task × language)."""
        return self.targets if self.targets is not None else self.all_cells()

    def all_cells(self) -> list[Cell]:
        return [Cell(task=t, language=lang) for t in self.tasks for lang in self.languages]
