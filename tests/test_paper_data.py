"""The paper's benchmarks as released: local copies of the four aligned hub datasets in their real schemas and hub
layout (``paper_fixtures``) read through ``datasets.load_dataset``; evaluation formats equal to lm-eval's okapi and
Global-MMLU tasks; the release's training examples and validation split; the paper preset; the headline metric."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from xling.errors import XlingError
from xling.tasks import paper
from xling.tasks.prompts import eval_requests, paper_trainable, train_example

LANGS = ["en", "de", "hi"]
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    """A folder with local copies of the four aligned releases (3 languages, train 24 / test 8 items)."""
    from paper_fixtures import write_all

    return write_all(tmp_path_factory.mktemp("hub"), LANGS, {"train": 24, "test": 8})


@pytest.fixture
def prepared(hub, tmp_path, monkeypatch) -> Path:
    """``xling data prepare`` from the local copies into a fresh cache."""
    from xling.tasks.prepare import DataSpec, prepare_data

    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "cache"))
    done = prepare_data(DataSpec(tasks=list(paper.BENCHMARKS), languages=LANGS, source=str(hub)))
    assert len(done) == 4 * 3 * 2
    return hub


def test_real_schemas_load_aligned_from_local_copies(prepared):
    import datasets

    from xling.tasks.registry import load_aligned

    for name in paper.BENCHMARKS:
        by_lang = load_aligned(name, LANGS, "test")  # the cache: every language has the same ids
        rows = datasets.load_dataset(str(prepared / paper.BENCHMARKS[name].aligned), "de", split="test")
        assert [it.id for it in by_lang["de"]] == [str(v) for v in rows[paper.BENCHMARKS[name].id_column]]
        assert len(by_lang["hi"]) == 8
    tqa = load_aligned("truthfulqa", ["de"], "test")["de"]
    assert all(it.id.isdigit() for it in tqa)  # truth_id is an int64 column


def test_lmeval_formats_equal_lmeval_tasks(hub):
    """ARC, HellaSwag and TruthfulQA contexts, choices and gold are what lm-eval's okapi ``process_docs`` builds from
    the same rows; Global-MMLU's context is its ``doc_to_text`` template rendered by Jinja."""
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("lm_eval")
    import jinja2
    import yaml
    from lm_eval.tasks.okapi.arc_multilingual import utils as arc
    from lm_eval.tasks.okapi.hellaswag_multilingual import utils as hs
    from lm_eval.tasks.okapi.truthfulqa_multilingual import utils as tqa

    assert paper.TRUTHFULQA_QA_PROMPT == tqa.QA_PROMPT
    for name, module, choices_key in (
        ("arc_challenge", arc, "choices"),
        ("hellaswag", hs, "choices"),
        ("truthfulqa", tqa, "mc1_choices"),
    ):
        rows = datasets.load_dataset(str(hub / paper.BENCHMARKS[name].aligned), "hi", split="test")
        docs = module.process_docs(rows)
        items = paper.fetch_items(name, "hi", "test", str(hub))
        for doc, item in zip(docs, items):
            req = eval_requests(item)
            gold = 0 if name == "truthfulqa" else int(doc["gold"])  # TruthfulQA mc1: doc_to_target 0
            assert (req.context, req.choice_texts, req.gold) == (doc["query"], tuple(doc[choices_key]), gold)
            assert req.continuations == tuple(" " + c for c in doc[choices_key])
    import lm_eval

    template = yaml.safe_load(
        (Path(lm_eval.__file__).parent / "tasks/global_mmlu/default/de/_de_template_yaml").read_text()
    )
    rows = datasets.load_dataset(str(hub / paper.BENCHMARKS["global_mmlu"].aligned), "de", split="test")
    for row, item in zip(rows, paper.fetch_items("global_mmlu", "de", "test", str(hub))):
        req = eval_requests(item)
        assert req.context == jinja2.Template(template["doc_to_text"], keep_trailing_newline=True).render(**row)
        assert req.choice_texts[req.gold] == row[template["doc_to_target"]]


