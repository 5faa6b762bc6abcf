"""The CLE grid: every unit's result, tables with failures counted, resumable, bad specs rejected."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_runner import run_xling
from threadpoolctl import threadpool_limits

from xling.cle.simulate import simulate_pair, write_pair
from xling.errors import XlingError
from xling.grid.store import Store
from xling.studies import load_study, run_study
from xling.studies.cle.spec import CLEGridSpec


def run_grid(spec, **kwargs) -> pd.DataFrame:
    """Run a CLE study; its results table."""
    return run_study(spec, **kwargs).tables["cle_results"]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


SPEC = """\
methods:
  - proc
  - {method: vecmap-unsup, params: {stochastic_interval: 2, unsupervised_vocab: 600}}
pairs: [aa-bb, aa-cc]
sizes: [100, 200]
src_vectors: "{pair}/src.vec"
tgt_vectors: "{pair}/tgt.vec"
train_dict: "{pair}/train.{size}.tsv"
test_dict: "{pair}/test.tsv"
fail_mrr: 0.2
"""


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    """Two simulated pairs: aa-bb near-isomorphic, aa-cc strongly warped (unsupervised mapping cannot work)."""
    root = tmp_path_factory.mktemp("clegrid")
    for pair, warp in (("aa-bb", 0.0), ("aa-cc", 0.8)):
        sim = simulate_pair(
            600,
            16,
            0.1,
            warp,
            seed=11,
            n_train=200,
            n_test=150,
            rank_noise=0.3,
            n_clusters=10,
            lang_clusters=2,
            overlap=1.0,
        )
        write_pair(sim, root / pair)
        lines = (root / pair / "train.tsv").read_text().splitlines(keepends=True)
        for size in (100, 200):
            (root / pair / f"train.{size}.tsv").write_text("".join(lines[:size]))
    (root / "spec.yaml").write_text(SPEC)
    return root


@pytest.mark.slow
def test_grid_results_tables_and_resume(grid_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    table = run_grid(load_study(grid_dir / "spec.yaml").model_copy(update={"output": str(out)}), progress=False)
    # 2 pairs x (proc at 2 sizes + vecmap-unsup once, without a dictionary)
    assert len(table) == 6 and set(table["status"]) == {"done"}
    assert sorted(table.loc[table.method == "vecmap-unsup", "size"]) == ["none", "none"]
    by = table.set_index(["method", "pair", "size"])
    assert by.loc[("proc", "aa-bb", "200"), "p1"] >= 0.95
    assert by.loc[("vecmap-unsup", "aa-bb", "none"), "p1"] >= 0.95
    # the warped pair: unsupervised mapping fails, and the table says so
    warped = by.loc[("vecmap-unsup", "aa-cc", "none")]
    assert warped["mrr"] < 0.2 and warped["failed"]
    tables = out / "analysis" / "tables"
    results = pd.read_csv(out / "cle_results.csv")
    assert len(results) == 6 and {"method", "pair", "size", "p1", "mrr", "failed", "status"} <= set(results)
    averages = pd.read_csv(tables / "cle_averages.csv").set_index(["method", "size"])
    assert averages.loc[("vecmap-unsup", "none"), "failures"] == 1
    assert averages.loc[("vecmap-unsup", "none"), "pairs_done"] == 2
    matrix = pd.read_csv(tables / "cle_mrr_matrix.csv")
    assert list(matrix.columns) == ["method", "size", "aa-bb", "aa-cc", "mean"] and len(matrix) == 3
    row = matrix[(matrix.method == "proc") & (matrix["size"].astype(str) == "100")].iloc[0]
    assert row["mean"] == pytest.approx((row["aa-bb"] + row["aa-cc"]) / 2)
    assert json.loads((out / "analysis" / "run.json").read_text())["facts"]["done"] == 6
    assert len(list((out / "runs").glob("run-*.json"))) == 1  # one run record per run, as every grid kind

    # a rerun starts nothing and gives the same table
    starts = sum(e["event"] == "start" for e in Store(out / "store").events())
    code, _, _ = run_xling(monkeypatch, capsys, "cle", "grid", grid_dir / "spec.yaml", "-o", out)
    assert code == 0
    assert sum(e["event"] == "start" for e in Store(out / "store").events()) == starts
    report = (out / "analysis" / "report.html").read_text()  # the shared report layer's page
    assert "cle_mrr_matrix" in report and "data:image/png;base64" in report and "http" not in report.split("<body>")[1]
    pd.testing.assert_frame_equal(pd.read_csv(out / "cle_results.csv"), results)

    # xling analyze recognises the CLE results table and writes the grid's own analysis from it
    code, stdout, err = run_xling(monkeypatch, capsys, "analyze", out / "cle_results.csv", "-o", tmp_path / "again")
    assert code == 0, err
    assert "CLE grid: mean over pairs" in stdout
    for name in ("cle_averages", "cle_mrr_matrix", "cle_p1_matrix"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "again" / "tables" / f"{name}.csv"), pd.read_csv(tables / f"{name}.csv")
        )
    assert "cle_mrr_matrix" in (tmp_path / "again" / "report.html").read_text()
    code, _, err = run_xling(monkeypatch, capsys, "analyze", out / "cle_results.csv", "-o", tmp_path / "x", "--mixed")
    assert code == 2 and "apply to transfer tables only" in err


def test_failed_units_are_recorded_and_retried(grid_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    spec = load_study(grid_dir / "spec.yaml").model_copy(
        update={"methods": ["proc"], "pairs": ["aa-bb", "aa-dd"], "sizes": ["100"], "output": str(out)}
    )
    table = run_grid(spec, progress=False).set_index("pair")
    assert table.loc["aa-bb", "status"] == "done"
    assert table.loc["aa-dd", "status"] == "error" and "no such vectors file" in table.loc["aa-dd", "error"]
    assert pd.read_csv(out / "analysis" / "tables" / "cle_averages.csv")["errors"].tolist() == [1]
    (grid_dir / "failing.yaml").write_text(
        (grid_dir / "spec.yaml")
        .read_text()
        .replace(
            "methods:\n  - proc\n  - {method: vecmap-unsup, params: {stochastic_interval: 2, "
            "unsupervised_vocab: 600}}\n"
            "pairs: [aa-bb, aa-cc]\nsizes: [100, 200]",
            "methods: [proc]\npairs: [aa-bb, aa-dd]\nsizes: [100]",
        )
    )
    code, _, err = run_xling(
        monkeypatch, capsys, "cle", "grid", grid_dir / "failing.yaml", "-o", out, "--max-retries", 0
    )
    assert code == 1  # a unit that errored: exit code 1, the status lists it
    (grid_dir / "aa-dd").symlink_to(grid_dir / "aa-bb")  # the missing files appear: a rerun retries that unit
    try:
        assert set(run_grid(spec, progress=False)["status"]) == {"done"}
    finally:
        (grid_dir / "aa-dd").unlink()


@pytest.mark.parametrize(
    "text, message",
    [
        ("methods: [proc]\npairs: [en-de]\nvectors: v.{lang}\ntest_dict: t\n", "needs a training dictionary"),
        ("methods: [nope]\nvectors: v\ntest_dict: t\n", "unknown mapping method 'nope'"),
        ("methods: [vecmap-unsup]\nvectors: v.{language}\ntest_dict: t\n", "unknown placeholder {language}"),
        ("methods: [vecmap-unsup]\nvectors: v\ntest_dict: t\ncolour: red\n", "colour"),
        ("methods: [vecmap-unsup]\npairs: [ende]\nvectors: v\ntest_dict: t\n", "a pair is 'src-tgt'"),
        (
            "methods: [{method: proc-b, params: {limt: 5}}]\nvectors: v\ntrain_dict: d\ntest_dict: t\n",
            "unknown parameter 'limt'",
        ),
        ("methods: [vecmap-unsup]\ntest_dict: t\n", "give either vectors"),
        ("methods: [proc\n", "invalid YAML"),
        # an axis that changes no input (issue 21): every "size" would map the same pairs
        (
            "methods: [proc]\npairs: [en-de]\nsizes: [500, 1k]\nvectors: v.{lang}\ntrain_dict: d.{pair}\n"
            "test_dict: t.{pair}\n",
            "sizes: 500 and 1k read the same training dictionary (d.en-de) for en-de: put {size} in train_dict",
        ),
        ("methods: [vecmap-unsup]\npairs: [en-de]\nvectors: v\ntest_dict: t\n", "vectors: the template has no {lang}"),
        (
            "methods: [vecmap-unsup]\npairs: [en-de, en-fi]\nsrc_vectors: a.vec\ntgt_vectors: b.vec\ntest_dict: t\n",
            "pairs: en-de and en-fi read the same vectors and dictionaries",
        ),
        (
            "methods: [vecmap-unsup, {method: vecmap-unsup, label: again}]\npairs: [en-de]\nvectors: v.{lang}\n"
            "test_dict: t\n",
            "'vecmap-unsup' and 'again' are the same method with the same params",
        ),
        (
            "methods: [vecmap-unsup]\npairs: [en-de]\nvectors: v.{lang}\ntest_dict: t\n"
            "downstream: {clir: {data: c, pairs: [en-fi]}}\n",
            "downstream.clir.pairs: 'en-fi' is not a pair of the grid",
        ),
        (
            "methods: [vecmap-unsup]\npairs: [en-de]\nvectors: v.{lang}\ntest_dict: t\n"
            "downstream: {cldc: {data: c, seeds: [1, 1]}}\n",
            "a seed is listed twice",
        ),
    ],
)
def test_malformed_spec_is_one_line_error_exit_2(tmp_path, monkeypatch, capsys, text, message):
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(XlingError, match="spec.yaml"):
        load_study(tmp_path / "spec.yaml")
    code, _, err = run_xling(monkeypatch, capsys, "cle", "grid", tmp_path / "spec.yaml", "-o", tmp_path / "out")
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_spec_names_its_kind_or_is_told_apart_by_its_fields(grid_dir, tmp_path):
    """``kind:`` names a grid kind; without it the fields tell (methods: CLE); paths are relative to the spec file."""
    from xling.studies import kind_of

    text = (grid_dir / "spec.yaml").read_text()
    (tmp_path / "named.yaml").write_text("kind: cle\n" + text.replace('"{pair}/', f'"{grid_dir}/{{pair}}/'))
    spec = load_study(tmp_path / "named.yaml")
    assert kind_of(spec).name == "cle" and spec.output == str(tmp_path / "xling-out/cle-grid")
    assert kind_of(load_study(grid_dir / "spec.yaml")).name == "cle"
    assert load_study(grid_dir / "spec.yaml").src_vectors == f"{grid_dir}/{{pair}}/src.vec"
    (tmp_path / "wrong.yaml").write_text("kind: transfer\n" + text)
    with pytest.raises(XlingError, match="wrong.yaml: field 'models': Field required"):
        load_study(tmp_path / "wrong.yaml")
    (tmp_path / "odd.yaml").write_text("kind: odd\n" + text)
    with pytest.raises(XlingError, match="unknown grid kind 'odd'"):
        load_study(tmp_path / "odd.yaml")


def test_paper_defaults():
    spec = CLEGridSpec(
        methods=["proc"], vectors="wiki.{lang}.vec", train_dict="{pair}/train.{size}.tsv", test_dict="{pair}/test.tsv"
    )
    assert len(spec.pair_list()) == 28 and spec.sizes == ["500", "1k", "3k", "5k"]


@pytest.mark.slow
def test_grid_with_downstream_tasks_writes_both_tables_and_the_report(tmp_path, monkeypatch, capsys):
    """A downstream section: every unit's mapped pair is also evaluated on CLDC and CLIR; the grid writes
    cle_downstream.csv, the BLI-vs-downstream correlations and ranks, and the report shows them."""
    from xling.cle.downstream.simulate import simulate_downstream, write_downstream

    pair = simulate_pair(1500, 24, 0.4, 0.1, seed=5, n_train=500, n_test=200)
    write_pair(pair, tmp_path / "src-tgt")
    write_downstream(
        simulate_downstream(pair, seed=5, n_docs=200, n_nli=300, n_queries=12, n_background=100),
        tmp_path / "src-tgt" / "downstream",
    )
    lines = (tmp_path / "src-tgt" / "train.tsv").read_text().splitlines(keepends=True)
    for size in (50, 500):
        (tmp_path / "src-tgt" / f"train.{size}.tsv").write_text("".join(lines[:size]))
    (tmp_path / "spec.yaml").write_text(
        "methods: [proc, cca, vecmap-sup]\npairs: [src-tgt]\nsizes: [50, 500]\nsrc_vectors: '{pair}/src.vec'\n"
        "tgt_vectors: '{pair}/tgt.vec'\ntrain_dict: '{pair}/train.{size}.tsv'\ntest_dict: '{pair}/test.tsv'\n"
        "downstream:\n  cldc: {data: '{pair}/downstream/cldc', model: mean}\n  clir: '{pair}/downstream/clir'\n"
    )
    code, _, _ = run_xling(monkeypatch, capsys, "cle", "grid", tmp_path / "spec.yaml", "-o", tmp_path / "out")
    assert code == 0
    tables = tmp_path / "out" / "analysis" / "tables"
    downstream = pd.read_csv(tmp_path / "out" / "cle_downstream.csv")
    assert len(downstream) == 3 * 2 * 2 and set(downstream["task"]) == {"cldc", "clir"}
    assert {"method", "pair", "size", "task", "metric", "score", "n"} <= set(downstream.columns)
    by = downstream.set_index(["method", "size", "task"])["score"]
    assert by[("proc", 500, "clir")] > by[("proc", 50, "clir")]  # a better map transfers better
    assert by[("cca", 500, "clir")] > by[("cca", 50, "clir")]
    assert (downstream["status"] == "done").all() and (downstream["n_seeds"] == 1).all()
    # the grid's downstream scores are those of `xling cle downstream` on the same map (`xling cle map`'s files)
    data = tmp_path / "src-tgt"
    code, _, err = run_xling(
        monkeypatch,
        capsys,
        *("cle", "map", "-m", "proc", "--src", data / "src.vec", "--tgt", data / "tgt.vec"),
        *("--train-dict", data / "train.500.tsv", "-o", tmp_path / "mapped"),
    )
    assert code == 0, err
    for task, extra in (("cldc", ["--task-model", "mean"]), ("clir", [])):
        code, out, err = run_xling(
            monkeypatch,
            capsys,
            *("cle", "downstream", "--task", task, "--data", data / "downstream" / task, "--src-lang", "src"),
            *("--tgt-lang", "tgt", "--src", tmp_path / "mapped/src.vec", "--tgt", tmp_path / "mapped/tgt.vec"),
            *extra,
            "--json",
        )
        assert code == 0, err
        assert json.loads(out)["score"] == by[("proc", 500, task)], task
    corr = pd.read_csv(tables / "cle_bli_downstream_correlation.csv")
    assert set(corr["pair"]) == {"src-tgt", "pooled"} and (corr["n_methods"] == 3).all()
    assert corr["resampling"].str.contains("bootstrap over methods").all()
    ranks = pd.read_csv(tables / "cle_method_ranks.csv")
    assert len(ranks) == 2 * 6 and set(ranks["downstream_rank"]) <= set(range(1, 7))
    report = (tmp_path / "out" / "analysis" / "report.html").read_text()
    assert "BLI vs downstream" in report and "cle_bli_downstream_correlation" in report
    assert (tmp_path / "out" / "analysis" / "figures" / "cle_bli_vs_downstream.png").is_file()


@pytest.fixture(scope="module")
def two_way(tmp_path_factory):
    """One simulated pair read both ways (src-tgt and tgt-src: vectors per language, a dictionary per direction)
    with its downstream data; CLIR data in a folder per pair, present for src-tgt only."""
    import shutil

    from xling.cle.downstream.simulate import simulate_downstream, write_downstream

    root = tmp_path_factory.mktemp("two-way")
    pair = simulate_pair(800, 16, 0.3, 0.0, seed=2, n_train=300, n_test=150)
    write_pair(pair, root / "sim")
    write_downstream(simulate_downstream(pair, seed=2, n_docs=120, n_nli=60, n_queries=8, n_background=60), root)
    for name in ("src", "tgt"):
        shutil.copy(root / "sim" / f"{name}.vec", root / f"{name}.vec")
    for split in ("train", "test"):
        lines = (root / "sim" / f"{split}.tsv").read_text().splitlines()
        (root / f"{split}.src-tgt.tsv").write_text("\n".join(lines) + "\n")
        (root / f"{split}.tgt-src.tsv").write_text("\n".join("\t".join(ln.split("\t")[::-1]) for ln in lines) + "\n")
    shutil.copytree(root / "clir", root / "clir-src-tgt")
    return root


TWO_WAY = """\
methods: [proc]
pairs: [src-tgt, tgt-src]
sizes: [all]
vectors: "{lang}.vec"
train_dict: "train.{pair}.tsv"
test_dict: "test.{pair}.tsv"
downstream:
  cldc: {data: cldc, model: cnn, params: {epochs: 2, lr: 1.0e-3}, seeds: [0, 1], pairs: [src-tgt]}
  clir: {data: "clir-{pair}"}
