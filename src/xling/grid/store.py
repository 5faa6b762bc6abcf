"""The result store: one folder per finished unit of work, published atomically.

Why this design: many workers (processes, Ray actors, Slurm array tasks) write at once, possibly on a shared
file system, and any of them may be killed at any moment. Each unit writes into its own temporary folder and
publishes it with a single ``rename`` onto ``units/<key>``; the folder holds the completion record ``DONE.json``,
so a unit is either absent or complete — never half there. No lock and no database writer is needed; readers see
the finished units through DuckDB over ``units/*/*.parquet`` (see ``xling.studies.transfer.results``). An append-only
``events.jsonl`` log (single-line ``O_APPEND`` writes) keeps every start, completion and failure, which the
status command and the tests read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xling.errors import XlingError

STORE_VERSION = 1
_MARKER = "STORE.json"
_DONE = "DONE.json"


def unit_key(payload: dict[str, Any]) -> str:
    """A stable key: sha256 of the canonical JSON of everything that determines a unit's result."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Store:
    """A folder of finished units: ``units/<key>/`` (outputs + ``DONE.json``), ``events.jsonl``, ``STORE.json``.

    ``create=False`` only reads: a store that is not there yet has no finished unit, and nothing is created (until a
    unit is written or an event logged)."""

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root)
        self.units = self.root / "units"
        self.tmp = self.root / "tmp"
        self.events_path = self.root / "events.jsonl"
        marker = self.root / _MARKER
        if marker.exists():
            try:
                version = json.loads(marker.read_text())["xling_store_version"]
            except (ValueError, KeyError, TypeError):
                raise XlingError(f"{marker}: not an xling store marker") from None
            if version != STORE_VERSION:
                raise XlingError(
                    f"{self.root}: store written by an incompatible xling version "
                    f"(store format {version}, this xling reads {STORE_VERSION}); use a new output folder"
                )
        if create:
            self.create()

    def create(self) -> None:
        """Create the store's folders and marker (reading a store never creates it: ``grid plan``/``status``)."""
        self.units.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        marker = self.root / _MARKER
        if not marker.exists():
            _write_json_atomic(marker, {"xling_store_version": STORE_VERSION})

    def result_dir(self, key: str) -> Path:
        """Where a unit's published outputs live."""
        return self.units / key

    def done(self, key: str) -> bool:
        """Whether the unit is complete (its folder and completion record are published)."""
        return (self.units / key / _DONE).is_file()

    def record(self, key: str) -> dict[str, Any]:
        """The completion record of a finished unit."""
        return json.loads((self.units / key / _DONE).read_text())

    def done_keys(self) -> set[str]:
        """Keys of every finished unit."""
        return {p.parent.name for p in self.units.glob(f"*/{_DONE}")}

    @contextmanager
    def writing(self, key: str, record: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a private temporary folder; publish it as ``units/<key>`` if the block succeeds.

        The completion record is written into the folder last, then the folder is renamed into place in one
        step. If another worker published the same key first, this result is discarded (the first one wins).
        """
        self.create()
        tmp = self.tmp / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            _write_json_atomic(tmp / _DONE, {"key": key, "finished": time.time(), **(record or {})})
            _fsync_tree(tmp)
            final = self.units / key
            if final.exists() and not self.done(key):
                shutil.rmtree(final, ignore_errors=True)  # a folder left without its record: never complete
            try:
                os.rename(tmp, final)
            except OSError:
                if not self.done(key):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def log_event(self, key: str, event: str, **fields: Any) -> None:
        """Append one event (``start``, ``done``, ``fail``, ``skip``) to ``events.jsonl``."""
        line = json.dumps(
            {
                "key": key,
                "event": event,
                "time": time.time(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                **fields,
            },
            default=str,
        )
        self.create()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def record_failure(self, key: str, error: str) -> None:
        """Record that a unit failed with ``error`` (kept in the event log)."""
        self.log_event(key, "fail", error=error)

    def events(self) -> list[dict[str, Any]]:
        """Every event so far, oldest first (a torn last line from a killed writer is ignored)."""
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def events_since(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Events appended after byte ``offset`` of the log, and the offset after the last complete line (a line
        still being written is left for the next call)."""
        if not self.events_path.exists():
            return [], offset
        with open(self.events_path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        out = []
        for line in data[:end].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out, offset + end

    def failures(self, key: str) -> list[str]:
        """Error messages of the unit's failed attempts, oldest first."""
        return [e.get("error", "") for e in self.events() if e["key"] == key and e["event"] == "fail"]

    def remove_stale_tmp(self, max_age_s: float = 24 * 3600) -> None:
        """Drop the temporary folders of workers killed long ago (recent ones may belong to running workers)."""
        now = time.time()
        for path in self.tmp.iterdir() if self.tmp.is_dir() else ():
            if now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk so a published unit survives a machine crash."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
