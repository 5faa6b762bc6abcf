"""``xling data prepare cle``: the study's data as released (archives, encodings, CLEF's SGML) laid out so that the
loaders read it without renaming; reruns keep what is current, resume what is not, and never replace a foreign file."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import numpy as np
import pytest
from cli_runner import run_xling as xling
from release_fixtures import CLEF_DOCS, XNLI_ROWS, ted_files, write_downloads, write_tar

from xling.cle import prepare as prepare_module
from xling.cle.downstream.data import load_cldc, load_clir, load_xnli
from xling.cle.downstream.release import CLEF_2003, parse_documents
from xling.cle.fetch import fetch_fasttext
from xling.cle.prepare import prepare_cle
from xling.cle.vectors import read_vectors
from xling.errors import XlingError

LANGS = ["en", "de", "ru"]


@pytest.fixture
def downloads(tmp_path):
    root = tmp_path / "downloads"
    vectors = write_downloads(root)
    return root, vectors


def _prepare(monkeypatch, capsys, source, out, *extra):
    code, stdout, err = xling(
        monkeypatch, capsys, "data", "prepare", "cle", "--from", source, "-o", out, "--json", *extra
    )
    return code, (json.loads(stdout) if code == 0 else None), err


def test_prepare_lays_out_every_dataset_as_the_loaders_read_it(monkeypatch, capsys, downloads, tmp_path):
    source, vectors = downloads
    out = tmp_path / "xling-data"
    code, result, err = _prepare(monkeypatch, capsys, source, out, "--langs", "en,de,ru", "--max-vocab", "4")
    assert code == 0, err
    by_name = {d["dataset"]: d for d in result["datasets"]}
    assert sorted(by_name) == ["bli", "cldc", "clir", "vectors", "xnli"]
    assert "not found" in by_name["bli"]["notes"][0]  # no dictionaries in these downloads: reported, not fatal

    # vectors: plain, in vectors/, zipped; the first 4 rows, the header rewritten, a record `xling data fetch` reuses
    for lang, (words, matrix) in vectors.items():
        emb = read_vectors(out / "vectors" / f"wiki.{lang}.vec")
        assert emb.words == words[:4]
        np.testing.assert_allclose(emb.vectors, matrix[:4], atol=1e-6)
    assert fetch_fasttext("en", out / "vectors", max_vocab=4, base_url="http://127.0.0.1:9") == (
        out / "vectors" / "wiki.en.vec"
    )  # no download: the prepared copy is the fetched one

    # TED CLDC: the pairs of the wanted languages, unchanged, readable as `--data`
    ted = out / "downstream" / "ted-cldc"
    assert sorted(p.name for p in ted.iterdir() if not p.name.startswith(".")) == ["de-en", "en-de"]
    data = load_cldc(ted, "de", "en")
    assert [t.name for t in data.tasks] == ["art", "science"]
    assert (
        data.tasks[0].train.texts[0] == "die katze schläft"
        and data.tasks[0].test.labels == ["positive"] + ["negative"] * 2
    )
    assert any("ru-en: not in" in n for n in by_name["cldc"]["notes"])

    # XNLI: what the loader reads from the prepared folder equals what it reads from the release itself
    release = tmp_path / "release"
    for archive in ("XNLI-1.0.zip", "XNLI-MT-1.0.zip"):
        with zipfile.ZipFile(source / archive) as zf:
            zf.extractall(release)
    shutil.copytree(source / "multinli_1.0", release / "multinli_1.0")
    for src, tgt in (("en", "de"), ("de", "en")):
        mine, theirs = load_xnli(out / "downstream" / "xnli", src, tgt), load_xnli(release, src, tgt)
        for split in ("train", "test", "dev"):
            a, b = getattr(mine, split), getattr(theirs, split)
            assert (a.labels, a.premises, a.hypotheses) == (b.labels, b.premises, b.hypotheses)
    assert load_xnli(out / "downstream" / "xnli", "en", "de").train.labels == ["neutral", "entailment"]  # '-' skipped
    assert "contradiction" in load_xnli(out / "downstream" / "xnli", "de", "en").train.labels  # XNLI-MT's label
    assert not (out / "downstream" / "xnli" / "fr").exists() and len(XNLI_ROWS["de"]) == 2

    # CLEF 2003: documents, topics and per-language qrels under the names the loader reads; encodings decoded
    clef = out / "downstream" / "clef2003"
    en_de = load_clir(clef, "en", "de")
    assert en_de.queries == {"141": "Letter Bomb for Kiesbauer Find information on the explosion of a letter bomb."}
    assert en_de.docnos == ["SPIEGEL9495-000001", "FR940101-000001", "SDA.940101.0001", "SDA.950101.0001"]
    assert en_de.docs[2] == "Die Österreicher wählten. Wien (sda) Wahlen in Österreich Wahlen"  # the reference's order
    assert en_de.qrels == {"141": {"SPIEGEL9495-000001": 1, "SDA.940101.0001": 0}}
    de_en = load_clir(clef, "de", "en")
    assert de_en.queries["141"].startswith("Briefbombe für Kiesbauer")  # Latin-1 topics
    assert de_en.docnos == ["GH950102-000001", "LA010194-0001"]  # LA Times: DOCNO, as its qrels use; empty doc left out
    assert de_en.docs[1] == "Rain & floods Heavy rain fell. Cafés closed."
    assert de_en.qrels["142"] == {"LA010194-0001": 1}
    ru = load_clir(clef, "ru", "ru")
    assert ru.queries["141"].startswith("Письмо-бомба для Кисбауэр") and ru.docs == [
        "В студии взорвалось письмо-бомба. Письмо-бомба Австрия"
    ]
    notes = " ".join(by_name["clir"]["notes"])
    assert "docs.en.jsonl: 2 documents; left out: 1 without text" in notes
    assert "qrels.de.txt: 1 of 1 relevant documents are in docs.de.jsonl" in notes
    assert not any(p.name.startswith(".xling-prepare") for p in out.iterdir())  # the scratch folder is gone


def test_rerun_keeps_current_outputs_and_redoes_changed_ones(downloads, tmp_path):
    source, _ = downloads
    out = tmp_path / "out"
    first = prepare_cle(source, out, languages=LANGS, max_vocab=4)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = prepare_cle(source, out, languages=LANGS, max_vocab=4)
    assert all(not r.written for r in again) and sum(len(r.kept) for r in again) == sum(len(r.written) for r in first)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    topics = source / "clef" / "Topics" / "2003" / "Top-de03.txt"
    topics.write_bytes(topics.read_bytes().replace(b"Briefbombe", b"Paketbombe"))
    third = {r.dataset: r for r in prepare_cle(source, out, languages=LANGS, max_vocab=4)}
    assert third["clir"].written == ["clef2003/topics.de.txt"] and not third["xnli"].written
    assert load_clir(out / "downstream" / "clef2003", "de", "en").queries["141"].startswith("Paketbombe")


def test_an_interrupted_run_resumes_after_the_outputs_it_finished(downloads, tmp_path, monkeypatch):
    source, _ = downloads
    out = tmp_path / "out"
    bad = source / "clef" / "DocumentData" / "russian" / "xml" / "izv95_02.xml"
    bad.write_bytes("<DOC><DOCID>x</DOCID><TEXT>письмо</TEXT></DOC>".encode("koi8-r"))  # a file in the wrong codec
    with pytest.raises(XlingError, match=r"izv95_02.xml: not utf-8 \(byte 0x.. at offset \d+\); pass --encoding ru="):
        prepare_cle(source, out, languages=LANGS, max_vocab=4)
    assert not (out / "downstream" / "clef2003" / "docs.ru.jsonl").exists()  # atomic: no half-written output
    done = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".prepared" not in p.name}
    assert "downstream/clef2003/docs.de.jsonl" in done and "downstream/xnli/de/test.tsv" in done
    bad.unlink()
    resumed = {r.dataset: r for r in prepare_cle(source, out, languages=LANGS, max_vocab=4)}
    assert resumed["clir"].written == ["clef2003/docs.ru.jsonl", "clef2003/qrels.ru.txt"]
    assert not resumed["xnli"].written and not resumed["cldc"].written and not resumed["vectors"].written


def test_clef_encodings_are_the_reference_s_and_can_be_overridden(downloads, tmp_path):
    source, _ = downloads
    folder = source / "clef" / "DocumentData" / "russian" / "xml"
    text = CLEF_DOCS[("russian", "xml", "izv95_01.xml")][1]
    (folder / "izv95_01.xml").write_bytes(text.replace('encoding="UTF-8"', 'encoding="KOI8-R"').encode("koi8-r"))
    with pytest.raises(XlingError, match="izv95_01.xml: not utf-8"):
        prepare_cle(source, tmp_path / "a", languages=["ru"], only=["clir"])
    topics = source / "clef" / "Topics" / "2003" / "Top-ru03.txt"
    topics.write_bytes(topics.read_bytes().decode("utf-8-sig").encode("koi8-r"))
    prepare_cle(source, tmp_path / "b", languages=["ru"], only=["clir"], encodings={"ru": "koi8-r"})
    ru = load_clir(tmp_path / "b" / "downstream" / "clef2003", "ru", "ru")
    assert ru.docs == ["В студии взорвалось письмо-бомба. Письмо-бомба Австрия"]
    assert ru.queries["141"].startswith("Письмо-бомба")
    # a German file saved as UTF-8 would decode as Latin-1 without an error, into mojibake: refused instead
    sda = source / "clef" / "DocumentData" / "german" / "sda95" / "sda.950101.sgml"
    sda.write_bytes(sda.read_bytes().decode("latin-1").encode("utf-8"))
    with pytest.raises(XlingError, match="sda.950101.sgml: reads as UTF-8, not latin-1 as CLEF ships german"):
        prepare_cle(source, tmp_path / "c", languages=["de"], only=["clir"])
    with pytest.raises(XlingError, match="unknown codec"):
        prepare_cle(source, tmp_path / "d", languages=["de"], only=["clir"], encodings={"de": "latin-9000"})


def test_clef_collections_must_be_the_reference_s(downloads, tmp_path):
    source, _ = downloads
    german = source / "clef" / "DocumentData" / "german"
    (german / "sda_extra").mkdir()
    with pytest.raises(XlingError, match="sda_extra: not a CLEF 2003 collection of the reference code"):
        prepare_cle(source, tmp_path / "a", languages=["de"], only=["clir"])
    (german / "sda_extra").rmdir()
    shutil.rmtree(german / "sda95")
    with pytest.raises(XlingError, match="german: missing the collection folder sda95"):
        prepare_cle(source, tmp_path / "b", languages=["de"], only=["clir"])


def test_qrels_that_match_no_document_are_refused(downloads, tmp_path):
    source, _ = downloads
    (source / "clef" / "RelAssess" / "2003" / "qrels_russian").write_text("141 0 IZV-UNKNOWN 1\n")
    with pytest.raises(XlingError, match="qrels_russian: none of its 1 relevant documents is among the 1"):
        prepare_cle(source, tmp_path / "out", languages=["ru"], only=["clir"])


def test_sgml_fields_follow_the_reference_extractors():
    sda = CLEF_2003["de"][2]
    block = "<DOC><DOCID> A.1 </DOCID><TI>t1</TI><TI>t2</TI><TX>x1</TX><TX>x <B>2</B></TX><KW>k</KW></DOC>"
    assert list(parse_documents(block + "<DOC><TX>no id</TX></DOC>", sda)) == [("A.1", "x1 x 2 t1 k"), (None, "no id")]


def test_a_foreign_file_in_the_output_is_never_replaced(monkeypatch, capsys, downloads, tmp_path):
    source, _ = downloads
    out = tmp_path / "out"
    mine = out / "downstream" / "xnli" / "de" / "test.tsv"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own file\n")
    code, _, err = _prepare(monkeypatch, capsys, source, out, "--langs", "de", "--only", "xnli")
    assert code == 2 and err.count("\n") == 1 and "holds files xling did not write" in err  # the -o rule
    code, _, err = _prepare(monkeypatch, capsys, source, out, "--langs", "de", "--only", "xnli", "--force")
    assert code == 2 and err.count("\n") == 1 and "test.tsv: exists and was not written by xling" in err
    assert mine.read_text() == "my own file\n"  # even --force does not replace a dataset file xling did not write
    (out / "vectors").mkdir()
    (out / "vectors" / "wiki.en.vec").write_text("1 1\na 1\n")
    code, _, err = _prepare(monkeypatch, capsys, source, out, "--langs", "en", "--only", "vectors", "--force")
    assert code == 2 and "wiki.en.vec: exists and was not written by xling" in err


def test_missing_datasets_are_reported_or_errors_when_named(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, result, err = _prepare(monkeypatch, capsys, empty, tmp_path / "out")
    assert code == 0 and all("not found" in d["notes"][0] for d in result["datasets"])
    code, _, err = _prepare(monkeypatch, capsys, empty, tmp_path / "out", "--only", "clir")
    assert code == 2 and err.startswith("error: clir: not found in") and err.count("\n") == 1
    for args, message in (
        (["--only", "bli,glove"], "unknown dataset(s) glove"),
        (["--langs", "EN"], "'EN' is not a language code"),
        (["--encoding", "ru"], "expected LANG=CODEC"),
    ):
        code, _, err = _prepare(monkeypatch, capsys, empty, tmp_path / "out", *args)
        assert code == 2 and message in err, err
    code, _, err = xling(monkeypatch, capsys, "data", "prepare", "cle", "-o", tmp_path / "out")
    assert code == 2 and "--from FOLDER is required" in err
    code, _, err = xling(monkeypatch, capsys, "data", "prepare", "data.yaml", "--from", empty)
    assert code == 2 and "--from: only with 'xling data prepare cle'" in err


def test_ted_cldc_from_a_zip_or_a_folder_equals_the_tar(downloads, tmp_path):
    source, _ = downloads
    prepare_cle(source, tmp_path / "tar", languages=["de"], only=["cldc"])
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "ted-cldc.zip", "w") as zf:
        for name, text in ted_files().items():
            zf.writestr(name, text)
    prepare_cle(zipped, tmp_path / "zip", languages=["de"], only=["cldc"])
    folder = tmp_path / "folder"
    with zipfile.ZipFile(zipped / "ted-cldc.zip") as zf:
        zf.extractall(folder)
    prepare_cle(folder, tmp_path / "dir", languages=["de"], only=["cldc"])
    files = [
        sorted(p.relative_to(root).as_posix() for p in (root / "downstream" / "ted-cldc").rglob("*.ted"))
        for root in (tmp_path / "tar", tmp_path / "zip", tmp_path / "dir")
    ]
    assert files[0] == files[1] == files[2] and len(files[0]) == 2 * 2 * 3  # 2 pairs, 2 topics, 3 documents


def test_a_cut_vectors_file_or_a_bad_ted_file_writes_nothing(downloads, tmp_path):
    source, _ = downloads
    text = (source / "wiki.en.vec").read_text(encoding="utf-8").splitlines(keepends=True)
    (source / "wiki.en.vec").write_text("".join(text[:3]), encoding="utf-8")  # header promises 6 rows, 2 arrived
    with pytest.raises(XlingError, match="wiki.en.vec: the file ended after 2 of 6 rows"):
        prepare_cle(source, tmp_path / "out", languages=["en"], only=["vectors"], max_vocab=None)
    assert not (tmp_path / "out" / "vectors" / "wiki.en.vec").exists()
    write_tar(source / "ted-cldc.tgz", {"ted-cldc/de-en/train/art/positive/1.ted": b"caf\xe9_de\n"})
    with pytest.raises(XlingError, match=r"ted-cldc.tgz/de-en/train/art/positive/1.ted: not UTF-8"):
        prepare_cle(source, tmp_path / "out", languages=["de"], only=["cldc"])
    assert not (tmp_path / "out" / "downstream" / "ted-cldc" / "de-en").exists()


def _manifest(folder, files):
    """A pinned-commit manifest for generated dictionaries (the real one pins xling-eval's files)."""
    out = {"commit": "0123456789abcdef", "folder": "bli_datasets", "files": {}}
    for name, text in files.items():
        out["files"][name] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode())}
    return out


