"""Writing outputs: never half-written, never over what xling did not write, readable as the umask says.

The rules (README, "Command-line conventions"; ``tests/test_output_safety.py`` holds every command to them):

- An output is written under a temporary name and moved into place only when it is complete: a failure or Ctrl-C
  leaves the target as it was, and no temporary behind.
- A folder xling writes into holds ``.xling-manifest.json``: the files (and whole subtrees, such as a grid's
  store) that xling wrote there, and which command wrote each. A rerun of a command replaces its own files and
  removes those it no longer writes; files of other xling commands are replaced only by a file of the same name.
- A file that xling did not write is never replaced or deleted. An existing folder that holds such files is refused
  as an output folder (one line, before any work) unless the user passes ``--force``; then xling writes beside
  them, and an output replaces a file of its own name. An input of the command is never replaced or deleted, and
  ``-o`` never names an input, with or without ``--force``.
- Files and folders get the modes the umask gives (0644/0755 under umask 022), temporaries included.

The command line sets the policy (``--force``, the command's inputs, its name) once per command with
``output_policy``; code that writes through ``atomic_dir`` and ``atomic_file`` gets these rules without doing
anything. Outside a command (the Python API) nothing is forced and no input is known: foreign files are protected all
the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from xling.errors import XlingError

try:
    import fcntl
except ImportError:  # not on Windows: manifest updates are then unlocked
    fcntl = None  # type: ignore[assignment]

#: The record, in a folder, of what xling wrote there.
MANIFEST = ".xling-manifest.json"
#: Names of xling's own temporaries (never counted as foreign): ``.NAME.tmp-*``, ``.xling-tmp-*``, ``.NAME.partial``.
_TEMPORARY = re.compile(r"^\.(xling-tmp-.*|.+\.tmp-.*|.+\.partial)$")


@dataclass(frozen=True)
class OutputPolicy:
    """What the running command allows: ``force`` (write beside foreign files, replace one of an output's name),
    its ``inputs`` (never replaced, deleted, or named by ``-o``), the folders it writes outputs into (``scopes``:
    files written there are held to the rules even before the folder has a manifest), and its name (``writer``)."""

    force: bool = False
    inputs: tuple[Path, ...] = ()
    scopes: tuple[Path, ...] = ()
    writer: str = "python"


_DEFAULT = OutputPolicy()
_POLICY: ContextVar[OutputPolicy | None] = ContextVar("xling_output_policy", default=None)


@contextmanager
def output_policy(
    *, force: bool = False, inputs: Iterable[str | Path] = (), scopes: Iterable[str | Path] = (), writer: str = "python"
) -> Iterator[OutputPolicy]:
    """The policy of one command, for everything written inside the block."""
    policy = OutputPolicy(force, tuple(_real(p) for p in inputs), tuple(_real(p) for p in scopes), writer)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def current_policy() -> OutputPolicy:
    """The policy in force (the default outside a command: no ``--force``, no known inputs)."""
    return _POLICY.get() or _DEFAULT


# --- checks a command runs before any work ---------------------------------------------------------------------------


def check_out_dir(out: str | Path) -> None:
    """``XlingError`` (one line) unless ``out`` can be an output folder under the current policy: not a file, not an
    input, writable, and new, empty, or holding only what xling wrote and no input (``--force``: any folder)."""
    out, policy = Path(out), current_policy()
    if os.path.lexists(out) and not out.is_dir():
        raise XlingError(f"{out}: is a file; -o names an output folder here")
    if _real(out) in policy.inputs:
        raise XlingError(f"{out}: is an input of this command; pick another -o")
    _check_writable(out)
    if not out.is_dir() or policy.force:
        return
    foreign = list(islice(_foreign(out), 4))
    if foreign:
        raise XlingError(
            f"{out}: holds files xling did not write ({_names(foreign)}); pick another -o, or pass --force to write "
            "beside them (an output then replaces a file of its own name, never an input)"
        )
    inside = [p for p in policy.inputs if _within(p, _real(out))]
    if inside:
        raise XlingError(
            f"{out}: holds an input of this command ({inside[0]}); pick another -o, or pass --force to write beside "
            "it (an input is never replaced)"
        )


def check_out_file(out: str | Path) -> None:
    """``XlingError`` (one line) unless ``out`` can be an output file: not a folder, not an input, writable, and new
    or written by xling (``--force``: any file but an input)."""
    out, policy = Path(out), current_policy()
    if out.is_dir():
        raise XlingError(f"{out}: is a folder; -o names an output file here")
    if _real(out) in policy.inputs:
        raise XlingError(f"{out}: is an input of this command; pick another -o")
    _check_writable(out.parent)
    if os.path.lexists(out):
        problem = _replace_problem(out, _writer_of(out), policy)
        if problem:
            raise XlingError(problem)


def claim_dir(out: str | Path, *names: str) -> Path:
    """Check ``out`` as an output folder, create it, and record ``names`` as xling's: ``NAME/`` a folder whose
    contents xling manages itself (a grid's ``store/``), ``NAME`` a file it writes there without ``atomic_file``.
    For outputs that grow in place, like a resumable grid."""
    check_out_dir(out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writer = current_policy().writer
    _record(out, {name: writer for name in names})
    return out


# --- atomic writers --------------------------------------------------------------------------------------------------


@contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; when the block succeeds, its files become ``out``'s under the rules above.

    A new ``out`` is the temporary folder renamed; into an existing one the files are moved one by one, replacing
    xling's earlier files of the same names and removing those this command wrote before and no longer writes.
    On any exception (Ctrl-C included) the temporary folder and any parent folders made for it are removed and
    ``out`` is left as it was. ``overwrite=False`` refuses an ``out`` that holds anything.
    """
    out, policy = Path(out), current_policy()
    check_out_dir(out)
    if not overwrite and out.is_dir() and any(_visible(out)):
        raise XlingError(f"{out}: exists and is not empty; pick another output folder")
    made = _make_parents(out.parent)
    try:
        if out.is_dir():  # into an existing folder: the temporary inside it, so only ``out`` need be writable
            tmp = Path(tempfile.mkdtemp(prefix=".xling-tmp-", dir=out))
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        _remove_empty(made)
        raise XlingError(f"{out}: cannot write there ({err.strerror or err})") from None
    os.chmod(tmp, _mode(folder=True))
    try:
        yield tmp
        _publish(tmp, out, policy)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file beside ``path``; rename it over ``path`` when the block succeeds.

    An input of the command is never replaced. Inside an output folder (one with a manifest, or one the command
    writes its ``-o`` into) the file is held to the rules above and recorded in the folder's manifest; elsewhere
    (caches) it is only written atomically.
    """
    path, policy = Path(path), current_policy()
    if path.is_dir():
        raise XlingError(f"{path}: is a folder, where xling writes a file")
    output = _is_output(path, policy)
    if os.path.lexists(path):
        problem = _replace_problem(path, _writer_of(path), policy) if output else _input_problem(path, policy)
        if problem:
            raise XlingError(problem)
    made = _make_parents(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as err:
        _remove_empty(made)
        raise XlingError(f"{path}: cannot write there ({err.strerror or err})") from None
    try:
        os.fchmod(fd, _mode(folder=False))
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if output:
            _record(path.parent, {path.name: policy.writer})
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        _remove_empty(made)
        raise


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the manifest ----------------------------------------------------------------------------------------------------


def read_manifest(folder: str | Path) -> dict[str, str]:
    """What xling wrote in ``folder``: relative path (``name/`` for a whole subtree) -> the command that wrote it."""
    path = Path(folder) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return _parse_manifest(path, text)


def _parse_manifest(path: Path, text: str) -> dict[str, str]:
    if not text.strip():
        return {}
    try:
        files = json.loads(text)["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise XlingError(
            f"{path}: not an xling manifest (remove it, and xling treats the folder's files as not its own)"
        ) from None
    return {str(k): str(v) for k, v in files.items()}


def _record(folder: Path, add: dict[str, str], remove: Iterable[str] = ()) -> None:
    """Add entries to (and drop entries from) ``folder``'s manifest, under a lock (several writers may share it)."""
    path = folder / MANIFEST
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        files = _parse_manifest(path, fh.read())
        files.update(add)
        for key in remove:
            files.pop(key, None)
        fh.seek(0)
        fh.truncate()
        json.dump({"xling_manifest": 1, "files": dict(sorted(files.items()))}, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _writer_of(path: Path, levels: int = 4) -> str | None:
    """The command that wrote ``path`` according to the manifests of its folder and up to ``levels`` folders above."""
    rel = path.name
    folder = path.parent
    for _ in range(levels):
        files = read_manifest(folder)
        if rel in files:
            return files[rel]
        parts = rel.split("/")
        for i in range(1, len(parts)):
            claim = "/".join(parts[:i]) + "/"
            if claim in files:
                return files[claim]
        if folder.parent == folder or not folder.name:
            return None
        rel, folder = f"{folder.name}/{rel}", folder.parent
    return None


def _foreign(folder: Path, owned: frozenset[str] = frozenset(), prefix: str = "") -> Iterator[str]:
    """Files under ``folder`` that no manifest records (relative paths), in name order; xling's temporaries and
    manifests are not counted, and a recorded subtree is not entered."""
    own = set(owned) | set(read_manifest(folder))
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name == MANIFEST or _TEMPORARY.match(name):
            continue
        if entry.is_dir(follow_symlinks=False):
            if name + "/" in own:
                continue
            below = frozenset(k[len(name) + 1 :] for k in own if k.startswith(name + "/"))
            yield from _foreign(Path(entry.path), below, f"{prefix}{name}/")
        elif name not in own:
            yield prefix + name


def _visible(folder: Path) -> Iterator[str]:
    return (e for e in os.listdir(folder) if e != MANIFEST and not _TEMPORARY.match(e))


# --- publishing a finished folder ------------------------------------------------------------------------------------


def _publish(tmp: Path, out: Path, policy: OutputPolicy) -> None:
    """Make ``tmp``'s files ``out``'s: one rename for a new ``out``, else file by file under the rules."""
    new = sorted(_files(tmp))
    if not os.path.lexists(out):
        (tmp / MANIFEST).unlink(missing_ok=True)
        _record(tmp, {f: policy.writer for f in new})
        try:
            os.rename(tmp, out)
            return
        except OSError:
            if not out.is_dir():  # not another writer's folder that appeared meanwhile: a real failure
                raise
    old = read_manifest(out)
    mine = [f for f, w in old.items() if w == policy.writer and not f.endswith("/")]
    stale = [f for f in mine if f not in new and os.path.lexists(out / f)]
    problems = [p for p in (_placement_problem(out, f, policy) for f in new) if p]
    problems += [p for p in (_input_problem(out / f, policy, "delete") for f in stale) if p]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise XlingError(f"{problems[0]}{more}; {out} is left as it was")
    _record(out, {f: policy.writer for f in new})  # recorded first: an interrupted move leaves nothing unrecorded
    for f in new:
        dest = out / f
        _make_parents(dest.parent)
        os.replace(tmp / f, dest)
    for f in stale:
        (out / f).unlink(missing_ok=True)
        _prune(out / f, out)
    _record(out, {}, remove=stale)
    shutil.rmtree(tmp, ignore_errors=True)


def _files(root: Path) -> Iterator[str]:
    """Relative paths of the files (and links) under ``root``, its own manifest left out."""
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in names + [d for d in dirs if Path(folder, d).is_symlink()]:
            if not (name == MANIFEST and rel == Path(".")):
                yield (rel / name).as_posix()


def _placement_problem(out: Path, rel: str, policy: OutputPolicy) -> str | None:
    """Why ``rel`` cannot be placed in ``out`` (a file where a folder is needed, a folder where the file goes,
    a file that may not be replaced), or None."""
    folder = out
    for part in rel.split("/")[:-1]:
        folder = folder / part
        if os.path.lexists(folder) and not folder.is_dir():
            return f"{folder}: is a file, where xling writes a folder"
    dest = out / rel
    if dest.is_dir() and not dest.is_symlink():
        return f"{dest}: is a folder, where xling writes a file"
    if not os.path.lexists(dest):
        return None
    return _replace_problem(dest, _writer_of(dest), policy)


def _replace_problem(path: Path, writer: str | None, policy: OutputPolicy) -> str | None:
    """Why the existing ``path`` (written by ``writer``, None: not by xling) may not be replaced, or None."""
    problem = _input_problem(path, policy)
    if problem or writer is not None:
        return problem
    if any(_within(_real(path), i) for i in policy.inputs):
        return f"{path}: is in an input folder of this command and xling did not write it"
    if not policy.force:
        return f"{path}: exists and xling did not write it; pick another -o, or pass --force to replace it"
    return None


def _input_problem(path: Path, policy: OutputPolicy, verb: str = "replace") -> str | None:
    if _real(path) in policy.inputs:
        return f"{path}: is an input of this command, which xling never {verb}s"
    return None


def _is_output(path: Path, policy: OutputPolicy) -> bool:
    """Whether a file written to ``path`` is an output (held to the rules): its folder has a manifest or lies in a
    folder the command writes its outputs into."""
    if (path.parent / MANIFEST).is_file():
        return True
    folder = _real(path.parent)
    return any(_within(folder, scope) for scope in policy.scopes)


# --- small helpers ---------------------------------------------------------------------------------------------------


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _names(found: list[str]) -> str:
    return ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")


def _check_writable(path: Path) -> None:
    """``XlingError`` unless a file can be created in the nearest existing folder at or above ``path`` (tried with a
    temporary folder, so that read-only mounts and permissions are both seen)."""
    here = path
    while not os.path.lexists(here) and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise XlingError(f"{path}: {here} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".xling-tmp-", dir=here))
    except OSError as err:
        raise XlingError(f"{path}: cannot write there ({here}: {err.strerror or err})") from None


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest last."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            _remove_empty(made)
            raise XlingError(f"{path}: cannot create the folder ({err.strerror or err})") from None
        made.append(path)
    return made


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _prune(path: Path, top: Path) -> None:
    """Remove the folders above a deleted ``path`` that are now empty, up to (not including) ``top``."""
    folder = path.parent
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode(*, folder: bool) -> int:
    """The mode a new file or folder gets under the umask (``mkstemp``/``mkdtemp`` make 0600/0700)."""
    return (0o777 if folder else 0o666) & ~_umask()
