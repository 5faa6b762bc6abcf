"""Multiple-choice scoring of a base model and many LoRA adapters in one pass, by lm-eval's rules.

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
implementation (flash attention) every choice gets a row of its own and plain causal attention. ``merge: true``
scores each adapter merged into the base weights instead (the release's way: merge, then evaluate), one at a
time, restoring the base weights after each. A CUDA out-of-memory error halves the batch and retries it.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xling.config import ModelSpec, ScoreSpec
from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.prompts import DEFAULT_CHAT_DATE, apply_chat, eval_requests

COLUMNS = ["adapter", "task", "language", "item_id", "choice", "loglik", "n_tokens", "n_chars", "n_bytes",
           "is_greedy", "is_gold", "kind"]
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
        return ctx, whole[len(ctx):]


def encode_items(items: Sequence[MCItem], tokenizer, fmt: str = "auto", chat: bool = False,
                 variant: str = "lm-eval", chat_date: str | None = DEFAULT_CHAT_DATE) -> list[Encoded]:
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
            raise XlingError(f"choice {enc.choice} of item #{enc.item}: continuation longer than the model's "
                             f"context ({len(cont)} > {max_length} tokens)")
        if not pack or len(ctx) + len(cont) > max_length + 1:  # lm-eval's left truncation: this choice alone
            tokens = list((ctx + cont)[-(max_length + 1):][:-1])
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


def forward_rows(model, rows: Sequence[Row], adapter_names: Sequence[str], n_requests: int, device,
                 pad_id: int, use_adapters: bool) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood and is-greedy of every request under every adapter in ``adapter_names`` for ``rows``.

    The batch is rows × adapters, right-padded; a token attends to earlier tokens of the context and of its
    own segment. Only the window of positions whose logits are needed goes through the LM head and
    log-softmax.
    """
    import torch

    n_ad = len(adapter_names)
    width = max(len(r.tokens) for r in rows)
    lo = min(min(p[0] for _, _, p in r.requests) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    b_idx, p_idx, t_idx, seg_of, out_keys = [], [], [], [], []
    for r, row in enumerate(rows):
        n = len(row.tokens)
        ids[r, :n], pos[r, :n], seg[r, :n] = (torch.tensor(x, dtype=torch.long) for x in
                                               (row.tokens, row.positions, row.segment))
        for a in range(n_ad):
            for req, cont, where in row.requests:
                b_idx += [r * n_ad + a] * len(cont)
                p_idx += [w - lo for w in where]
                t_idx += cont
                seg_of += [len(out_keys)] * len(cont)
                out_keys.append((a, req))
    expand = (lambda x: x.repeat_interleave(n_ad, dim=0).to(device))
    kwargs = {"adapter_names": [name for _ in rows for name in adapter_names]} if use_adapters else {}
    if (seg > 0).any():  # segments need the 4D mask; without them plain causal attention is the same thing
        q = torch.arange(width)
        allowed = (q[None, None, :] <= q[None, :, None]) & (seg[:, None, :] >= 0) & (
            (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
        # an additive float mask (0 = attend): eager attention adds it to the scores, SDPA takes it as is; a
        # boolean mask would be added as 0/1 by eager attention
        dtype = model.get_input_embeddings().weight.dtype
        additive = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        kwargs["attention_mask"] = expand(additive[:, None])
    with torch.inference_mode():
        logits = model(input_ids=expand(ids), position_ids=expand(pos),
                       logits_to_keep=torch.arange(lo, width, device=device), **kwargs).logits
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


def peak_memory_bytes(device) -> int:
    """Peak GPU memory allocated (CUDA) or the process's peak resident memory (CPU)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# --- the API --------------------------------------------------------------------------------------------------


def _limit_items(items: Sequence[MCItem], max_items: int | None) -> list[MCItem]:
    """The first ``max_items`` items of each (task, language) cell; duplicate ids in a cell are an error."""
    kept, count, seen = [], {}, set()
    for it in items:
        key = (it.task, it.language, it.id)
        if key in seen:
            raise XlingError(f"task {it.task!r} language {it.language!r}: duplicate item id {it.id!r}")
        seen.add(key)
        cell = (it.task, it.language)
        count[cell] = count.get(cell, 0) + 1
        if max_items is None or count[cell] <= max_items:
            kept.append(it)
    return kept


def score_items(model: ModelSpec, adapters: Mapping[str, str | Path | None], items: Sequence[MCItem],
                spec: ScoreSpec = ScoreSpec(), *, progress: bool = False,
                checkpoint_dir: str | Path | None = None) -> pd.DataFrame:
    """Log-likelihood of every choice of every item under every entry of ``adapters`` (label → adapter folder,
    or ``None`` for the base model). Returns one row per (adapter, item, choice), columns ``COLUMNS``;
    ``attrs['peak_memory_bytes']`` holds the peak memory.

    Items are scored one (task, language) cell at a time; with ``checkpoint_dir`` each finished cell is saved
    there and a rerun after an interruption loads it instead of scoring it again.
    """
    adapters = dict(adapters) or {"base": None}
    items = _limit_items(items, spec.max_items)
    if not items:
        raise XlingError("no items to score")
    for label, path in adapters.items():
        if path is not None and not Path(path).is_dir():
            raise XlingError(f"adapter {label!r}: no such folder {str(path)!r}")
    if model.kind == "encoder":
        from xling.models.encoder import score_encoder

        return score_encoder(model, adapters, items, spec)
    cells: dict[tuple[str, str], list[MCItem]] = {}
    for it in items:
        cells.setdefault((it.task, it.language), []).append(it)
    scorer, frames, peak = None, [], 0
    for cell_items in _progress(list(cells.values()), progress, "scoring cells"):
        saved = _checkpoint_path(checkpoint_dir, model, adapters, spec, cell_items)
        if saved is not None and saved.is_file():
            frames.append(pd.read_parquet(saved))
            continue
        scorer = scorer or _Scorer(model, adapters, spec)
        frame = scorer.score(cell_items)
        peak = max(peak, frame.attrs["peak_memory_bytes"])
        if saved is not None:
            from xling.io import atomic_file

            with atomic_file(saved, "wb") as fh:
                frame.to_parquet(fh, index=False)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["peak_memory_bytes"] = peak
    return out


def _checkpoint_path(folder, model: ModelSpec, adapters: Mapping, spec: ScoreSpec, items) -> Path | None:
    """Where a cell's finished scores are kept: keyed by model, adapters, options and the items' content."""
    if folder is None:
        return None
    import hashlib
    import json

    from xling.tasks.registry import items_fingerprint

    key = json.dumps([model.model_dump(mode="json"), {k: str(v) for k, v in adapters.items()},
                      spec.model_dump(mode="json"), items_fingerprint(items)], sort_keys=True)
    return Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.parquet"


PACKING_ATTENTION = ("eager", "sdpa")  # attention implementations that take the packed rows' 4-D mask


def can_pack(model) -> bool:
    """Whether ``model``'s attention implementation takes a 4-D attention mask (so choices can share a row)."""
    return getattr(model.config, "_attn_implementation", None) in PACKING_ATTENTION


class _Scorer:
    """The base model loaded once with every adapter attached (unmerged), or, with ``merge``, each adapter merged
    into the base weights in turn; scores lists of items."""

    def __init__(self, model: ModelSpec, adapters: Mapping[str, str | Path | None], spec: ScoreSpec):
        import torch

        from xling.models.adapters import attach_adapters, check_adapter
        from xling.models.causal import load_causal

        self.model, self.spec = model, spec
        self.lm = load_causal(model)
        self.internal = {label: (BASE if path is None else f"a{i}") for i, (label, path) in enumerate(adapters.items())}
        self.paths = {self.internal[k]: Path(p) for k, p in adapters.items() if p is not None}
        for path in self.paths.values():
            check_adapter(path, model.name, model.location, self.lm.fingerprint)
        self.net = self.lm.model if spec.merge else attach_adapters(self.lm.model, self.paths)
        self.labels = list(adapters)
        self.names = list(dict.fromkeys(self.internal[label] for label in self.labels))  # the base once
        self.pack = spec.pack_choices and can_pack(self.lm.model)
        self.batch_size, self.adapters_per_batch, self.oom_retries = spec.batch_size, spec.adapters_per_batch, 0
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
                    parts.append(self.forward_all(net, rows, [BASE], len(encoded), use_adapters=False))
            loglik, greedy = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        else:
            loglik, greedy = self.forward_all(self.net, rows, names, len(encoded), self.net is not lm.model)
        frame = _frame(items, encoded, self.labels, [names.index(self.internal[x]) for x in self.labels], loglik,
                       greedy, self.model.kind)
        frame.attrs["peak_memory_bytes"] = peak_memory_bytes(lm.device)
        frame.attrs["oom_retries"] = self.oom_retries
        return frame

    def forward_all(self, net, rows: Sequence[Row], names: Sequence[str], n_requests: int,
                    use_adapters: bool) -> tuple[np.ndarray, np.ndarray]:
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
                    group = names[a0:a0 + self.adapters_per_batch]
                    ll, gr = forward_rows(net, rows[r0:r0 + size], group, n_requests, lm.device, pad_id, use_adapters)
                    done = ~np.isnan(ll)
                    loglik[a0:a0 + len(group)][done] = ll[done]
                    greedy[a0:a0 + len(group)] |= gr
            except torch.OutOfMemoryError:
                if self.batch_size == 1 and self.adapters_per_batch == 1:
                    raise
                self._shrink()
                continue
            r0 += size
        return loglik, greedy

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

        from xling.models.adapters import quiet_peft

        with quiet_peft():
            wrapped = PeftModel.from_pretrained(self.lm.model, str(self.paths[name]), is_trainable=False)
        saved = {mod_name: module.get_base_layer().weight.detach().to("cpu", copy=True)
                 for mod_name, module in wrapped.base_model.model.named_modules() if isinstance(module, LoraLayer)}
        merged = wrapped.merge_and_unload()
        try:
            yield merged.eval()
        finally:
            with torch.no_grad():
                for mod_name, weight in saved.items():
                    merged.get_submodule(mod_name).weight.copy_(weight)


def _progress(seq, enabled: bool, what: str):
    if not enabled:
        return seq
    from rich.progress import track

    return track(seq, description=what, transient=True)


def _frame(items, encoded, labels, label_rows, loglik, greedy, kind) -> pd.DataFrame:
    base = pd.DataFrame({
        "task": [items[e.item].task for e in encoded],
        "language": [items[e.item].language for e in encoded],
        "item_id": [items[e.item].id for e in encoded],
        "choice": [e.choice for e in encoded],
        "n_tokens": [len(e.continuation) for e in encoded],
        "n_chars": [len(e.choice_text) for e in encoded],
        "n_bytes": [len(e.choice_text.encode("utf-8")) for e in encoded],
        "is_gold": [e.is_gold for e in encoded],
    })
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


def summarize(loglik_df: pd.DataFrame) -> pd.DataFrame:
    """Per (adapter, task, language): n items and acc, acc_norm, acc_bytes as lm-eval computes them
    (argmax of loglik, of loglik / characters, of loglik / UTF-8 bytes; ties go to the first choice)."""
    keys = ["adapter", "task", "language", "item_id"]
    d = loglik_df.sort_values(keys + ["choice"], kind="stable").reset_index(drop=True)
    by = [d[k] for k in keys]
    hits = {}
    for metric, score in (("acc", d["loglik"]), ("acc_norm", d["loglik"] / d["n_chars"]),
                          ("acc_bytes", d["loglik"] / d["n_bytes"])):
        best = score.groupby(by, sort=False).idxmax()
        hits[metric] = pd.Series(d.loc[best.to_numpy(), "is_gold"].to_numpy(dtype=float), index=best.index)
    per_item = pd.DataFrame(hits).reset_index()
    if "kind" in d:  # an encoder's cosine has no length to normalise by
        encoder = d.groupby(by, sort=False)["kind"].first().to_numpy() == "encoder"
        per_item.loc[encoder, "acc_norm"] = per_item.loc[encoder, "acc"]
        per_item.loc[encoder, "acc_bytes"] = per_item.loc[encoder, "acc"]
    out = per_item.groupby(["adapter", "task", "language"], sort=True).agg(
        n=("acc", "size"), acc=("acc", "mean"), acc_norm=("acc_norm", "mean"), acc_bytes=("acc_bytes", "mean"))
    return out.reset_index()


def write_outputs(loglik_df: pd.DataFrame, out_dir: str | Path, config=None,
                  benchmark_format: str = "lm-eval") -> Path:
    """``OUT/loglikelihoods.parquet``, ``OUT/scores.csv`` and ``OUT/run.json``, written atomically. When paper
    benchmarks were scored, ``run.json`` says which evaluation format they used and that it is inferred."""
    from xling.io import atomic_dir
    from xling.provenance import write_run_record
    from xling.tasks.paper import BENCHMARKS, format_record

    scored = sorted(set(loglik_df["task"]) & set(BENCHMARKS))
    extra = {"paper_benchmark_formats": format_record(scored, benchmark_format)} if scored else {}
    with atomic_dir(out_dir) as tmp:
        loglik_df.to_parquet(tmp / "loglikelihoods.parquet", index=False)
        summarize(loglik_df).to_csv(tmp / "scores.csv", index=False)
        write_run_record(tmp, config, peak_memory_bytes=loglik_df.attrs.get("peak_memory_bytes"),
                         oom_retries=loglik_df.attrs.get("oom_retries"), **extra)
    return Path(out_dir)
