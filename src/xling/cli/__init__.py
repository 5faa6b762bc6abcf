"""Command line: one typer app, thin. Parse, call the library, print.

Each module below attaches its commands to ``xling.cli.app``; heavy libraries are imported inside
commands so ``xling --help`` stays fast. ``XlingError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

from xling.cli import analyze, cle, grid, peft  # noqa: F401  (attach commands)
from xling.cli.app import app
from xling.errors import XlingError


def main() -> None:
    """Entry point of the ``xling`` script."""
    try:
        app()
    except XlingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
