"""LoRA fine-tuning of one source cell (task × language), written as one plain loop for every model kind.

The loop follows the release's ``finetune.py`` (a Hugging Face ``Trainer``) step by step, with the settings of
``LoraSpec``/``TrainSpec``: ``transformers.set_seed(seed)`` before the model is loaded and LoRA attached; the
validation split drawn by ``datasets``' ``train_test_split``; AdamW (weight decay ``weight_decay``, 0 as the
Trainer's); linear warm-up over ``ceil(warmup_ratio × steps)`` steps (``warmup_rounding``) then linear decay
(``get_linear_schedule_with_warmup``); gradients clipped to ``max_grad_norm``; the validation loss after every
epoch as the Trainer computes it (the mean over batches of each batch's mean loss, weighted by rows); the adapter
of the best epoch is kept. What a batch's loss is belongs to the model kind (``xling.models``: the mean over the
batch's target tokens for a causal LM, a cross-entropy over each item's choices for an encoder); on a GPU with a
bf16 model the causal kind runs its forward passes under bf16 autocast, as the Trainer's ``bf16=True`` does, with its
training examples put on the device once per unit; losses are summed on the device and read once per epoch, and AdamW
is fused (the Trainer's default), so no step waits for the device.
What differs from the Trainer: the order of training batches (a seeded ``torch.randperm`` per epoch, not the
Trainer's sampler) and padding (to the longest example of a batch instead of to ``max_length``; the same result,
as padding is on the right and masked).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from xling.config import LoraSpec, ModelSpec, TrainSpec
from xling.errors import XlingError
from xling.io import atomic_dir
from xling.models import get_kind
from xling.progress import Progress
from xling.provenance import write_run_record
from xling.tasks.items import MCItem


def seed_everything(seed: int) -> None:
    """python, numpy and torch (CPU and CUDA) seeds, as the release's ``transformers.set_seed`` sets them."""
    from transformers import set_seed

    set_seed(seed)


def split_train_val(items: Sequence[MCItem], val_fraction: float, split_seed: int) -> tuple[list[MCItem], list[MCItem]]:
    """The release's split: ``datasets.Dataset.train_test_split(test_size=val_fraction, seed=split_seed)`` over
    the items in their order; both parts in the order it returns them."""
    from datasets import Dataset

    if val_fraction <= 0:
        return list(items), []
    if math.ceil(len(items) * val_fraction) >= len(items):
        raise XlingError(f"{len(items)} training items are too few for a validation fraction of {val_fraction}")
    parts = Dataset.from_dict({"i": list(range(len(items)))}).train_test_split(test_size=val_fraction, seed=split_seed)
    return [items[i] for i in parts["train"]["i"]], [items[i] for i in parts["test"]["i"]]


def lora_state(model) -> dict:
    """A copy of the trainable (LoRA) weights, on their device (small; copying them to the host would wait)."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


AUTO_TRAIN_BATCH = 8  # where ``batch_size: auto`` starts: the Trainer's default per-device batch
_KEPT: dict[str, object] | None = None  # base models kept loaded inside ``keep_base_models``, by model spec


@contextmanager
def keep_base_models() -> Iterator[None]:
    """Inside the block ``train_adapter`` loads each base model once and trains every adapter on it in turn: LoRA is
    attached fresh for each unit and taken off again afterwards (``unload``), and the seed is set after the model is
    in memory, so an adapter's bytes are the same as in a fresh process (loading draws no random numbers)."""
    global _KEPT
    outer, _KEPT = _KEPT, {} if _KEPT is None else _KEPT
    try:
        yield
    finally:
        if outer is None:
            _KEPT = None


def _base_model(kind, spec: ModelSpec):
    """The loaded base model: kept from an earlier unit inside ``keep_base_models``, else loaded now."""
    if _KEPT is None:
        return kind.load(spec)
    key = spec.model_dump_json()
    if key not in _KEPT:
        _KEPT.clear()  # one base model at a time
        _KEPT[key] = kind.load(spec)
    return _KEPT[key]


