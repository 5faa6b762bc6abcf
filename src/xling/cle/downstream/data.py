"""Loaders for the downstream data sets, in xling's simple layouts and in the formats the real corpora ship in.

Every loader checks its input at the edge and raises ``XlingError`` naming the file and line: a missing split, a row
without the expected fields, an empty document or sentence, an unknown label.

- **CLDC**: ``DIR/<lang>/{train,test}.tsv`` with ``label<TAB>text`` lines (one task), or the TED CLDC corpus
  (Hermann & Blunsom 2014) as released: ``ROOT/<lang>-<other>/{train,test}/<topic>/{positive,negative}/*.ted``, one
  binary task per topic; documents of language ``<lang>`` live under ``<lang>-<other>`` (the corpus page: train on
  ``ar-en/train/arts``, test on ``en-ar/test/arts``; ``<lang>-en`` serves pairs without English); tokens carry a
  ``_<lang>`` suffix, which is stripped; lines starting with ``<`` (metadata) are skipped, as Hermann's
  ``load_doc`` does.
- **XNLI**: ``DIR/<lang>/{train,test}.tsv`` with a ``label, premise, hypothesis`` header; or the releases: MultiNLI
  (``multinli_1.0_train.jsonl`` or ``.txt``: ``gold_label, sentence1, sentence2``; ``-`` = no gold label, skipped),
  XNLI-MT (``multinli.train.<lang>.tsv``: ``premise, hypo, label`` with ``contradictory``) and XNLI
  (``xnli.{dev,test}.tsv``: ``language, gold_label, sentence1, sentence2``, rows of other languages skipped).
- **CLIR**: ``DIR/queries.<lang>.tsv`` (``qid<TAB>text``) or TREC/CLEF topics ``DIR/topics.<lang>.txt`` (``<top>``
  blocks; query = title + description, as the reference CLIR code builds it), ``DIR/docs.<lang>.jsonl``
  (``{"docno", "text"}``) and ``DIR/qrels.<lang>.txt`` of the document language, else ``DIR/qrels.txt`` (TREC qrels:
  ``qid iteration docno relevance``). ``xling data prepare cle`` writes this layout from CLEF 2003 as released.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xling.errors import XlingError

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
_NLI_ALIASES = {"contradictory": "contradiction"}  # XNLI-MT's training files


# --- CLDC ------------------------------------------------------------------------------------------------------------


@dataclass
class LabelledTexts:
    """Documents with labels, and where each came from (``file:line`` or a file name) for error messages."""

    labels: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, label: str, text: str, origin: str) -> None:
        self.labels.append(label)
        self.texts.append(text)
        self.origins.append(origin)


@dataclass
class CLDCTask:
    """One classification task: train in the source language, test in the target language."""

    name: str
    train: LabelledTexts
    test: LabelledTexts


@dataclass
class CLDCData:
    """CLDC tasks of one language pair (one task for a TSV folder, one per topic for TED CLDC)."""

    tasks: list[CLDCTask]
    layout: str  # "tsv" | "ted"
    source: str


def read_labelled_tsv(path: Path) -> LabelledTexts:
    """``label<TAB>text`` lines (no header); blank lines skipped."""
    out = LabelledTexts()
    for line_no, line in _lines(path):
        label, tab, text = line.partition("\t")
        if not tab:
            raise XlingError(f"{path}:{line_no}: expected 'label<TAB>text', found no tab")
        label, text = label.strip(), text.strip()
        if not label:
            raise XlingError(f"{path}:{line_no}: empty label")
        if not text:
            raise XlingError(f"{path}:{line_no}: empty document")
        out.add(label, text, f"{path}:{line_no}")
    if not out:
        raise XlingError(f"{path}: no documents")
    return out


def read_ted_documents(folder: Path, lang: str | None = None) -> LabelledTexts:
    """One TED CLDC topic split: ``folder/positive/*.ted`` and ``folder/negative/*.ted``, labels from the folder.

    The released corpus suffixes every token with its language (``haus_de``); ``lang`` strips that suffix so words
    can be looked up in embeddings.
    """
    suffix = f"_{lang}" if lang else None
    out = LabelledTexts()
    for label in ("positive", "negative"):
        sub = folder / label
        if not sub.is_dir():
            raise XlingError(f"{sub}: missing folder (TED CLDC topics hold positive/ and negative/)")
        for path in sorted(sub.glob("*.ted"), key=_natural):
            try:
                raw = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise XlingError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            text = " ".join(
                line.strip() for line in raw.splitlines() if line.strip() and not line.lstrip().startswith("<")
            )
            if suffix:
                text = " ".join(t.removesuffix(suffix) for t in text.split())
            if not text:
                raise XlingError(f"{path}: empty document")
            out.add(label, text, str(path))
    if not out:
        raise XlingError(f"{folder}: no .ted documents")
    return out


def load_cldc(data_dir: str | Path, src_lang: str, tgt_lang: str, *, topics: list[str] | None = None) -> CLDCData:
    """CLDC data of a pair: the TSV layout if ``DIR/<src>/train.tsv`` exists, else the TED CLDC layout."""
    root = Path(data_dir)
    if not root.is_dir():
        raise XlingError(f"{root}: no such data folder")
    if (root / src_lang).is_dir():
        train = read_labelled_tsv(_split_file(root / src_lang / "train.tsv"))
        test = read_labelled_tsv(_split_file(root / tgt_lang / "test.tsv"))
        _check_labels(train, test)
        return CLDCData([CLDCTask("cldc", train, test)], "tsv", str(root))
    src_dir, tgt_dir = _ted_dir(root, src_lang, tgt_lang), _ted_dir(root, tgt_lang, src_lang)
    found = sorted(p.name for p in (src_dir / "train").iterdir() if p.is_dir()) if (src_dir / "train").is_dir() else []
    if not found:
        raise XlingError(f"{src_dir / 'train'}: missing split (expected one folder per topic)")
    wanted = topics or found
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise XlingError(f"{src_dir / 'train'}: unknown topic(s) {', '.join(unknown)}; found {', '.join(found)}")
    tasks = []
    for topic in wanted:
        test_dir = tgt_dir / "test" / topic
        if not test_dir.is_dir():
            raise XlingError(f"{test_dir}: missing split for topic {topic!r}")
        tasks.append(
            CLDCTask(
                topic, read_ted_documents(src_dir / "train" / topic, src_lang), read_ted_documents(test_dir, tgt_lang)
            )
        )
    return CLDCData(tasks, "ted", str(root))


def _ted_dir(root: Path, lang: str, other: str) -> Path:
    """The TED CLDC folder holding ``lang`` documents: ``lang-other`` if present, else ``lang-en``."""
    names = list(dict.fromkeys([f"{lang}-{other}"] + ([f"{lang}-en"] if lang != "en" else [])))
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise XlingError(f"{root}: neither {lang}/train.tsv (TSV layout) nor a TED CLDC folder {' or '.join(names)}")


def _check_labels(train: LabelledTexts, test: LabelledTexts) -> None:
    known = set(train.labels)
    if len(known) < 2:
        raise XlingError(f"{train.origins[0].rsplit(':', 1)[0]}: needs at least two labels, found {sorted(known)}")
    for label, origin in zip(test.labels, test.origins):
        if label not in known:
            raise XlingError(f"{origin}: unknown label {label!r} (training labels: {', '.join(sorted(known))})")


# --- XNLI ------------------------------------------------------------------------------------------------------------


@dataclass
class NLIPairs:
    """Premise/hypothesis pairs with gold labels (one of ``NLI_LABELS``)."""

    labels: list[str] = field(default_factory=list)
    premises: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    skipped: int = 0  # MultiNLI rows without a gold label ('-')

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, label: str, premise: str, hypothesis: str, origin: str) -> None:
        label = _NLI_ALIASES.get(label.strip().lower(), label.strip().lower())
        if label not in NLI_LABELS:
            raise XlingError(f"{origin}: unknown label {label!r}; expected one of {', '.join(NLI_LABELS)}")
        premise, hypothesis = premise.strip(), hypothesis.strip()
        if not premise or not hypothesis:
            raise XlingError(f"{origin}: empty {'premise' if not premise else 'hypothesis'}")
        self.labels.append(label)
        self.premises.append(premise)
        self.hypotheses.append(hypothesis)
        self.origins.append(origin)


@dataclass
class NLIData:
    """Source-language training pairs (optional source-language validation pairs) and target-language test pairs."""

    train: NLIPairs
    test: NLIPairs
    dev: NLIPairs | None
    files: dict[str, str]


def read_nli_tsv(path: Path, *, language: str | None = None) -> NLIPairs:
    """A TSV with a header: xling's ``label, premise, hypothesis``, XNLI-MT's ``premise, hypo, label``, XNLI's
    ``language, gold_label, sentence1, sentence2, ...`` (rows of other languages skipped) or MultiNLI's ``.txt``."""
    csv.field_size_limit(sys.maxsize)
    out = NLIPairs()
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise XlingError(f"{path}: empty file")
        cols = {name.strip(): i for i, name in enumerate(header)}
        names = _nli_columns(cols)
        if names is None:
            raise XlingError(
                f"{path}:1: header must name label/premise/hypothesis (xling), premise/hypo/label "
                f"(XNLI-MT) or gold_label/sentence1/sentence2 (MultiNLI, XNLI); found {header[:6]}"
            )
        label_col, premise_col, hypothesis_col = (cols[n] for n in names)
        lang_col = cols.get("language")
        width = max(label_col, premise_col, hypothesis_col) + 1
        for line_no, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < width:
                raise XlingError(f"{path}:{line_no}: expected at least {width} tab-separated fields, found {len(row)}")
            if language is not None and lang_col is not None and row[lang_col] != language:
                continue
            if row[label_col].strip() == "-":
                out.skipped += 1
                continue
            out.add(row[label_col], row[premise_col], row[hypothesis_col], f"{path}:{line_no}")
    return out


def read_nli_jsonl(path: Path, *, language: str | None = None) -> NLIPairs:
    """MultiNLI/XNLI JSON lines: ``gold_label, sentence1, sentence2`` (and ``language`` in XNLI's)."""
    out = NLIPairs()
    for line_no, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise XlingError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
        missing = [k for k in ("gold_label", "sentence1", "sentence2") if not isinstance(row.get(k), str)]
        if missing:
            raise XlingError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}")
        if language is not None and row.get("language", language) != language:
            continue
        if row["gold_label"] == "-":
            out.skipped += 1
            continue
        out.add(row["gold_label"], row["sentence1"], row["sentence2"], f"{path}:{line_no}")
    return out


def _nli_columns(cols: dict[str, int]) -> tuple[str, str, str] | None:
    for names in (
        ("label", "premise", "hypothesis"),
        ("label", "premise", "hypo"),
        ("gold_label", "sentence1", "sentence2"),
    ):
        if all(n in cols for n in names):
            return names
    return None


def read_nli(path: Path, language: str | None = None) -> NLIPairs:
    """A released NLI file (``.jsonl`` or a TSV) with at least one labelled pair (of ``language``, if given)."""
    pairs = (read_nli_jsonl if path.suffix == ".jsonl" else read_nli_tsv)(path, language=language)
    if not pairs:
        where = f" for language {language!r}" if language else ""
        raise XlingError(f"{path}: no labelled pairs{where}")
    return pairs


def nli_candidates(root: Path, lang: str, split: str) -> list[tuple[Path, str | None]]:
    """Files that may hold ``split`` of ``lang``, in the order tried, with the language filter each needs."""
    own = [(root / lang / f"{split}.tsv", None)]
    if split == "train":
        release = (
            [(root / d / f"multinli_1.0_train.{ext}", None) for d in ("", "multinli_1.0") for ext in ("jsonl", "txt")]
            if lang == "en"
            else []
        )
        mt = [(root / d / f"multinli.train.{lang}.tsv", None) for d in ("", "XNLI-MT-1.0/multinli", "multinli")]
        return own + release + mt
    name = "dev" if split == "dev" else "test"
    xnli = [(root / d / f"xnli.{name}.{ext}", lang) for d in ("", "XNLI-1.0") for ext in ("tsv", "jsonl")]
    matched = (
        [(root / d / f"multinli_1.0_dev_matched.{ext}", None) for d in ("", "multinli_1.0") for ext in ("jsonl", "txt")]
        if (lang == "en" and split == "dev")
        else []
    )
    return own + xnli + matched


def load_xnli(data_dir: str | Path, src_lang: str, tgt_lang: str) -> NLIData:
    """Training pairs in ``src_lang``, test pairs in ``tgt_lang`` (and source-language dev pairs if present)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise XlingError(f"{root}: no such data folder")
    files: dict[str, str] = {}
    parts: dict[str, NLIPairs | None] = {}
    for split, lang, required in (("train", src_lang, True), ("test", tgt_lang, True), ("dev", src_lang, False)):
        candidates = nli_candidates(root, lang, split)
        hit = next(((p, f) for p, f in candidates if p.is_file()), None)
        if hit is None:
            if required:
                tried = ", ".join(str(p.relative_to(root)) for p, _ in candidates)
                raise XlingError(
                    f"{root / lang / (split + '.tsv')}: missing split {split!r} for {lang!r} (looked for {tried})"
                )
            parts[split] = None
            continue
        parts[split] = read_nli(hit[0], hit[1])
        files[split] = str(hit[0])
    return NLIData(parts["train"], parts["test"], parts["dev"], files)


# --- CLIR ------------------------------------------------------------------------------------------------------------


@dataclass
class CLIRData:
    """Queries (source language), documents (target language) and relevance judgements."""

    queries: dict[str, str]
    docnos: list[str]
    docs: list[str]
    qrels: dict[str, dict[str, int]]
    files: dict[str, str]


def read_queries_tsv(path: Path) -> dict[str, str]:
    """``qid<TAB>text`` lines."""
    out: dict[str, str] = {}
    for line_no, line in _lines(path):
        qid, tab, text = line.partition("\t")
        qid, text = qid.strip(), text.strip()
        if not tab or not qid:
            raise XlingError(f"{path}:{line_no}: expected 'qid<TAB>text'")
        if not text:
            raise XlingError(f"{path}:{line_no}: empty query {qid!r}")
        if qid in out:
            raise XlingError(f"{path}:{line_no}: query {qid!r} given twice")
        out[qid] = text
    if not out:
        raise XlingError(f"{path}: no queries")
    return out


_TOP = re.compile(r"<top>(.*?)</top>", re.DOTALL | re.IGNORECASE)
_FIELD = re.compile(r"<(?:[a-z]{2,3}-)?(num|title|desc)>\s*(.*?)\s*(?=<)", re.DOTALL | re.IGNORECASE)


def read_trec_topics(path: Path) -> dict[str, str]:
    """TREC/CLEF topics: ``<top>`` blocks with ``<num>``, ``<title>``/``<XX-title>`` and ``<desc>``/``<XX-desc>``
    (closing tags optional). Query = title + description; ``C141`` → ``141`` (as the CLIR reference numbers them).
    Read as UTF-8, else Latin-1 (CLEF ships Latin-1 topics)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    out: dict[str, str] = {}
    for n, block in enumerate(_TOP.findall(text), start=1):
        fields: dict[str, str] = {}
        for name, value in _FIELD.findall(block + "<"):
            fields.setdefault(name.lower(), " ".join(value.split()))
        if "num" not in fields:
            raise XlingError(f"{path}: topic {n}: no <num>")
        qid = _topic_id(fields["num"])
        desc = re.sub(r"^description:\s*", "", fields.get("desc", ""), flags=re.IGNORECASE)
        query = " ".join(p for p in (fields.get("title", ""), desc) if p)
        if not query:
            raise XlingError(f"{path}: topic {qid}: empty title and description")
        out[qid] = query
    if not out:
        raise XlingError(f"{path}: no <top> topics")
    return out


def _topic_id(num: str) -> str:
    num = num.strip().removeprefix("Number:").strip()
    digits = re.sub(r"^[A-Za-z]+", "", num)
    return str(int(digits)) if digits.isdigit() else num


def read_docs_jsonl(path: Path) -> tuple[list[str], list[str]]:
    """``{"docno", "text"}`` lines → (docnos, texts); an empty text or a repeated docno is an error."""
    docnos, texts, seen = [], [], set()
    for line_no, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise XlingError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("docno"), str) or not isinstance(row.get("text"), str):
            raise XlingError(f'{path}:{line_no}: expected {{"docno": str, "text": str}}')
        docno, text = row["docno"].strip(), row["text"].strip()
        if not text:
            raise XlingError(f"{path}:{line_no}: empty document {docno!r}")
        if docno in seen:
            raise XlingError(f"{path}:{line_no}: document {docno!r} given twice")
        seen.add(docno)
        docnos.append(docno)
        texts.append(text)
    if not docnos:
        raise XlingError(f"{path}: no documents")
    return docnos, texts


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels: ``qid iteration docno relevance`` (whitespace-separated, relevance an integer)."""
    out: dict[str, dict[str, int]] = {}
    for line_no, line in _lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise XlingError(f"{path}:{line_no}: expected 'qid iteration docno relevance', found {len(parts)} fields")
        try:
            rel = int(parts[3])
        except ValueError:
            raise XlingError(f"{path}:{line_no}: relevance {parts[3]!r} is not an integer") from None
        out.setdefault(parts[0], {})[parts[2]] = rel
    if not out:
        raise XlingError(f"{path}: no judgements")
    return out


def load_clir(data_dir: str | Path, src_lang: str, tgt_lang: str) -> CLIRData:
    """Queries in ``src_lang``, documents in ``tgt_lang`` and the qrels of a CLIR folder."""
    root = Path(data_dir)
    if not root.is_dir():
        raise XlingError(f"{root}: no such data folder")
    tsv, topics = root / f"queries.{src_lang}.tsv", root / f"topics.{src_lang}.txt"
    if tsv.is_file():
        queries, qfile = read_queries_tsv(tsv), tsv
    elif topics.is_file():
        queries, qfile = read_trec_topics(topics), topics
    else:
        raise XlingError(f"{tsv}: missing queries (or TREC topics {topics.name})")
    docs_path = root / f"docs.{tgt_lang}.jsonl"
    if not docs_path.is_file():
        raise XlingError(f"{docs_path}: missing documents")
    qrels_path = root / f"qrels.{tgt_lang}.txt"  # CLEF judges each document collection separately
    if not qrels_path.is_file():
        if not (root / "qrels.txt").is_file():
            raise XlingError(f"{qrels_path}: missing relevance judgements (or qrels.txt for every language)")
        qrels_path = root / "qrels.txt"
    docnos, docs = read_docs_jsonl(docs_path)
    qrels = read_qrels(qrels_path)
    return CLIRData(
        queries, docnos, docs, qrels, {"queries": str(qfile), "docs": str(docs_path), "qrels": str(qrels_path)}
    )


# --- shared ----------------------------------------------------------------------------------------------------------


def _lines(path: Path):
    """(line number, line without newline) of the non-blank lines of a UTF-8 file; unreadable → ``XlingError``."""
    if not path.is_file():
        raise XlingError(f"{path}: no such file")
    with open(path, encoding="utf-8") as fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line_no, line
        except UnicodeDecodeError as exc:
            raise XlingError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _split_file(path: Path) -> Path:
    if not path.is_file():
        raise XlingError(f"{path}: missing split")
    return path


def _natural(path: Path):
    stem = path.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
