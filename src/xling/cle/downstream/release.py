"""The downstream corpora as their authors release them, laid out as the loaders read them (``xling data prepare``).

- **TED CLDC** (Hermann & Blunsom 2014): the ``ted-cldc`` folder, extracted or still in its archive (tar or zip).
  The pair folders of the wanted languages (``<lang>-en`` and ``en-<lang>``: the corpus pairs every language with
  English) are copied unchanged to ``ted-cldc/``, each checked as the loader reads it (UTF-8, every topic with
  ``positive/`` and ``negative/``, no empty document).
- **XNLI**: ``XNLI-1.0`` (dev and test sets of 15 languages), ``multinli_1.0`` (the English training set) and,
  optionally, ``XNLI-MT-1.0`` (machine-translated training sets), extracted or still zipped. They are read with the
  loader's own readers (rows without a gold label skipped, ``contradictory`` read as contradiction, XNLI rows
  filtered by language) and written as ``xnli/<lang>/{train,dev,test}.tsv`` (``label, premise, hypothesis``), the
  layout the loader reads first: the loaded pairs equal those read from the release.
- **CLEF 2003** (ELRA-E0008), unzipped: ``DocumentData/<language>/<collection>/`` (SGML files of ``<DOC>``
  records), ``Topics/2003/Top-<lang>03.txt`` and ``RelAssess/2003/qrels_<language>`` (or ``qrels_<LANG>``). Each
  language's collections become ``clef2003/docs.<lang>.jsonl`` (``{"docno", "text"}``), its topics
  ``topics.<lang>.txt`` (UTF-8) and its judgements ``qrels.<lang>.txt``. The collections and fields are those of
  the authors' CLEF loader (``rlitschk/clef-dataloaders``, ``clef_paths.py`` / ``clef_extractors.py``), decoded as
  it decodes them: Latin-1 (ISO-8859-1) for English, German, Finnish, French and Italian, UTF-8 for Russian (whose
  topics start with a byte-order mark). A file that does not decode, or a Latin-1 file that reads as UTF-8, is an
  error naming it (``encodings`` overrides a language's codec).

Every output is written atomically, and ``.prepared.json`` in each output folder records what each output was made
from: a rerun keeps outputs whose sources and options are unchanged and redoes the rest, and a path in the output
folder that xling did not write is never replaced.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import html
import json
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

from xling.cle.downstream.data import NLIPairs, read_nli, read_qrels, read_ted_documents, read_trec_topics
from xling.errors import XlingError
from xling.io import atomic_dir, atomic_file

#: Bumped when an output's format changes, so that a rerun rewrites outputs of an older xling.
FORMAT = 1
RECORD = ".prepared.json"

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
CLEF_LANGUAGE_NAMES = {
    "de": "german",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "it": "italian",
    "ru": "russian",
}
CLEF_ENCODINGS = {"de": "latin-1", "en": "latin-1", "fi": "latin-1", "fr": "latin-1", "it": "latin-1", "ru": "utf-8"}

Report = Callable[[str], None]


@dataclass
class Prepared:
    """What one dataset's preparation did: outputs written or kept (relative to the output root), and notes."""

    dataset: str
    source: str = ""
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- the record of what was written ---------------------------------------------------------------------------------


