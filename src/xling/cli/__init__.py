"""Command line: one typer app, thin. Parse, call the library, print.

Each module below attaches its commands to ``xling.cli.app``; heavy libraries are imported inside
commands so ``xling --help`` stays fast. ``XlingError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import warnings

from xling.cli import analyze, cle, grid, peft  # noqa: F401  (attach commands)
from xling.cli.app import app
from xling.errors import XlingError, XlingNote

_format_warning = warnings.formatwarning


def _format_note(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    """``XlingNote`` as one ``note:`` line; every other warning as Python formats it."""
    if issubclass(category, XlingNote):
        return f"note: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


def main() -> None:
    """Entry point of the ``xling`` script."""
    warnings.formatwarning = _format_note
    try:
        app()
    except XlingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
