"""Downloads against a local HTTP server on 127.0.0.1: checksums, caching, streaming max_vocab, failures."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xling.cle.dictionaries import read_dictionary
from xling.cle.fetch import bli_manifest, bli_pairs, fetch_bli, fetch_fasttext
from xling.cle.vectors import read_vectors, write_vec
from xling.cli import app
from xling.errors import XlingError


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "www"``; yields (root folder, base URL, list of requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet, but remember what was asked for
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def _publish(root: Path, files: dict[str, str]) -> dict:
    """Write generated dictionary files under ``root`` and return a manifest for them."""
    manifest = {"commit": "test", "folder": "bli_datasets", "files": {}}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        manifest["files"][name] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode())}
    return manifest


def test_dictionaries_download_verify_and_cache(server, tmp_path):
    root, url, requests = server
    manifest = _publish(
        root,
        {"en-de/test.tsv": "dog\tHund\ncat\tKatze\n", "en-de/train.tsv": "a\tb\n", "de-fi/test.tsv": "Hund\tkoira\n"},
    )
    out = tmp_path / "data"
    files = fetch_bli(out, ["en-de"], base_url=url, manifest=manifest)
    assert sorted(p.relative_to(out).as_posix() for p in files) == ["en-de/test.tsv", "en-de/train.tsv"]
    assert read_dictionary(out / "en-de" / "test.tsv").pairs == [("dog", "Hund"), ("cat", "Katze")]
    asked = len(requests)
    seen: list[str] = []
    fetch_bli(out, ["en-de"], base_url=url, manifest=manifest, report=lambda p, s: seen.append(s))
    assert len(requests) == asked and seen == ["cached", "cached"]  # nothing downloaded again
    (out / "en-de" / "test.tsv").write_text("damaged\n")
    fetch_bli(out, ["en-de"], base_url=url, manifest=manifest)  # a damaged copy is fetched again
    assert read_dictionary(out / "en-de" / "test.tsv").pairs[0] == ("dog", "Hund")


def test_checksum_mismatch_and_http_errors_leave_nothing(server, tmp_path):
    root, url, _ = server
    manifest = _publish(root, {"en-de/test.tsv": "dog\tHund\n"})
    (root / "en-de" / "test.tsv").write_text("dog\tKatze\n")  # the server's copy differs from the manifest
    out = tmp_path / "data"
    with pytest.raises(XlingError, match="checksum mismatch"):
        fetch_bli(out, ["en-de"], base_url=url, manifest=manifest)
    assert not any(p.is_file() for p in out.rglob("*"))
    manifest["files"]["en-de/missing.tsv"] = {"sha256": "0" * 64, "bytes": 1}
    (root / "en-de" / "test.tsv").write_text("dog\tHund\n")
    with pytest.raises(XlingError, match="HTTP 404"):
        fetch_bli(out, ["en-de"], base_url=url, manifest=manifest)
    with pytest.raises(XlingError, match="unknown language pair"):
        fetch_bli(out, ["xx-yy"], base_url=url, manifest=manifest)
    with pytest.raises(XlingError, match="cannot download"):
        fetch_bli(out, ["en-de"], base_url="http://127.0.0.1:9", manifest=manifest)


def test_fasttext_streams_max_vocab_and_caches(server, tmp_path):
    root, url, requests = server
    words = [f"w{i}" for i in range(50)]
    vectors = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    write_vec(root / "wiki.xx.vec", words, vectors, precision=9)
    path = fetch_fasttext("xx", tmp_path / "vec", max_vocab=10, base_url=url)
    assert path.name == "wiki.xx.vec"
    emb = read_vectors(path)
    assert emb.words == words[:10] and path.read_text().splitlines()[0] == "10 4"
    np.testing.assert_array_equal(emb.vectors, vectors[:10])
    asked = len(requests)
    assert fetch_fasttext("xx", tmp_path / "vec", max_vocab=10, base_url=url) == path
    assert len(requests) == asked
    full = fetch_fasttext("xx", tmp_path / "vec", max_vocab=None, base_url=url)  # another max_vocab: fetched again
    assert full == path and len(read_vectors(full)) == 50 and len(requests) > asked
    (root / "wiki.cut.vec").write_text("5 4\na 1 2 3 4\n")
    with pytest.raises(XlingError, match="ended after 1 of 5 rows"):
        fetch_fasttext("cut", tmp_path / "vec", base_url=url)
    assert not (tmp_path / "vec" / "wiki.cut.vec").exists()


def test_cli_fetch(server, tmp_path):
    root, url, _ = server
    write_vec(root / "wiki.xx.vec", ["a", "b", "c"], np.eye(3, dtype=np.float32))
    result = CliRunner().invoke(
        app,
        [
            "data",
            "fetch",
            "-o",
            str(tmp_path / "d"),
            "--pairs",
            "none",
            "--vectors",
            "xx",
            "--max-vocab",
            "2",
            "--vectors-base-url",
            url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_vectors(tmp_path / "d" / "vectors" / "wiki.xx.vec").words == ["a", "b"]


def test_pinned_manifest_matches_the_real_dictionaries(bli_data, server, tmp_path):
    """The pinned checksums are those of the xling-eval files; a mirror of them downloads and verifies."""
    manifest = bli_manifest()
    assert len(bli_pairs(manifest)) == 28 and len(manifest["files"]) == 142
    root, url, _ = server
    for name in [n for n in manifest["files"] if n.startswith("en-de/")]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((bli_data / name).read_bytes())
    files = fetch_bli(tmp_path / "bli", ["en-de"], base_url=url)
    assert len(files) == 5
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((bli_data / name).read_bytes()).hexdigest() == meta["sha256"], name
