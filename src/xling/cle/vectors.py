"""Word vectors: read and write word2vec text (``.vec``) and binary (``.bin``), with a fast ``.npy`` cache.

Reading streams the file into one preallocated float32 matrix (memory ≈ rows x dim x 4 bytes; rows are never held
in Python lists), stops after ``max_vocab`` distinct words or after ``max_rows`` rows of the file (xling-eval's
count: rows dropped as duplicates or skipped as bad count too), optionally lowercases, and always de-duplicates
(the first occurrence wins: a vocabulary maps each word to one row). A row with the wrong number of values, a NaN/inf
value or undecodable bytes raises ``XlingError`` naming the file and line, unless ``skip_bad=True``, which skips such
rows and counts them (``Embeddings.skipped``). A text file that ends before the rows its header promises (an
interrupted download cut at a line end) is an error too, or a ``note:`` with ``skip_bad=True``; stopping early at
``max_vocab``/``max_rows`` is not.
"""

from __future__ import annotations

import glob
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xling.cache import cache_dir
from xling.errors import XlingError, XlingNote
from xling.io import atomic_file


@dataclass
class Embeddings:
    """A vocabulary and its float32 vectors (row ``i`` is ``words[i]``), in file order (usually frequency order)."""

    words: list[str]
    vectors: np.ndarray
    skipped: int = 0  # bad rows skipped with skip_bad=True
    duplicates: int = 0  # rows dropped because their word (after lowercasing) came earlier
    short: tuple[int, int] | None = None  # (rows the header promised, rows the file has): cut short, skip_bad=True
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def index(self) -> dict[str, int]:
        """Word -> row."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.words)}
        return self._index


def read_vectors(
    path: str | Path,
    *,
    max_vocab: int | None = None,
    max_rows: int | None = None,
    lowercase: bool = False,
    skip_bad: bool = False,
    binary: bool | None = None,
    encoding: str = "utf-8",
    cache: bool = False,
) -> Embeddings:
    """Read word2vec text or binary (``binary=None``: binary when the name ends in ``.bin``).

    ``max_vocab``: stop once this many distinct words are kept; ``max_rows``: stop after this many rows of the file
    (the header not counted), whatever became of them (at most one of the two). ``cache=True`` keeps a ``.npy`` +
    vocabulary copy in ``vectors/`` of the cache folder (``xling.cache.cache_dir()``), keyed by the file's absolute
    path, identity (device, inode), size, time and these options, and reloads from it while the file is unchanged;
    where that folder cannot be written, the cache is skipped with a ``note:`` (``XlingNote``).
    """
    path = Path(path)
    for name, value in (("max_vocab", max_vocab), ("max_rows", max_rows)):
        if value is not None and value < 1:
            raise XlingError(f"{name} must be at least 1, found {value}")
    if max_vocab is not None and max_rows is not None:
        raise XlingError("give max_vocab (distinct words) or max_rows (rows of the file), not both")
    if not path.is_file():
        raise XlingError(f"{path}: no such vectors file")
    binary = path.name.endswith(".bin") if binary is None else binary
    options = dict(
        max_vocab=max_vocab, max_rows=max_rows, lowercase=lowercase, skip_bad=skip_bad, binary=binary, encoding=encoding
    )
    if cache:
        cached = _load_cache(path, options)
        if cached is not None:
            return cached
    with open(path, "rb") as fh:
        emb = (_read_binary if binary else _read_text)(fh, path, max_vocab, max_rows, lowercase, skip_bad, encoding)
    if len(emb) == 0:
        raise XlingError(f"{path}: no vectors read")
    if cache:
        _save_cache(path, options, emb)
    return emb


class _Rows:
    """Accepts rows into a preallocated matrix: de-duplication, lowercasing, bad-row policy."""

    def __init__(self, path: Path, capacity: int, dim: int, lowercase: bool, skip_bad: bool, encoding: str):
        self.path, self.dim, self.lowercase, self.skip_bad, self.encoding = path, dim, lowercase, skip_bad, encoding
        self.vectors = np.empty((capacity, dim), dtype=np.float32)
        self.words: list[str] = []
        self.seen: set[str] = set()
        self.skipped = self.duplicates = 0
        self.short: tuple[int, int] | None = None

    @property
    def full(self) -> bool:
        return len(self.words) >= self.vectors.shape[0]

    def bad(self, line: int, why: str) -> None:
        if not self.skip_bad:
            raise XlingError(f"{self.path}:{line}: {why} (pass skip_bad / --skip-bad to skip such rows)")
        self.skipped += 1

    def add(self, line: int, raw_word: bytes, values: np.ndarray) -> None:
        try:
            word = raw_word.decode(self.encoding)
        except UnicodeDecodeError:
            return self.bad(line, f"word is not valid {self.encoding}: {raw_word[:40]!r}")
        if not word:
            return self.bad(line, "empty word")
        if values.size != self.dim:
            return self.bad(line, f"expected {self.dim} numbers after the word, found {values.size} readable")
        if not np.isfinite(values).all():
            return self.bad(line, f"non-finite value (NaN or inf) in the vector of {word!r}")
        if self.lowercase:
            word = word.lower()
        if word in self.seen:
            self.duplicates += 1
            return None
        self.seen.add(word)
        self.vectors[len(self.words)] = values
        self.words.append(word)
        return None

    def cut_short(self, promised: int, found: int) -> None:
        """The file ended after ``found`` rows although its header promised ``promised``."""
        if not self.skip_bad:
            raise XlingError(
                f"{_short_message(self.path, promised, found)}; fetch it again, or pass skip_bad / --skip-bad "
                f"to use the rows it has)"
            )
        self.short = (promised, found)
        _warn_short(self.path, self.short)

    def result(self) -> Embeddings:
        n = len(self.words)
        if n < self.vectors.shape[0]:
            self.vectors.resize((n, self.dim), refcheck=False)  # shrink in place, no copy
        return Embeddings(self.words, self.vectors, self.skipped, self.duplicates, self.short)


def _header(first: bytes) -> tuple[int, int] | None:
    parts = first.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


def _count_lines(fh) -> int:
    start, n = fh.tell(), 0
    while chunk := fh.read(1 << 24):
        n += chunk.count(b"\n")
    fh.seek(start)
    return n + 1


def _read_text(
    fh, path: Path, max_vocab: int | None, max_rows: int | None, lowercase: bool, skip_bad: bool, encoding: str
) -> Embeddings:
    first = fh.readline()
    header = _header(first)
    if header is not None:
        capacity, dim = header
        line_no = 1
    else:  # no header: the first row gives the dimension; count rows to size the matrix
        dim = len(first.rstrip().split(b" ")) - 1
        if dim < 1:
            raise XlingError(f"{path}:1: expected a 'count dim' header or 'word v1 v2 ...', found {first[:60]!r}")
        fh.seek(0)
        limit = max_vocab or max_rows
        capacity = limit if limit is not None else _count_lines(fh)
        line_no = 0
    for limit in (max_vocab, max_rows):
        if limit is not None:
            capacity = min(capacity, limit)
    rows = _Rows(path, capacity, dim, lowercase, skip_bad, encoding)
    batch: list[tuple[int, bytes, bytes]] = []
    n_rows = 0
    for raw in fh:
        line_no += 1
        raw = raw.rstrip(b"\r\n ")
        if not raw:
            continue
        if max_rows is not None and n_rows >= max_rows:
            break
        if len(rows.words) + len(batch) >= capacity:
            _add_batch(rows, batch)  # pending rows may hold duplicates or bad rows: count what was kept
            batch = []
            if len(rows.words) >= capacity:
                if max_vocab is None and max_rows is None and header is not None:
                    raise XlingError(f"{path}:{line_no}: more rows than the header's count {header[0]}")
                break
        n_rows += 1
        word, _, rest = raw.partition(b" ")
        batch.append((line_no, word, rest))
        if len(batch) == _BATCH:
            _add_batch(rows, batch)
            batch = []
    _add_batch(rows, batch)
    limits_reached = rows.full or (max_rows is not None and n_rows >= max_rows)  # a shorter file gives the same
    if header is not None and n_rows < header[0] and not limits_reached:
        rows.cut_short(header[0], n_rows)
    return rows.result()


def _short_message(path: Path, promised: int, found: int) -> str:
    return (
        f"{path}: the header promises {promised} rows but the file ends after {found} "
        f"(cut short, e.g. an interrupted download"
    )


def _warn_short(path: Path, short: tuple[int, int]) -> None:
    warnings.warn(f"{_short_message(path, *short)}); using its {short[1]} rows (--skip-bad)", XlingNote, stacklevel=2)


_BATCH = 2048


def _add_batch(rows: _Rows, batch: list[tuple[int, bytes, bytes]]) -> None:
    """Parse a batch of rows with one C call; on any irregularity fall back to row by row (to name the bad line)."""
    if not batch:
        return
    values = _parse(b" ".join(rest for _, _, rest in batch))
    if values is not None and values.size == len(batch) * rows.dim:
        values = values.reshape(len(batch), rows.dim)
        for (line_no, word, _), vec in zip(batch, values):
            rows.add(line_no, word, vec)
        return
    for line_no, word, rest in batch:
        vec = _parse(rest)
        if vec is None:
            rows.bad(line_no, f"expected {rows.dim} numbers after the word, found unreadable text {rest[:40]!r}")
        else:
            rows.add(line_no, word, vec)


def _parse(text: bytes) -> np.ndarray | None:
    """Space-separated numbers as float32 (C speed), or None when some token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.float32, sep=" ")
        except ValueError:
            return None


