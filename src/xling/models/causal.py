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
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.errors import XlingError
from xling.models.adapters import quiet_peft
from xling.models.base import COLUMNS, Loss, auto_batch, base_fingerprint, peak_memory_bytes
from xling.models.lmeval import (
    BASE,
    LOGIT_CHUNK,
    LMEvalTokens,
    Row,
    can_pack,
    collect,
    encode_items,
    forward_rows,
    plan_rows,
)
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

    def examples(self, loaded: LoadedLM, items: Sequence[MCItem], spec: TrainSpec, chat: bool) -> list[Staged]:
        ensure_pad_token(loaded.tokenizer)
        return stage_examples(tokenize_examples(items, loaded.tokenizer, spec, chat), loaded.device)

    def batch_loss(self, loaded: LoadedLM, examples: Sequence[Staged], spec: TrainSpec) -> Loss:
        pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
        n = max(sum(e.n_target for e in examples), 1)  # counted on the host: no wait for the device
        with autocast(loaded.model, loaded.device):
            loss_sum = answer_loss(loaded.model, make_batch(examples, pad_id))
        return Loss(loss_sum / n, loss_sum.detach() / n * len(examples), len(examples))

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


class Staged(NamedTuple):
    """One training example on the model's device: input ids, labels, attention mask (1-D views of one tensor
    each) and how many labels count in the loss (``labels[1:]`` that are not -100; known on the host)."""

    ids: Any
    labels: Any
    mask: Any
    n_target: int


def stage_examples(examples: Sequence[Example], device) -> list[Staged]:
    """Every example on ``device`` at once (three copies per training unit, none per step)."""
    import torch

    from xling.models.base import to_device

    if not examples:
        return []
    lengths = [len(ids) for ids, _, _ in examples]
    flat = [torch.tensor([t for ex in examples for t in ex[k]], dtype=torch.long) for k in range(3)]
    ids, labels, mask = (to_device(x, device).split(lengths) for x in flat)
    return [Staged(ids[i], labels[i], mask[i], sum(t != IGNORE for t in y[1:])) for i, (_, y, _) in enumerate(examples)]


def make_batch(examples: Sequence[Staged], pad_id: int):
    """``input_ids``, ``attention_mask`` and ``labels``, right-padded on the device to the longest example."""
    from torch.nn.utils.rnn import pad_sequence

    return tuple(
        pad_sequence([getattr(e, k) for e in examples], batch_first=True, padding_value=pad)
        for k, pad in (("ids", pad_id), ("mask", 0), ("labels", IGNORE))
    )


def answer_loss(model, batch):
    """Sum of token losses over the target positions (a 0-d tensor on the device)."""
    import torch.nn.functional as F

    ids, mask, labels = batch
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    target = labels[:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )


def autocast(model, device):
    """bf16 autocast on a GPU when the model is bf16 (the Trainer's ``bf16=True``); nothing otherwise."""
    import torch

    if device.type == "cuda" and next(model.parameters()).dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- scoring -------------------------------------------------------------------------------------------------------


#: ``batch_size: auto`` on a GPU: a batch may take this share of the memory free once the model is loaded
AUTO_MEMORY_SHARE = 0.9
#: and keeps every activation and logit tensor under 2^31 elements (some kernels index in 32 bits)
MAX_ELEMENTS = 2**31 - 1
#: and at most this many sequences (attention kernels index sequences on a CUDA grid dimension of at most 65,535)
MAX_SEQUENCES = 2**15


def forward_bytes(config, n_seq: int, width: int, n_logits: int, dtype_bytes: int, eager: bool = False) -> int:
    """Peak memory of one scoring forward beyond the weights and adapters, in bytes (the formula; ``gpu.sh`` prints
    it against the measured peak). In inference mode one layer's activations are alive at a time, so per token:
    the MLP's intermediate tensors and a few hidden-wide ones, ``(4·ffn + 8·d)`` values, plus RMSNorm's float32
    copies, ``8·d`` bytes; the additive 4-D mask twice (made, then aligned by the attention kernel),
    ``2·width`` values; under eager attention the scores and their softmax in float32, ``8·heads·width`` bytes. Then
    the ``n_logits`` gathered logits in the model's dtype plus one float32 chunk of the log-softmax and its
    exponentials. Values are ``dtype_bytes`` each.

        total = weights + adapters + n_seq·width·per_token + n_logits·vocab·dtype_bytes + 8·min(n_logits·vocab, chunk)
    """
    cfg = getattr(config, "text_config", None) or config
    d, vocab = cfg.hidden_size, cfg.vocab_size
    ffn = getattr(cfg, "intermediate_size", None) or 4 * d
    per_token = dtype_bytes * (4 * ffn + 8 * d + 2 * width) + 8 * d
    if eager:
        per_token += 8 * cfg.num_attention_heads * width
    return n_seq * width * per_token + n_logits * vocab * dtype_bytes + 8 * min(n_logits * vocab, LOGIT_CHUNK)


