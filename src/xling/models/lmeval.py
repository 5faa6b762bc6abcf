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
2. each forward pass mixes adapters (peft ``adapter_names=`` per row, ``__base__`` for the base);
3. all choices of an item share one row: the context once, then each choice's continuation as a segment
   that attends to the context and itself (single-token letters add nothing: one forward per item); rows
   are sorted by length so padding is small;
4. the LM head and log-softmax run only over the window of continuation positions (``logits_to_keep``).

Packing (3) needs a 4-D attention mask, which transformers' ``eager`` and ``sdpa`` attention take; with any other
implementation (flash attention) every choice gets a row of its own and plain causal attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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


def forward_rows(
    model,
    rows: Sequence[Row],
    n_ad: int,
    n_requests: int,
    device,
    pad_id: int,
    adapter_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood and is-greedy of every request for ``rows`` under each of ``n_ad`` adapters.

    The batch is adapters × rows, adapter-major (segment ``a`` holds every row under adapter ``a``: the layout a
    grouped multi-LoRA model expects, ``xling.models.multilora.segments``; with peft's mixed batches,
    ``adapter_names`` names the adapter of each segment), right-padded; a token attends to earlier tokens of the
    context and of its own choice. Only the window of positions whose logits are needed goes through the LM head
    and log-softmax.
    """
    import torch

    width = max(len(r.tokens) for r in rows)
    lo = min(min(p[0] for _, _, p in r.requests) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    b_idx, p_idx, t_idx, seg_of, out_keys = [], [], [], [], []
    for r, row in enumerate(rows):
        n = len(row.tokens)
        ids[r, :n], pos[r, :n], seg[r, :n] = (
            torch.tensor(x, dtype=torch.long) for x in (row.tokens, row.positions, row.segment)
        )
        for a in range(n_ad):
            for req, cont, where in row.requests:
                b_idx += [a * len(rows) + r] * len(cont)
                p_idx += [w - lo for w in where]
                t_idx += cont
                seg_of += [len(out_keys)] * len(cont)
                out_keys.append((a, req))

    def expand(x):  # one copy of every row per adapter segment
        return x.repeat(n_ad, *[1] * (x.dim() - 1)).to(device)

    kwargs = {"adapter_names": [name for name in adapter_names for _ in rows]} if adapter_names else {}
    if (seg > 0).any():  # segments need the 4D mask; without them plain causal attention is the same thing
        q = torch.arange(width)
        allowed = (
            (q[None, None, :] <= q[None, :, None])
            & (seg[:, None, :] >= 0)
            & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
        )
        # an additive float mask (0 = attend): eager attention adds it to the scores, SDPA takes it as is; a
        # boolean mask would be added as 0/1 by eager attention
        dtype = model.get_input_embeddings().weight.dtype
        additive = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        kwargs["attention_mask"] = expand(additive[:, None])
    with torch.inference_mode():
        logits = model(
            input_ids=expand(ids),
            position_ids=expand(pos),
            logits_to_keep=torch.arange(lo, width, device=device),
            **kwargs,
        ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        b_t, p_t, t_t, s_t = (torch.tensor(x, device=device) for x in (b_idx, p_idx, t_idx, seg_of))
        token_lp = logp[b_t, p_t, t_t]
        missed = (logp[b_t, p_t].argmax(-1) != t_t).to(torch.float32)
        ll = torch.zeros(len(out_keys), device=device, dtype=torch.float64).index_add_(0, s_t, token_lp.double())
        miss = torch.zeros(len(out_keys), device=device).index_add_(0, s_t, missed)
    loglik = np.full((n_ad, n_requests), np.nan)
    greedy = np.zeros((n_ad, n_requests), dtype=bool)
    a_idx = np.array([k[0] for k in out_keys])
    r_idx = np.array([k[1] for k in out_keys])
    loglik[a_idx, r_idx] = ll.cpu().numpy()
    greedy[a_idx, r_idx] = miss.cpu().numpy() == 0
    return loglik, greedy


PACKING_ATTENTION = ("eager", "sdpa")  # attention implementations that take the packed rows' 4-D mask


def can_pack(model) -> bool:
    """Whether ``model``'s attention implementation takes a 4-D attention mask (so choices can share a row)."""
    return getattr(model.config, "_attn_implementation", None) in PACKING_ATTENTION
