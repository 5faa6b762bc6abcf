"""``xling data prepare cle``: the paper's public data laid out in one folder from the files as their authors
release them, so the study's configs read it without renaming anything.

Layout of ``OUT`` (``configs/glavas2019-*.yaml`` read exactly this):

- ``vectors/wiki.<lang>.vec``: the first ``max_vocab`` rows of fastText's Wikipedia vectors (the header's count
  rewritten), with the ``.sha256.json`` record ``xling data fetch`` writes, so either command reuses the other's files;
- ``xling-eval-bli/<pair>/yacle.train.freq.<size>.<pair>.tsv`` and ``yacle.test.freq.2k.<pair>.tsv``: the xling-eval
  dictionaries, each checked against the SHA-256 of the pinned commit (``xling_eval_bli.json``);
- ``downstream/ted-cldc``, ``downstream/xnli`` and ``downstream/clef2003``: see ``xling.cle.downstream.release``.

Sources in ``SOURCE`` (``--from``), as downloaded, extracted or not: ``wiki.<lang>.vec`` (or fastText's
``wiki.<lang>.zip``) in ``SOURCE`` or ``SOURCE/vectors``; xling-eval's ``bli_datasets`` folder (a clone
``SOURCE/xling-eval``, GitHub's ``xling-eval-master.zip`` or its extracted folder) or ``xling data fetch``'s
``SOURCE/xling-eval-bli`` (xling-eval states no licence, so the package does not ship the dictionaries); the
``ted-cldc`` folder or its archive; ``XNLI-1.0``, ``multinli_1.0`` and ``XNLI-MT-1.0`` (folders or zips); the
unzipped CLEF test suite (``DocumentData``, ``Topics``, ``RelAssess``). A dataset whose files are not there is
reported and skipped, or is an error when asked for by name (``only``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from xling.cle.downstream import release
from xling.cle.downstream.release import Prepared, Report
from xling.cle.fetch import LANGUAGES, bli_manifest, bli_pairs, copy_vectors
from xling.errors import XlingError
from xling.io import atomic_file, file_sha256

DATASETS: tuple[str, ...] = ("vectors", "bli", "cldc", "xnli", "clir")

#: Where each dataset lands under ``OUT``.
OUTPUTS = {
    "vectors": "vectors",
    "bli": "xling-eval-bli",
    "cldc": "downstream/ted-cldc",
    "xnli": "downstream/xnli",
    "clir": "downstream/clef2003",
}

_LOOKED_FOR = {
    "vectors": "wiki.<lang>.vec or wiki.<lang>.zip in SOURCE or SOURCE/vectors",
    "bli": "xling-eval's bli_datasets (SOURCE/xling-eval, xling-eval-master.zip) or SOURCE/xling-eval-bli",
    "cldc": "SOURCE/ted-cldc or an archive with ted in its name (.tgz, .tar.gz, .tar, .zip)",
    "xnli": "SOURCE/XNLI-1.0 or SOURCE/XNLI-1.0.zip",
    "clir": "the unzipped CLEF test suite (DocumentData, Topics, RelAssess) in SOURCE or one folder down",
}


def prepare_cle(
    source: str | Path,
    out: str | Path,
    *,
    languages: list[str] | None = None,
    only: list[str] | None = None,
    max_vocab: int | None = 200000,
    encodings: dict[str, str] | None = None,
    report: Report | None = None,
) -> list[Prepared]:
    """Lay out the datasets found in ``source`` (all of ``DATASETS``, or ``only`` those) for ``languages``
    (default: the paper's eight) under ``out``; one ``Prepared`` per dataset, in ``DATASETS`` order."""
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise XlingError(f"{source}: no such folder (--from: where the downloaded files are)")
    langs = list(dict.fromkeys(languages or LANGUAGES))
    bad = [lang for lang in langs if not (lang.isalpha() and lang.islower() and len(lang) in (2, 3))]
    if bad:
        raise XlingError(f"--langs: {bad[0]!r} is not a language code such as en or de")
    unknown = sorted(set(only or ()) - set(DATASETS))
    if unknown:
        raise XlingError(f"--only: unknown dataset(s) {', '.join(unknown)}; expected some of {', '.join(DATASETS)}")
    if max_vocab is not None and max_vocab < 1:
        raise XlingError(f"max_vocab must be at least 1 (or None for every row), found {max_vocab}")
    results = []
    try:
        with release.scratch_dir(out) as scratch:
            for dataset in [d for d in DATASETS if not only or d in only]:
                result = _prepare_one(dataset, source, out, langs, max_vocab, encodings, Path(scratch), report)
                if result is None:
                    if only:
                        raise XlingError(f"{dataset}: not found in {source} (looked for {_LOOKED_FOR[dataset]})")
                    result = Prepared(dataset, notes=[f"not found (looked for {_LOOKED_FOR[dataset]})"])
                results.append(result)
    except OSError as err:  # unreadable source, unwritable output, full disk: one line naming the file
        raise XlingError(f"{err.filename or out}: {err.strerror or err}") from None
    return results


def _prepare_one(
    dataset: str,
    source: Path,
    out: Path,
    langs: list[str],
    max_vocab: int | None,
    encodings: dict[str, str] | None,
    scratch: Path,
    report: Report | None,
) -> Prepared | None:
    """One dataset, or ``None`` when ``source`` does not hold it."""
    dest = out / OUTPUTS[dataset]
    if dataset == "vectors":
        return prepare_vectors(source, dest, langs, max_vocab, report)
    if dataset == "bli":
        return prepare_bli(source, dest, langs, report)
    finder, preparer = {
        "cldc": (release.find_ted, lambda where: release.prepare_ted(where, dest, langs, report)),
        "xnli": (release.find_xnli, lambda where: release.prepare_xnli(where, dest, langs, scratch, report)),
        "clir": (release.find_clef, lambda where: release.prepare_clef(where, dest, langs, encodings, report)),
    }[dataset]
    where = finder(source)
    if where is None:
        return None
    result = preparer(where)
    result.source = str(where)
    return result


# --- vectors ---------------------------------------------------------------------------------------------------------


def _vectors_source(source: Path, lang: str) -> tuple[Path, str | None] | None:
    """(file, zip member or None) holding ``wiki.<lang>.vec`` under ``source``."""
    for folder in (source, source / "vectors"):
        if (folder / f"wiki.{lang}.vec").is_file():
            return folder / f"wiki.{lang}.vec", None
        archive = folder / f"wiki.{lang}.zip"
        if archive.is_file():
            return archive, f"wiki.{lang}.vec"
    return None


@contextlib.contextmanager
def _open_vectors(path: Path, member: str | None) -> Iterator[BinaryIO]:
    if member is None:
        with open(path, "rb") as fh:
            yield fh
        return
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            yield fh
    except KeyError:
        raise XlingError(f"{path}: holds no {member}") from None
    except zipfile.BadZipFile as err:
        raise XlingError(f"{path}: cannot read the zip archive ({err})") from None


def prepare_vectors(
    source: Path, out: Path, languages: list[str], max_vocab: int | None, report: Report | None = None
) -> Prepared | None:
    """``out/wiki.<lang>.vec`` (first ``max_vocab`` rows) for each language whose vectors ``source`` holds."""
    found = {lang: hit for lang in languages if (hit := _vectors_source(source, lang))}
    if not found:
        return None
    result = Prepared("vectors", source=str(source))
    missing = [lang for lang in languages if lang not in found]
    if missing:
        result.notes.append(f"no vectors for {', '.join(missing)}")
    for lang, (path, member) in found.items():
        dest = out / f"wiki.{lang}.vec"
        record = dest.with_name(dest.name + ".sha256.json")
        name = f"{out.name}/{dest.name}"
        if dest.exists():
            if not record.is_file():
                raise XlingError(f"{dest}: exists and was not written by xling; move it away or choose another -o")
            known = json.loads(record.read_text(encoding="utf-8"))
            if known.get("max_vocab") == max_vocab and known.get("sha256") == file_sha256(dest):
                result.kept.append(name)
                continue
        if report:
            report(f"vectors: {dest.name} from {path}" + (f" ({member})" if member else ""))
        origin = f"{path}:{member}" if member else str(path)
        with _open_vectors(path, member) as stream:
            digest, rows = copy_vectors(stream, origin, dest, max_vocab)
        with atomic_file(record) as fh:
            json.dump(
                {
                    "source": origin,
                    "sha256": digest,
                    "rows": rows,
                    "max_vocab": max_vocab,
                    "prepared": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                },
                fh,
                indent=2,
            )
        result.written.append(name)
    return result


# --- dictionaries ----------------------------------------------------------------------------------------------------


def _bli_source(source: Path) -> tuple[Path, str] | None:
    """(folder or zip, path prefix of the pair folders inside it) of the xling-eval dictionaries under ``source``."""
    folders = [source / "xling-eval-bli", source / "bli_datasets"]
    folders += sorted(p / "bli_datasets" for p in source.iterdir() if p.is_dir())
    for folder in folders:
        if folder.is_dir():
            return folder, ""
    for archive in sorted(source.glob("xling-eval*.zip")):
        try:
            with zipfile.ZipFile(archive) as zf:
                prefix = next((n.split("bli_datasets/")[0] for n in zf.namelist() if "bli_datasets/" in n), None)
        except zipfile.BadZipFile as err:
            raise XlingError(f"{archive}: cannot read the zip archive ({err})") from None
        if prefix is not None:
            return archive, f"{prefix}bli_datasets/"
    return None


def prepare_bli(source: Path, out: Path, languages: list[str], report: Report | None = None) -> Prepared | None:
    """``out/<pair>/...`` for the pairs among ``languages``, each file checked against the pinned commit."""
    where = _bli_source(source)
    if where is None:
        return None
    manifest = bli_manifest()
    pairs = [p for p in bli_pairs(manifest) if set(p.split("-")) <= set(languages)]
    result = Prepared("bli", source=str(where[0]))
    absent: set[str] = set()
    archive = zipfile.ZipFile(where[0]) if where[0].is_file() else None
    try:
        for name, meta in sorted(manifest["files"].items()):
            if name.split("/")[0] not in pairs:
                continue
            dest = out / name
            if dest.is_file() and file_sha256(dest) == meta["sha256"]:
                result.kept.append(f"{out.name}/{name}")
                continue
            data = _bli_file(where, archive, name)
            if data is None:
                absent.add(name.split("/")[0])
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != meta["sha256"]:
                raise XlingError(
                    f"{where[0]}/{where[1]}{name}: differs from xling-eval commit {manifest['commit'][:10]} "
                    f"(sha256 {digest[:16]}..., expected {meta['sha256'][:16]}...)"
                )
            if report:
                report(f"dictionaries: {name}")
            with atomic_file(dest, "wb") as fh:
                fh.write(data)
            result.written.append(f"{out.name}/{name}")
    finally:
        if archive is not None:
            archive.close()
    if absent:
        result.notes.append(f"not in {where[0]}: {', '.join(sorted(absent))}")
    return result


def _bli_file(where: tuple[Path, str], archive: zipfile.ZipFile | None, name: str) -> bytes | None:
    if archive is None:
        path = where[0] / name
        return path.read_bytes() if path.is_file() else None
    try:
        return archive.read(where[1] + name)
    except KeyError:
        return None


def summary(results: list[Prepared]) -> list[dict]:
    """The results as JSON-able records (``--json``)."""
    return [
        {"dataset": r.dataset, "source": r.source, "written": r.written, "kept": r.kept, "notes": r.notes}
        for r in results
    ]
