"""Loading a causal LM and its tokenizer once, on the best device, in the right dtype."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xling.config import ModelSpec
from xling.errors import XlingError

DEFAULT_MAX_LENGTH = 2048
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
        return AutoTokenizer.from_pretrained(spec.location, revision=spec.revision,
                                             trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        raise XlingError(f"model {spec.name!r}: cannot load tokenizer from {spec.location!r}: "
                         f"{str(err).splitlines()[0]}") from None


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
    return DEFAULT_MAX_LENGTH


def base_fingerprint(model) -> str:
    """A short hash of the architecture config and a slice of the input embeddings: tells base models apart.
    The slice is rounded to bf16 first, so the same weights loaded in float32, bfloat16 or float16 match."""
    import torch

    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "torch_dtype"
              and k != "dtype"}
    emb = model.get_input_embeddings().weight.detach()[:8].to(torch.bfloat16).to(torch.float32).cpu().numpy()
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(emb.tobytes())
    return h.hexdigest()[:16]


def load_causal(spec: ModelSpec, *, device=None) -> LoadedLM:
    """Load the base model (eval mode) and tokenizer once."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device = device or pick_device()
    tokenizer = load_tokenizer(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.location, revision=spec.revision, dtype=pick_dtype(spec, device),
            trust_remote_code=spec.trust_remote_code,
            **({"attn_implementation": spec.attn_implementation} if spec.attn_implementation else {}),
        )
    except (OSError, ValueError) as err:
        raise XlingError(f"model {spec.name!r}: cannot load from {spec.location!r}: {str(err).splitlines()[0]}") from None
    model.to(device).eval()
    return LoadedLM(model, tokenizer, device, resolve_max_length(model.config, tokenizer), base_fingerprint(model))