"""


def test_downstream_pairs_seeds_and_a_missing_task_folder(two_way, tmp_path, monkeypatch, capsys):
    """Per-task pairs and seeds; a missing task folder fails only that task's units, loudly (exit 1, the error
    named), keeps every BLI result, and a rerun after the folder appears runs only those units."""
    import shutil

    (two_way / "spec.yaml").write_text(TWO_WAY)
    out = tmp_path / "out"
    code, _, err = run_xling(monkeypatch, capsys, "cle", "grid", two_way / "spec.yaml", "-o", out, "--max-retries", 0)
    assert code == 1 and "clir" in err and "clir-tgt-src" in err
    results = pd.read_csv(out / "cle_results.csv")
    assert list(results["status"]) == ["done", "done"] and (results["p1"] > 0.5).all()
    down = pd.read_csv(out / "cle_downstream.csv").set_index(["pair", "task"])
    assert sorted(down.index) == [("src-tgt", "cldc"), ("src-tgt", "clir"), ("tgt-src", "clir")]
    assert (
        down.loc[("tgt-src", "clir"), "status"] == "error" and "clir-tgt-src" in down.loc[("tgt-src", "clir"), "error"]
    )
    cldc = down.loc[("src-tgt", "cldc")]
    seeds = pd.read_csv(out / "cle_downstream_seeds.csv")
    per_seed = seeds[seeds["task"] == "cldc"]["score"]
    assert cldc["n_seeds"] == 2 and list(seeds[seeds["task"] == "cldc"]["seed"]) == [0, 1]
    assert cldc["score"] == pytest.approx(per_seed.mean()) and cldc["score_sd"] == pytest.approx(per_seed.std())
    assert down.loc[("src-tgt", "clir"), "n_seeds"] == 1  # retrieval draws nothing: one run
    # the folder appears: a rerun runs the failed units only (BLI units are not started again)
    store = Store(out / "store")
    bli_keys = {k for k in store.done_keys() if "bli" not in json.dumps(store.record(k).get("unit", {}))}
    starts = sum(e["event"] == "start" and e["key"] in bli_keys for e in store.events())
    shutil.copytree(two_way / "clir", two_way / "clir-tgt-src")
    for name in ("docs", "stopwords"):  # documents in the target language (src for tgt-src)
        shutil.copy(
            two_way / "clir" / f"{name}.tgt.{'jsonl' if name == 'docs' else 'txt'}",
            two_way / "clir-tgt-src" / f"{name}.src.{'jsonl' if name == 'docs' else 'txt'}",
        )
    try:
        code, _, err = run_xling(monkeypatch, capsys, "cle", "grid", two_way / "spec.yaml", "-o", out)
        assert code == 0, err
        assert sum(e["event"] == "start" and e["key"] in bli_keys for e in store.events()) == starts
        down = pd.read_csv(out / "cle_downstream.csv")
        assert (down["status"] == "done").all()
    finally:
        shutil.rmtree(two_way / "clir-tgt-src")


@pytest.mark.parametrize(
    "preset, bli_units, downstream_units, n_missing",
    [
        # 28 pairs x (5 methods x 4 sizes + 4 without a dictionary); 8 vectors files + 28 x 5 dictionaries
        ("glavas2019-bli.yaml", 672, None, 8 + 28 * 5),
        # 11 pairs x (5 x 2 + 4); (5 CLDC + 4 XNLI + 9 CLIR pairs) x 14; 7 languages, 11 x 3 dictionaries, 3 folders
        ("glavas2019-downstream.yaml", 154, 18 * 14, 7 + 11 * 3 + 3),
    ],
)
def test_presets_plan_offline_with_counts_and_missing_inputs(
    preset, bli_units, downstream_units, n_missing, tmp_path, monkeypatch, capsys
):
    import shutil

    from conftest import REPO

    shutil.copytree(REPO / "configs", tmp_path / "configs")  # ../xling-data from there: absent
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "configs" / preset
    code, out, err = run_xling(monkeypatch, capsys, "grid", "plan", spec, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["stages"]["bli"] == {"units": bli_units, "done": 0}
    assert plan["stages"].get("downstream", {}).get("units") == downstream_units
    assert len(plan["missing_inputs"]) == n_missing
    assert not (tmp_path / "xling-out").exists()  # planning writes nothing
    vectors = tmp_path / "xling-data" / "vectors" / "wiki.en.vec"
    vectors.parent.mkdir(parents=True)
    vectors.write_text("1 2\nthe 0.1 0.2\n")
    code, out, err = run_xling(monkeypatch, capsys, "grid", "plan", spec)
    assert code == 0 and f"{n_missing - 1} input file(s) or folder(s) missing" in out
    assert str(vectors) not in out and "wiki.de.vec" in out
    if downstream_units:
        assert "downstream xnli: 4 pair(s) (en-de, en-fr, en-ru, en-tr), seeds [0, 1, 2]" in out