def test_plain_format_is_one_switch_away():
    row = {
        "truth_id": 7,
        "question": "Is it? ",
        "mc1_targets_choices": ["no", "yes"],
        "mc1_targets_labels": [0, 1],
        "mc2_targets_choices": [],
        "mc2_targets_labels": [],
    }
    item = paper.normalise_row("truthfulqa", row, "de")
    assert eval_requests(item).gold == 0 and eval_requests(item).context.endswith("\n\nQ: Is it?\nA:")
    plain = eval_requests(item, variant="plain")
    assert (plain.context, plain.choice_texts, plain.gold) == ("Question: Is it? \nAnswer:", ("no", "yes"), 1)
    arc = paper.normalise_row(
        "arc_challenge",
        {
            "id": "x",
            "instruction": "Why [title] so?  ",
            "option_a": "a  b",
            "option_b": "c",
            "option_c": "d",
            "option_d": "e",
            "option_e": None,
            "answer": "B",
        },
        "de",
    )
    assert eval_requests(arc).context == "Question: Why. so?\nAnswer:" and eval_requests(arc).choice_texts[0] == "a b"
    assert eval_requests(arc, variant="plain").context == "Question: Why [title] so?  \nAnswer:"
    assert eval_requests(arc, variant="plain").choice_texts[0] == "a  b"


def test_paper_training_examples_are_the_release_processors(hub):
    """Known answers: the strings dataset_processors/*.py build from a row; ARC rows answered E are dropped."""
    from paper_fixtures import make_rows

    arc_rows = make_rows("arc_challenge", "de", "train", 24)
    arc_items = paper.fetch_items("arc_challenge", "de", "train", str(hub))
    for row, item in zip(arc_rows, arc_items):
        if row["answer"] not in "ABCD":
            assert not paper_trainable(item)
            continue
        prompt = (
            f"Question: {row['instruction'].strip()}\nA) {row['option_a']}\nB) {row['option_b']}\n"
            f"C) {row['option_c']}\nD) {row['option_d']}\nAnswer:"
        )
        assert train_example(item, "paper") == (prompt, " " + row["answer"])
    assert sum(not paper_trainable(it) for it in arc_items) >= 1
    row = make_rows("global_mmlu", "de", "train", 24)[0]
    item = paper.fetch_items("global_mmlu", "de", "train", str(hub))[0]
    opts = "".join(f"{x}. {row['option_' + x.lower()]}\n" for x in "ABCD")
    assert train_example(item, "paper") == (f"{row['question'].strip()}\n{opts}Answer:", " " + row["answer"])
    hs = paper.fetch_items("hellaswag", "de", "train", str(hub))[0]
    assert train_example(hs, "paper") == (
        hs.context + "".join(f"\n{x}) {e}" for x, e in zip("ABCD", hs.choices)) + "\nAnswer:",
        " " + "ABCD"[hs.gold],
    )
    row = make_rows("truthfulqa", "de", "train", 24)[0]
    item = paper.fetch_items("truthfulqa", "de", "train", str(hub))[0]
    true = row["mc1_targets_choices"][row["mc1_targets_labels"].index(1)]
    assert train_example(item, "paper") == ("", f"Question: {row['question']}\nAnswer: {true}")
    assert {
        n: paper.fetch_items(n, "de", "train", str(hub))[0].fields["train_max_length"] for n in paper.BENCHMARKS
    } == {"arc_challenge": 256, "global_mmlu": 512, "hellaswag": 512, "truthfulqa": 128}


def test_validation_split_is_the_releases(hub):
    """The release: processed train split (ARC rows not A–D dropped) → ``train_test_split(test_size=0.1, seed=42)``."""
    import datasets

    from xling.train import split_train_val

    rows = datasets.load_dataset(str(hub / paper.BENCHMARKS["arc_challenge"].aligned), "de", split="train")
    kept = rows.filter(lambda r: r["answer"] is not None and str(r["answer"]).strip().upper() in ("A", "B", "C", "D"))
    ref = kept.train_test_split(test_size=0.1, seed=42)
    items = [it for it in paper.fetch_items("arc_challenge", "de", "train", str(hub)) if paper_trainable(it)]
    train, val = split_train_val(items, 0.1, 42)
    assert [it.id for it in train] == ref["train"]["id"] and [it.id for it in val] == ref["test"]["id"]


