"""Model kinds behind one interface (``xling.models.base.ModelKind``), and LoRA adapters.

``get_kind(name)`` returns the kind a ``ModelSpec.kind`` names. A new kind is one class with the interface's
methods and one entry in ``xling.registry.MODEL_KINDS`` (modules are imported only when used, so ``torch`` loads
only when a model does).
"""

from __future__ import annotations

from xling.models.base import ModelKind
from xling.registry import MODEL_KINDS


def get_kind(name: str) -> ModelKind:
    """The model kind called ``name``."""
    return MODEL_KINDS.load(name)()
