"""Download the paper's data: the xling-eval BLI dictionaries and fastText wiki vectors, cached and checksummed.

- Dictionaries come from a pinned commit of xling-eval (``xling_eval_bli.json`` lists every file with its size and
  SHA-256); a download whose checksum differs is refused, and files already present with the right checksum are not
  downloaded again.
- fastText wiki vectors (``wiki.<lang>.vec``, Bojanowski et al. 2017) are streamed: with ``max_vocab`` only the first
  ``max_vocab`` rows are read from the network and written (the header count is rewritten), so a 200K-word file costs
  ~0.5 GB instead of several GB. Upstream publishes no checksums for these files, so the SHA-256 of what was written
  is recorded beside it (``.sha256.json``) and checked on reuse: a damaged or edited cache is fetched again.

Every file is written to a temporary name and renamed when complete: an interrupted download leaves nothing behind,
and rerunning the command resumes with the files not yet fetched.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from xling.errors import XlingError
from xling.io import atomic_file, file_sha256

LANGUAGES: tuple[str, ...] = ("de", "en", "fi", "fr", "hr", "it", "ru", "tr")
FASTTEXT_URL = "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki"
_TIMEOUT_S = 60
_CHUNK = 1 << 20


def bli_manifest() -> dict:
    """The pinned xling-eval commit and every dictionary file's size and SHA-256."""
    return json.loads(resources.files("xling.cle").joinpath("xling_eval_bli.json").read_text(encoding="utf-8"))


def bli_url(manifest: dict | None = None) -> str:
    """Where the dictionaries are downloaded from: raw files of the pinned commit."""
    manifest = manifest or bli_manifest()
    return f"https://raw.githubusercontent.com/codogogo/xling-eval/{manifest['commit']}/{manifest['folder']}"


def bli_pairs(manifest: dict | None = None) -> list[str]:
    """The language pairs (folders) with dictionaries."""
    return sorted({name.split("/")[0] for name in (manifest or bli_manifest())["files"]})


def fetch_bli(
    out_dir: str | Path,
    pairs: Iterable[str] | None = None,
    *,
    base_url: str | None = None,
    manifest: dict | None = None,
    report: Callable[[str, str], None] | None = None,
) -> list[Path]:
    """Download the dictionaries of ``pairs`` (default: all) into ``out_dir/<pair>/``; return their paths.

    ``report(path, status)`` is called per file with status ``cached`` or ``downloaded``.
    """
    manifest = manifest or bli_manifest()
    known = bli_pairs(manifest)
    wanted = known if pairs is None else list(pairs)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise XlingError(f"unknown language pair(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    base = (base_url or bli_url(manifest)).rstrip("/")
    out: list[Path] = []
    for name, meta in sorted(manifest["files"].items()):
        if name.split("/")[0] not in wanted:
            continue
        dest = Path(out_dir) / name
        if dest.is_file() and file_sha256(dest) == meta["sha256"]:
            status = "cached"
        else:
            _download(f"{base}/{name}", dest, meta["sha256"])
            status = "downloaded"
        if report:
            report(str(dest), status)
        out.append(dest)
    return out


def fetch_fasttext(
    lang: str,
    out_dir: str | Path,
    *,
    max_vocab: int | None = 200000,
    base_url: str | None = None,
    report: Callable[[int], None] | None = None,
) -> Path:
    """Download ``wiki.<lang>.vec`` (its first ``max_vocab`` rows) into ``out_dir``; return the path.

    The result is ``out_dir/wiki.<lang>.vec``; its ``.sha256.json`` record says how many rows it holds, and a copy
    fetched with another ``max_vocab`` is fetched again. ``report(rows)`` is called as rows arrive.
    """
    if max_vocab is not None and max_vocab < 1:
        raise XlingError(f"max_vocab must be at least 1, found {max_vocab}")
    if not lang.isalpha():
        raise XlingError(f"invalid language code {lang!r}")
    dest = Path(out_dir) / f"wiki.{lang}.vec"
    record = dest.with_name(dest.name + ".sha256.json")
    if dest.is_file() and record.is_file():
        known = json.loads(record.read_text())
        if known.get("max_vocab") == max_vocab and known.get("sha256") == file_sha256(dest):
            return dest
    url = f"{(base_url or FASTTEXT_URL).rstrip('/')}/wiki.{lang}.vec"
    digest, rows = _stream_vectors(url, dest, max_vocab, report)
    with atomic_file(record) as fh:
        json.dump(
            {
                "url": url,
                "sha256": digest,
                "rows": rows,
                "max_vocab": max_vocab,
                "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            fh,
            indent=2,
        )
    return dest


def _open(url: str):
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise XlingError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise XlingError(f"{url}: cannot download ({getattr(err, 'reason', err)})") from None


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise XlingError(f"{url}: only http:// and https:// URLs are fetched")


def _download(url: str, dest: Path, sha256: str) -> None:
    """Download ``url`` to ``dest`` (atomically), refusing content whose SHA-256 differs from ``sha256``."""
    _check_url(url)
    digest = hashlib.sha256()
    with _open(url) as response, atomic_file(dest, "wb") as fh:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            fh.write(chunk)
        if digest.hexdigest() != sha256:
            raise XlingError(
                f"{url}: checksum mismatch (expected sha256 {sha256[:16]}..., "
                f"found {digest.hexdigest()[:16]}...); nothing written"
            )


def _stream_vectors(
    url: str, dest: Path, max_vocab: int | None, report: Callable[[int], None] | None
) -> tuple[str, int]:
    """Copy the header and the first ``max_vocab`` rows of a word2vec text file; return (sha256, rows)."""
    _check_url(url)
    with _open(url) as response:
        return copy_vectors(response, url, dest, max_vocab, report)


def copy_vectors(
    stream: BinaryIO, origin: str, dest: Path, max_vocab: int | None, report: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Write the header and the first ``max_vocab`` rows (all: ``None``) of the word2vec text in ``stream`` to
    ``dest`` atomically, the header's count rewritten; return (sha256 of what was written, rows). A stream that
    ends before the rows it promises is refused, naming ``origin``."""
    digest = hashlib.sha256()
    rows = 0
    with atomic_file(dest, "wb") as fh:
        parts = stream.readline().split()
        if len(parts) != 2 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise XlingError(f"{origin}: expected a 'count dim' header on line 1, found {b' '.join(parts)[:60]!r}")
        count = int(parts[0]) if max_vocab is None else min(int(parts[0]), max_vocab)
        header = f"{count} {int(parts[1])}\n".encode()
        digest.update(header)
        fh.write(header)
        while rows < count:
            line = stream.readline()
            if line and not line.endswith(b"\n") and rows == count - 1:
                line += b"\n"  # the last row, without a final newline
            if not line.endswith(b"\n"):  # nothing, or a row cut in the middle
                raise XlingError(f"{origin}: the file ended after {rows} of {count} rows; nothing written")
            digest.update(line)
            fh.write(line)
            rows += 1
            if report and rows % 10000 == 0:
                report(rows)
    if report:
        report(rows)
    return digest.hexdigest(), rows
