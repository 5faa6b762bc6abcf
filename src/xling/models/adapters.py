"""LoRA adapters: load several onto one base model (never merged), and check they belong to it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from xling.errors import XlingError

XLING_ADAPTER_FILE = "xling_adapter.json"


def write_adapter_meta(folder: Path, model_name: str, location: str, fingerprint: str) -> None:
    """Record which base model an adapter was trained on (checked when it is loaded)."""
    meta = {"base_model": model_name, "base_location": location, "base_fingerprint": fingerprint}
    (folder / XLING_ADAPTER_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def check_adapter(path: Path, model_name: str, location: str, fingerprint: str) -> None:
    """Raise ``XlingError`` unless ``path`` is a LoRA adapter trained on this base model."""
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise XlingError(f"adapter {str(path)!r}: not an adapter folder (no adapter_config.json)")
    meta_file = path / XLING_ADAPTER_FILE
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("base_fingerprint") != fingerprint:
            raise XlingError(
                f"adapter {str(path)!r} was trained on base model {meta.get('base_model')!r} "
                f"({meta.get('base_location')}), not on {model_name!r} ({location})"
            )
        return
    base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if base and not _same_location(base, location) and base != model_name:
        raise XlingError(
            f"adapter {str(path)!r} was trained on base model {base!r}, not on {model_name!r} ({location})"
        )


def _same_location(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Silence transformers' deprecation notice that peft 0.21 triggers (``is_gradient_checkpointing``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def attach_adapters(base, adapters: Mapping[str, Path]):
    """Load every adapter onto ``base`` under its key (a peft-safe name); returns the ``PeftModel`` in eval mode."""
    from peft import PeftModel

    model = None
    with quiet_peft():
        for name, path in adapters.items():
            if model is None:
                model = PeftModel.from_pretrained(base, str(path), adapter_name=name, is_trainable=False)
            else:
                model.load_adapter(str(path), adapter_name=name, is_trainable=False)
    if model is None:
        return base
    return model.eval()
