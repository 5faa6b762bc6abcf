"""One convention for every command (README, "Command-line conventions"): ``-o/--out`` is the output path,
``--json`` wherever a command prints results, enumerated options are typed (``--help`` lists the choices, a wrong
value fails before any work with one ``error:`` line and exit code 2), and an option name means one thing with
one default everywhere."""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections import defaultdict
from pathlib import Path

import pytest
from cli_runner import run_xling, xling_commands

#: Commands whose output is results (scores, tables, status): each has --json.
RESULT_COMMANDS = {
    "train",
    "eval",
    "analyze",
    "compare",
    "quickstart",
    "grid plan",
    "grid run",
    "grid status",
    "grid export",
    "data prepare",
    "cle bli",
    "cle run",
    "cle downstream",
    "cle grid",
    "predict",
}
#: Options whose values are a closed set: each is typed, so --help lists the choices.
ENUMERATED = {
    "--kind",
    "--executor",
    "--retrieval",
    "--convention",
    "--oov",
    "--case",
    "--protocol",
    "--backend",
    "--method",
    "--split",
    "--metric",
    "--task-model",
    "--task-metric",
    "--stopwords",
}
#: Names that stand for the command's own thing (its output path, its seed), so their defaults differ by design.
OWN_DEFAULTS = {"--out", "--seed", "--seeds", "--task", "--lang"}


def commands() -> dict[str, object]:
    return xling_commands()


def options(cmd) -> dict[str, object]:
    return {max(p.opts, key=len): p for p in cmd.params if p.param_type_name == "option"}


def bare(cmd, param):
    """The option's type (annotations resolved, ``Annotated`` and ``Optional`` taken off)."""
    t = typing.get_type_hints(cmd.callback)[param.name]
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if typing.get_origin(t) in (typing.Union, types.UnionType) and len(args) == 1 else t


def kind_of(cmd, param) -> str:
    t = bare(cmd, param)
    if typing.get_origin(t) is typing.Literal:
        return f"choice{sorted(typing.get_args(t))}"
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return f"choice{sorted(e.value for e in t)}"
    return getattr(t, "__name__", str(t))


def test_output_path_is_always_dash_o_out():
    for name, cmd in commands().items():
        for opt, param in options(cmd).items():
            assert opt != "--output", f"xling {name}: --output (use -o/--out)"
            if "-o" in param.opts:
                assert set(param.opts) == {"-o", "--out"} and param.name == "out", f"xling {name}: {param.opts}"


def test_every_results_command_has_json():
    found = commands()
    assert RESULT_COMMANDS <= set(found)
    for name in RESULT_COMMANDS:
        assert "--json" in options(found[name]), f"xling {name} prints results but has no --json"


def test_enumerated_options_are_typed():
    for name, cmd in commands().items():
        for opt, param in options(cmd).items():
            if opt in ENUMERATED:
                assert kind_of(cmd, param).startswith("choice"), (
                    f"xling {name} {opt} is not typed ({kind_of(cmd, param)})"
                )


def test_an_option_name_has_one_type_and_one_default():
    seen = defaultdict(set)
    for cmd in commands().values():
        for opt, param in options(cmd).items():
            if opt not in OWN_DEFAULTS and not param.multiple:
                seen[opt].add((kind_of(cmd, param), repr(param.default)))
    differ = {opt: uses for opt, uses in seen.items() if len(uses) > 1}
    assert not differ, differ


#: Each registry (``xling.registry``) and the options that offer its names as choices (grid kinds are named in a
#: spec's ``kind:``, which ``load_study`` checks against the registry).
#: An option is given as (command prefix, option): ``--task`` names a downstream task under ``cle``, a task elsewhere.
REGISTRY_OPTIONS = {
    "MODEL_KINDS": [("", "--kind")],
    "GRID_KINDS": [],
    "MAPPERS": [("cle", "--method")],
    "DOWNSTREAM_TASKS": [("cle", "--task")],
    "DOWNSTREAM_MODELS": [("cle", "--task-model")],
}


def test_every_registry_is_the_cli_choices():
    """Registries are the only lists of names: every option offering a family's names offers exactly them."""
    from xling import registry

    found = {name for name, value in vars(registry).items() if isinstance(value, registry.Registry)}
    assert found == set(REGISTRY_OPTIONS), "a registry without its CLI options here (or one that is gone)"
    for reg_name, opts in REGISTRY_OPTIONS.items():
        names = sorted(getattr(registry, reg_name).names())
        offered = [
            (name, opt, param)
            for name, cmd in commands().items()
            for opt, param in options(cmd).items()
            if any(name.startswith(prefix) and opt == o for prefix, o in opts)
        ]
        uses = [(n, o) for n, o, param in offered if sorted(typing.get_args(bare(commands()[n], param))) == names]
        offered = [(n, o) for n, o, _ in offered]
        assert uses == offered and bool(uses) == bool(opts), (reg_name, offered, uses)


