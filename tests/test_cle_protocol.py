"""Named BLI protocols: ``glavas2019`` gives xling-eval's numbers, checked against an independent reimplementation of
xling-eval's loader, evaluation and PROC-B (``code/util.py``, ``code/eval.py``, ``code/sims.py``,
``code/projection.py``) on a mixed-case pair with repeated dictionary lines, where xling's defaults differ."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_xling as xling
from threadpoolctl import threadpool_limits

from xling.cache import cache_dir
from xling.cle.dictionaries import read_dictionary
from xling.cle.protocol import PROTOCOLS, get_protocol, resolve
from xling.cle.vectors import read_vectors
from xling.errors import XlingError, XlingNote


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- the fixture: mixed case, case variants, repeated lines, OOV lines ----------------------------------------------


def _write_vec(path, words, vectors, header=True):
    with open(path, "w", encoding="utf-8") as fh:
        if header:
            fh.write(f"{len(words)} {vectors.shape[1]}\n")
        for w, v in zip(words, vectors):
            fh.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A source and a target space of 300 concepts (target = rotated source + noise) in which some words also occur
    capitalised: ``Wn`` before ``wn`` (the capitalised row carries the concept, so first-casing-wins matters) or
    after it (a rare row with an unrelated vector). Dictionaries are written in mixed case, with repeated lines and
    lines repeated only after lowercasing, plus OOV lines."""
    rng = np.random.default_rng(7)
    n, d = 300, 24
    concepts = rng.normal(size=(n, d))
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    src_rows, tgt_rows = [], []
    for i in range(n):
        x = concepts[i] + 0.9 * rng.normal(size=d)
        z = (concepts[i] + 0.9 * rng.normal(size=d)) @ Q
        if i % 7 == 0:  # capitalised first: the concept's vector sits on "Si"; "si" later is noise
            src_rows += [(f"S{i}", x), (f"s{i}", rng.normal(size=d))]
        elif i % 5 == 0:  # a rare capitalised variant with an unrelated vector
            src_rows += [(f"s{i}", x), (f"S{i}", rng.normal(size=d))]
        else:
            src_rows.append((f"s{i}", x))
        tgt_rows.append((f"t{i}", z))
    folder = tmp_path_factory.mktemp("protocol")
    _write_vec(folder / "src.vec", [w for w, _ in src_rows], np.array([v for _, v in src_rows]))
    _write_vec(folder / "tgt.vec", [w for w, _ in tgt_rows], np.array([v for _, v in tgt_rows]))

    def line(i):  # the dictionary's own casing varies: capitalised source and/or target
        s = f"S{i}" if i % 3 == 0 else f"s{i}"
        t = f"T{i}" if i % 4 == 0 else f"t{i}"
        return f"{s}\t{t}"

    train = [line(i) for i in range(0, 150)] + [line(i) for i in range(0, 30)] + ["nope\tt1"]
    test_ids = list(range(150, 300))
    test = [line(i) for i in test_ids] + [line(i) for i in test_ids[::4]]  # repeated lines
    test += [line(i).lower() for i in test_ids[1::6]] + ["zzz\tt200", "s200\tqqq"]  # repeats after lowering; OOV
    (folder / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return folder


# --- xling-eval, reimplemented from its code (independent of xling) ---------------------------------------------------


def ref_load_embs(path, topk=None):
    """util.load_embs: header or not, later words lowercased, first casing wins, wrong-length rows skipped but
    counted, stop when the row counter (header included) reaches topk."""
    vocab, embs = {}, []
    with open(path, encoding="utf8", errors="replace") as f:
        line = f.readline().strip().split()
        cntr = 1
        if len(line) == 2:
            dim = int(line[1])
        else:
            dim = len(line) - 1
            vocab[line[0].strip()] = 0
            embs.append(np.array(line[1:], dtype=np.float32))
        while line:
            line = f.readline().strip().split()
            if not line:
                break
            cntr += 1
            if len(line[1:]) == dim and line[0].strip().lower() not in vocab:
                vocab[line[0].strip().lower()] = len(vocab)
                embs.append(np.array(line[1:], dtype=np.float32))
            if topk and cntr >= topk:
                break
    return vocab, np.array(embs, dtype=np.float32)


def ref_dictionary(path):
    """map.py / eval.py: every line lowercased, split on TAB."""
    with open(path, encoding="utf8", errors="replace") as f:
        return [ln.strip().lower().split("\t") for ln in f.readlines()]


def ref_normalize(m):
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def ref_eval(pairs, vs, vt, src, tgt):
    """eval.py + sims.most_similar_index: rank of each in-vocabulary line's target by cosine; metrics over lines."""
    src_n, tgt_n = ref_normalize(src), ref_normalize(tgt)
    positions = []
    for s, t in pairs:
        s, t = s.strip(), t.strip()
        if (s not in vs and s.lower() not in vs) or (t not in vt and t.lower() not in vt):
            continue
        sims = src_n[vs[s] if s in vs else vs[s.lower()]] @ tgt_n.T
        inds = np.argsort(sims)[::-1]
        positions.append(int(np.where(inds == (vt[t] if t in vt else vt[t.lower()]))[0][0]) + 1)
    p = np.array(positions, dtype=float)
    return {"p1": np.mean(p == 1), "p5": np.mean(p <= 5), "p10": np.mean(p <= 10), "mrr": np.mean(1 / p), "n": len(p)}


def ref_proc(pairs, vs, vt, src, tgt):
    """projection.project_proc: SVD of X^T Z over the in-vocabulary lines (repeats included)."""
    rows = [(vs[s], vt[t]) for s, t in pairs if s in vs and t in vt]
    X, Z = src[[r[0] for r in rows]], tgt[[r[1] for r in rows]]
    U, _, V = np.linalg.svd(X.T.astype(np.float64) @ Z)
    return U @ V, len(rows)


def ref_proc_b_reproduce(pairs, vs, vt, src, tgt, limit=10000):
    """projection.project_proc_bootstrap_reproduce: PROC, mutual NNs of both PROC directions over the whole
    vocabularies ranked by index sum, the original lines plus the first (limit - lines) of them, PROC again."""
    inv_s, inv_t = {v: k for k, v in vs.items()}, {v: k for k, v in vt.items()}
    W, _ = ref_proc(pairs, vs, vt, src, tgt)
    W_back, _ = ref_proc([(t, s) for s, t in pairs], vt, vs, tgt, src)
    s2t = np.argmax(ref_normalize(src @ W) @ ref_normalize(tgt).T, axis=1)
    t2s = np.argmax(ref_normalize(tgt @ W_back) @ ref_normalize(src).T, axis=1)
    matches = [i for i in range(len(s2t)) if t2s[s2t[i]] == i]
    ranked = sorted([(m, s2t[m]) for m in matches], key=lambda p: p[0] + p[1])
    grown = list(pairs) + [(inv_s[i], inv_t[j]) for i, j in ranked][: limit - len(pairs)]
    return ref_proc(grown, vs, vt, src, tgt)[0]


def ref_proc_b_iterative(pairs, vs, vt, src, tgt, growth_rate=1.5, limit=10000):
    """projection.project_proc_bootstrap: the dictionary is replaced by the best-ranked mutual NNs, 1.5 times as many
    as its lines (the file's lines at first), until it grows by less than 1% or reaches the limit."""
    inv_s, inv_t = {v: k for k, v in vs.items()}, {v: k for k, v in vt.items()}
    size = 0
    while True:
        W, size1 = ref_proc(pairs, vs, vt, src, tgt)
        W_back, _ = ref_proc([(t, s) for s, t in pairs], vt, vs, tgt, src)
        if size1 < 1.01 * size or size1 >= limit:
            return W
        size = size1
        s2t = np.argmax(ref_normalize(src @ W) @ ref_normalize(tgt).T, axis=1)
        t2s = np.argmax(ref_normalize(tgt @ W_back) @ ref_normalize(src).T, axis=1)
        ranked = sorted([(m, s2t[m]) for m in range(len(s2t)) if t2s[s2t[m]] == m], key=lambda p: p[0] + p[1])
        pairs = [(inv_s[i], inv_t[j]) for i, j in ranked[: min(int(growth_rate * len(pairs)), limit)]]


# --- tests -------------------------------------------------------------------------------------------------------


def test_reader_keeps_xling_evals_vocabulary_and_row_count(mixed, tmp_path):
    vs, src = ref_load_embs(mixed / "src.vec")
    emb = read_vectors(mixed / "src.vec", **get_protocol("glavas2019").vector_options())
    assert emb.index == vs and np.array_equal(emb.vectors, src)
    # the first N rows of a file, duplicates and bad rows counted (header-less: xling-eval's topk counts rows; its
    # first row stays unlowercased, so the file starts with a lowercase word)
    rows = (mixed / "src.vec").read_text().split("\n")[3:63]
    lines = rows[:20] + ["broken 1 2 3"] + rows[20:]
    (tmp_path / "rows.vec").write_text("\n".join(lines) + "\n")
    for n in (10, 21, 40):
        vs_n, src_n = ref_load_embs(tmp_path / "rows.vec", topk=n)
        emb = read_vectors(tmp_path / "rows.vec", max_rows=n, lowercase=True, skip_bad=True)
        assert emb.index == vs_n and np.array_equal(emb.vectors, src_n)
    assert len(read_vectors(tmp_path / "rows.vec", max_vocab=40, lowercase=True, skip_bad=True)) == 40


def test_dictionary_keeps_repeated_lines_in_order(mixed):
    d = read_dictionary(mixed / "test.tsv", **get_protocol("glavas2019").dictionary_options())
    assert [list(p) for p in d.pairs] == ref_dictionary(mixed / "test.tsv") and d.kept_repeats
    dropped = read_dictionary(mixed / "test.tsv", case="lower")
    assert len(dropped) + dropped.repeats == len(d) and dropped.repeats == d.repeats > 0


def test_bli_protocol_equals_xling_eval_and_differs_from_the_defaults(monkeypatch, capsys, mixed):
    vs, src = ref_load_embs(mixed / "src.vec")
    vt, tgt = ref_load_embs(mixed / "tgt.vec")
    pairs = ref_dictionary(mixed / "test.tsv")
    W, _ = ref_proc(ref_dictionary(mixed / "train.tsv"), vs, vt, src, tgt)
    mapped = mixed / "mapped"
    mapped.mkdir(exist_ok=True)
    # the mapped source space, every row in its original casing (xling-eval maps its own serialised space)
    rows = [ln.split(" ") for ln in (mixed / "src.vec").read_text().splitlines()[1:]]
    raw = np.array([r[1:] for r in rows], dtype=np.float32)
    _write_vec(mapped / "src.vec", [r[0] for r in rows], raw @ W.astype(np.float32))
    ref = ref_eval(pairs, vs, vt, src @ W.astype(np.float32), tgt)

    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "bli",
        "--src",
        mapped / "src.vec",
        "--tgt",
        mixed / "tgt.vec",
        "--test-dict",
        mixed / "test.tsv",
        "--protocol",
        "glavas2019",
        "--json",
        "--no-cache",
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["n"] == ref["n"] and got["protocol"] == "glavas2019" and got["retrieval"] == "nn"
    for key in ("p1", "p5", "p10", "mrr"):
        assert got[key] == pytest.approx(ref[key], abs=1e-9), key

    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "bli",
        "--src",
        mapped / "src.vec",
        "--tgt",
        mixed / "tgt.vec",
        "--test-dict",
        mixed / "test.tsv",
        "--json",
        "--no-cache",
    )
    default = json.loads(out)
    assert abs(default["mrr"] - ref["mrr"]) > 0.05 and default["n"] < ref["n"]  # case kept, repeats dropped
    print(f"MRR: xling defaults {default['mrr']:.3f} (n={default['n']}), glavas2019 {got['mrr']:.3f} (n={got['n']})")


