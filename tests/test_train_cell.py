"""LoRA training of one source cell: it learns a learnable task, is deterministic, fails cleanly."""

from __future__ import annotations

import json
import random
import sys

import pytest

from xling.config import LoraSpec, ModelSpec, TrainSpec
from xling.errors import XlingError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

ANSWERS = ["blue", "pink", "gray", "lime"]
KEYS = ["cat", "dog", "tree", "fish"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny Llama and a generated task whose answer is a fixed function of a key word in the question
    (chance for the base model: about one in four)."""
    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("train")
    model = build_tiny_llama(root / "tiny", seed=0)
    for split, n in (("train", 96), ("test", 32)):
        rng = random.Random(split)
        lines = []
        for i in range(n):
            choices = ANSWERS[:]
            rng.shuffle(choices)
            k = rng.randrange(4)
            lines.append(json.dumps({"id": f"{split}{i}", "question": f"Item {i} is a {KEYS[k]}", "choices": choices,
                                     "gold": choices.index(ANSWERS[k])}))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "task.yaml").write_text('name: keyed\ndata: "{split}.jsonl"\nlanguages: [en]\n'
                                    'template: "Question: {{question}}\\nAnswer:"\n')
    return root, ModelSpec(name="tiny", path=str(model))


def test_training_lowers_val_loss_and_raises_accuracy(setup):
    from xling.score import score_items, summarize
    from xling.tasks.registry import load_items
    from xling.train import train_cell

    root, model = setup
    task = str(root / "task.yaml")
    out = train_cell(model, task, "en", 0, root / "adapter", train=TrainSpec(lr=1e-2, epochs=4))
    log = json.loads((out / "train_log.json").read_text())
    val = [e["val_loss"] for e in log["epochs"]]
    assert val[-1] < val[0] - 0.5
    assert log["kept_epoch"] == 1 + val.index(min(val)) and (log["n_train"], log["n_val"]) == (86, 10)
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "xling_adapter.json"} <= {
        p.name for p in out.iterdir()}
    scores = summarize(score_items(model, {"base": None, "ft": out}, load_items(task, "en", "test"))).set_index("adapter")
    assert scores.loc["base", "acc"] < 0.5
    assert scores.loc["ft", "acc"] >= 0.9


def test_same_seed_same_adapter(setup, tmp_path):
    from safetensors.torch import load_file

    from xling.train import train_cell

    root, model = setup
    spec = TrainSpec(lr=1e-2, epochs=1, max_train_items=24)
    lora = LoraSpec(r=4, alpha=8)
    weights = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = train_cell(model, str(root / "task.yaml"), "en", seed, tmp_path / name, lora, spec)
        weights.append(load_file(out / "adapter_model.safetensors"))
    a, b, c = weights
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)


def test_train_cli_bad_input_exits_2_and_writes_nothing(setup, tmp_path, monkeypatch, capsys):
    from xling.cli import main

    root, model = setup
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epochs: 1\n  learning_rate: 0.1\n")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "x", "question": "q", "choices": ["a", "b"], "gold": 5}) + "\n")
    (tmp_path / "gold.yaml").write_text('name: g\ndata: "gold.jsonl"\nlanguages: [en]\n')
    cases = [
        (["--task", str(root / "task.yaml"), "--lang", "en", "--config", str(typo)], "learning_rate"),
        (["--task", str(root / "task.yaml"), "--lang", "fr"], "unknown language"),
        (["--task", "no_such_task", "--lang", "en"], "unknown task"),
        (["--task", str(tmp_path / "gold.yaml"), "--lang", "en"], "gold index 5 out of range"),
        (["--task", str(root / "task.yaml"), "--lang", "en", "--model", str(tmp_path / "nowhere")], "no model at"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        argv = ["xling", "train", "--model", model.path, *args, "-o", str(out)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2, args
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: ") and err.count("\n") == 1
        assert not out.exists()


def test_split_is_fixed_and_rejects_tiny_sets():
    from xling.tasks.items import MCItem
    from xling.train import split_train_val

    items = [MCItem(str(i), "t", "en", "q", ("a", "b"), 0) for i in range(20)]
    tr, va = split_train_val(items, 0.1, 0)
    assert len(va) == 2 and not {i.id for i in tr} & {i.id for i in va}
    assert [i.id for i in split_train_val(items, 0.1, 0)[1]] == [i.id for i in va]
    with pytest.raises(XlingError):
        split_train_val(items[:1], 0.1, 0)