def test_dictionaries_from_a_clone_a_zip_or_a_fetch_are_checked(monkeypatch, tmp_path):
    files = {
        "de-fi/yacle.test.freq.2k.de-fi.tsv": "hund\tkoira\n",
        "en-de/yacle.test.freq.2k.en-de.tsv": "dog\thund\n",
        "en-de/yacle.train.freq.500.en-de.tsv": "cat\tkatze\n",
    }
    monkeypatch.setattr(prepare_module, "bli_manifest", lambda: _manifest(tmp_path, files))
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "xling-eval-master.zip", "w") as zf:
        for name, text in files.items():
            zf.writestr(f"xling-eval-master/bli_datasets/{name}", text)
    (result,) = prepare_cle(zipped, tmp_path / "out", languages=["en", "de"], only=["bli"])
    assert result.written == [
        "xling-eval-bli/en-de/yacle.test.freq.2k.en-de.tsv",
        "xling-eval-bli/en-de/yacle.train.freq.500.en-de.tsv",
    ]
    assert (
        tmp_path / "out" / "xling-eval-bli" / "en-de" / "yacle.train.freq.500.en-de.tsv"
    ).read_text() == "cat\tkatze\n"
    # the output of a fetch (or of this command) as the source: every file is already in place and intact
    (again,) = prepare_cle(tmp_path / "out", tmp_path / "out", languages=["en", "de"], only=["bli"])
    assert not again.written and len(again.kept) == 2
    clone = tmp_path / "clone" / "xling-eval" / "bli_datasets" / "en-de"
    clone.mkdir(parents=True)
    (clone / "yacle.test.freq.2k.en-de.tsv").write_text("dog\thunde\n")  # edited
    with pytest.raises(XlingError, match=r"yacle.test.freq.2k.en-de.tsv: differs from xling-eval commit 0123456789"):
        prepare_cle(tmp_path / "clone", tmp_path / "out2", languages=["en", "de"], only=["bli"])


def test_the_real_dictionaries_match_the_pinned_commit(bli_data, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(bli_data / "en-de", source / "xling-eval-bli" / "en-de")
    (result,) = prepare_cle(source, tmp_path / "out", languages=["en", "de"], only=["bli"])
    assert len(result.written) == 5 and not result.notes
