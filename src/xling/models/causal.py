"""The causal-LM model kind: load once, train on answer tokens, score choices by log-likelihood (lm-eval's rules).

Loading puts the model on the best device in the right dtype and resolves the context length as lm-eval does.
Training examples are either the release's (``prompt_format: paper``: ``release_example``, ``release_lm_example``)
or the scorer's own context/continuation split, left-truncated; the loss is the mean over the batch's target
tokens. Scoring (``CausalScorer``) loads the base once with every adapter attached and scores lm-eval requests
packed into rows (``xling.models.lmeval``); with ``merge`` each adapter is merged into the base weights in turn,
as the release did; a CUDA out-of-memory error halves the batch and retries it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.errors import XlingError
from xling.models.adapters import quiet_peft
from xling.models.base import COLUMNS, Loss, auto_batch, base_fingerprint, peak_memory_bytes
from xling.models.lmeval import BASE, LMEvalTokens, Row, can_pack, encode_items, forward_rows, plan_rows
from xling.models.multilora import group_adapters, segments
from xling.tasks.items import MCItem

IGNORE = -100
DEFAULT_MAX_LENGTH = 512  # training tokens per example when neither the spec nor the task says

Example = tuple[list[int], list[int], list[int]]  # input ids, labels (-100 = no loss), attention mask


# --- loading ----------------------------------------------------------------------------------------------------

DEFAULT_CONTEXT = 2048
_TOKENIZER_INFINITY = 1_000_000_000_000_000_019_884_624_838_656


@dataclass
class LoadedLM:
    """A base model, its tokenizer, the device, and the context length lm-eval would use."""

    model: Any
    tokenizer: Any
    device: Any
    max_length: int
    fingerprint: str


def pick_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(spec: ModelSpec, device):
    """``auto``: bf16 on GPU, fp32 on CPU; otherwise the requested dtype."""
    import torch

    if spec.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec.dtype)


def check_location(spec: ModelSpec) -> None:
    """A local-looking path that does not exist is an error (not a silent hub lookup)."""
    loc = spec.location
    looks_local = loc.startswith((".", "/", "~")) or Path(loc).expanduser().exists() or loc.count("/") > 1
    if looks_local and not (Path(loc).expanduser() / "config.json").is_file():
        raise XlingError(f"model {spec.name!r}: no model at {loc!r} (expected a folder with config.json or a hub id)")


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    check_location(spec)
    try:
        return AutoTokenizer.from_pretrained(
            spec.location, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise XlingError(
            f"model {spec.name!r}: cannot load tokenizer from {spec.location!r}: {str(err).splitlines()[0]}"
        ) from None


def resolve_max_length(config, tokenizer) -> int:
    """The context length as lm-eval resolves it: config seq-len attributes, then the tokenizer, then 2048."""
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit != _TOKENIZER_INFINITY:
        return int(limit)
    return DEFAULT_CONTEXT


def load_causal(spec: ModelSpec, *, device=None) -> LoadedLM:
    """Load the base model (eval mode) and tokenizer once."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device = device or pick_device()
    tokenizer = load_tokenizer(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.location,
            revision=spec.revision,
            dtype=pick_dtype(spec, device),
            trust_remote_code=spec.trust_remote_code,
            **({"attn_implementation": spec.attn_implementation} if spec.attn_implementation else {}),
        )
    except (OSError, ValueError) as err:
        raise XlingError(
            f"model {spec.name!r}: cannot load from {spec.location!r}: {str(err).splitlines()[0]}"
        ) from None
    model.to(device).eval()
    return LoadedLM(model, tokenizer, device, resolve_max_length(model.config, tokenizer), base_fingerprint(model))


# --- the kind -----------------------------------------------------------------------------------------------------