def warmup_steps(spec: TrainSpec, total_steps: int) -> int:
    """``warmup_ratio × total_steps`` in whole steps: rounded up (the Trainer's) or to the nearest (``round``)."""
    exact = spec.warmup_ratio * total_steps
    return math.ceil(exact) if spec.warmup_rounding == "ceil" else round(exact)


def evaluate(kind, loaded, examples: Sequence, spec: TrainSpec) -> dict[str, float | None]:
    """The Trainer's ``eval_loss`` (each batch's mean loss, averaged over batches weighted by their rows) and, where
    the kind counts them, the accuracy; in eval mode without gradients, read from the device once at the end."""
    import torch

    if not examples:
        return {"val_loss": None}
    loaded.model.eval()
    total, rows, correct = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(examples), spec.batch_size):
            loss = kind.batch_loss(loaded, examples[i : i + spec.batch_size], spec)
            total, rows = total + loss.row_total, rows + loss.rows
            correct = None if loss.correct is None or correct is None else correct + loss.correct
    out = {"val_loss": float(total) / max(rows, 1)}
    if correct is not None:
        out["val_acc"] = int(correct) / max(rows, 1)
    return out


def train_adapter(
    model_spec: ModelSpec,
    train_items: Sequence[MCItem],
    val_items: Sequence[MCItem],
    seed: int,
    out_dir: Path,
    lora: LoraSpec,
    spec: TrainSpec,
    *,
    progress: bool = False,
) -> dict:
    """Fine-tune LoRA on ``train_items``; save the best-validation epoch's adapter into ``out_dir``; return the log."""
    import torch
    from peft import get_peft_model

    from xling.models.adapters import quiet_peft

    if not train_items:
        raise XlingError(f"model {model_spec.name!r}: no training items")
    started = time.perf_counter()
    kind = get_kind(model_spec.kind)

    # set-up: model, seed, LoRA, examples; with batch_size auto, a CUDA out-of-memory error halves the batch and
    # training starts again from the seed (the Trainer's auto_find_batch_size)
    loaded = _base_model(kind, model_spec)
    base = loaded.model
    batch, restarts = (AUTO_TRAIN_BATCH if spec.batch_size == "auto" else spec.batch_size), 0
    while True:
        seed_everything(seed)
        with quiet_peft():
            loaded.model = model = get_peft_model(base, kind.lora_config(lora))
        try:
            log = _train_loop(
                kind,
                loaded,
                model_spec,
                train_items,
                val_items,
                seed,
                out_dir,
                spec.model_copy(update={"batch_size": batch}),
                progress,
                started,
            )
            return {**log, "batch_size": batch, "oom_restarts": restarts}
        except torch.OutOfMemoryError:
            if spec.batch_size != "auto" or batch == 1:
                raise
            batch, restarts = batch // 2, restarts + 1
            torch.cuda.empty_cache()
        finally:  # the base model as it was loaded, for the next attempt or unit
            if spec.gradient_checkpointing:
                model.gradient_checkpointing_disable()
                model.disable_input_require_grads()
            loaded.model = model.unload()
            loaded.model.eval()