def test_missing_repo_or_config_is_one_line(hub, tmp_path, monkeypatch, capsys):
    from xling.cli import main
    from xling.tasks.prepare import DataSpec, prepare_data

    monkeypatch.setenv("XLING_CACHE", str(tmp_path / "cache"))
    with pytest.raises(XlingError, match=r"config 'fr'") as err:
        prepare_data(DataSpec(tasks=["hellaswag"], languages=["fr"], source=str(hub)))
    assert "hellaswag_coregrid_seed42" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(XlingError, match="no local copy of hub dataset Dr4kl3s/truthfulqa_coregrid_seed42"):
        prepare_data(DataSpec(tasks=["truthfulqa"], languages=["en"], source=str(tmp_path / "empty")))
    cfg = tmp_path / "data.yaml"
    cfg.write_text("tasks: [global_mmlu]\nlanguages: [de]\nsplits: [test]\nsource: aligned\n")
    for source, code in ((str(hub), 0), (str(tmp_path / "empty"), 2)):
        monkeypatch.setattr(sys, "argv", ["xling", "data", "prepare", str(cfg), "--source", source])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        assert exit_info.value.code == code
        if code:
            assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert paper.cached_path("global_mmlu", "de", "test").is_file()


def test_paper_preset_is_the_releases_protocol():
    from xling.config import PAPER_LORA_MODULES, GridSpec, load_spec

    spec = load_spec(GridSpec, REPO_ROOT / "configs" / "donors-recipients.yaml")
    assert [m.path for m in spec.models] == [  # core_grid_sweeps/ft_sweep.yaml
        "meta-llama/Llama-3.2-1B-Instruct",
        "meta-llama/Llama-3.2-3B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "Qwen/Qwen2.5-3B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
        "google/gemma-3-1b-it",
        "google/gemma-3-4b-it",
    ]
    assert len(spec.models) * len(spec.source_cells()) * len(spec.seeds) == 1188
    assert len(spec.target_cells()) == 44 and spec.seeds == [17, 42, 101]
    assert all(m.dtype == "bfloat16" and not m.chat_template for m in spec.models)
    assert (spec.lora.r, spec.lora.alpha, spec.lora.dropout, spec.lora.target_modules) == (
        32,
        64,
        0.0,
        PAPER_LORA_MODULES,
    )
    t = spec.train
    assert (t.epochs, t.lr, t.warmup_ratio, t.batch_size, t.max_grad_norm, t.val_fraction, t.split_seed) == (
        3,
        5e-5,
        0.1,
        "auto",
        1.0,
        0.1,
        42,
    )  # auto: auto_find_batch_size from the default 8
    assert (t.prompt_format, t.max_length, t.chat_template, t.keep_best_epoch) == ("paper", None, False, True)
    s = spec.score
    assert (s.chat_template, s.benchmark_format, s.merge, s.split, s.chat_date, s.batch_size) == (
        True,
        "lm-eval",
        True,
        "test",
        "26 Jul 2024",
        "auto",
    )


def test_headline_metric_per_task(tmp_path):
    from xling.analysis.results import aggregate_seeds, validate_long
    from xling.tasks.registry import resolve_task

    assert {n: resolve_task(n).norm_metric for n in paper.BENCHMARKS} == {
        "arc_challenge": "acc_norm",
        "global_mmlu": "acc",
        "hellaswag": "acc_norm",
        "truthfulqa": "acc",
    }
    assert resolve_task("mini:numbers").norm_metric == "acc_norm"
    (tmp_path / "t.yaml").write_text(
        "task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_choice: c\nmetric_list:\n  - metric: acc\n"
    )
    assert resolve_task(str(tmp_path / "t.yaml")).norm_metric == "acc"
    rows = [
        {
            "model_name": "m",
            "model_size": 1.0,
            "fine_tuned_dataset": "truthfulqa",
            "fine_tuned_language": "en",
            "eval_dataset": "truthfulqa",
            "eval_language": lang,
            "seed": seed,
            "score": 0.5,
            "score_base": 0.4,
            "score_norm": 0.5,
            "score_norm_base": 0.4,
            "score_norm_metric": "acc",
        }
        for lang in ("en", "de")
        for seed in (1, 2)
    ]
    table = aggregate_seeds(validate_long(pd.DataFrame(rows)))
    assert list(table["score_norm_metric"]) == ["acc", "acc"]
    rows[1]["score_norm_metric"] = "acc_norm"
    with pytest.raises(XlingError, match="different metrics"):
        aggregate_seeds(validate_long(pd.DataFrame(rows)))


