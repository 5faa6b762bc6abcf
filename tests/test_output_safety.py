"""Outputs never cost a user a file (issue 21, item 1), follow the umask (item 2), and Ctrl-C says what was kept
(item 7). Every command with ``-o`` is found by walking the app, so a new command is held to the same rules."""

from __future__ import annotations

import enum
import json
import os
import typing
from pathlib import Path

import pytest
from cli_runner import run_xling, xling_commands

from xling.cli.common import READ_ONLY
from xling.errors import XlingError
from xling.io import MANIFEST, atomic_dir, atomic_file, output_policy, read_manifest

#: Every command that writes its -o (grid plan/status only read theirs).
WRITERS = sorted(name for name, cmd in xling_commands().items() if "out" in {p.name for p in cmd.params})
WRITERS = [name for name in WRITERS if name not in READ_ONLY]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def one_error_line(code: int, err: str) -> bool:
    return code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def required_args(name: str, value: str) -> list[str]:
    """The command's required arguments and options (but -o), each a valid choice, a number, or ``value``."""
    args = []
    for param in xling_commands()[name].params:
        if not param.required or param.name == "out":
            continue
        kind = param.type_descriptor.annotation
        if typing.get_origin(kind) is typing.Literal:
            item = typing.get_args(kind)[0]
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            item = next(iter(kind)).value
        elif kind in (int, float):
            item = "1"
        else:
            item = value
        args += [item] if param.param_type_name == "argument" else [max(param.opts, key=len), item]
    return args


def is_file_output(name: str) -> bool:
    return next(p for p in xling_commands()[name].params if p.name == "out").metavar == "FILE"


def test_every_command_that_writes_an_output_is_covered():
    assert {"analyze", "compare", "train", "eval", "quickstart", "grid run", "cle map", "cle grid"} <= set(WRITERS)
    assert {"simulate grid", "cle bli"} <= {n for n in WRITERS if is_file_output(n)}


@pytest.mark.parametrize("name", WRITERS)
def test_out_onto_a_folder_with_a_users_file_loses_nothing(monkeypatch, capsys, tmp_path, name):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    out = folder / "notes.txt" if is_file_output(name) else folder
    before = tree(tmp_path)
    code, _, err = run_xling(monkeypatch, capsys, *name.split(), *required_args(name, "missing"), "-o", out)
    assert one_error_line(code, err) and "xling did not write" in err and "--force" in err, err
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", WRITERS)
def test_out_onto_an_inputs_folder_loses_nothing(monkeypatch, capsys, tmp_path, name):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    data = folder / "input.csv"
    data.write_text("a,b\n1,2\n")
    out = data if is_file_output(name) else folder
    before = tree(tmp_path)
    args = required_args(name, str(data))
    takes_input = str(data) in args  # then even --force never makes the input an output
    for force in ([], ["--force"]) if is_file_output(name) and takes_input else ([],):
        code, _, err = run_xling(monkeypatch, capsys, *name.split(), *args, "-o", out, *force)
        assert one_error_line(code, err) and "pick another -o" in err, err  # refused for its -o
        assert tree(tmp_path) == before


@pytest.fixture(scope="module")
def sim_csv(tmp_path_factory) -> Path:
    """A small synthetic results table (2 models, 2 tasks, 3 languages)."""
    from xling.analysis.results import aggregate_seeds
    from xling.analysis.simulate import DEFAULT_LANGUAGES, DEFAULT_MODELS, DEFAULT_TASKS, SimulationSpec, simulate_long

    spec = SimulationSpec(models=DEFAULT_MODELS[:2], tasks=DEFAULT_TASKS[:2], languages=DEFAULT_LANGUAGES[:3])
    path = tmp_path_factory.mktemp("sim") / "sim.csv"
    aggregate_seeds(simulate_long(spec)).to_csv(path, index=False)
    return path


ANALYZE = ("--no-mixed", "--no-linguistic", "--n-boot", "50")


def test_analyze_writes_beside_a_users_file_only_when_asked(monkeypatch, capsys, tmp_path, sim_csv):
    out = tmp_path / "out"
    code, _, err = run_xling(monkeypatch, capsys, "analyze", sim_csv, "-o", out, *ANALYZE)
    assert code == 0, err
    (out / "notes.txt").write_text("keep me\n")
    (out / "summary.md").write_text("edited\n")  # written by xling before: replaced on a rerun
    code, _, err = run_xling(monkeypatch, capsys, "analyze", sim_csv, "-o", out, *ANALYZE)
    assert one_error_line(code, err) and "notes.txt" in err
    code, _, err = run_xling(monkeypatch, capsys, "analyze", sim_csv, "-o", out, *ANALYZE, "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "keep me\n" and (out / "summary.md").read_text() != "edited\n"
    assert "notes.txt" not in read_manifest(out) and read_manifest(out)["summary.md"] == "analyze"
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST]


