"""Where xling keeps what it can rebuild (prepared task rows, ``.npy`` copies of vectors files): one folder.

``$XLING_CACHE`` when set, else ``$XDG_CACHE_HOME/xling``, else ``~/.cache/xling``. Nothing there is an input or a
result: deleting the folder costs only the time to rebuild it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    if os.environ.get("XLING_CACHE"):
        return Path(os.environ["XLING_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "xling"