def test_grid_long_table_uses_each_tasks_metric(tmp_path):
    """score_norm is acc_norm for ARC and acc for TruthfulQA, read from the units' scores; the row says which."""
    from xling.config import GridSpec, ModelSpec
    from xling.grid.store import Store
    from xling.studies.transfer.results import long_table
    from xling.studies.transfer.units import Plan, ScoreUnit, TrainUnit

    model = ModelSpec(name="m-1B", size="1B")
    spec = GridSpec(models=[model], tasks=["arc_challenge", "truthfulqa"], languages=["en"], seeds=[1])
    cells = tuple(spec.all_cells())
    train = TrainUnit("t", model, cells[0], 1)
    plan = Plan(
        spec,
        [train],
        [ScoreUnit("b", model, None, cells), ScoreUnit("s", model, train, cells)],
        {"arc_challenge": "arc_challenge", "truthfulqa": "truthfulqa"},
    )
    store = Store(tmp_path / "store")
    for key, label, shift in (("b", "base", 0.0), ("s", "t", 0.1)):
        with store.writing(key) as folder:
            pd.DataFrame(
                {
                    "adapter": label,
                    "task": ["arc_challenge", "truthfulqa"],
                    "language": "en",
                    "n": 10,
                    "acc": [0.3 + shift, 0.5 + shift],
                    "acc_norm": [0.4 + shift, 0.6 + shift],
                    "acc_bytes": 0.0,
                }
            ).to_parquet(folder / "scores.parquet")
    long = long_table(plan, store).set_index("eval_dataset")
    assert long.loc["arc_challenge", ["score_norm", "score_norm_base", "score_norm_metric"]].tolist() == [
        0.5,
        0.4,
        "acc_norm",
    ]
    assert long.loc["truthfulqa", ["score_norm", "score_norm_base", "score_norm_metric"]].tolist() == [0.6, 0.5, "acc"]
    assert json.loads(json.dumps(long.loc["truthfulqa", "score"])) == pytest.approx(0.6)


def test_run_record_says_the_formats_are_inferred(tmp_path):
    from xling.score import COLUMNS, write_outputs

    frame = pd.DataFrame(
        [
            {
                "adapter": "base",
                "task": task,
                "language": "de",
                "item_id": "1",
                "choice": c,
                "loglik": -1.0 - c,
                "n_tokens": 1,
                "n_chars": 3,
                "n_bytes": 3,
                "is_greedy": False,
                "is_gold": c == 0,
                "kind": "causal",
            }
            for task in ("truthfulqa", "mine")
            for c in (0, 1)
        ]
    )
    write_outputs(frame[COLUMNS], tmp_path / "out", {"score": {"benchmark_format": "lm-eval"}}, tasks=["truthfulqa"])
    record = json.loads((tmp_path / "out" / "run.json").read_text())["paper_benchmark_formats"]
    assert record["inferred"] and record["lm_eval_tasks"] == {"truthfulqa": "truthfulqa_{lang}_mc1"}
    assert record["score_norm_metric"] == {"truthfulqa": "acc"}
    write_outputs(frame[COLUMNS], tmp_path / "plain", None, "plain", tasks=["truthfulqa"])
    assert not json.loads((tmp_path / "plain" / "run.json").read_text())["paper_benchmark_formats"]["inferred"]


def test_arc_answers_that_are_not_letters():
    row = {
        "id": "x",
        "instruction": "Why?",
        "option_a": "a",
        "option_b": "b",
        "option_c": "c",
        "option_d": "d",
        "option_e": None,
    }
    item = paper.normalise_row("arc_challenge", {**row, "answer": "3"}, "de")
    assert item.gold == 2 and not paper_trainable(item)  # the release drops it from training
    with pytest.raises(XlingError, match="item 'x': answer 'Z' is not a letter"):
        paper.normalise_row("arc_challenge", {**row, "answer": "Z"}, "de")