class Record:
    """``.prepared.json`` of one output folder: for each output xling wrote there, what it was made from."""

    def __init__(self, folder: Path):
        self.folder = folder
        path = folder / RECORD
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            raise XlingError(f"{path}: not JSON (remove it to prepare {folder} again)") from None

    def fresh(self, name: str, key: dict) -> bool:
        """Whether output ``name`` exists, was made from ``key`` and is unchanged since; refuses (``XlingError``) an
        existing ``name`` that xling did not write."""
        target, entry = self.folder / name, self.entries.get(name)
        if entry is None:
            if target.exists():
                raise XlingError(
                    f"{target}: exists and was not written by xling data prepare; move it away or choose another -o"
                )
            return False
        return entry["key"] == _plain(key) and target.exists() and _stamp(target) == entry["stamp"]

    def note(self, name: str) -> str | None:
        """The note recorded with output ``name``."""
        return self.entries.get(name, {}).get("note")

    def done(self, name: str, key: dict, note: str | None = None) -> None:
        """Record output ``name`` as made from ``key`` (saved at once: an interrupted run resumes after it)."""
        self.entries[name] = {"key": _plain(key), "stamp": _stamp(self.folder / name), "note": note}
        with atomic_file(self.folder / RECORD) as fh:
            json.dump(self.entries, fh, indent=1, sort_keys=True)


def _plain(key: dict) -> dict:
    return json.loads(json.dumps({"format": FORMAT, **key}, sort_keys=True, default=str))


def _stamp(path: Path) -> list[int]:
    """Size and time of a file; number of files and bytes of a folder."""
    if path.is_file():
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    files = [p for p in path.rglob("*") if p.is_file()]
    return [len(files), sum(p.stat().st_size for p in files)]