def _read_binary(
    fh, path: Path, max_vocab: int | None, max_rows: int | None, lowercase: bool, skip_bad: bool, encoding: str
) -> Embeddings:
    header = _header(fh.readline())
    if header is None:
        raise XlingError(f"{path}:1: word2vec binary must start with a 'count dim' header")
    count, dim = header
    count = count if max_rows is None else min(count, max_rows)
    capacity = count if max_vocab is None else min(count, max_vocab)
    rows = _Rows(path, capacity, dim, lowercase, skip_bad, encoding)
    for entry in range(count):
        if rows.full:
            break
        word = bytearray()
        while (ch := fh.read(1)) != b" ":
            if not ch:
                raise XlingError(f"{path}: entry {entry + 1}: file ends inside a word (expected {count} entries)")
            if ch != b"\n" or word:
                word += ch
        data = fh.read(4 * dim)
        if len(data) < 4 * dim:
            raise XlingError(f"{path}: entry {entry + 1}: file ends inside a vector (expected {count} entries)")
        rows.add(entry + 2, bytes(word), np.frombuffer(data, dtype="<f4"))
    return rows.result()


def write_vec(
    path: str | Path, words: list[str], vectors: np.ndarray, *, precision: int = 6, header: bool = True
) -> None:
    """Write word2vec text (``count dim`` header, then ``word v1 ... vd`` rows), atomically."""
    vectors = np.asarray(vectors, dtype=np.float32)
    _check_pairs(words, vectors)
    row = " ".join([f"%.{precision}g"] * vectors.shape[1])
    with atomic_file(path, "w") as fh:
        if header:
            fh.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        for word, vec in zip(words, vectors.tolist()):
            fh.write(f"{word} {row % tuple(vec)}\n")


