"""Causal-LM requests by lm-evaluation-harness's rules, packed into as few rows as possible, and the forward pass
that scores them under several adapters at once.

The rules are lm-evaluation-harness 0.4.x's for causal LMs (``HFLM._encode_pair`` and
``_loglikelihood_tokens``; ``ConfigurableTask.process_results``): continuation = target delimiter + choice;
trailing whitespace of the context moves to the continuation; context+continuation and the context are
tokenised separately (tokenizer's default special tokens, so BOS as the tokenizer adds it) and the
continuation tokens are the difference; the input is left-truncated to ``max_length + 1`` tokens minus the
last; acc_norm divides by the choice's character length, acc_bytes by its UTF-8 byte length.

What differs is only the cost:

1. the base model is loaded once and every adapter is attached unmerged (peft);
2. each forward pass mixes adapters (segments of the batch, each under one adapter: grouped low-rank paths,
   ``xling.models.multilora``; peft ``adapter_names=`` where they cannot be grouped);
3. all choices of an item share one row: the context once, then each choice's continuation as a segment
   that attends to the context and itself (single-token letters add nothing: one forward per item); rows
   are sorted by length so padding is small;
4. only the hidden states whose logits are needed go through the LM head and the log-softmax (gathered before
   the head), and the host never waits for a batch: results stay on the device until the end.

Packing (3) needs a 4-D attention mask, which transformers' ``eager`` and ``sdpa`` attention take; with any other
implementation (flash attention) every choice gets a row of its own and plain causal attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.prompts import DEFAULT_CHAT_DATE, apply_chat, eval_requests

BASE = "__base__"


@dataclass(frozen=True)
class Encoded:
    """One (item, choice) request in tokens, as lm-eval encodes it."""

    item: int
    choice: int
    context: tuple[int, ...]
    continuation: tuple[int, ...]
    choice_text: str
    is_gold: bool


@dataclass
class Row:
    """One model input that answers several requests: a shared context followed by one segment per choice.

    Segment ``s`` holds a continuation minus its last token; it sees the context and itself only (a 4D
    attention mask) and its positions restart where the context ends, so each choice is computed exactly as
    if it were alone after the context — all choices of an item in one forward, the context once.
    ``segment[t]`` is 0 for context tokens; ``requests`` lists (request index, continuation tokens, the
    positions whose logits predict them).
    """

    tokens: list[int]
    positions: list[int]
    segment: list[int]
    requests: list[tuple[int, tuple[int, ...], list[int]]] = field(default_factory=list)


# --- step 1: tokenise like lm-eval ------------------------------------------------------------------------


class LMEvalTokens:
    """lm-eval's ``tok_encode``/``_encode_pair``/empty-context rules for one tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.prefix_str = tokenizer.decode(self.prefix_id) if self.prefix_id is not None else None
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        """Default special tokens, except none when the text already starts with the BOS string."""
        if text not in self._cache:
            if self.prefix_str and text.startswith(self.prefix_str):
                self._cache[text] = self.tokenizer.encode(text, add_special_tokens=False)
            else:
                self._cache[text] = self.tokenizer.encode(text)
        return self._cache[text]

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "":
            cont = self.tokenizer.encode(continuation, add_special_tokens=False)
            if self.prefix_id != cont[0]:
                return [self.prefix_id], cont
            return cont[:1], cont[1:]
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx) :]


def encode_items(
    items: Sequence[MCItem],
    tokenizer,
    fmt: str = "auto",
    chat: bool = False,
    variant: str = "lm-eval",
    chat_date: str | None = DEFAULT_CHAT_DATE,
) -> list[Encoded]:
    """Every (item, choice) request of ``items`` in tokens (``variant``: see ``xling.tasks.prompts.view``)."""
    tok = LMEvalTokens(tokenizer)
    out = []
    for i, item in enumerate(items):
        req = eval_requests(item, fmt, chat, variant)
        context = apply_chat(tokenizer, req.context, chat_date) if chat else req.context
        for c, (cont, text) in enumerate(zip(req.continuations, req.choice_texts)):
            ctx_enc, cont_enc = tok.pair(context, cont)
            if not cont_enc:
                raise XlingError(f"task {item.task!r} item {item.id!r} choice {c}: continuation {cont!r} has no tokens")
            out.append(Encoded(i, c, tuple(ctx_enc), tuple(cont_enc), text, c == req.gold))
    return out


# --- step 2: pack the choices of each item behind their shared context, length-sorted ----------------------