def test_analyze_into_its_inputs_folder_never_touches_the_input(monkeypatch, capsys, tmp_path, sim_csv):
    folder = tmp_path / "dd"
    folder.mkdir()
    data = folder / "small.csv"
    data.write_bytes(sim_csv.read_bytes())
    code, _, err = run_xling(monkeypatch, capsys, "analyze", data, "-o", folder, *ANALYZE)
    assert one_error_line(code, err) and sorted(os.listdir(folder)) == ["small.csv"]
    code, _, err = run_xling(monkeypatch, capsys, "analyze", data, "-o", folder, *ANALYZE, "--force")
    assert code == 0, err
    assert data.read_bytes() == sim_csv.read_bytes() and (folder / "report.html").is_file()
    code, _, err = run_xling(monkeypatch, capsys, "analyze", data, "-o", data, *ANALYZE, "--force")
    assert one_error_line(code, err) and data.read_bytes() == sim_csv.read_bytes()


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A simulated embedding pair written by `xling cle simulate` (so xling wrote the vectors)."""
    from xling.cle.simulate import simulate_pair, write_pair

    folder = tmp_path_factory.mktemp("pair") / "pair"
    write_pair(simulate_pair(400, 8, 0.1, 0.0, seed=3, n_train=100, n_test=100), folder)
    return folder


def map_args(folder: Path) -> list:
    return ["cle", "map", "-m", "proc", "--src", folder / "src.vec", "--tgt", folder / "tgt.vec"] + [
        "--train-dict",
        folder / "train.tsv",
        "--no-cache",
    ]


def test_map_onto_the_vectors_folder_never_replaces_the_vectors(monkeypatch, capsys, tmp_path, pair):
    folder = tmp_path / "pair"
    folder.mkdir()
    for p in pair.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    before = tree(folder)
    code, _, err = run_xling(monkeypatch, capsys, *map_args(folder), "-o", folder)
    assert one_error_line(code, err), err  # the folder holds files xling did not write (copied in)
    code, _, err = run_xling(monkeypatch, capsys, *map_args(folder), "-o", folder, "--force")
    assert one_error_line(code, err) and "input" in err and "left as it was" in err, err
    assert tree(folder) == before


def test_a_rerun_replaces_its_own_files_and_drops_those_it_no_longer_writes(monkeypatch, capsys, tmp_path, pair):
    out = tmp_path / "mapped"
    assert run_xling(monkeypatch, capsys, *map_args(pair), "-o", out)[0] == 0
    assert (out / "src.vec").is_file() and read_manifest(out)["src.vec"] == "cle map"
    code, _, err = run_xling(monkeypatch, capsys, *map_args(pair), "-o", out, "--no-write-vectors")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "W_src.npy", "W_tgt.npy", "run.json"]
    assert set(read_manifest(out)) == {"W_src.npy", "W_tgt.npy", "run.json"}


def test_a_file_output_is_replaced_only_if_xling_wrote_it(monkeypatch, capsys, tmp_path):
    out = tmp_path / "sim.csv"
    out.write_text("mine\n")
    args = ("simulate", "grid", "--n-models", "1", "--n-tasks", "1", "--n-languages", "2", "-o", out)
    code, _, err = run_xling(monkeypatch, capsys, *args)
    assert one_error_line(code, err) and out.read_text() == "mine\n"
    assert run_xling(monkeypatch, capsys, *args, "--force")[0] == 0 and out.read_text() != "mine\n"
    assert run_xling(monkeypatch, capsys, *args)[0] == 0  # xling's own file now: a rerun replaces it
    assert read_manifest(tmp_path) == {"sim.csv": "simulate grid"}


def test_the_library_keeps_foreign_files_without_the_command_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(XlingError, match="notes.txt"), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(os.listdir(out)) == ["notes.txt"]
    with output_policy(force=True), atomic_dir(out) as tmp:
        (tmp / "notes.txt").write_text("xling")
    assert (out / "notes.txt").read_text() == "xling"  # --force: an output replaces a file of its own name
    (out / "user.csv").write_text("mine")  # in a folder xling writes outputs into (it holds a manifest)
    with pytest.raises(XlingError, match="did not write"), atomic_file(out / "user.csv") as fh:
        fh.write("x")
    (tmp_path / "user.csv").write_text("mine")
    with output_policy(scopes=[tmp_path]):  # a command's -o folder
        with pytest.raises(XlingError, match="did not write"), atomic_file(tmp_path / "user.csv") as fh:
            fh.write("x")
    with output_policy(force=True, inputs=[tmp_path / "user.csv"]):
        with pytest.raises(XlingError, match="input"), atomic_file(tmp_path / "user.csv") as fh:
            fh.write("x")
    assert (tmp_path / "user.csv").read_text() == (out / "user.csv").read_text() == "mine"


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(KeyboardInterrupt), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # the parent folders made for it are gone too
    with pytest.raises(KeyboardInterrupt), atomic_file(out / "x.csv") as fh:
        fh.write("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)], ids=["umask022", "umask077"]
)
def test_outputs_follow_the_umask(monkeypatch, capsys, tmp_path, sim_csv, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        with atomic_file(tmp_path / "f" / "a.txt") as fh:
            fh.write("a")
        for _ in range(2):  # a new folder (renamed into place) and one written into (file by file)
            with atomic_dir(tmp_path / "d") as tmp:
                (tmp / "sub").mkdir()
                (tmp / "sub" / "b.txt").write_text("b")
        code, _, err = run_xling(monkeypatch, capsys, "analyze", sim_csv, "-o", tmp_path / "an", *ANALYZE)
        assert code == 0, err
    finally:
        os.umask(old)
    for path in tmp_path.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (dir_mode if path.is_dir() else file_mode), (path, oct(mode))


# --- Ctrl-C ----------------------------------------------------------------------------------------------------------


def test_ctrl_c_in_a_grid_says_what_was_kept_and_a_rerun_resumes(monkeypatch, capsys, tmp_path, pair):
    import xling.studies.cle.units as cle_grid

    (tmp_path / "spec.yaml").write_text(
        f"methods: [proc, cca]\npairs: [aa-bb]\nsizes: [50]\nsrc_vectors: {pair}/src.vec\n"
        f"tgt_vectors: {pair}/tgt.vec\ntrain_dict: {pair}/train.tsv\ntest_dict: {pair}/test.tsv\n"
    )
    out = tmp_path / "out"
    run_unit, calls = cle_grid.run_unit, []

    def interrupted_second(spec, unit, *args, **kwargs):
        calls.append(unit)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_unit(spec, unit, *args, **kwargs)

    monkeypatch.setattr(cle_grid, "run_unit", interrupted_second)
    code, _, err = run_xling(monkeypatch, capsys, "cle", "grid", tmp_path / "spec.yaml", "-o", out)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: 1 of 2 finished units are kept in {out / 'store'}; rerun the same command to resume"
    )
    monkeypatch.setattr(cle_grid, "run_unit", run_unit)
    code, _, err = run_xling(monkeypatch, capsys, "cle", "grid", tmp_path / "spec.yaml", "-o", out, "--json")
    assert code == 0, err
    assert len(calls) == 2  # the finished unit was not run again


def test_ctrl_c_elsewhere_leaves_the_output_as_it_was(monkeypatch, capsys, tmp_path, sim_csv):
    import xling.report.write as write

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(write, "write_report", interrupted)
    out = tmp_path / "out"
    code, _, err = run_xling(monkeypatch, capsys, "analyze", sim_csv, "-o", out, *ANALYZE)
    assert code == 130 and err.strip().startswith(f"interrupted: {out} is as it was")
    assert list(tmp_path.iterdir()) == []


# --- bad input: one line, exit code 2, nothing written (item 6) -----------------------------------------------------


def _numeric_param(method: str) -> str | None:
    import typing

    from xling.cle.mappers import mapper_class
    from xling.cle.mappers.vecmap import MultiStep
    from xling.registry import MAPPERS

    cls, fixed = mapper_class(method), MAPPERS.meta(method).get("fixed", {})
    hints = typing.get_type_hints(cls.__init__)
    if "steps" in hints:
        hints = typing.get_type_hints(MultiStep)
    numbers = (k for k, h in hints.items() if h in (int, float, int | None) and k not in fixed and k != "seed")
    return next(numbers, None)


def _bad_inputs() -> list[tuple[str, list, str]]:
    """(what is wrong, the command line, what the error line must name)."""
    from xling.registry import MAPPERS

    numeric = {m: _numeric_param(m) for m in MAPPERS.names()}
    assert {m for m, p in numeric.items() if not p} == {"proc"}  # every other method has a number to get wrong
    rows = [
        (f"--param {p}=lots ({m})", ["MAP", m, "--param", f"{p}=lots"], f"{p}: expected")
        for m, p in numeric.items()
        if p
    ]
    rows += [
        (f"--param normalize=lots ({m})", ["MAP", m, "--param", "normalize=lots"], "normalize: unknown")
        for m in ("proc", "cca")
    ]
    downstream = ["cle", "downstream", "--task", "cldc", "--data", "PAIR", "--src-lang", "a", "--tgt-lang", "b"]
    rows += [
        ("--seed -1 (simulate grid)", ["simulate", "grid", "-o", "OUT/sim.csv", "--seed", "-1"], "--seed"),
        ("--seed -1 (cle simulate)", ["cle", "simulate", "-o", "OUT", "--seed", "-1"], "--seed"),
        ("--seed -1 (cle map)", ["MAP", "proc", "--seed", "-1"], "--seed"),
        ("--seed -1 (cle run)", ["RUN", "--seed", "-1"], "--seed"),
        ("--seed -1 (analyze)", ["analyze", "SIM", "-o", "OUT", "--seed", "-1"], "--seed"),
        (
            "--seed -1 (train)",
            ["train", "--task", "mini:numbers", "--lang", "en", "-o", "OUT", "--seed", "-1"],
            "--seed",
        ),
        (
            "--seed -1 (cle downstream)",
            [*downstream, "--src", "PAIR/src.vec", "--tgt", "PAIR/tgt.vec", "--seed", "-1"],
            "--seed",
        ),
        ("--threads 0", ["analyze", "SIM", "-o", "OUT", "--threads", "0"], "--threads"),
        ("read-only output folder", ["analyze", "SIM", "-o", "READONLY/out", *ANALYZE], "cannot write there"),
        ("-o . (a folder with files)", ["analyze", "SIM", "-o", ".", *ANALYZE], "xling did not write (sim.csv)"),
    ]
    return rows


@pytest.fixture
def readonly(tmp_path) -> Path:
    """A folder nothing can be written into (as root, where permissions do not stop writes: /proc)."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    folder = tmp_path.parent / f"{tmp_path.name}-readonly"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("row", _bad_inputs(), ids=lambda row: row[0])
