"""Prompt formats: how an item becomes evaluation requests and training examples.

Evaluation follows lm-evaluation-harness: each choice is a ``(context, target_delimiter + continuation)``
request and acc_norm divides by the character length of the continuation text.

- ``continuation``: context = the item's rendered context, continuation = the option text (ARC, HellaSwag,
  TruthfulQA in lm-eval);
- ``letters``: the question followed by lettered options (``A) …``) and ``Answer:``; continuation = the
  letter (Global-MMLU in lm-eval).

A paper benchmark item also carries a ``plain`` view (``fields['plain']``: context, choices, gold), which
``variant='plain'`` scores instead of the lm-eval task format.

Training examples are ``(prompt, target)``: the loss covers only ``target`` (the answer), except full-sequence
language modelling (``lm``, and the paper's TruthfulQA training), where ``prompt`` is empty and the whole
``Question: …\nAnswer: …`` text is modelled. ``paper`` is the release's own training example of a paper
benchmark row (``fields['paper_train']``), and a lettered ``A) …`` prompt with the letter as target elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xling.errors import XlingError
from xling.tasks.items import MCItem

Format = Literal["continuation", "letters", "lm"]
Variant = Literal["lm-eval", "plain"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DEFAULT_CHAT_DATE = "26 Jul 2024"


@dataclass(frozen=True)
class Requests:
    """The lm-eval requests of one item: one context, one continuation per choice, the choice texts whose
    lengths normalise acc_norm / acc_bytes, and the index of the gold choice."""

    context: str
    continuations: tuple[str, ...]
    choice_texts: tuple[str, ...]
    gold: int


def resolve_format(item: MCItem, fmt: str) -> Format:
    """``auto`` becomes the task's own evaluation format (``fields['prompt_format']``, else continuation)."""
    if fmt == "auto":
        fmt = str(item.fields.get("prompt_format", "continuation"))
    if fmt not in ("continuation", "letters", "lm"):
        raise XlingError(f"task {item.task!r}: unknown prompt format {fmt!r} (expected continuation, letters or lm)")
    return fmt  # type: ignore[return-value]


def question(item: MCItem) -> str:
    """The bare question (without a task template), used by the lettered and LM formats."""
    return str(item.fields.get("question", item.context))


def view(item: MCItem, variant: str = "lm-eval") -> tuple[str, tuple[str, ...], int]:
    """``(context, choices, gold)`` of ``item``: its own, or its ``plain`` view where it has one and
    ``variant`` is ``plain``."""
    if variant not in ("lm-eval", "plain"):
        raise XlingError(f"unknown benchmark format {variant!r} (expected lm-eval or plain)")
    plain = item.fields.get("plain") if variant == "plain" else None
    if plain:
        return str(plain["context"]), tuple(str(c) for c in plain["choices"]), int(plain["gold"])
    return item.context, item.choices, item.gold


def lettered_prompt(item: MCItem, choices: tuple[str, ...] | None = None) -> str:
    """``question\\nA) opt\\nB) opt\\n…\\nAnswer:`` (separator from ``fields['letter_sep']``, default ``)``)."""
    choices = item.choices if choices is None else choices
    if len(choices) > len(LETTERS):
        raise XlingError(f"task {item.task!r} item {item.id!r}: {len(choices)} choices, at most 26 can be lettered")
    sep = str(item.fields.get("letter_sep", ")"))
    options = "\n".join(f"{LETTERS[i]}{sep} {choice}" for i, choice in enumerate(choices))
    return f"{question(item).strip()}\n{options}\nAnswer:"


def eval_requests(item: MCItem, fmt: str = "auto", chat: bool = False, variant: str = "lm-eval") -> Requests:
    """The requests lm-eval would build for ``item`` in format ``fmt`` (zero-shot); ``variant`` picks the item's
    lm-eval task format or its plain view (see ``view``).

    With ``chat`` (the context goes through a chat template) the target delimiter is dropped, as lm-eval does.
    """
    fmt = resolve_format(item, fmt)
    context, choices, gold = view(item, variant)
    delim = "" if chat else str(item.fields.get("target_delimiter", " "))
    if fmt == "letters":
        letters = tuple(LETTERS[i] for i in range(len(choices)))
        return Requests(lettered_prompt(item, choices), tuple(f"{delim}{x}" for x in letters), letters, gold)
    if fmt == "lm":
        context = f"Question: {question(item).strip()}\nAnswer:"
    return Requests(context, tuple(f"{delim}{c}" for c in choices), tuple(choices), gold)


def paper_trainable(item: MCItem) -> bool:
    """False for a row the release's processor drops before its train/validation split (ARC answers not A–D)."""
    return "paper_train" not in item.fields or item.fields["paper_train"] is not None


def train_example(item: MCItem, fmt: str = "auto", chat: bool = False) -> tuple[str, str]:
    """``(prompt, target)`` for fine-tuning on the gold answer; loss is taken on ``target`` only (an empty
    prompt: the whole text is modelled).

    ``paper`` is the release's training example: ``fields['paper_train']`` of a paper benchmark row (lettered
    ``A) …`` prompt and ``" A"`` target; TruthfulQA as ``Question: …\\nAnswer: …`` text), else a lettered prompt.
    """
    if fmt == "paper":
        paper = item.fields.get("paper_train")
        if "paper_train" in item.fields and paper is None:
            raise XlingError(f"task {item.task!r} item {item.id!r}: the paper's training format drops this item")
        if paper:
            return ("", str(paper["text"])) if "text" in paper else (str(paper["prompt"]), str(paper["target"]))
        return lettered_prompt(item), f" {LETTERS[item.gold]}"
    fmt = resolve_format(item, fmt)
    if fmt == "lm":
        return "", f"Question: {question(item).strip()}\nAnswer: {item.choices[item.gold]}"
    req = eval_requests(item, fmt, chat)
    return req.context, req.continuations[req.gold]


def apply_chat(tokenizer, context: str, date: str | None = DEFAULT_CHAT_DATE) -> str:
    """Wrap ``context`` as one user turn with the tokenizer's chat template and a generation prompt.

    ``date`` is passed as ``date_string``, which Llama-3 templates print instead of today's date (Llama-3.2's calls
    ``strftime_now`` only when no ``date_string`` is given; Llama-3.1's falls back to 26 Jul 2024), so scores do
    not depend on the day they were computed. ``None`` leaves the template's own behaviour. A template that calls
    ``strftime_now`` unconditionally (none of the paper's models) still prints today's date.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise XlingError("chat_template is on but the tokenizer has no chat template")
    extra = {} if date is None else {"date_string": date}
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": context}], tokenize=False, add_generation_prompt=True, **extra
    )