def plan_rows(encoded: Sequence[Encoded], max_length: int, pack: bool = True) -> list[Row]:
    """One packed row per item (context once, then each choice's segment); a choice whose input lm-eval would
    left-truncate, or whose context differs from its item's, gets a row of its own, as does every choice when
    ``pack`` is off (plain causal rows, no segments). Longest rows first."""
    rows: list[Row] = []
    packed: dict[tuple[int, tuple[int, ...]], Row] = {}
    for idx, enc in enumerate(encoded):
        ctx, cont = enc.context, enc.continuation
        if len(cont) > max_length:
            raise XlingError(
                f"choice {enc.choice} of item #{enc.item}: continuation longer than the model's "
                f"context ({len(cont)} > {max_length} tokens)"
            )
        if not pack or len(ctx) + len(cont) > max_length + 1:  # lm-eval's left truncation: this choice alone
            tokens = list((ctx + cont)[-(max_length + 1) :][:-1])
            n = len(tokens)
            rows.append(Row(tokens, list(range(n)), [0] * n, [(idx, cont, list(range(n - len(cont), n)))]))
            continue
        key = (enc.item, ctx)
        if key not in packed:
            packed[key] = Row(list(ctx), list(range(len(ctx))), [0] * len(ctx))
            rows.append(packed[key])
        row = packed[key]
        start, seg_id = len(row.tokens), 1 + len(row.requests)
        row.tokens += cont[:-1]
        row.positions += range(len(ctx), len(ctx) + len(cont) - 1)
        row.segment += [seg_id] * (len(cont) - 1)
        row.requests.append((idx, cont, [len(ctx) - 1] + list(range(start, start + len(cont) - 1))))
    return sorted(rows, key=lambda r: (-len(r.tokens), r.tokens))


# --- step 3: mixed-adapter forward passes -------------------------------------------------------------------

#: the log-softmax over the vocabulary runs in chunks of at most this many logits (256 MB in float32)
LOGIT_CHUNK = 2**26


@dataclass
class Scored:
    """One batch's results, still on the device (``collect`` copies them to the host once, at the end): entry ``i``
    is request ``request[i]`` under adapter ``adapter[i]`` (host arrays), its summed log-likelihood ``loglik[i]``
    (float64) and how many of its continuation tokens are not the argmax, ``misses[i]``."""

    adapter: np.ndarray
    request: np.ndarray
    loglik: Any
    misses: Any


