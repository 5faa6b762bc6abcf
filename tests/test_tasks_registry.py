"""Task loading: xling task YAMLs over JSONL/CSV/Parquet, lm-eval YAMLs, the paper benchmarks (parsing of the
hub formats on local rows, the cache, id manifests), prompt formats, fingerprints, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from xling.errors import XlingError
from xling.tasks import paper
from xling.tasks.items import MCItem
from xling.tasks.prompts import eval_requests, train_example
from xling.tasks.registry import (
    items_fingerprint,
    load_aligned,
    load_items,
    resolve_task,
)

ROWS = [
    {"qid": "a1", "q": "What is red?", "opt_a": "a colour", "opt_b": "a fish", "answer": "A"},
    {"qid": "a2", "q": "Was ist blau?", "opt_a": "ein Hund", "opt_b": "eine Farbe", "answer": "eine Farbe"},
    {"qid": "a3", "q": "2 + 2?", "opt_a": "4", "opt_b": "5", "answer": 0},
]
TASK_YAML = """name: colours
data: "{language}.%s"
languages: [en, de]
splits: {test: test}
fields: {id: qid, question: q, choices: [opt_a, opt_b], gold: answer}
template: "Q: {{q}}\\nA:"
"""


def write_task(tmp_path, fmt: str, rows=ROWS, langs=("en", "de")):
    for lang in langs:
        frame = pd.DataFrame(rows)
        if fmt == "jsonl":
            (tmp_path / f"{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif fmt == "csv":
            frame.astype(str).to_csv(tmp_path / f"{lang}.csv", index=False)
        else:
            frame.astype(str).to_parquet(tmp_path / f"{lang}.parquet")
    path = tmp_path / "task.yaml"
    path.write_text(TASK_YAML % fmt)
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_xling_task_yaml_reads_every_format_the_same(tmp_path, fmt):
    items = load_items(write_task(tmp_path, fmt), "de", "test")
    assert [(i.id, i.gold, i.choices) for i in items] == [
        ("a1", 0, ("a colour", "a fish")),
        ("a2", 1, ("ein Hund", "eine Farbe")),
        ("a3", 0, ("4", "5")),
    ]
    assert items[0].context == "Q: What is red?\nA:" and items[0].task == "colours" and items[0].language == "de"
    assert resolve_task(str(tmp_path / "task.yaml")).languages() == ["en", "de"]


def test_lmeval_yaml_subset(tmp_path):
    docs = [
        {"question": "Sky?", "opts": ["blue", "green"], "label": "1"},
        {"question": "Grass?", "opts": ["blue", "green"], "label": "green"},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "t.yaml").write_text(
        "task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\ntest_split: test\n"
        'output_type: multiple_choice\ndescription: "Answer.\\n\\n"\n'
        "doc_to_text: \"{{question | regex_replace('\\\\?', '')}}:\"\n"
        'doc_to_choice: "{{opts}}"\ndoc_to_target: "{{label}}"\ntarget_delimiter: "\\t"\n'
    )
    items = load_items(str(tmp_path / "t.yaml"), "en", "test")
    assert [(i.context, i.choices, i.gold) for i in items] == [
        ("Answer.\n\nSky:", ("blue", "green"), 1),
        ("Answer.\n\nGrass:", ("blue", "green"), 1),
    ]
    assert eval_requests(items[0]).continuations == ("\tblue", "\tgreen")
    (tmp_path / "f.yaml").write_text("task: f\ndataset_path: json\ndoc_to_text: !function utils.x\n")
    with pytest.raises(XlingError, match="!function"):
        load_items(str(tmp_path / "f.yaml"), "en", "test")
    (tmp_path / "g.yaml").write_text("task: g\ndataset_path: json\noutput_type: generate_until\ndoc_to_text: x\n")
    with pytest.raises(XlingError, match="generate_until"):
        load_items(str(tmp_path / "g.yaml"), "en", "test")


def test_prompt_formats():
    item = MCItem("1", "t", "en", "Question: Sky?\nAnswer:", ("blue", "green"), 0, {"question": "Sky?"})
    assert eval_requests(item).continuations == (" blue", " green")
    letters = eval_requests(item, "letters")
    assert letters.context == "Sky?\nA) blue\nB) green\nAnswer:" and letters.continuations == (" A", " B")
    assert letters.choice_texts == ("A", "B")
    assert train_example(item, "paper") == ("Sky?\nA) blue\nB) green\nAnswer:", " A")  # no paper example: lettered
    assert train_example(item) == ("Question: Sky?\nAnswer:", " blue")
    assert train_example(item, "lm") == ("", "Question: Sky?\nAnswer: blue")
    assert eval_requests(item, chat=True).continuations == ("blue", "green")


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """The hub replaced by rows in the real schemas (``paper_fixtures``): aligned configs hold 4 items per split;
    an upstream source holds 10 rows (no ``truth_id`` for TruthfulQA; English TruthfulQA with ``mc1_targets`` as
    the printed dict the English source stores)."""
    from paper_fixtures import make_rows

    calls = []
    aligned = {b.aligned: k for k, b in paper.BENCHMARKS.items()}
    upstream = {
        **{b.upstream: k for k, b in paper.BENCHMARKS.items()},
        **{v: k for k, b in paper.BENCHMARKS.items() for v in b.upstream_for_language.values()},
    }

    def rows(repo, language, split, revision=None):
        calls.append((repo, language, split, revision))
        if repo in aligned:
            return make_rows(aligned[repo], language, split, 4)
        pool = make_rows(upstream[repo], language or "en", "test", 10)
        for row in pool:
            if row.pop("truth_id", None) is not None and language is None:
                row["mc1_targets"] = (
                    f"{{'choices': array({row.pop('mc1_targets_choices')}, dtype=object), "
                    f"'labels': array({row.pop('mc1_targets_labels')}, dtype=int32)}}"
                )
        return pool[::-1]

    monkeypatch.setattr(paper, "_hub_rows", rows)
    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "cache"))
    return calls


def test_paper_rows_normalise_to_lmeval_formats(fake_hub):
    from paper_fixtures import make_rows

    raw = make_rows("arc_challenge", "de", "test", 4)[0]
    arc = load_items("arc_challenge", "de", "test")
    assert arc[0].context == f"Question: {paper.okapi_clean(raw['instruction'])}\nAnswer:"
    assert arc[0].gold == "ABCDE".index(raw["answer"]) and arc[0].choices[0] == raw["option_a"]
    hs = load_items("hellaswag", "en", "test")[0]
    assert (
        hs.context.startswith("Cooking: ")
        and "[" not in hs.context
        and hs.gold == int(make_rows("hellaswag", "en", "test", 4)[0]["label"])
    )
    tqa = load_items("truthfulqa", "hi", "train")[0]
    assert tqa.gold == 0 and train_example(tqa, "paper")[0] == ""
    mmlu = load_items("global_mmlu", "zh", "test")[0]
    req = eval_requests(mmlu)
    assert req.context.endswith("\nAnswer:") and req.continuations == (" A", " B", " C", " D")


def test_prepare_caches_and_upstream_manifest_aligns(fake_hub, tmp_path):
    from xling.tasks.prepare import DataSpec, prepare_data

    manifest = tmp_path / "ids.json"
    manifest.write_text(json.dumps({"test": ["5", "1", "8"]}))
    spec = DataSpec(
        tasks=["truthfulqa"], languages=["en", "de"], splits=["test"], source="upstream", manifest=str(manifest)
    )
    assert len(prepare_data(spec)) == 2
    n_calls = len(fake_hub)
    by_lang = load_aligned("truthfulqa", ["en", "de"], "test")  # from the cache: no hub call
    assert len(fake_hub) == n_calls
    assert [i.id for i in by_lang["de"]] == ["1", "5", "8"]  # sorted by id, as the release materialises
    assert by_lang["en"][0].choices == tuple(by_lang["en"][0].fields["plain"]["choices"])  # printed mc1_targets read
    assert (
        "Dr4kl3s/truthfulqa_en_aligned",
        None,
        None,
        paper.UPSTREAM_REVISIONS["Dr4kl3s/truthfulqa_en_aligned"],
    ) in fake_hub
    csv_manifest = tmp_path / "arc_challenge.csv"  # the release's canonical manifest format
    csv_manifest.write_text("split,id\ntest,Mercury_test_0003\ntest,Mercury_test_0001\n")
    prepare_data(
        DataSpec(
            tasks=["arc_challenge"], languages=["fr"], splits=["test"], source="upstream", manifest=str(csv_manifest)
        )
    )
    assert [i.id for i in load_items("arc_challenge", "fr", "test")] == ["Mercury_test_0001", "Mercury_test_0003"]
    default = DataSpec(tasks=["arc_challenge"], languages=["fr"], splits=["test"], source="upstream")
    prepare_data(default)  # no manifest: the aligned release's English ids pick the upstream rows
    assert [i.id for i in load_items("arc_challenge", "fr", "test")] == [f"Mercury_test_{i:04d}" for i in range(4)]
    manifest.write_text(json.dumps({"test": ["5", "99"]}))
    with pytest.raises(XlingError, match="manifest ids are missing"):
        prepare_data(spec)


def test_bad_input(tmp_path, fake_hub):
    with pytest.raises(XlingError, match="unknown task"):
        load_items("mmlu_pro", "en", "test")
    with pytest.raises(XlingError, match="unknown language"):
        load_items("hellaswag", "sw", "test")
    with pytest.raises(XlingError, match="unknown split"):
        load_items("hellaswag", "en", "dev")
    path = write_task(tmp_path, "jsonl")
    with pytest.raises(XlingError, match="unknown language 'fr'"):
        load_items(path, "fr", "test")
    (tmp_path / "de.jsonl").write_text(json.dumps({**ROWS[0], "qid": "zz"}) + "\n")
    with pytest.raises(XlingError, match="different item ids"):
        load_aligned(path, ["en", "de"], "test")
    (tmp_path / "de.jsonl").write_text(json.dumps({**ROWS[0], "answer": 7}) + "\n")
    with pytest.raises(XlingError, match=r"de.jsonl: row 1: .*gold index 7 out of range"):
        load_items(path, "de", "test")
    (tmp_path / "de.jsonl").write_text(json.dumps({**ROWS[0], "opt_b": " "}) + "\n")
    with pytest.raises(XlingError, match="empty choice"):
        load_items(path, "de", "test")
    (tmp_path / "de.jsonl").write_text(json.dumps(ROWS[0]) + "\n{broken\n")
    with pytest.raises(XlingError, match=r"de.jsonl:2: invalid JSON"):
        load_items(path, "de", "test")
    (tmp_path / "task.yaml").write_text((TASK_YAML % "jsonl") + "templat: oops\n")
    with pytest.raises(XlingError, match="templat"):
        load_items(path, "en", "test")


def test_fingerprint_tracks_content(tmp_path):
    path = write_task(tmp_path, "jsonl")
    before = items_fingerprint(load_items(path, "en", "test"))
    assert before == items_fingerprint(load_items(path, "en", "test"))
    (tmp_path / "en.jsonl").write_text("".join(json.dumps({**r, "answer": "B"}) + "\n" for r in ROWS))
    assert items_fingerprint(load_items(path, "en", "test")) != before


def test_data_prepare_cli(fake_hub, tmp_path, monkeypatch, capsys):
    import sys

    from xling.cli import main

    cfg = tmp_path / "data.yaml"
    cfg.write_text("tasks: [arc_challenge, global_mmlu]\nlanguages: [en, bn]\nsplits: [test]\n")
    monkeypatch.setattr(sys, "argv", ["xling", "data", "prepare", str(cfg)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0 and "prepared 4 dataset(s)" in capsys.readouterr().out
    assert paper.cached_path("global_mmlu", "bn", "test").is_file()
    cfg.write_text("tasks: [arc_challenge]\nlanguage: [en]\n")
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "language" in capsys.readouterr().err


def test_a_task_name_is_resolved_once_into_its_source(tmp_path):
    from xling.tasks.paper import PaperBenchmark
    from xling.tasks.registry import LmevalTask, MiniTask, TaskFile

    (tmp_path / "lm.yaml").write_text(
        "task: mine\ndataset_path: json\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: 0\n"
        "metric_list: [{metric: acc}]\nmetadata: {language: fi}\n"
    )
    sources = {
        "mini:numbers": (MiniTask, "acc_norm"),
        "hellaswag": (PaperBenchmark, "acc_norm"),
        "global_mmlu": (PaperBenchmark, "acc"),
        write_task(tmp_path, "jsonl"): (TaskFile, "acc_norm"),
        str(tmp_path / "lm.yaml"): (LmevalTask, "acc"),
    }
    for name, (kind, metric) in sources.items():
        source = resolve_task(name)
        assert type(source) is kind and source.name == name and source.norm_metric == metric
    assert resolve_task(str(tmp_path / "lm.yaml")).languages() == ["fi"]
    assert resolve_task("hellaswag").languages() == list(paper.LANGUAGES)
    with pytest.raises(XlingError, match="unknown task 'nope'"):
        resolve_task("nope")


def test_generic_code_does_not_know_the_paper_benchmarks():
    """Scoring, training and the grid ask a task's source; only the task registry resolves names to paper records."""
    src = Path(paper.__file__).parents[1]
    generic = [src / "score.py", src / "train.py", *sorted((src / "grid").glob("*.py"))]
    for path in generic:
        assert "tasks.paper" not in path.read_text(), path
