"""Small copies of the CLE study's public data in the layouts, archive formats and encodings they are released in:
fastText ``wiki.<lang>.vec`` (plain and zipped), the TED CLDC tar archive, XNLI-1.0 / XNLI-MT-1.0 zips and an
extracted multinli_1.0 folder, and the CLEF 2003 test suite as unzipped (SGML documents per collection, Latin-1
except Russian, which is UTF-8 with UTF-8 topics that start with a byte-order mark)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np

XNLI_HEADER = (
    "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
    "sentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tsentence1_tokenized\t"
    "sentence2_tokenized\tmatch"
)
XNLI_ROWS = {
    "en": [("entailment", "The cat sleeps.", "A cat is sleeping."), ("contradiction", "It rains.", "It is dry.")],
    "de": [("neutral", "Die Katze schläft.", "Die Katze träumt."), ("contradiction", "Es regnet.", "Es ist trocken.")],
    "fr": [("entailment", "Le chat dort.", "Un chat dort."), ("neutral", "Il pleut.", "Il pleut à Paris.")],
    "ru": [("entailment", "Кошка спит.", "Кошка отдыхает.")],
}
MNLI_TRAIN = [
    ("neutral", "Conceptually cream skimming has two basic dimensions.", "Product and geography are what work."),
    ("-", "A row without a gold label.", "It is skipped."),
    ("entailment", "you know during the season", "You lose the things."),
]
XNLI_MT_DE = [
    ("Die Katze schläft.", "Eine Katze schläft.", "entailment"),
    ("Es regnet.", "Es ist trocken.", "contradictory"),
]


def vec_text(words: list[str], vectors: np.ndarray, count: int | None = None) -> str:
    rows = "".join(f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in zip(words, vectors))
    return f"{len(words) if count is None else count} {vectors.shape[1]}\n" + rows


def write_vectors(root: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """``wiki.en.vec`` and ``vectors/wiki.de.vec`` plain, ``wiki.ru.zip`` zipped as fastText ships it (with a .bin)."""
    rng = np.random.default_rng(0)
    out = {}
    for lang, words in (
        ("en", ["the", "cat", "letter", "bomb", "studio", "rain"]),
        ("de", ["die", "katze", "brief", "bombe", "österreich", "regen"]),
        ("ru", ["письмо", "бомба", "студия", "дождь"]),
    ):
        vectors = np.round(rng.standard_normal((len(words), 4)), 4)
        out[lang] = (words, vectors)
        text = vec_text(words, vectors)
        if lang == "en":
            (root / "wiki.en.vec").write_text(text, encoding="utf-8")
        elif lang == "de":
            (root / "vectors").mkdir(exist_ok=True)
            (root / "vectors" / "wiki.de.vec").write_text(text, encoding="utf-8")
        else:
            with zipfile.ZipFile(root / "wiki.ru.zip", "w") as zf:
                zf.writestr("wiki.ru.bin", b"\x00binary model")
                zf.writestr("wiki.ru.vec", text.encode("utf-8"))
    return out


def ted_files() -> dict[str, str | bytes]:
    """Members of the TED CLDC archive: ``ted-cldc/<pair>/<split>/<topic>/{positive,negative}/<n>.ted``."""
    docs = {
        "de-en": ("train", "de", ["die_de katze_de schläft_de", "der_de regen_de fällt_de"]),
        "en-de": ("test", "en", ["the_en cat_en sleeps_en", "the_en rain_en falls_en"]),
        "fr-en": ("train", "fr", ["le_fr chat_fr dort_fr", "la_fr pluie_fr tombe_fr"]),
        "en-fr": ("test", "en", ["the_en cat_en sleeps_en", "the_en rain_en falls_en"]),
    }
    files = {}
    for pair, (split, _, (pos, neg)) in docs.items():
        for topic in ("art", "science"):
            base = f"ted-cldc/{pair}/{split}/{topic}"
            files[f"{base}/positive/1.ted"] = f"<talkid>1</talkid>\n{pos}\n"
            files[f"{base}/negative/2.ted"] = f"{neg}\n"
            files[f"{base}/negative/10.ted"] = f"{neg} {neg}\n"
            files[f"{base}/negative/._10.ted"] = b"\x00\x05\x16\x07 macOS metadata"  # as tar on a Mac adds
    return files


def write_tar(path: Path, files: dict[str, str | bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8") if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def xnli_tsv(split: str) -> str:
    lines = [XNLI_HEADER]
    for lang, rows in XNLI_ROWS.items():
        for n, (label, premise, hypothesis) in enumerate(rows):
            fields = [lang, label, "( a )", "( b )", "(ROOT a)", "(ROOT b)", premise, hypothesis, str(n), f"{split}{n}"]
            fields += ["fiction", label, label, label, label, label, premise, hypothesis, "True"]
            lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def write_xnli(root: Path) -> None:
    """XNLI-1.0.zip and XNLI-MT-1.0.zip as downloaded (with macOS resource forks), multinli_1.0 extracted."""
    with zipfile.ZipFile(root / "XNLI-1.0.zip", "w") as zf:
        for split in ("dev", "test"):
            zf.writestr(f"XNLI-1.0/xnli.{split}.tsv", xnli_tsv(split))
        zf.writestr("__MACOSX/XNLI-1.0/._xnli.test.tsv", b"\x00\x05")
    with zipfile.ZipFile(root / "XNLI-MT-1.0.zip", "w") as zf:
        rows = "".join(f"{p}\t{h}\t{label}\n" for p, h, label in XNLI_MT_DE)
        zf.writestr("XNLI-MT-1.0/multinli/multinli.train.de.tsv", "premise\thypo\tlabel\n" + rows)
    folder = root / "multinli_1.0"
    folder.mkdir()
    with open(folder / "multinli_1.0_train.jsonl", "w", encoding="utf-8") as fh:
        for n, (label, s1, s2) in enumerate(MNLI_TRAIN):
            row = {"annotator_labels": [label], "genre": "government", "gold_label": label, "pairID": f"{n}n"}
            fh.write(json.dumps({**row, "promptID": str(n), "sentence1": s1, "sentence2": s2}) + "\n")


# --- CLEF 2003 -------------------------------------------------------------------------------------------------------

CLEF_DOCS = {
    ("english", "GH95", "GH950102.sgml"): (
        "latin-1",
        "<DOC>\n<DOCNO>GH950102-000001</DOCNO>\n<DOCID>GH950102-000001</DOCID>\n<DATE>950102</DATE>\n"
        "<HEADLINE>Studio bomb</HEADLINE>\n<TEXT>A letter bomb hurt a presenter in a TV studio.</TEXT>\n</DOC>\n",
    ),
    ("english", "latimes", "la010194"): (
        "latin-1",
        "<DOC>\n<DOCNO> LA010194-0001 </DOCNO>\n<DOCID> 1 </DOCID>\n<DATE><P>January 1, 1994</P></DATE>\n"
        "<HEADLINE><P>Rain &amp; floods</P></HEADLINE>\n<TEXT><P>Heavy rain fell.</P><P>Caf\u00e9s closed.</P></TEXT>"
        "\n</DOC>\n<DOC>\n<DOCNO> LA010194-0002 </DOCNO>\n<DOCID> 2 </DOCID>\n<HEADLINE><P></P></HEADLINE>\n"
        "<TEXT></TEXT>\n</DOC>\n",
    ),
    ("german", "der_spiegel", "spiegel9495.sgml"): (
        "latin-1",
        "<DOC>\n<DOCID>SPIEGEL9495-000001</DOCID>\n<TITLE>Briefbombe</TITLE>\n<LEAD>Wien</LEAD>\n"
        "<TEXT>Eine Briefbombe explodierte im Studio von Arabella Kiesbauer.</TEXT>\n</DOC>\n",
    ),
    ("german", "fr_rundschau", "fr940101.sgml"): (
        "latin-1",
        "<DOC>\n<DOCID>FR940101-000001</DOCID>\n<TITLE>Regen</TITLE>\n<TEXT>Starker Regen in Frankfurt.</TEXT>\n"
        "</DOC>\n",
    ),
    ("german", "sda94", "sda.940101.sgml"): (
        "latin-1",
        "<DOC>\n<DOCNO>SDA.940101.0001</DOCNO>\n<DOCID>SDA.940101.0001</DOCID>\n<KW>Wahlen</KW>\n"
        "<TI>Wahlen in \u00d6sterreich</TI>\n<LD>Wien (sda)</LD>\n<TX>Die \u00d6sterreicher w\u00e4hlten.</TX>\n"
        "</DOC>\n",
    ),
    ("german", "sda95", "sda.950101.sgml"): (
        "latin-1",
        "<DOC>\n<DOCNO>SDA.950101.0001</DOCNO>\n<DOCID>SDA.950101.0001</DOCID>\n<TI>Schnee</TI>\n"
        "<TX>Schnee in Z\u00fcrich.</TX>\n</DOC>\n",
    ),
    ("russian", "xml", "izv95_01.xml"): (
        "utf-8",
        '<?xml version="1.0" encoding="UTF-8"?>\n<IZV>\n<DOC>\n<DOCID>izv95-0001</DOCID>\n'
        "<TITLE>Письмо-бомба</TITLE>\n<SUBJECT>Австрия</SUBJECT>\n<TEXT>В студии взорвалось письмо-бомба.</TEXT>\n"
        "</DOC>\n</IZV>\n",
    ),
}

CLEF_TOPICS = {
    "en": ("latin-1", "EN", "Letter Bomb for Kiesbauer", "Find information on the explosion of a letter bomb."),
    "de": ("latin-1", "DE", "Briefbombe f\u00fcr Kiesbauer", "Finde Informationen \u00fcber die Explosion."),
    "ru": ("utf-8-sig", "RU", "Письмо-бомба для Кисбауэр", "Найти информацию о взрыве письма-бомбы."),
}

CLEF_QRELS = {
    "qrels_english": "141 0 GH950102-000001 1\n141 0 LA010194-0001 0\n142 0 LA010194-0001 1\n",
    "qrels_DE": "141 0 SPIEGEL9495-000001 1\n141 0 SDA.940101.0001 0\n",
    "qrels_russian": "141 0 izv95-0001 1\n",
}


def write_clef(root: Path) -> Path:
    """The unzipped CLEF test suite under ``root/clef``; returns that folder."""
    clef = root / "clef"
    for (language, collection, name), (codec, text) in CLEF_DOCS.items():
        folder = clef / "DocumentData" / language / collection
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(text.encode(codec))
    (clef / "DocumentData" / "german" / "sda94" / "sda.dtd").write_text("<!ELEMENT DOC - - (DOCNO)>\n")
    topics = clef / "Topics" / "2003"
    topics.mkdir(parents=True)
    for lang, (codec, tag, title, desc) in CLEF_TOPICS.items():
        text = (
            f"<top>\n<num> C141 </num>\n<{tag}-title> {title} </{tag}-title>\n\n<{tag}-desc> {desc} </{tag}-desc>\n\n"
            f"<{tag}-narr> Relevant documents report it. </{tag}-narr>\n</top>\n"
        )
        (topics / f"Top-{lang}03.txt").write_bytes(text.encode(codec))
    qrels = clef / "RelAssess" / "2003"
    qrels.mkdir(parents=True)
    for name, text in CLEF_QRELS.items():
        (qrels / name).write_text(text, encoding="ascii")
    return clef


def write_downloads(root: Path) -> dict:
    """Everything a user downloads (the dictionaries aside), in ``root``; returns the vectors written."""
    root.mkdir(parents=True, exist_ok=True)
    vectors = write_vectors(root)
    write_tar(root / "ted-cldc.tgz", ted_files())
    write_xnli(root)
    write_clef(root)
    return vectors