def write_bin(path: str | Path, words: list[str], vectors: np.ndarray) -> None:
    """Write word2vec binary (``count dim`` header, then ``word`` + little-endian float32 values + newline)."""
    vectors = np.asarray(vectors, dtype="<f4")
    _check_pairs(words, vectors)
    with atomic_file(path, "wb") as fh:
        fh.write(f"{vectors.shape[0]} {vectors.shape[1]}\n".encode())
        for word, vec in zip(words, vectors):
            fh.write(word.encode("utf-8") + b" " + vec.tobytes() + b"\n")


def _check_pairs(words: list[str], vectors: np.ndarray) -> None:
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise XlingError(f"write: {len(words)} words but vectors of shape {vectors.shape}")
    bad = next((w for w in words if not w or any(c.isspace() for c in w)), None)
    if bad is not None:
        raise XlingError(f"write: word {bad!r} is empty or contains whitespace; word2vec files cannot hold it")


# --- cache ---------------------------------------------------------------------------------------------------------


def _cache_key(path: Path, options: dict) -> tuple[Path, str, dict]:
    """(cache folder, entry stem, the source's identity): the stem names the file and hashes its absolute path
    (so two files never share an entry), its identity and the read options."""
    source = path.resolve()
    stat = source.stat()
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "device": stat.st_dev}
    where = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    key = json.dumps({"path": str(source), **identity, **options}, sort_keys=True)
    return cache_dir() / "vectors", f"{path.name}.{where}.{hashlib.sha256(key.encode()).hexdigest()[:16]}", identity