def forward_rows(
    model,
    rows: Sequence[Row],
    n_ad: int,
    n_requests: int,
    device,
    pad_id: int,
    adapter_names: Sequence[str] | None = None,
    *,
    defer: bool = False,
):
    """Log-likelihood and is-greedy of every request for ``rows`` under each of ``n_ad`` adapters: two arrays of
    shape ``(n_ad, n_requests)`` (NaN / False where a request is not in ``rows``), or with ``defer`` the ``Scored``
    batch still on the device, so that batches queue without the host waiting for each (``collect``).

    The batch is adapters × rows, adapter-major (segment ``a`` holds every row under adapter ``a``: the layout a
    grouped multi-LoRA model expects, ``xling.models.multilora.segments``; with peft's mixed batches,
    ``adapter_names`` names the adapter of each segment), right-padded; a token attends to earlier tokens of the
    context and of its own choice (a 4-D mask built on the device). Only the hidden states whose logits are needed
    go through the LM head (gathered by a hook on the model's output embeddings, in adapter-major order), and the
    log-softmax runs over them in chunks. Inputs go to a GPU through pinned memory without blocking: nothing here
    waits for the device.
    """
    import torch

    from xling.models.base import to_device

    n_rows = len(rows)
    width = max(len(r.tokens) for r in rows)
    lo = min(min(p[0] for _, _, p in r.requests) for r in rows)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    seg = torch.full((n_rows, width), -1, dtype=torch.long)
    b0, p0, t0, k0, reqs = [], [], [], [], []  # one adapter's needed (row, position, token, request key)
    for r, row in enumerate(rows):
        n = len(row.tokens)
        ids[r, :n], pos[r, :n], seg[r, :n] = (
            torch.tensor(x, dtype=torch.long) for x in (row.tokens, row.positions, row.segment)
        )
        for req, cont, where in row.requests:
            b0 += [r] * len(cont)
            p0 += where
            t0 += cont
            k0 += [len(reqs)] * len(cont)
            reqs.append(req)
    n_keys = len(reqs)
    shift = np.arange(n_ad)[:, None]
    b_idx = (np.asarray(b0)[None] + shift * n_rows).ravel()  # adapter-major: adapter a's rows follow a-1's
    k_idx = (np.asarray(k0)[None] + shift * n_keys).ravel()
    p_idx, t_idx = np.tile(p0, n_ad), np.tile(t0, n_ad)
    b_t, p_t, t_t, k_t = (to_device(torch.from_numpy(x), device) for x in (b_idx, p_idx, t_idx, k_idx))

    kwargs = {"adapter_names": [name for name in adapter_names for _ in rows]} if adapter_names else {}
    packed = any(max(row.segment) > 0 for row in rows)
    with torch.inference_mode():
        ids_d, pos_d = to_device(ids, device), to_device(pos, device)
        if packed:  # segments need the 4D mask; without them plain causal attention is the same thing
            seg_d = to_device(seg, device)
            q = torch.arange(width, device=ids_d.device)
            allowed = (
                (q[None, None, :] <= q[None, :, None])
                & (seg_d[:, None, :] >= 0)
                & ((seg_d[:, None, :] == 0) | (seg_d[:, None, :] == seg_d[:, :, None]))
            )
            # an additive float mask (0 = attend): eager attention adds it to the scores, SDPA takes it as is; a
            # boolean mask would be added as 0/1 by eager attention
            dtype = model.get_input_embeddings().weight.dtype
            additive = torch.zeros(allowed.shape, dtype=dtype, device=ids_d.device)
            kwargs["attention_mask"] = additive.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None].repeat(
                n_ad, 1, 1, 1
            )
        logits = _needed_logits(model, bool(adapter_names), b_t, p_t - lo, width - lo, ids_d, pos_d, n_ad, kwargs)
        token_lp = torch.empty(len(t_idx), dtype=torch.float32, device=logits.device)
        missed = torch.empty(len(t_idx), dtype=torch.float32, device=logits.device)
        step = max(1, LOGIT_CHUNK // logits.shape[-1])
        for c in range(0, len(t_idx), step):
            lf, tc = logits[c : c + step].float(), t_t[c : c + step]
            token_lp[c : c + step] = lf.gather(1, tc[:, None])[:, 0] - torch.logsumexp(lf, dim=-1)
            missed[c : c + step] = (lf.argmax(-1) != tc).to(torch.float32)
        ll = torch.zeros(n_ad * n_keys, device=logits.device, dtype=torch.float64).index_add_(0, k_t, token_lp.double())
        miss = torch.zeros(n_ad * n_keys, device=logits.device).index_add_(0, k_t, missed)
    scored = Scored(np.repeat(np.arange(n_ad), n_keys), np.tile(np.asarray(reqs, dtype=np.int64), n_ad), ll, miss)
    return scored if defer else collect([scored], n_ad, n_requests)


def _needed_logits(model, peft_mixed: bool, b_t, p_t, keep: int, ids, pos, n_ad: int, kwargs):
    """The logits at (batch row ``b_t``, position ``p_t`` within the last ``keep`` positions), one row each.

    A pre-hook on the output embeddings hands the LM head only those hidden states; where the head is never called
    as a module (custom code) or is a peft LoRA layer under peft's mixed batches (which needs the whole batch), the
    head runs over the kept window and the rows are picked from its logits."""
    head = model.get_output_embeddings()
    fired = []

    def gather(module, args):
        fired.append(True)
        return (args[0][b_t, p_t][None], *args[1:])

    hook = None
    if head is not None and not (peft_mixed and hasattr(head, "lora_A")):
        hook = head.register_forward_pre_hook(gather)
    try:
        logits = model(input_ids=ids.repeat(n_ad, 1), position_ids=pos.repeat(n_ad, 1), logits_to_keep=keep, **kwargs)
    finally:
        if hook is not None:
            hook.remove()
    return logits.logits[0] if fired else logits.logits[b_t, p_t]


def collect(parts: Sequence[Scored], n_ad: int, n_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood and is-greedy arrays ``(n_ad, n_requests)`` from ``Scored`` batches; NaN / False where none
    covers an entry (two cover one only when a batch was retried after running out of memory: they differ by float
    rounding). One copy from the device."""
    import torch

    loglik = np.full((n_ad, n_requests), np.nan)
    greedy = np.zeros((n_ad, n_requests), dtype=bool)
    if parts:
        ll = torch.cat([p.loglik for p in parts]).cpu().numpy()
        miss = torch.cat([p.misses for p in parts]).cpu().numpy()
        a_idx = np.concatenate([p.adapter for p in parts])
        r_idx = np.concatenate([p.request for p in parts])
        loglik[a_idx, r_idx] = ll
        greedy[a_idx, r_idx] = miss == 0
    return loglik, greedy


PACKING_ATTENTION = ("eager", "sdpa")  # attention implementations that take the packed rows' 4-D mask


def can_pack(model) -> bool:
    """Whether ``model``'s attention implementation takes a 4-D attention mask (so choices can share a row)."""
    return getattr(model.config, "_attn_implementation", None) in PACKING_ATTENTION
