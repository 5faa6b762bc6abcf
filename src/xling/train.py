"""LoRA fine-tuning of one source cell (task × language), written as a plain loop.

The loop follows the release's ``finetune.py`` (a Hugging Face ``Trainer``) step by step, with the settings of
``LoraSpec``/``TrainSpec``: ``transformers.set_seed(seed)`` before the model is loaded and LoRA attached; the
validation split drawn by ``datasets``' ``train_test_split``; AdamW with no weight decay; linear warm-up over
``ceil(warmup_ratio × steps)`` steps then linear decay (``get_linear_schedule_with_warmup``); gradients clipped
to ``max_grad_norm``; the loss is the mean over the batch's target tokens; the validation loss after every
epoch is the Trainer's; the adapter of the best epoch is kept. On a GPU with a bf16 model the forward passes run
under bf16 autocast, as the Trainer's ``bf16=True`` does. What differs from the Trainer: the order of training
batches (a seeded ``torch.randperm`` per epoch, not the Trainer's sampler) and padding (to the longest example
of a batch instead of to ``max_length``; the same result, as padding is on the right and masked).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

from xling.config import LoraSpec, ModelSpec, TrainSpec
from xling.errors import XlingError
from xling.io import atomic_dir
from xling.provenance import write_run_record
from xling.tasks.items import MCItem

IGNORE = -100
DEFAULT_MAX_LENGTH = 512

Example = tuple[list[int], list[int], list[int]]  # input ids, labels (-100 = no loss), attention mask


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


def ensure_pad_token(tokenizer) -> None:
    """The release's ``load_tokenizer``: a missing pad token becomes the EOS token (else the UNK token)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token


def item_max_length(item: MCItem, spec: TrainSpec) -> int:
    """``spec.max_length``, else the task's own training length (the paper's per benchmark), else 512."""
    return spec.max_length or int(item.fields.get("train_max_length", DEFAULT_MAX_LENGTH))


def release_example(tokenizer, prompt: str, target: str, max_length: int) -> Example:
    """The release's ARC / Global-MMLU / HellaSwag example: prompt and target tokenised separately without
    special tokens, joined, left-truncated to ``max_length``; the loss covers the target tokens."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + target_ids)[-max_length:]
    n_target = min(len(target_ids), len(ids))
    return ids, [IGNORE] * (len(ids) - n_target) + ids[len(ids) - n_target:], [1] * len(ids)


def release_lm_example(tokenizer, text: str, max_length: int) -> Example:
    """The release's TruthfulQA example: ``tokenizer(text, padding='max_length', truncation=True)`` (its own
    special tokens, padding side and right truncation); the loss covers every non-padding token."""
    enc = tokenizer(text, padding="max_length", truncation=True, max_length=max_length)
    ids, mask = list(enc["input_ids"]), list(enc["attention_mask"])
    return ids, [t if m == 1 else IGNORE for t, m in zip(ids, mask)], mask


def tokenize_examples(items: Sequence[MCItem], tokenizer, spec: TrainSpec, chat: bool) -> list[Example]:
    """``(input_ids, labels, attention_mask)`` per item; labels are ``-100`` where there is no loss.

    ``paper`` examples are tokenised as the release does (``release_example``, ``release_lm_example``); the other
    formats follow the scorer's (lm-eval's) context/continuation split, left-truncated to the length."""
    from xling.score import LMEvalTokens
    from xling.tasks.prompts import apply_chat, train_example

    tok = LMEvalTokens(tokenizer)
    out = []
    for item in items:
        prompt, target = train_example(item, spec.prompt_format, chat)
        length = item_max_length(item, spec)
        if chat:
            if not prompt:
                raise XlingError(f"task {item.task!r}: its {spec.prompt_format!r} training format models the whole "
                                 "text and has no chat form; set train.chat_template: false")
            prompt = apply_chat(tokenizer, prompt, spec.chat_date)
        if spec.prompt_format == "paper":
            out.append(release_lm_example(tokenizer, target, length) if not prompt
                       else release_example(tokenizer, prompt, target, length))
            continue
        ctx, cont = tok.pair(prompt, target)
        ids = (ctx + cont)[-length:]
        labels = ([IGNORE] * len(ctx) + cont)[-length:]
        out.append((ids, labels, [1] * len(ids)))
    return out


def make_batch(examples: Sequence[Example], pad_id: int, device):
    """``input_ids``, ``attention_mask`` and ``labels`` tensors, right-padded to the longest example."""
    import torch

    width = max(len(ids) for ids, _, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, (x, y, m) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(m)] = torch.tensor(m)
        labels[i, : len(y)] = torch.tensor(y)
    return ids.to(device), mask.to(device), labels.to(device)


def answer_loss(model, batch):
    """Sum of token losses over the target positions and their count."""
    import torch.nn.functional as F

    ids, mask, labels = batch
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    target = labels[:, 1:]
    loss_sum = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE,
                               reduction="sum")
    return loss_sum, int((target != IGNORE).sum())


def evaluate_loss(model, examples, spec: TrainSpec, pad_id: int, device) -> float:
    """The Trainer's ``eval_loss``: each batch's mean token loss, averaged over batches weighted by their rows."""
    import torch

    model.eval()
    total, rows = 0.0, 0
    with torch.no_grad(), autocast(model, device):
        for i in range(0, len(examples), spec.batch_size):
            batch = examples[i:i + spec.batch_size]
            loss_sum, n = answer_loss(model, make_batch(batch, pad_id, device))
            total, rows = total + float(loss_sum.detach()) / max(n, 1) * len(batch), rows + len(batch)
    model.train()
    return total / max(rows, 1)


def autocast(model, device):
    """bf16 autocast on a GPU when the model is bf16 (the Trainer's ``bf16=True``); nothing otherwise."""
    import torch

    if device.type == "cuda" and next(model.parameters()).dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lora_state(model) -> dict:
    """A CPU copy of the trainable (LoRA) weights."""
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}


