"""LoRA fine-tuning of one source cell (task × language), written as a plain loop.

The paper's recipe (``LoraSpec``/``TrainSpec`` defaults): LoRA r=32, alpha=64, dropout 0 on every attention
and MLP projection; 3 epochs of AdamW at lr 5e-5 with 10% linear warm-up then linear decay; batch 8; a
90/10 train/validation split drawn with a fixed ``split_seed``; the adapter of the epoch with the lowest
validation loss is kept. The loss covers only the answer tokens (see ``xling.tasks.prompts.train_example``).
``seed`` fixes python/numpy/torch and the data order, so the same seed on CPU gives the same adapter.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xling.config import LoraSpec, ModelSpec, TrainSpec
from xling.errors import XlingError
from xling.io import atomic_dir
from xling.provenance import write_run_record
from xling.tasks.items import MCItem

IGNORE = -100


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_train_val(items: Sequence[MCItem], val_fraction: float, split_seed: int) -> tuple[list[MCItem], list[MCItem]]:
    """A fixed-seed shuffle, then the last ``val_fraction`` (at least one item when > 0) is validation."""
    order = list(items)
    random.Random(split_seed).shuffle(order)
    n_val = math.ceil(len(order) * val_fraction) if val_fraction > 0 else 0
    if n_val >= len(order):
        raise XlingError(f"{len(order)} training items are too few for a validation fraction of {val_fraction}")
    return order[: len(order) - n_val], order[len(order) - n_val:]


def tokenize_examples(items: Sequence[MCItem], tokenizer, spec: TrainSpec, chat: bool) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` per item; labels are ``-100`` on the prompt so the loss covers the answer only.
    Tokenisation follows the scorer's (lm-eval's) context/continuation split, left-truncated to ``max_length``."""
    from xling.score import LMEvalTokens
    from xling.tasks.prompts import apply_chat, train_example

    tok = LMEvalTokens(tokenizer)
    out = []
    for item in items:
        prompt, target = train_example(item, spec.prompt_format, chat)
        if chat and prompt:
            prompt = apply_chat(tokenizer, prompt)
        ctx, cont = tok.pair(prompt, target)
        ids = (ctx + cont)[-spec.max_length:]
        labels = ([IGNORE] * len(ctx) + cont)[-spec.max_length:]
        out.append((ids, labels))
    return out


def make_batch(examples: Sequence[tuple[list[int], list[int]]], pad_id: int, device):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        labels[i, : len(y)] = torch.tensor(y)
    return ids.to(device), mask.to(device), labels.to(device)


def answer_loss(model, batch):
    """Sum of token losses over answer positions and their count (so epoch means weight every token equally)."""
    import torch.nn.functional as F

    ids, mask, labels = batch
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    target = labels[:, 1:]
    loss_sum = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE,
                               reduction="sum")
    return loss_sum, int((target != IGNORE).sum())


def evaluate_loss(model, examples, spec: TrainSpec, pad_id: int, device) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), spec.batch_size):
            loss_sum, n = answer_loss(model, make_batch(examples[i:i + spec.batch_size], pad_id, device))
            total, count = total + float(loss_sum.detach()), count + n
    model.train()
    return total / max(count, 1)


def lora_state(model) -> dict:
    """A CPU copy of the trainable (LoRA) weights."""
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}


def train_causal(model_spec: ModelSpec, train_items: Sequence[MCItem], val_items: Sequence[MCItem], seed: int,
                 out_dir: Path, lora: LoraSpec, spec: TrainSpec, *, progress: bool = False) -> dict:
    """Fine-tune LoRA on ``train_items``; save the best-validation epoch's adapter into ``out_dir``; return the log."""
    import torch
    from peft import LoraConfig, get_peft_model

    from xling.models.adapters import quiet_peft, write_adapter_meta
    from xling.models.causal import load_causal

    seed_everything(seed)
    lm = load_causal(model_spec)
    chat = model_spec.chat_template if spec.chat_template is None else spec.chat_template
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
    train_ex = tokenize_examples(train_items, lm.tokenizer, spec, chat)
    val_ex = tokenize_examples(val_items, lm.tokenizer, spec, chat)

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    with quiet_peft():
        model = get_peft_model(lm.model, config)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.train()

    steps_per_epoch = math.ceil(len(train_ex) / spec.batch_size)
    total_steps = steps_per_epoch * spec.epochs
    warmup = int(spec.warmup_ratio * total_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    order_gen = torch.Generator().manual_seed(seed)

    history, best_val, best_epoch, best_state = [], math.inf, 0, None
    bar = _progress(progress, total_steps)
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(len(train_ex), generator=order_gen).tolist()
        total, count = 0.0, 0
        for i in range(0, len(order), spec.batch_size):
            batch = make_batch([train_ex[j] for j in order[i:i + spec.batch_size]], pad_id, lm.device)
            loss_sum, n = answer_loss(model, batch)
            loss = loss_sum / max(n, 1)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            total, count = total + float(loss_sum.detach()), count + n
            if bar:
                bar[0].advance(bar[1])
        val_loss = evaluate_loss(model, val_ex, spec, pad_id, lm.device) if val_ex else None
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss})
        if not spec.keep_best_epoch or val_loss is None or val_loss < best_val:
            best_val, best_epoch, best_state = (val_loss if val_loss is not None else best_val), epoch, lora_state(model)
    if bar:
        bar[0].stop()

    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in best_state.items():
            params[name].copy_(value.to(params[name].device))
    model.save_pretrained(out_dir)
    write_adapter_meta(out_dir, model_spec.name, model_spec.location, lm.fingerprint)
    return {"epochs": history, "kept_epoch": best_epoch, "best_val_loss": None if best_val == math.inf else best_val,
            "n_train": len(train_ex), "n_val": len(val_ex), "steps": total_steps}


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    return bar, bar.add_task("training", total=total)


def train_cell(model: ModelSpec, task: str, language: str, seed: int, out_dir: Path,
               lora: LoraSpec = LoraSpec(), train: TrainSpec = TrainSpec(), *, progress: bool = False) -> Path:
    """Fine-tune one source cell and write the adapter folder atomically: adapter weights and config,
    ``train_log.json`` (per-epoch train/val loss, kept epoch) and ``run.json``. Dispatches on ``model.kind``."""
    from xling.tasks.registry import load_items

    items = load_items(task, language, "train")
    if train.max_train_items:
        items = items[: train.max_train_items]
    train_items, val_items = split_train_val(items, train.val_fraction, train.split_seed)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if model.kind == "encoder":
            from xling.models.encoder import train_encoder

            log = train_encoder(model, train_items, val_items, seed, tmp, lora, train)
        else:
            log = train_causal(model, train_items, val_items, seed, tmp, lora, train, progress=progress)
        log = {"task": task, "language": language, "seed": seed, **log}
        (tmp / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
        write_run_record(tmp, {"model": model.model_dump(mode="json"), "lora": lora.model_dump(mode="json"),
                               "train": train.model_dump(mode="json"), "task": task, "language": language},
                         seed=seed)
    return out_dir
