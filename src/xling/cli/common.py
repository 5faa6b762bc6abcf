"""The options every command shares, declared once, the policies every command runs under, and the one way a
command prints JSON.

The convention (README, "Command-line conventions"; ``tests/test_cli_convention.py`` checks every command):
``-o/--out`` is the output path (metavar ``DIR`` or ``FILE``); ``--json`` prints the command's results as one JSON
line on stdout (progress and notes go to stderr); enumerated options are typed, so ``--help`` lists their choices and
a wrong value fails before any work; an option name means one thing with one default everywhere; exit codes are 0
success, 1 some units failed, 2 bad input, 130 interrupted.

``guard_commands`` gives every command what it shares without each command declaring it: ``--force`` where there
is an ``-o`` to write, ``--threads`` on every compute command, the output rules of ``xling.io`` (checked before any
work), the thread limits of ``xling.threads``, and a Ctrl-C that says what was kept.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.models import OptionInfo

from xling.contracts import RELEASE_COLUMNS
from xling.jsonable import jsonable
from xling.registry import MODEL_KINDS

Kind = MODEL_KINDS.choices()
Executor = Literal["local", "ray", "slurm"]

#: A headline column of the release schema (a ``*_mean`` column).
HeadlineMetric = Literal[tuple(c for c in RELEASE_COLUMNS if c.endswith("_mean"))]  # type: ignore[valid-type]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as one JSON line (progress on stderr).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML with lora/train/score sections.")]
KindOption = Annotated[Kind, typer.Option(help="Model kind of a folder or hub id given as --model.")]
ExecutorOption = Annotated[Executor | None, typer.Option(help="Where units run (overrides the spec).")]
AddressOption = Annotated[str | None, typer.Option(help="Ray cluster address, e.g. 'auto'.")]
RetriesOption = Annotated[int | None, typer.Option(min=0, help="Retries of a failing unit (overrides the spec).")]
GridOutOption = Annotated[
    Path | None, typer.Option("-o", "--out", metavar="DIR", help="Output folder (overrides the spec's).")
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Write into an -o folder that holds files xling did not write: beside them, an output replacing only a "
        "file of its own name, never an input of the command.",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads of the numeric libraries (default: OMP_NUM_THREADS if set, else the CPUs this process may "
        "use less the machine's load, at least 1).",
    ),
]

#: Commands whose -o only says where to look: they write nothing.
READ_ONLY = {"grid plan", "grid status"}
#: Commands that compute nothing worth threads (every other command gets --threads).
NOT_COMPUTE = READ_ONLY | {"grid export", "data fetch", "data prepare"}
#: Commands whose output grows file by file (each file complete on its own), so a Ctrl-C keeps what is done.
GROWS_IN_PLACE = {"data fetch", "data prepare"}


def guard_commands(app: typer.Typer, path: tuple[str, ...] = ()) -> None:
    """Run every command of ``app`` (and of its groups) under ``guarded``; idempotent."""
    for info in app.registered_commands:
        if not getattr(info.callback, "__xling_guarded__", False):
            name = " ".join((*path, info.name or info.callback.__name__.lower().replace("_", "-")))
            info.callback = guarded(name, info.callback)
    for group in app.registered_groups:
        guard_commands(group.typer_instance, (*path, group.name))


def guarded(name: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with ``--force`` (if it writes an ``-o``) and ``--threads`` (if it computes) added, run under the
    output policy (its inputs: every path among its arguments; ``-o`` checked before any work), the thread limit, and
    a Ctrl-C that says what was kept."""
    from xling.errors import Interrupted, on_interrupt
    from xling.io import check_out_dir, check_out_file, output_policy
    from xling.threads import limit_threads

    signature = inspect.signature(command, eval_str=True)
    params = list(signature.parameters.values())
    writes = "out" in signature.parameters and name not in READ_ONLY
    compute = name not in NOT_COMPUTE
    keyword = inspect.Parameter.KEYWORD_ONLY
    if writes:
        params.append(inspect.Parameter("force", keyword, default=False, annotation=ForceOption))
    if compute and "threads" not in signature.parameters:
        params.append(inspect.Parameter("threads", keyword, default=None, annotation=ThreadsOption))
    out_file = writes and _metavar(signature.parameters["out"]) == "FILE"

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        force = kwargs.pop("force", False) if writes else False
        threads = kwargs.pop("threads", None) if compute else None
        out = kwargs.get("out") if writes else None
        scopes = [] if out is None else [Path(out).parent if out_file else out]
        if name in GROWS_IN_PLACE:
            where = f" in {out}" if out else ""
            said = f"the files finished so far are kept{where}; rerun the same command for the rest"
        elif out is not None:
            said = f"{out} is as it was (outputs are written when complete); rerun the command to start again"
        else:
            said = "nothing was written; rerun the command to start again"
        try:
            with (
                output_policy(force=force, inputs=input_paths(kwargs), scopes=scopes, writer=name),
                limit_threads(threads) if compute else nullcontext(),
                on_interrupt(lambda: said),
            ):
                if out is not None:
                    (check_out_file if out_file else check_out_dir)(out)
                return command(**kwargs)
        except Interrupted as err:  # said here: typer turns a KeyboardInterrupt into a silent exit code 130
            print(f"interrupted: {err.kept}", file=sys.stderr)
            raise typer.Exit(130) from None

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    run.__xling_guarded__ = True  # type: ignore[attr-defined]
    return run


def _metavar(param: inspect.Parameter) -> str | None:
    """The metavar of a typer option, declared as a default or in ``Annotated``."""
    infos = [param.default, *getattr(param.annotation, "__metadata__", ())]
    return next((i.metavar for i in infos if isinstance(i, OptionInfo)), None)


def input_paths(arguments: dict[str, Any]) -> list[Path]:
    """The paths among a command's arguments (but ``-o``) that exist: its inputs, which it never replaces."""
    found = []
    for name, value in arguments.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if name == "out" or not isinstance(item, (str, os.PathLike)):
                continue
            for candidate in {str(item), str(item).rpartition("=")[2]}:  # NAME=FOLDER names a folder too
                if candidate and os.path.lexists(candidate):
                    found.append(Path(candidate))
    return found


def emit_json(data: Any) -> None:
    """Print ``data`` as one JSON line on stdout (NaN as null): the one way a command prints its results."""
    print(json.dumps(jsonable(data), default=str, allow_nan=False))
    sys.stdout.flush()