def identity(path: Path) -> dict:
    """What a source is, for deciding whether an output made from it is still current."""
    if path.is_file():
        stat = path.stat()
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stats = [p.stat() for p in path.rglob("*") if p.is_file()]
    return {
        "path": str(path.resolve()),
        "files": len(stats),
        "size": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


# --- TED CLDC --------------------------------------------------------------------------------------------------------

_PAIR = re.compile(r"^[a-z]{2}-[a-z]{2}$")
_TED_MEMBER = re.compile(r"(?:^|/)(?P<pair>[a-z]{2}-[a-z]{2})/(?P<rest>[^/]+/[^/]+/(?:positive|negative)/[^/]+)$")


_MAC_FILES = shutil.ignore_patterns("._*", ".DS_Store", "__MACOSX")


def _is_mac_file(name: str) -> bool:
    """macOS metadata archived beside the files (``._1.ted``, ``__MACOSX/``), not part of the corpus."""
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def find_ted(source: Path) -> Path | None:
    """The ``ted-cldc`` folder or tar archive under ``source``."""
    for folder in (source / "ted-cldc", source):
        if folder.is_dir() and any(_PAIR.match(p.name) and (p / "train").is_dir() for p in folder.iterdir()):
            return folder
    archives = sorted(
        p for p in source.iterdir() if "ted" in p.name.lower() and p.name.endswith((".tgz", ".tar.gz", ".tar", ".zip"))
    )
    return archives[0] if archives else None


def ted_pairs(languages: list[str]) -> list[str]:
    """The TED CLDC pair folders the loader needs for pairs among ``languages``: ``<lang>-en`` and ``en-<lang>``."""
    return sorted(p for lang in languages if lang != "en" for p in (f"{lang}-en", f"en-{lang}"))


def prepare_ted(source: Path, out: Path, languages: list[str], report: Report | None = None) -> Prepared:
    """Copy the TED CLDC pair folders of ``languages`` from ``source`` (folder or tar archive) to ``out``."""
    result = Prepared("cldc")
    wanted = ted_pairs(languages)
    record = Record(out)
    key = {"source": identity(source)}
    todo = [p for p in wanted if not record.fresh(p, key)]
    result.kept += [f"{out.name}/{p}" for p in wanted if p not in todo]
    if todo:
        if report:
            report(f"TED CLDC: {', '.join(todo)} from {source}")
        found = _copy_ted(source, out, todo)
        for pair in todo:
            if pair not in found:
                result.notes.append(f"{pair}: not in {source}")
                continue
            record.done(pair, key)
            result.written.append(f"{out.name}/{pair}")
    return result


def _copy_ted(source: Path, out: Path, pairs: list[str]) -> set[str]:
    """Copy (or extract) ``pairs`` into ``out``, each pair folder atomically and checked; returns those found."""
    found: set[str] = set()
    with contextlib.ExitStack() as stack:
        staged: dict[str, Path] = {}

        def stage(pair: str) -> Path:
            if pair not in staged:
                staged[pair] = stack.enter_context(atomic_dir(out / pair))
            return staged[pair]

        if source.is_dir():
            for pair in pairs:
                if (source / pair).is_dir():
                    shutil.copytree(source / pair, stage(pair), dirs_exist_ok=True, ignore=_MAC_FILES)
        else:
            for name, data in _archive_files(source):
                match = _TED_MEMBER.search(name)
                if not (match and match["pair"] in pairs) or _is_mac_file(name):
                    continue
                parts = match["rest"].split("/")
                if any(part in ("", ".", "..") for part in parts):
                    raise XlingError(f"{source}: unsafe member name {name!r}")
                dest = stage(match["pair"]).joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with data() as src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
        for pair, folder in staged.items():
            _check_ted_pair(folder, pair, source)
            found.add(pair)
    return found


def _archive_files(path: Path) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
    """(name, opener) of every file in a tar (any compression, streamed) or zip archive."""
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield info.filename, lambda info=info: zf.open(info)
            return
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, lambda member=member: tar.extractfile(member)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise XlingError(f"{path}: cannot read the archive ({err})") from None


def _check_ted_pair(folder: Path, pair: str, source: Path) -> None:
    """Read every topic of a pair folder as the loader does (errors name the file in ``source``)."""
    lang = pair.split("-")[0]
    topics = [t for split in sorted(folder.iterdir()) if split.is_dir() for t in sorted(split.iterdir()) if t.is_dir()]
    if not topics:
        raise XlingError(f"{source}: {pair} holds no topic folders (expected {pair}/<split>/<topic>/positive/*.ted)")
    for topic in topics:
        try:
            read_ted_documents(topic, lang)
        except XlingError as err:  # name the file where the user has it, not in the temporary folder
            raise XlingError(str(err).replace(str(folder), f"{source}/{pair}")) from None


# --- XNLI ------------------------------------------------------------------------------------------------------------

_XNLI = "XNLI-1.0"
_MNLI = "multinli_1.0"
_XNLI_MT = "XNLI-MT-1.0"


def find_xnli(source: Path) -> Path | None:
    """``source`` when it holds XNLI-1.0 (folder or zip)."""
    return source if (source / _XNLI).is_dir() or (source / f"{_XNLI}.zip").is_file() else None


def prepare_xnli(
    source: Path, out: Path, languages: list[str], scratch: Path, report: Report | None = None
) -> Prepared:
    """Write ``out/<lang>/{train,dev,test}.tsv`` for ``languages`` from the releases under ``source``."""
    result = Prepared("xnli")
    record = Record(out)
    langs = [lang for lang in languages if lang in XNLI_LANGUAGES]
    skipped = sorted(set(languages) - set(langs))
    if skipped:
        result.notes.append(f"not in XNLI: {', '.join(skipped)}")
    for lang in langs:
        jobs = [
            ("test", [(f"{_XNLI}/xnli.test.tsv", lang), (f"{_XNLI}/xnli.test.jsonl", lang)]),
            ("dev", [(f"{_XNLI}/xnli.dev.tsv", lang), (f"{_XNLI}/xnli.dev.jsonl", lang)]),
            (
                "train",
                (
                    [(f"{_MNLI}/multinli_1.0_train.jsonl", None), (f"{_MNLI}/multinli_1.0_train.txt", None)]
                    if lang == "en"
                    else []
                )
                + [(f"{_XNLI_MT}/multinli/multinli.train.{lang}.tsv", None)],
            ),
        ]
        for split, candidates in jobs:
            name = f"{lang}/{split}.tsv"
            hit = next(((rel, filt) for rel, filt in candidates if _release_file(source, rel)), None)
            if hit is None:
                tried = ", ".join(rel for rel, _ in candidates)
                result.notes.append(f"{name}: no source (looked for {tried}, extracted or zipped, in {source})")
                continue
            rel, filt = hit
            key = {"source": identity(_release_file(source, rel)), "member": rel, "language": filt}
            if record.fresh(name, key):
                result.kept.append(f"{out.name}/{name}")
                continue
            if report:
                report(f"XNLI: {name} from {rel}")
            path = _extract(source, rel, scratch)
            try:
                pairs = read_nli(path, filt)
            except XlingError as err:  # name the member where the user has it, not its temporary copy
                raise XlingError(str(err).replace(str(path), _where(source, rel))) from None
            _write_nli(out / name, pairs)
            record.done(
                name,
                key,
                f"{len(pairs)} pairs from {rel}" + (f" ({pairs.skipped} without gold label)" if pairs.skipped else ""),
            )
            result.written.append(f"{out.name}/{name}")
    return result


def _release_file(source: Path, rel: str) -> Path | None:
    """The file or zip that holds release member ``rel`` (``top/...``) under ``source``."""
    if (source / rel).is_file():
        return source / rel
    archive = source / f"{rel.split('/')[0]}.zip"
    if archive.is_file():
        with _open_zip(archive) as zf:
            if rel in zf.namelist():
                return archive
    return None


def _where(source: Path, rel: str) -> str:
    """How an error names release member ``rel``: its path, or ``ARCHIVE.zip:member``."""
    return str(source / rel) if (source / rel).is_file() else f"{source / rel.split('/')[0]}.zip:{rel}"


def _extract(source: Path, rel: str, scratch: Path) -> Path:
    """A readable path to release member ``rel``: in place, or extracted from its zip into ``scratch``."""
    if (source / rel).is_file():
        return source / rel
    archive = source / f"{rel.split('/')[0]}.zip"
    dest = scratch / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _open_zip(archive) as zf, zf.open(rel) as src, open(dest, "wb") as fh:
        shutil.copyfileobj(src, fh)
    return dest


@contextlib.contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf
    except (zipfile.BadZipFile, OSError) as err:
        raise XlingError(f"{path}: cannot read the zip archive ({err})") from None


def _write_nli(path: Path, pairs: NLIPairs) -> None:
    """xling's NLI TSV (``label, premise, hypothesis``); a tab or newline inside a sentence cannot be written."""
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n", escapechar=None)
        writer.writerow(["label", "premise", "hypothesis"])
        for label, premise, hypothesis, origin in zip(pairs.labels, pairs.premises, pairs.hypotheses, pairs.origins):
            if any(c in text for text in (premise, hypothesis) for c in "\t\r\n"):
                raise XlingError(f"{origin}: a sentence holds a tab or line break, which a TSV row cannot")
            writer.writerow([label, premise, hypothesis])


# --- CLEF 2003 -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    """One CLEF document collection as the reference loader reads it: its folder under ``DocumentData/<language>/``
    (the names the reference's two releases use), the tag holding the id the qrels use, and the text fields in the
    reference's order, each with whether every occurrence counts (``_find_all_and_concatenate``) or the first."""

    folders: tuple[str, ...]
    id_tag: str
    fields: tuple[tuple[str, bool], ...]


_SDA_DE = (("TX", True), ("LD", False), ("TI", False), ("KW", False))
_SDA_IT = (("TI", True), ("LD", True), ("TX", True))

#: CLEF 2003's collections per document language, as ``rlitschk/clef-dataloaders`` reads them (French documents are
#: not read there, so xling does not guess their fields).
CLEF_2003: dict[str, tuple[Collection, ...]] = {
    "en": (
        Collection(("GH95",), "DOCID", (("HEADLINE", False), ("TEXT", True))),
        Collection(("latimes",), "DOCNO", (("HEADLINE", True), ("TEXT", True))),
    ),
    "de": (
        Collection(("der_spiegel",), "DOCID", (("TITLE", True), ("LEAD", False), ("TEXT", True))),
        Collection(("fr_rundschau",), "DOCID", (("TITLE", True), ("TEXT", False))),
        Collection(("sda94",), "DOCID", _SDA_DE),
        Collection(("sda95",), "DOCID", _SDA_DE),
    ),
    "it": (
        Collection(("la_stampa",), "DOCID", (("TEXT", True), ("TITLE", True))),
        Collection(("sda_italian", "sda_italian_94"), "DOCID", _SDA_IT),
        Collection(("agz95", "sda_italian_95"), "DOCID", _SDA_IT),
    ),
    "fi": (Collection(("aamu",), "DOCID", (("TEXT", True),)),),
    "ru": (Collection(("xml",), "DOCID", (("TEXT", False), ("TITLE", False), ("SUBJECT", False))),),
}


def find_clef(source: Path) -> Path | None:
    """The unzipped CLEF test suite under ``source``: the folder holding ``DocumentData``, ``Topics`` or
    ``RelAssess`` (``source`` itself, ``source/clef``, or another folder one level down)."""
    candidates = [source, source / "clef", source / "CLEF"] + sorted(p for p in source.iterdir() if p.is_dir())
    for folder in candidates:
        if folder.is_dir() and any((folder / name).is_dir() for name in ("DocumentData", "Topics", "RelAssess")):
            return folder
    return None


def prepare_clef(
    source: Path,
    out: Path,
    languages: list[str],
    encodings: dict[str, str] | None = None,
    report: Report | None = None,
) -> Prepared:
    """Write ``docs.<lang>.jsonl``, ``topics.<lang>.txt`` and ``qrels.<lang>.txt`` for ``languages`` into ``out``
    from the unzipped CLEF test suite at ``source`` (CLEF 2003: ``Topics/2003``, ``RelAssess/2003``)."""
    result = Prepared("clir")
    record = Record(out)
    codecs_ = {**CLEF_ENCODINGS, **(encodings or {})}
    for lang, codec in codecs_.items():
        try:
            codecs.lookup(codec)
        except LookupError:
            raise XlingError(f"--encoding {lang}={codec}: unknown codec") from None
    langs = [lang for lang in languages if lang in CLEF_LANGUAGE_NAMES]
    missing = sorted(set(languages) - set(langs))
    if missing:
        result.notes.append(f"not in CLEF 2003: {', '.join(missing)}")
    for lang in langs:
        name, codec = CLEF_LANGUAGE_NAMES[lang], codecs_[lang]
        topics, topics_name = source / "Topics" / "2003" / f"Top-{lang}03.txt", f"topics.{lang}.txt"
        if not topics.is_file():
            result.notes.append(f"{topics_name}: no {topics}")
        elif record.fresh(topics_name, topics_key := {"source": identity(topics), "encoding": codec}):
            result.kept.append(f"{out.name}/{topics_name}")
        else:
            _write_topics(topics, out / topics_name, codec, lang)
            record.done(topics_name, topics_key)
            result.written.append(f"{out.name}/{topics_name}")
        folder = source / "DocumentData" / name
        if not folder.is_dir():
            result.notes.append(f"docs.{lang}.jsonl: no {folder}")
            continue
        if lang not in CLEF_2003:
            result.notes.append(
                f"docs.{lang}.jsonl: not written (the reference code reads no {name.title()} collection, "
                f"so xling does not know which of its fields are indexed)"
            )
            continue
        collections = _collection_folders(folder, lang)
        qrels = _qrels_file(source, lang)
        docs_key = {"source": [identity(p) for p, _ in collections], "encoding": codec}
        docs_name, qrels_name = f"docs.{lang}.jsonl", f"qrels.{lang}.txt"
        docs_fresh = record.fresh(docs_name, docs_key)
        qrels_key = {"source": identity(qrels), "docs": docs_key}
        if docs_fresh and record.fresh(qrels_name, qrels_key):
            result.kept += [f"{out.name}/{docs_name}", f"{out.name}/{qrels_name}"]
            result.notes += [n for n in (record.note(docs_name), record.note(qrels_name)) if n]
            continue
        if docs_fresh:
            result.kept.append(f"{out.name}/{docs_name}")
            docnos = _docnos(out / docs_name)
            docs_note = record.note(docs_name)
        else:
            if report:
                report(f"CLEF 2003: {docs_name} from {', '.join(str(p) for p, _ in collections)}")
            docnos, docs_note = _write_docs(collections, out / docs_name, codec, lang)
            record.done(docs_name, docs_key, docs_note)
            result.written.append(f"{out.name}/{docs_name}")
        qrels_note = _write_qrels(qrels, out / qrels_name, docnos, out / docs_name)
        record.done(qrels_name, qrels_key, qrels_note)
        result.written.append(f"{out.name}/{qrels_name}")
        result.notes += [n for n in (docs_note, qrels_note) if n]
    return result


def _collection_folders(folder: Path, lang: str) -> list[tuple[Path, Collection]]:
    """Each of the language's CLEF 2003 collections with its folder; an unknown or missing folder is an error."""
    present = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    known = {name.lower(): c for c in CLEF_2003[lang] for name in c.folders}
    unknown = sorted(set(present) - set(known))
    if unknown:
        names = ", ".join(c.folders[0] for c in CLEF_2003[lang])
        raise XlingError(
            f"{folder / present[unknown[0]].name}: not a CLEF 2003 collection of the reference code "
            f"(expected the folders {names})"
        )
    out = []
    for collection in CLEF_2003[lang]:
        hits = [present[n.lower()] for n in collection.folders if n.lower() in present]
        if not hits:
            raise XlingError(f"{folder}: missing the collection folder {' or '.join(collection.folders)}")
        if len(hits) > 1:
            raise XlingError(f"{folder}: both {hits[0].name} and {hits[1].name} hold the same collection")
        out.append((hits[0], collection))
    return out


def _qrels_file(source: Path, lang: str) -> Path:
    folder = source / "RelAssess" / "2003"
    names = [f"qrels_{CLEF_LANGUAGE_NAMES[lang]}", f"qrels_{lang.upper()}"]
    for name in names:
        for candidate in (folder / name, folder / f"{name}.txt"):
            if candidate.is_file():
                return candidate
    raise XlingError(
        f"{folder}: no relevance judgements for {CLEF_LANGUAGE_NAMES[lang]} (looked for {', '.join(names)})"
    )


def decode(data: bytes, codec: str, path: Path, lang: str) -> str:
    """``data`` decoded strictly as ``codec``; a Latin-1 file that reads as UTF-8 is refused (mojibake otherwise)."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise XlingError(
            f"{path}: not {codec} (byte {data[exc.start]:#04x} at offset {exc.start}); "
            f"pass --encoding {lang}=CODEC with the file's encoding"
        ) from None
    if not codecs.lookup(codec).name.startswith("utf") and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise XlingError(
                f"{path}: reads as UTF-8, not {codec} as CLEF ships {CLEF_LANGUAGE_NAMES.get(lang, lang)} text; "
                f"pass --encoding {lang}=utf-8 if UTF-8 is right"
            )
    return text.removeprefix("\ufeff")


def _write_topics(path: Path, dest: Path, codec: str, lang: str) -> None:
    text = decode(path.read_bytes(), codec, path, lang)
    with atomic_file(dest, "w") as fh:
        fh.write(text)
    try:
        read_trec_topics(dest)
    except XlingError as err:
        dest.unlink()
        raise XlingError(str(err).replace(str(dest), str(path))) from None


_DOC = re.compile(r"<DOC(?:\s[^>]*)?>(.*?)</DOC\s*>", re.S | re.I)
_TAGS = re.compile(r"<[^>]*>")


@cache
def _tag(name: str) -> re.Pattern:
    return re.compile(rf"<{name}(?:\s[^>]*)?>(.*?)</{name}\s*>", re.S | re.I)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", fragment)).split())


def parse_documents(text: str, collection: Collection) -> Iterator[tuple[str | None, str]]:
    """(id, text) of every ``<DOC>`` record: the id from ``collection.id_tag``, the text its fields joined by spaces
    (nested markup removed, entities decoded, whitespace collapsed)."""
    for block in _DOC.findall(text):
        ids = _tag(collection.id_tag).findall(block)
        parts = []
        for tag, every in collection.fields:
            found = _tag(tag).findall(block)
            parts += [_text(f) for f in (found if every else found[:1])]
        yield (_text(ids[0]) or None) if ids else None, " ".join(p for p in parts if p)


def _read_collection_file(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise XlingError(f"{path}: not a readable gzip file ({err})") from None
    return data


def _write_docs(collections: list[tuple[Path, Collection]], dest: Path, codec: str, lang: str) -> tuple[set[str], str]:
    """Stream every document of the collections into ``dest``; returns the document ids and a note of what was
    left out (documents without an id, repeated ids: the first kept, empty texts: the loader refuses them)."""
    seen: set[str] = set()
    no_id = repeated = empty = files_without_docs = 0
    with atomic_file(dest, "w") as fh:
        for folder, collection in collections:
            files = sorted(
                p
                for p in folder.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".dtd"
            )
            for path in files:
                n = 0
                for docno, text in parse_documents(decode(_read_collection_file(path), codec, path, lang), collection):
                    n += 1
                    if docno is None:
                        no_id += 1
                    elif docno in seen:
                        repeated += 1
                    elif not text:
                        empty += 1
                    else:
                        seen.add(docno)
                        fh.write(json.dumps({"docno": docno, "text": text}, ensure_ascii=False) + "\n")
                files_without_docs += n == 0
    if not seen:
        raise XlingError(f"{collections[0][0].parent}: no <DOC> records with an id and text")
    left = [
        f"{n} {what}"
        for n, what in (
            (no_id, "without an id"),
            (repeated, "with a repeated id (first kept)"),
            (empty, "without text"),
            (files_without_docs, "files without <DOC> records"),
        )
        if n
    ]
    return seen, f"{dest.name}: {len(seen)} documents" + (f"; left out: {', '.join(left)}" if left else "")


def _docnos(path: Path) -> set[str]:
    with open(path, encoding="utf-8") as fh:
        return {json.loads(line)["docno"] for line in fh if line.strip()}


def _write_qrels(path: Path, dest: Path, docnos: set[str], docs: Path) -> str:
    """Copy the judgements (whitespace normalised) after reading them as the loader does; refuse qrels none of whose
    relevant documents is in the collection (ids read from the wrong field)."""
    try:
        qrels = read_qrels(path)
    except XlingError as err:
        raise XlingError(f"{err} (CLEF qrels are ASCII: 'qid iteration docno relevance')") from None
    relevant = {(q, d) for q, judged in qrels.items() for d, rel in judged.items() if rel > 0}
    found = sum(d in docnos for _, d in relevant)
    if relevant and not found:
        raise XlingError(
            f"{path}: none of its {len(relevant)} relevant documents is among the {len(docnos)} of {docs.name} "
            f"(document ids read from the wrong field?)"
        )
    with atomic_file(dest, "w") as fh:
        for qid, judged in qrels.items():
            for docno, rel in judged.items():
                fh.write(f"{qid} 0 {docno} {rel}\n")
    return f"{dest.name}: {found} of {len(relevant)} relevant documents are in {docs.name}"


def scratch_dir(out: Path) -> contextlib.AbstractContextManager[str]:
    """A temporary folder beside the outputs (same file system) for extracted archive members; removed after."""
    out.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".xling-prepare-", dir=out)
