"""The one interface every model kind implements, and the score rows every kind produces.

A model kind (a causal LM scored by continuation log-likelihood, a sentence encoder scored by cosine, any later
one) is four things: ``load`` the base model once; the LoRA configuration of its projections; training
``examples`` and the ``batch_loss`` of a batch of them (for the one training loop, ``xling.train``); and a
``scorer`` that gives one row per (adapter, item, choice) for the one scoring driver (``xling.score``). Nothing
outside the kinds asks which kind a model is.
"""

from __future__ import annotations

import hashlib
import json
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.tasks.items import MCItem

#: One row per (adapter, item, choice): the log-likelihood table every scorer returns.
COLUMNS = [
    "adapter",
    "task",
    "language",
    "item_id",
    "choice",
    "loglik",
    "n_tokens",
    "n_chars",
    "n_bytes",
    "is_greedy",
    "is_gold",
    "kind",
]


class Loaded(Protocol):
    """A loaded base model: the (possibly LoRA-wrapped) ``model``, its tokenizer, device and fingerprint."""

    model: Any
    tokenizer: Any
    device: Any
    fingerprint: str


@dataclass
class Loss:
    """The loss of one training batch: ``value`` (the mean to back-propagate), ``row_total`` (the batch's mean
    loss times its rows, as the HF Trainer averages validation losses) and, where the kind knows it, how many
    rows the model got right. ``row_total`` and ``correct`` may be 0-d tensors on the model's device: the training
    loop sums them there and reads them once per epoch, so no step waits for the device."""

    value: Any
    row_total: Any
    rows: int
    correct: Any = None


class Scorer(Protocol):
    """A base model with adapters attached, scoring one cell's items at a time."""

    def score(self, items: Sequence[MCItem]) -> Any:
        """One row per (adapter, item, choice), columns ``COLUMNS``; ``attrs['peak_memory_bytes']`` set."""


class ModelKind(Protocol):
    """What ``xling.train`` and ``xling.score`` need of a kind of model."""

    name: str
    #: acc_norm divides a choice's score by its length (lm-eval's log-likelihoods); False: acc_norm = acc
    length_normalised: bool

    def load(self, spec: ModelSpec) -> Loaded:
        """The base model (eval mode) and tokenizer, loaded once."""

    def lora_config(self, lora: LoraSpec) -> Any:
        """The ``peft.LoraConfig`` for this kind's projections."""

    def examples(self, loaded: Loaded, items: Sequence[MCItem], spec: TrainSpec, chat: bool) -> list:
        """Training examples of ``items`` (whatever ``batch_loss`` takes)."""

    def batch_loss(self, loaded: Loaded, examples: Sequence, spec: TrainSpec) -> Loss:
        """The loss of one batch under ``loaded.model`` (gradients flow unless disabled)."""

    def scorer(
        self, spec: ModelSpec, adapters: Mapping[str, Path | None], score: ScoreSpec, items: Sequence[MCItem]
    ) -> Scorer:
        """The base model with every adapter attached; ``items`` are all the items it will be asked to score."""


AUTO_SCORE_BATCH = {"cuda": 64, "cpu": 16}  # lm-eval's ``auto`` searches up to max_batch_size 64 on a GPU


def auto_batch(batch_size: int | str, device) -> int:
    """A scoring batch size: the given one, or for ``auto`` where the search starts on this device (a CUDA
    out-of-memory error then halves it)."""
    return AUTO_SCORE_BATCH.get(device.type, 16) if batch_size == "auto" else int(batch_size)


def to_device(x, device):
    """A host tensor on ``device``; to a GPU through pinned memory without blocking (a plain ``.to`` from pageable
    memory waits for the device)."""
    import torch

    if torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def peak_memory_bytes(device) -> int:
    """Peak GPU memory allocated (CUDA) or the process's peak resident memory (CPU)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def base_fingerprint(model) -> str:
    """A short hash of the architecture config and a slice of the input embeddings: tells base models apart.
    The slice is rounded to bf16 first, so the same weights loaded in float32, bfloat16 or float16 match."""
    import torch

    config = {
        k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "torch_dtype" and k != "dtype"
    }
    emb = model.get_input_embeddings().weight.detach()[:8].to(torch.bfloat16).to(torch.float32).cpu().numpy()
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(emb.tobytes())
    return h.hexdigest()[:16]