@pytest.mark.parametrize(
    "args",
    [
        ["cle", "bli", "--src", "a", "--tgt", "b", "--test-dict", "c", "--retrieval", "cosine"],
        ["cle", "run", "-m", "procrustes", "--src", "a", "--tgt", "b", "--test-dict", "c"],
        ["grid", "run", "spec.yaml", "--executor", "kubernetes"],
        ["eval", "--task", "t", "-o", "o", "--kind", "decoder"],
        ["analyze", "r.csv", "-o", "o", "--metric", "score"],
        ["predict", "r.csv", "-o", "o", "--level", "1.5"],
        [
            "cle",
            "downstream",
            "--task",
            "ner",
            "--data",
            "d",
            "--src-lang",
            "a",
            "--tgt-lang",
            "b",
            "--src",
            "s",
            "--tgt",
            "t",
        ],
        ["grid", "plan"],
        ["cle", "map", "--nope"],
    ],
)
def test_a_wrong_value_is_one_error_line_and_exit_2(monkeypatch, capsys, tmp_path, args):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_xling(monkeypatch, capsys, *args)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (code, err)
    assert not list(tmp_path.iterdir())  # failed before any work


def test_bad_input_files_are_one_error_line_and_exit_2(monkeypatch, capsys, tmp_path):
    for args in (
        ["grid", "status", tmp_path / "missing.yaml"],
        ["analyze", tmp_path / "missing.csv", "-o", tmp_path / "out"],
        ["predict", tmp_path / "missing.csv", "-o", tmp_path / "out"],
        ["cle", "bli", "--src", tmp_path / "a.vec", "--tgt", tmp_path / "b.vec", "--test-dict", tmp_path / "t.tsv"],
    ):
        code, _, err = run_xling(monkeypatch, capsys, *args)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "out").exists()


def test_json_is_one_line_of_results(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "cache"))
    preset = Path(__file__).parents[1] / "configs" / "donors-recipients.yaml"
    code, out, _ = run_xling(monkeypatch, capsys, "grid", "plan", preset, "--json")
    plan = json.loads(out)
    assert code == 0 and len(out.strip().splitlines()) == 1
    assert plan["stages"]["train"] == {"units": 1188, "done": None} and plan["unprepared"]
    code, _, _ = run_xling(
        monkeypatch,
        capsys,
        "simulate",
        "grid",
        "-o",
        tmp_path / "sim.csv",
        "--n-models",
        "2",
        "--n-tasks",
        "2",
        "--n-languages",
        "3",
    )
    code, out, _ = run_xling(
        monkeypatch,
        capsys,
        "analyze",
        tmp_path / "sim.csv",
        "-o",
        tmp_path / "a",
        "--no-mixed",
        "--no-linguistic",
        "--n-boot",
        "50",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and {r["regime"] for r in result["headline"]} == {"MT-ML", "MT-CL", "CT-ML", "CT-CL"}


def test_shared_options_are_on_every_command_that_needs_them():
    """-o names a DIR or a FILE; --force wherever -o is written, --threads on every compute command, both declared
    once (``xling.cli.common``) so that a new command gets them without asking."""
    from xling.cli.common import NOT_COMPUTE, READ_ONLY

    for name, cmd in commands().items():
        opts = options(cmd)
        if "--out" in opts:
            assert opts["--out"].metavar in ("DIR", "FILE"), f"xling {name}: -o has no DIR/FILE metavar"
        assert ("--force" in opts) == ("--out" in opts and name not in READ_ONLY), f"xling {name}: --force"
        assert ("--threads" in opts) == (name not in NOT_COMPUTE), f"xling {name}: --threads"
        if "--threads" in opts:
            assert opts["--threads"].default is None and kind_of(cmd, opts["--threads"]) == "int"


def test_help_shows_every_option_text_as_written(monkeypatch, capsys):
    """No help text loses words to the help renderer (a "[default: nn]" read as markup left a dangling " .")."""
    monkeypatch.setenv("TERMINAL_WIDTH", "2000")
    for name, cmd in commands().items():
        code, out, _ = run_xling(monkeypatch, capsys, *name.split(), "--help")
        assert code == 0
        shown = " ".join(out.split())
        assert not re.search(r" \.(\s|$)", shown), f"xling {name} --help: a dangling ' .'"
        for opt, param in options(cmd).items():
            if param.help:
                assert " ".join(param.help.split()) in shown, f"xling {name} {opt}: help text not shown as written"


def test_version(monkeypatch, capsys):
    import xling

    code, out, _ = run_xling(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"xling {xling.__version__}"
