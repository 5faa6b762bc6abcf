"""Running the ``xling`` entry point in-process, as a user's shell would: one helper for every CLI test."""

from __future__ import annotations

import sys

import pytest


def run_xling(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``xling ARGS`` through the real entry point (``xling.cli.main``): (exit code, stdout, stderr)."""
    from xling.cli import main

    monkeypatch.setattr(sys, "argv", ["xling", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err