def test_bad_input_is_one_line_exit_2_and_nothing_written(monkeypatch, capsys, tmp_path, sim_csv, pair, readonly, row):
    work = tmp_path / "work"
    work.mkdir()
    (work / "sim.csv").write_bytes(sim_csv.read_bytes())
    monkeypatch.chdir(work)
    mapping = ["cle", "map", "--src", pair / "src.vec", "--tgt", pair / "tgt.vec", "--train-dict"]
    mapping += [pair / "train.tsv", "--no-cache", "-o", "OUT", "-m"]
    running = ["cle", "run", "-m", "proc", "--src", pair / "src.vec", "--tgt", pair / "tgt.vec", "--no-cache"]
    running += ["--train-dict", pair / "train.tsv", "--test-dict", pair / "test.tsv", "-o", "OUT"]
    names = {"SIM": "sim.csv", "OUT": str(tmp_path / "out"), "PAIR": str(pair), "READONLY": str(readonly)}
    args = []
    for item in row[1]:
        if item in ("MAP", "RUN"):
            args += mapping if item == "MAP" else running
        else:
            for key, value in names.items():
                item = item.replace(key, value) if isinstance(item, str) else item
            args.append(item)
    before, pair_before = tree(tmp_path), tree(pair)
    code, _, err = run_xling(monkeypatch, capsys, *args)
    assert one_error_line(code, err) and row[2] in err, (row[0], err)
    assert tree(tmp_path) == before and tree(pair) == pair_before


# --- reading commands write nothing ----------------------------------------------------------------------------------


def test_grid_plan_and_status_create_no_folder(monkeypatch, capsys, tmp_path, pair):
    from xling.models.encoder import default_model_path

    (tmp_path / "transfer.yaml").write_text(
        f"models: [{{name: minilm, kind: encoder, path: {default_model_path()}}}]\n"
        "tasks: [mini:numbers]\nlanguages: [en, de]\nseeds: [0]\n"
    )
    (tmp_path / "cle.yaml").write_text(
        f"methods: [proc]\npairs: [aa-bb]\nsizes: [50]\nsrc_vectors: {pair}/src.vec\n"
        f"tgt_vectors: {pair}/tgt.vec\ntrain_dict: {pair}/train.tsv\ntest_dict: {pair}/test.tsv\n"
    )
    for spec in (tmp_path / "transfer.yaml", tmp_path / "cle.yaml"):
        for command in ("plan", "status"):
            code, out, err = run_xling(monkeypatch, capsys, "grid", command, spec, "-o", tmp_path / "out", "--json")
            assert code == 0 and json.loads(out), err
            assert not (tmp_path / "out").exists(), (spec.name, command)