class CausalKind:
    """Causal LMs: LoRA on the named projections (``all-linear`` by default), loss on answer tokens, lm-eval
    log-likelihood scoring."""

    name = "causal"
    length_normalised = True

    def load(self, spec: ModelSpec) -> LoadedLM:
        return load_causal(spec)

    def lora_config(self, lora: LoraSpec):
        from peft import LoraConfig

        return LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )

    def examples(self, loaded: LoadedLM, items: Sequence[MCItem], spec: TrainSpec, chat: bool) -> list[Example]:
        ensure_pad_token(loaded.tokenizer)
        return tokenize_examples(items, loaded.tokenizer, spec, chat)

    def batch_loss(self, loaded: LoadedLM, examples: Sequence[Example], spec: TrainSpec) -> Loss:
        pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
        with autocast(loaded.model, loaded.device):
            loss_sum, n = answer_loss(loaded.model, make_batch(examples, pad_id, loaded.device))
        return Loss(loss_sum / max(n, 1), float(loss_sum.detach()) / max(n, 1) * len(examples), len(examples))

    def scorer(
        self, spec: ModelSpec, adapters: Mapping[str, Path | None], score: ScoreSpec, items: Sequence[MCItem]
    ) -> CausalScorer:
        return CausalScorer(spec, adapters, score)


# --- training examples and loss ---------------------------------------------------------------------------------


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
    return ids, [IGNORE] * (len(ids) - n_target) + ids[len(ids) - n_target :], [1] * len(ids)


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
    from xling.tasks.prompts import apply_chat, train_example

    tok = LMEvalTokens(tokenizer)
    out = []
    for item in items:
        prompt, target = train_example(item, spec.prompt_format, chat)
        length = item_max_length(item, spec)
        if chat:
            if not prompt:
                raise XlingError(
                    f"task {item.task!r}: its {spec.prompt_format!r} training format models the whole "
                    "text and has no chat form; set train.chat_template: false"
                )
            prompt = apply_chat(tokenizer, prompt, spec.chat_date)
        if spec.prompt_format == "paper":
            out.append(
                release_lm_example(tokenizer, target, length)
                if not prompt
                else release_example(tokenizer, prompt, target, length)
            )
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
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss_sum, int((target != IGNORE).sum())


def autocast(model, device):
    """bf16 autocast on a GPU when the model is bf16 (the Trainer's ``bf16=True``); nothing otherwise."""
    import torch

    if device.type == "cuda" and next(model.parameters()).dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- scoring -------------------------------------------------------------------------------------------------------