def attach_lora(model, lora: LoraSpec):
    """``get_peft_model`` with the spec's LoRA (as the release's ``add_lora_adapters``)."""
    from peft import LoraConfig, get_peft_model

    from xling.models.adapters import quiet_peft

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    with quiet_peft():
        return get_peft_model(model, config)


def train_causal(model_spec: ModelSpec, train_items: Sequence[MCItem], val_items: Sequence[MCItem], seed: int,
                 out_dir: Path, lora: LoraSpec, spec: TrainSpec, *, progress: bool = False) -> dict:
    """Fine-tune LoRA on ``train_items``; save the best-validation epoch's adapter into ``out_dir``; return the log."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from xling.models.adapters import write_adapter_meta
    from xling.models.causal import load_causal

    seed_everything(seed)
    lm = load_causal(model_spec)
    model = attach_lora(lm.model, lora)
    chat = model_spec.chat_template if spec.chat_template is None else spec.chat_template
    ensure_pad_token(lm.tokenizer)
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    train_ex = tokenize_examples(train_items, lm.tokenizer, spec, chat)
    val_ex = tokenize_examples(val_items, lm.tokenizer, spec, chat)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.train()

    steps_per_epoch = math.ceil(len(train_ex) / spec.batch_size)
    total_steps = steps_per_epoch * spec.epochs
    warmup = math.ceil(spec.warmup_ratio * total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    order_gen = torch.Generator().manual_seed(seed)

    history, best_val, best_epoch, best_state = [], math.inf, 0, None
    bar = _progress(progress, total_steps)
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(len(train_ex), generator=order_gen).tolist()
        total, count = 0.0, 0
        for i in range(0, len(order), spec.batch_size):
            batch = make_batch([train_ex[j] for j in order[i:i + spec.batch_size]], pad_id, lm.device)
            with autocast(model, lm.device):
                loss_sum, n = answer_loss(model, batch)
            (loss_sum / max(n, 1)).backward()
            if spec.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
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
        named = dict(model.named_parameters())
        for name, value in best_state.items():
            named[name].copy_(value.to(named[name].device))
    model.save_pretrained(out_dir)
    write_adapter_meta(out_dir, model_spec.name, model_spec.location, lm.fingerprint)
    return {"epochs": history, "kept_epoch": best_epoch, "best_val_loss": None if best_val == math.inf else best_val,
            "n_train": len(train_ex), "n_val": len(val_ex), "steps": total_steps, "warmup_steps": warmup}


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
        if model.kind == "encoder":
            from xling.models.encoder import train_encoder

            log = train_encoder(model, train_items, val_items, seed, tmp, lora, train)
        else:
            log = train_causal(model, train_items, val_items, seed, tmp, lora, train, progress=progress)
        log = {"task": task, "language": language, "seed": seed, "n_dropped": n_dropped, **log}
        (tmp / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
        write_run_record(tmp, {"model": model.model_dump(mode="json"), "lora": lora.model_dump(mode="json"),
                               "train": train.model_dump(mode="json"), "task": task, "language": language},
                         seed=seed)
    return out_dir