@pytest.mark.parametrize("limit", [None, 40])
def test_proc_b_under_the_protocol_is_the_release_bootstrap(monkeypatch, capsys, mixed, limit):
    vs, src = ref_load_embs(mixed / "src.vec")
    vt, tgt = ref_load_embs(mixed / "tgt.vec")
    train = ref_dictionary(mixed / "train.tsv")
    budget = 10000 if limit is None else len(train) + limit  # limit: only the `limit` best mutual pairs are added
    W = ref_proc_b_reproduce(train, vs, vt, src, tgt, limit=budget)
    ref = ref_eval(ref_dictionary(mixed / "test.tsv"), vs, vt, src @ W.astype(np.float32), tgt)
    args = [
        "cle",
        "run",
        "-m",
        "proc-b",
        "--src",
        mixed / "src.vec",
        "--tgt",
        mixed / "tgt.vec",
        "--train-dict",
        mixed / "train.tsv",
        "--test-dict",
        mixed / "test.tsv",
        "--protocol",
        "glavas2019",
        "--json",
        "--no-cache",
    ]
    code, out, err = xling(monkeypatch, capsys, *args, *(["--param", f"limit={budget}"] if limit else []))
    assert code == 0, err
    got = json.loads(out)
    assert got["n"] == ref["n"]
    for key in ("p1", "p5", "p10", "mrr"):
        assert got[key] == pytest.approx(ref[key], abs=1e-9), key
    if limit is None:  # the test can tell: dropping the seed duplicates gives another space
        code, out, err = xling(monkeypatch, capsys, *args, "--param", "seed_duplicates=drop")
        assert abs(json.loads(out)["mrr"] - ref["mrr"]) > 1e-3


