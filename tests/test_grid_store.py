"""The result store: atomic publication, first writer wins, version check, events."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from xling.errors import XlingError
from xling.grid.store import Store, unit_key


def test_unit_key_is_canonical_and_sensitive() -> None:
    assert unit_key({"a": 1, "b": [1, 2]}) == unit_key({"b": [1, 2], "a": 1})
    assert unit_key({"a": 1, "lr": 5e-5}) != unit_key({"a": 1, "lr": 1e-4})


def test_publish_is_all_or_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("k1") as tmp:
            (tmp / "part.bin").write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not store.done("k1")
    assert not store.result_dir("k1").exists()
    assert list(store.tmp.iterdir()) == []
    with store.writing("k1", {"note": "ok"}) as tmp:
        (tmp / "out.txt").write_text("full")
    assert store.done("k1") and store.record("k1")["note"] == "ok"
    assert (store.result_dir("k1") / "out.txt").read_text() == "full"


def test_folder_without_record_is_not_done_and_is_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (store.units / "k2").mkdir()
    (store.units / "k2" / "stale.txt").write_text("partial")
    assert not store.done("k2")
    with store.writing("k2") as tmp:
        (tmp / "out.txt").write_text("new")
    assert store.done("k2") and not (store.result_dir("k2") / "stale.txt").exists()


def _publish(root: str, key: str, value: str) -> None:
    store = Store(root)
    with store.writing(key) as tmp:
        (tmp / "value.txt").write_text(value * 1000)
    store.log_event(key, "done", value=value)


def test_concurrent_writers_first_wins(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publish, args=(str(tmp_path), "same", str(i))) for i in range(4)]
    procs += [ctx.Process(target=_publish, args=(str(tmp_path), f"own{i}", str(i))) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    store = Store(tmp_path)
    assert store.done_keys() == {"same", "own0", "own1", "own2", "own3"}
    text = (store.result_dir("same") / "value.txt").read_text()
    assert len(set(text)) == 1 and len(text) == 1000  # one writer's whole output, never a mix
    assert len([e for e in store.events() if e["event"] == "done"]) == 8


def test_incompatible_store_version_is_rejected(tmp_path: Path) -> None:
    Store(tmp_path)
    (tmp_path / "STORE.json").write_text(json.dumps({"xling_store_version": 999}))
    with pytest.raises(XlingError, match="incompatible xling version"):
        Store(tmp_path)


def test_torn_event_line_is_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.log_event("a", "start")
    with open(store.events_path, "a") as fh:
        fh.write('{"key": "a", "ev')  # a writer killed mid-line
    assert [e["event"] for e in store.events()] == ["start"]
    assert store.failures("a") == []