def _train_loop(
    kind,
    loaded,
    model_spec: ModelSpec,
    train_items: Sequence[MCItem],
    val_items: Sequence[MCItem],
    seed: int,
    out_dir: Path,
    spec: TrainSpec,
    progress: bool,
    started: float,
) -> dict:
    """The loop proper, on ``loaded.model`` with LoRA attached."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from xling.models.adapters import write_adapter_meta

    model = loaded.model
    loop_start = time.perf_counter()
    chat = model_spec.chat_template if spec.chat_template is None else spec.chat_template
    train_ex = kind.examples(loaded, train_items, spec, chat)
    val_ex = kind.examples(loaded, val_items, spec, chat)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()

    # optimiser and schedule
    total_steps = math.ceil(len(train_ex) / spec.batch_size) * spec.epochs
    warmup = warmup_steps(spec, total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel per step on a GPU, as the Trainer's default optimiser (adamw_torch_fused)
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    order_gen = torch.Generator().manual_seed(seed)

    history, best_val, best_epoch, best_state = [], math.inf, 0, None
    with Progress("training", total_steps, enabled=progress) as bar:
        for epoch in range(1, spec.epochs + 1):
            model.train()
            order = torch.randperm(len(train_ex), generator=order_gen).tolist()
            total, rows = 0.0, 0
            for i in range(0, len(order), spec.batch_size):
                # forward backward update
                loss = kind.batch_loss(loaded, [train_ex[j] for j in order[i : i + spec.batch_size]], spec)
                loss.value.backward()
                if spec.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                total, rows = total + loss.row_total, rows + loss.rows  # summed on the device: no wait per step
                bar.advance()
            # evaluate on the validation split; keep the best epoch's adapter
            record = {"epoch": epoch, "train_loss": float(total) / max(rows, 1), **evaluate(kind, loaded, val_ex, spec)}
            history.append(record)
            val_loss = record["val_loss"]
            shown = "none" if val_loss is None else f"{val_loss:.4f}"
            bar.line(f"epoch {epoch}/{spec.epochs}: train loss {record['train_loss']:.4f}, validation loss {shown}")
            if not spec.keep_best_epoch or val_loss is None or val_loss < best_val:
                best_val, best_epoch, best_state = (
                    (val_loss if val_loss is not None else best_val),
                    epoch,
                    lora_state(model),
                )

    with torch.no_grad():
        named = dict(model.named_parameters())
        for name, value in best_state.items():
            named[name].copy_(value.to(named[name].device))
    model.save_pretrained(str(out_dir))
    write_adapter_meta(Path(out_dir), model_spec.name, model_spec.location, loaded.fingerprint)
    return {
        "epochs": history,
        "kept_epoch": best_epoch,
        "best_val_loss": None if best_val == math.inf else best_val,
        "n_train": len(train_ex),
        "n_val": len(val_ex),
        "steps": total_steps,
        "warmup_steps": warmup,
        "seconds": round(time.perf_counter() - started, 2),  # with loading the model (when not kept)
        "loop_seconds": round(time.perf_counter() - loop_start, 2),
    }  # examples, training, validation, saving


def train_cell(
    model: ModelSpec,
    task: str,
    language: str,
    seed: int,
    out_dir: Path,
    lora: LoraSpec = LoraSpec(),
    train: TrainSpec = TrainSpec(),
    *,
    progress: bool = False,
) -> Path:
    """Fine-tune one source cell and write the adapter folder atomically: adapter weights and config,
    ``train_log.json`` (per-epoch train/val loss, kept epoch) and ``run.json``."""
    from xling.tasks.prompts import paper_trainable
    from xling.tasks.registry import load_items

    items = load_items(task, language, "train")
    n_dropped = 0
    if train.prompt_format == "paper":  # the release's processors drop such rows before the split
        kept = [it for it in items if paper_trainable(it)]
        n_dropped, items = len(items) - len(kept), kept
    if train.max_train_items:
        items = items[: train.max_train_items]
    train_items, val_items = split_train_val(items, train.val_fraction, train.split_seed)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        log = train_adapter(model, train_items, val_items, seed, tmp, lora, train, progress=progress)
        log = {"task": task, "language": language, "seed": seed, "n_dropped": n_dropped, **log}
        (tmp / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
        write_run_record(
            tmp,
            {
                "model": model.model_dump(mode="json"),
                "lora": lora.model_dump(mode="json"),
                "train": train.model_dump(mode="json"),
                "task": task,
                "language": language,
            },
            seed=seed,
        )
    return out_dir