def test_iterative_proc_b_under_the_protocol_is_the_release_loop(monkeypatch, capsys, mixed):
    vs, src = ref_load_embs(mixed / "src.vec")
    vt, tgt = ref_load_embs(mixed / "tgt.vec")
    W = ref_proc_b_iterative(ref_dictionary(mixed / "train.tsv"), vs, vt, src, tgt)
    ref = ref_eval(ref_dictionary(mixed / "test.tsv"), vs, vt, src @ W.astype(np.float32), tgt)
    code, out, err = xling(
        monkeypatch,
        capsys,
        "cle",
        "run",
        "-m",
        "proc-b-iterative",
        "--src",
        mixed / "src.vec",
        "--tgt",
        mixed / "tgt.vec",
        "--train-dict",
        mixed / "train.tsv",
        "--test-dict",
        mixed / "test.tsv",
        "--protocol",
        "glavas2019",
        "--json",
        "--no-cache",
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["n"] == ref["n"] and got["mrr"] == pytest.approx(ref["mrr"], abs=1e-9)


def test_resolve_overrides_and_names():
    assert set(PROTOCOLS) == {"glavas2019", "vecmap", "muse"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = resolve("glavas2019", None, retrieval="csls", case="lower")
    assert p.retrieval == "csls" and p.overrides == {"retrieval": "csls"} and p.count == "rows"
    assert [w.category for w in caught] == [XlingNote] and "retrieval=csls" in str(caught[0].message)
    assert resolve(None, {"retrieval": "csls"}).vector_options() == {
        "max_vocab": 200000,
        "lowercase": False,
        "skip_bad": False,
    }
    assert resolve("muse").bli_options()["convention"] == "source"
    with pytest.raises(XlingError, match="unknown BLI protocol 'paper'"):
        get_protocol("paper")


def test_grid_protocol_field_resolves_every_unit(tmp_path, mixed):
    from xling.studies import run_study
    from xling.studies.cle.spec import CLEGridSpec

    fields = dict(
        methods=["proc"],
        pairs=["en-de"],
        sizes=["all"],
        src_vectors=str(mixed / "src.vec"),
        tgt_vectors=str(mixed / "tgt.vec"),
        train_dict=str(mixed / "train.tsv"),
        test_dict=str(mixed / "test.tsv"),
        protocol="glavas2019",
        cache=False,
    )
    spec = CLEGridSpec(**fields, output=str(tmp_path / "out"))
    conv = spec.conventions()
    assert (conv.retrieval, conv.case, conv.repeats, conv.count) == ("nn", "lower", "keep", "rows")
    study = run_study(spec, progress=False)
    table = study.tables["cle_results"]
    vs, src = ref_load_embs(mixed / "src.vec")
    vt, tgt = ref_load_embs(mixed / "tgt.vec")
    W, _ = ref_proc(ref_dictionary(mixed / "train.tsv"), vs, vt, src, tgt)
    ref = ref_eval(ref_dictionary(mixed / "test.tsv"), vs, vt, src @ W.astype(np.float32), tgt)
    assert table.loc[0, "mrr"] == pytest.approx(ref["mrr"], abs=1e-9) and table.loc[0, "n"] == ref["n"]
    assert not (cache_dir() / "vectors").exists()  # cache: false
    # each row, and the report, state what the units ran (their records), not xling's defaults (csls, case kept)
    ran = table.loc[0, ["retrieval", "case", "protocol"]].tolist()
    assert ran == ["nn", "lower", "glavas2019"]
    report = study.report.read_text()
    facts = dict(re.findall(r'<td class="text">([^<]+)</td><td class="text">([^<]*)</td>', report))
    assert facts["retrieval"] == "nn" and facts["case"] == "lower" and facts["protocol"] == "glavas2019", facts
    assert CLEGridSpec(**fields, retrieval="nn").conventions().overrides == {}
    with pytest.warns(XlingNote, match="retrieval=csls"):
        assert CLEGridSpec(**fields, retrieval="csls").conventions().overrides == {"retrieval": "csls"}


def test_paper_presets_use_the_protocol_and_the_papers_methods():
    from xling.registry import MAPPERS
    from xling.studies import load_study

    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("glavas2019-bli.yaml", "glavas2019-downstream.yaml"):
        spec = load_study(configs / name)
        assert spec.protocol == "glavas2019" and spec.conventions().overrides == {}
        assert [e.method for e in spec.entries()] == [
            "proc",
            "proc-b",
            "dlv",
            "rcsls",
            "cca-xlingeval",
            "vecmap-unsup",
            "muse",
            "icp",
            "gwa",
        ]
        assert {e.method for e in spec.entries()} <= set(MAPPERS.names())
    bli = load_study(configs / "glavas2019-bli.yaml")
    assert len(bli.pair_list()) == 28 and bli.sizes == ["500", "1k", "3k", "5k"]
    readme = (configs.parent / "README.md").read_text()
    cle = readme[readme.index("## Cross-lingual word embeddings") :]
    assert cle.index("configs/glavas2019-bli.yaml") < cle.index("### ")  # the CLE section starts from the presets


def test_real_dictionaries_read_as_xling_eval_reads_them(bli_data):
    for pair in ("de-fi", "en-de", "hr-ru"):
        for path in sorted((bli_data / pair).glob("*.tsv")):
            d = read_dictionary(path, **get_protocol("glavas2019").dictionary_options())
            assert [list(p) for p in d.pairs] == ref_dictionary(path), path
            assert len(d) == len(path.read_text(encoding="utf-8").splitlines())  # every line, repeats included
