"""What every run records so a number can be traced to how it was made."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import xling

_LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "duckdb",
    "pydantic",
    "statsmodels",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "sentence-transformers",
    "faiss-cpu",
    "ray",
    "submitit",
    "lm-eval",
    "babel",
    "num2words",
    "lang2vec",
    "scikit-learn",
    "ir-measures",
    "pytrec-eval-terrier",
)


def library_versions() -> dict[str, str]:
    """Versions of the installed libraries that can change a result (missing ones are left out)."""
    versions = {"python": platform.python_version(), "xling": xling.__version__}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_record(config: Any = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-able record of a run: command line, config, seed, library versions, time, host, and the CPU threads
    of the numeric libraries when a command set them."""
    from xling.threads import current_threads

    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    threads = current_threads()
    if threads is not None:
        extra = {"threads": threads, **extra}
    return {
        "argv": sys.argv,
        "config": config,
        "seed": seed,
        "versions": library_versions(),
        "platform": platform.platform(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def write_run_record(
    folder: str | Path, config: Any = None, seed: int | None = None, name: str = "run.json", **extra: Any
) -> Path:
    """Write the run record (``run.json`` unless ``name`` says otherwise) into ``folder``; return its path."""
    path = Path(folder) / name
    path.write_text(json.dumps(run_record(config, seed, **extra), indent=2, default=str) + "\n")
    return path