def _load_cache(path: Path, options: dict) -> Embeddings | None:
    folder, stem, _ = _cache_key(path, options)
    npy, vocab, meta = (folder / f"{stem}{ext}" for ext in (".npy", ".vocab.txt", ".json"))
    if not (npy.is_file() and vocab.is_file() and meta.is_file()):
        return None
    vectors = np.load(npy, allow_pickle=False)
    words = vocab.read_text(encoding="utf-8").split("\n")[:-1]
    info = json.loads(meta.read_text(encoding="utf-8"))
    if len(words) != vectors.shape[0]:
        return None  # a torn cache: reread the source
    short = tuple(info["short"]) if info.get("short") else None
    if short:  # the note of the first read, again: a cached copy of a file cut short stays loud
        _warn_short(path, short)
    return Embeddings(words, vectors, info.get("skipped", 0), info.get("duplicates", 0), short)


def _save_cache(path: Path, options: dict, emb: Embeddings) -> None:
    folder, stem, identity = _cache_key(path, options)
    npy, vocab, meta = (folder / f"{stem}{ext}" for ext in (".npy", ".vocab.txt", ".json"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _drop_stale(folder, stem, identity)
        with atomic_file(vocab, "w") as fh:
            fh.write("".join(w + "\n" for w in emb.words))
        with atomic_file(npy, "wb") as fh:
            np.save(fh, emb.vectors, allow_pickle=False)
        with atomic_file(meta, "w") as fh:  # written last: an entry without it is incomplete
            info = {"source": str(path.resolve()), "identity": identity, "options": options}
            info |= {"skipped": emb.skipped, "duplicates": emb.duplicates, "short": emb.short}
            json.dump(info, fh)
    except OSError as err:  # a read-only folder (or a full disk): the cache is only an optimisation
        warnings.warn(
            f"{folder}: cannot write the vectors cache ({err.strerror or err}); {path.name} is read "
            f"from text each time (--no-cache turns the cache off; XLING_CACHE moves the cache)",
            XlingNote,
            stacklevel=3,
        )


def _drop_stale(folder: Path, stem: str, identity: dict) -> None:
    """Remove entries of the same source file made before it changed (they can never be read again)."""
    prefix = stem.rsplit(".", 1)[0] + "."
    for meta in folder.glob(f"{glob.escape(prefix)}*.json"):
        try:
            stale = json.loads(meta.read_text(encoding="utf-8")).get("identity") != identity
        except (OSError, ValueError):
            stale = True
        if stale:
            base = meta.name.removesuffix(".json")
            for ext in (".npy", ".vocab.txt", ".json"):
                (folder / f"{base}{ext}").unlink(missing_ok=True)
