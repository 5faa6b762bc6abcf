"""Running the ``xling`` entry point in-process, as a user's shell would: one helper for every CLI test."""

from __future__ import annotations

import sys

import pytest
import typer


def run_xling(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``xling ARGS`` through the real entry point (``xling.cli.main``): (exit code, stdout, stderr)."""
    from xling.cli import main

    monkeypatch.setattr(sys, "argv", ["xling", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


def xling_commands() -> dict[str, object]:
    """Every command of the app (as ``xling --help`` shows them, shared options included), by its full name."""
    from xling.cli import app

    def walk(cmd, path=()):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield " ".join(path), cmd

    return dict(walk(typer.main.get_command(app)))
