"""Model kinds behind one interface (``xling.models.base.ModelKind``), and LoRA adapters.

``get_kind(name)`` returns the kind a ``ModelSpec.kind`` names. A new kind is one class with the interface's
methods, registered in ``KINDS`` (module and class; modules are imported only when used, so ``torch`` loads
only when a model does).
"""

from __future__ import annotations

from importlib import import_module

from xling.errors import XlingError
from xling.models.base import ModelKind

KINDS = {"causal": ("xling.models.causal", "CausalKind"), "encoder": ("xling.models.encoder", "EncoderKind")}


def get_kind(name: str) -> ModelKind:
    """The model kind called ``name``."""
    if name not in KINDS:
        raise XlingError(f"unknown model kind {name!r} (expected one of {', '.join(KINDS)})")
    module, cls = KINDS[name]
    return getattr(import_module(module), cls)()
