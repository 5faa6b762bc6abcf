"""Prompt formats: how an item becomes evaluation requests and training examples.

Evaluation follows lm-evaluation-harness: each choice is a ``(context, target_delimiter + continuation)``
request and acc_norm divides by the character length of the continuation text.

- ``continuation``: context = the item's rendered context, continuation = the option text (ARC, HellaSwag,
  TruthfulQA in lm-eval);
- ``letters``: the question followed by lettered options (``A) …``) and ``Answer:``; continuation = the
  letter (Global-MMLU in lm-eval; the paper's training format for every task).

Training examples are ``(prompt, target)``: the loss covers only ``target`` (the answer), except the ``lm``
format (the paper's TruthfulQA training), where ``prompt`` is empty and the whole
``Question: …\\nAnswer: …`` text is modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xling.errors import XlingError
from xling.tasks.items import MCItem

Format = Literal["continuation", "letters", "lm"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Requests:
    """The lm-eval requests of one item: one context, one continuation per choice, and the choice texts
    whose lengths normalise acc_norm / acc_bytes."""

    context: str
    continuations: tuple[str, ...]
    choice_texts: tuple[str, ...]


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


def lettered_prompt(item: MCItem) -> str:
    """``question\\nA) opt\\nB) opt\\n…\\nAnswer:`` (separator from ``fields['letter_sep']``, default ``)``)."""
    if len(item.choices) > len(LETTERS):
        raise XlingError(f"task {item.task!r} item {item.id!r}: {len(item.choices)} choices, at most 26 can be lettered")
    sep = str(item.fields.get("letter_sep", ")"))
    options = "\n".join(f"{LETTERS[i]}{sep} {choice}" for i, choice in enumerate(item.choices))
    return f"{question(item).strip()}\n{options}\nAnswer:"


def eval_requests(item: MCItem, fmt: str = "auto", chat: bool = False) -> Requests:
    """The requests lm-eval would build for ``item`` in format ``fmt`` (zero-shot).

    With ``chat`` (the context goes through a chat template) the target delimiter is dropped, as lm-eval does.
    """
    fmt = resolve_format(item, fmt)
    delim = "" if chat else str(item.fields.get("target_delimiter", " "))
    if fmt == "letters":
        letters = tuple(LETTERS[i] for i in range(len(item.choices)))
        return Requests(lettered_prompt(item), tuple(f"{delim}{x}" for x in letters), letters)
    if fmt == "lm":
        context = f"Question: {question(item).strip()}\nAnswer:"
        return Requests(context, tuple(f"{delim}{c}" for c in item.choices), tuple(item.choices))
    return Requests(item.context, tuple(f"{delim}{c}" for c in item.choices), tuple(item.choices))


def train_example(item: MCItem, fmt: str = "auto", chat: bool = False) -> tuple[str, str]:
    """``(prompt, target)`` for fine-tuning on the gold answer; loss is taken on ``target`` only.

    ``paper`` is the paper's training format: ``lm`` where the task says so (TruthfulQA), else ``letters``.
    """
    if fmt == "paper":
        fmt = str(item.fields.get("train_format", "letters"))
    fmt = resolve_format(item, fmt)
    if fmt == "lm":
        return "", f"Question: {question(item).strip()}\nAnswer: {item.choices[item.gold]}"
    req = eval_requests(item, fmt, chat)
    return req.context, req.continuations[item.gold]


def apply_chat(tokenizer, context: str) -> str:
    """Wrap ``context`` as one user turn with the tokenizer's chat template and a generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise XlingError("chat_template is on but the tokenizer has no chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": context}], tokenize=False, add_generation_prompt=True
    )