class CausalScorer:
    """The base model loaded once with every adapter attached (unmerged), or, with ``merge``, each adapter merged
    into the base weights in turn; scores lists of items."""

    def __init__(self, model: ModelSpec, adapters: Mapping[str, str | Path | None], spec: ScoreSpec):
        import torch

        from xling.models.adapters import attach_adapters, check_adapter

        self.model, self.spec = model, spec
        self.lm = load_causal(model)
        self.internal = {label: (BASE if path is None else f"a{i}") for i, (label, path) in enumerate(adapters.items())}
        self.paths = {self.internal[k]: Path(p) for k, p in adapters.items() if p is not None}
        for path in self.paths.values():
            check_adapter(path, model.name, model.location, self.lm.fingerprint)
        self.labels = list(adapters)
        self.names = list(dict.fromkeys(self.internal[label] for label in self.labels))  # the base once
        self.net, self.layout, self.peft_mixed = self.lm.model, None, False
        if self.paths and not spec.merge:
            self.net = attach_adapters(self.lm.model, self.paths)
            try:  # grouped low-rank paths (xling.models.multilora); peft's own mixed batches where they cannot be
                self.net, self.layout = group_adapters(self.net, list(self.paths))
                self.slot = {name: i for i, name in enumerate(self.paths)}
            except XlingError:
                self.peft_mixed = True
        self.pack = spec.pack_choices and can_pack(self.lm.model)
        self.batch_size = auto_batch(spec.batch_size, self.lm.device)
        self.adapters_per_batch, self.oom_retries = spec.adapters_per_batch, 0
        if self.lm.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.lm.device)

    def score(self, items: Sequence[MCItem]) -> pd.DataFrame:
        lm, spec, names = self.lm, self.spec, self.names
        chat = self.model.chat_template if spec.chat_template is None else spec.chat_template
        encoded = encode_items(items, lm.tokenizer, spec.prompt_format, chat, spec.benchmark_format, spec.chat_date)
        rows = plan_rows(encoded, lm.max_length, self.pack)
        if spec.merge:
            parts = []
            for name in names:
                with self.merged(name) as net:
                    parts.append(self.forward_all(net, rows, [BASE], len(encoded)))
            loglik, greedy = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        else:
            loglik, greedy = self.forward_all(self.net, rows, names, len(encoded))
        frame = _frame(
            items,
            encoded,
            self.labels,
            [names.index(self.internal[x]) for x in self.labels],
            loglik,
            greedy,
            self.model.kind,
        )
        frame.attrs["peak_memory_bytes"] = peak_memory_bytes(lm.device)
        frame.attrs["oom_retries"] = self.oom_retries
        frame.attrs["batch_size"] = self.batch_size
        return frame

    def forward_all(
        self, net, rows: Sequence[Row], names: Sequence[str], n_requests: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row under every adapter in batches of ``batch_size`` rows × ``adapters_per_batch`` adapters.
        On CUDA out-of-memory the batch is halved (rows first, then adapters) and retried; the smaller sizes stay
        for the rest of the run."""
        import torch

        lm = self.lm
        pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        loglik = np.full((len(names), n_requests), np.nan)
        greedy = np.zeros((len(names), n_requests), dtype=bool)
        r0 = 0
        while r0 < len(rows):
            size = self.batch_size
            try:
                for a0 in range(0, len(names), self.adapters_per_batch):
                    group = names[a0 : a0 + self.adapters_per_batch]
                    ll, gr = self._forward(net, rows[r0 : r0 + size], group, n_requests, pad_id)
                    done = ~np.isnan(ll)
                    loglik[a0 : a0 + len(group)][done] = ll[done]
                    greedy[a0 : a0 + len(group)] |= gr
            except torch.OutOfMemoryError:
                if self.batch_size == 1 and self.adapters_per_batch == 1:
                    raise
                self._shrink()
                continue
            r0 += size
        return loglik, greedy

    def _forward(self, net, rows: Sequence[Row], group: Sequence[str], n_requests: int, pad_id: int):
        """One batch: ``rows`` under every adapter of ``group`` (one segment each)."""
        device = self.lm.device
        if self.layout is not None:
            with segments(self.layout, [self.slot.get(name) for name in group]):
                return forward_rows(net, rows, len(group), n_requests, device, pad_id)
        names = group if self.peft_mixed else None
        return forward_rows(net, rows, len(group), n_requests, device, pad_id, adapter_names=names)

    def _shrink(self) -> None:
        import torch

        self.oom_retries += 1
        if self.batch_size > 1:
            self.batch_size //= 2
        else:
            self.adapters_per_batch = max(1, self.adapters_per_batch // 2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @contextmanager
    def merged(self, name: str) -> Iterator:
        """The base model with adapter ``name`` merged into its weights (``merge_and_unload``, in the model's
        dtype); the base weights are restored exactly afterwards. ``__base__`` is the base model itself."""
        if name == BASE:
            yield self.lm.model
            return
        import torch
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer

        with quiet_peft():
            wrapped = PeftModel.from_pretrained(self.lm.model, str(self.paths[name]), is_trainable=False)
        saved = {
            mod_name: module.get_base_layer().weight.detach().to("cpu", copy=True)
            for mod_name, module in wrapped.base_model.model.named_modules()
            if isinstance(module, LoraLayer)
        }
        merged = wrapped.merge_and_unload()
        try:
            yield merged.eval()
        finally:
            with torch.no_grad():
                for mod_name, weight in saved.items():
                    merged.get_submodule(mod_name).weight.copy_(weight)


def _frame(items, encoded, labels, label_rows, loglik, greedy, kind) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "task": [items[e.item].task for e in encoded],
            "language": [items[e.item].language for e in encoded],
            "item_id": [items[e.item].id for e in encoded],
            "choice": [e.choice for e in encoded],
            "n_tokens": [len(e.continuation) for e in encoded],
            "n_chars": [len(e.choice_text) for e in encoded],
            "n_bytes": [len(e.choice_text.encode("utf-8")) for e in encoded],
            "is_gold": [e.is_gold for e in encoded],
        }
    )
    parts = []
    for label, row in zip(labels, label_rows):
        part = base.copy()
        part.insert(0, "adapter", label)
        part["loglik"] = loglik[row]
        part["is_greedy"] = greedy[row]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["kind"] = kind
    return frame[COLUMNS]