def fits(config, n_seq: int, width: int, n_logits: int, dtype_bytes: int, eager: bool, budget: int) -> bool:
    """Whether a batch of ``n_seq`` sequences of ``width`` tokens fits ``budget`` bytes (``forward_bytes``) and the
    element and sequence limits."""
    cfg = getattr(config, "text_config", None) or config
    widest = max(getattr(cfg, "intermediate_size", None) or 0, 4 * cfg.hidden_size)
    return (
        forward_bytes(config, n_seq, width, n_logits, dtype_bytes, eager) <= budget
        and n_seq * width * widest <= MAX_ELEMENTS
        and n_logits * cfg.vocab_size <= MAX_ELEMENTS
        and n_seq <= MAX_SEQUENCES
    )


def memory_budget(device) -> int:
    """Bytes a scoring batch may take on a CUDA ``device``: ``AUTO_MEMORY_SHARE`` of what is free with the model
    loaded (free on the device plus what torch holds unused)."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    held = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(AUTO_MEMORY_SHARE * (free + held))


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
        self.budget = None  # bytes one batch may take (``batch_size: auto`` on a GPU)
        self.dtype_bytes, self.rows_used = next(self.lm.model.parameters()).element_size(), 0
        if self.lm.device.type == "cuda":
            if spec.batch_size == "auto":
                self.budget = memory_budget(self.lm.device)
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
        frame.attrs["batch_size"] = self.batch_size if self.budget is None else self.rows_used
        return frame

    def forward_all(
        self, net, rows: Sequence[Row], names: Sequence[str], n_requests: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row under every adapter in batches of ``batch_size`` rows × ``adapters_per_batch`` adapters (with
        ``batch_size: auto`` on a GPU, as many rows as ``forward_bytes`` says fit in the memory budget). Results stay
        on the device until every batch is queued. On CUDA out-of-memory the batch is halved (rows, or the budget,
        first, then adapters) and retried; the smaller sizes stay for the rest of the run."""
        import torch

        lm = self.lm
        pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        parts = []
        r0 = 0
        while r0 < len(rows):
            size = self._rows_for(rows, r0, min(self.adapters_per_batch, len(names)))
            try:
                for a0 in range(0, len(names), self.adapters_per_batch):
                    group = names[a0 : a0 + self.adapters_per_batch]
                    part = self._forward(net, rows[r0 : r0 + size], group, n_requests, pad_id)
                    parts.append(dataclasses.replace(part, adapter=part.adapter + a0))
            except torch.OutOfMemoryError:
                if size == 1 and self.adapters_per_batch == 1:
                    raise
                self._shrink(size)
                continue
            self.rows_used = max(self.rows_used, size)
            r0 += size
        return collect(parts, len(names), n_requests)

    def _rows_for(self, rows: Sequence[Row], r0: int, n_ad: int) -> int:
        """Rows of the next batch: ``batch_size``, or within the memory budget the most rows from ``r0`` on that fit,
        padded to the first (longest) row's width, with ``n_ad`` segments."""
        if self.budget is None:
            return self.batch_size
        config, eager = self.lm.model.config, getattr(self.lm.model.config, "_attn_implementation", None) == "eager"
        width, needed, count = len(rows[r0].tokens), 0, 0
        for row in rows[r0:]:
            more = needed + sum(len(cont) for _, cont, _ in row.requests)
            if count and not fits(config, (count + 1) * n_ad, width, more * n_ad, self.dtype_bytes, eager, self.budget):
                break
            count, needed = count + 1, more
        return count

    def _forward(self, net, rows: Sequence[Row], group: Sequence[str], n_requests: int, pad_id: int):
        """One batch: ``rows`` under every adapter of ``group`` (one segment each), results left on the device."""
        device = self.lm.device
        if self.layout is not None:
            with segments(self.layout, [self.slot.get(name) for name in group]):
                return forward_rows(net, rows, len(group), n_requests, device, pad_id, defer=True)
        names = group if self.peft_mixed else None
        return forward_rows(net, rows, len(group), n_requests, device, pad_id, adapter_names=names, defer=True)

    def _shrink(self, size: int) -> None:
        """After running out of memory with ``size`` rows: half the rows (or the budget), else half the adapters."""
        import torch

        self.oom_retries += 1
        if size > 1 and self.budget is not None:
            self.budget //= 2
        elif size > 1:
            self.batch_size = size // 2
        else:
            self.budget, self.batch_size = None, 1
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
