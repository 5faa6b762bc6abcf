"""Command line: one typer app, thin. Parse, call the library, print.

Each module below attaches its commands to ``xling.cli.app``; heavy libraries are imported inside
commands so ``xling --help`` stays fast. ``guard_commands`` then gives every command the shared options and
policies (``xling.cli.common``). ``XlingError`` becomes one line on stderr and exit code 2; Ctrl-C one line saying
what was kept and exit code 130.
"""

from __future__ import annotations

import sys
import warnings

import typer

from xling.cli import analyze, cle, data, grid, predict, quickstart, simulate, train  # noqa: F401  (attach commands)
from xling.cli.app import app
from xling.cli.common import guard_commands
from xling.errors import XlingError, XlingNote

guard_commands(app)  # after every module has attached its commands

_format_warning = warnings.formatwarning


def _format_note(message, category, filename, lineno, line=None) -> str:
    """``XlingNote`` as one ``note:`` line; every other warning as Python formats it."""
    if issubclass(category, XlingNote):
        return f"note: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


def main() -> None:
    """Entry point of the ``xling`` script: exit code 0 success, 1 some units failed, 2 bad input (one ``error:``
    line, for a wrong command-line value too), 130 interrupted."""
    warnings.formatwarning = _format_note
    try:
        code = app(standalone_mode=False)
    except XlingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort) as err:
        kept = getattr(err, "kept", None) or "rerun the same command to resume or start again"
        print(f"interrupted: {kept}", file=sys.stderr)
        sys.exit(130)
    except typer.exceptions.TyperException as err:  # click's usage errors: a wrong option, value or command
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
        else:
            where = f" ({ctx.command_path})" if ctx is not None else ""
            print(f"error: {err.format_message()}{where}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
