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
            lines.append(
                json.dumps(
                    {
                        "id": f"{split}{i}",
                        "question": f"Item {i} is a {KEYS[k]}",
                        "choices": choices,
                        "gold": choices.index(ANSWERS[k]),
                    }
                )
            )
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "task.yaml").write_text(
        'name: keyed\ndata: "{split}.jsonl"\nlanguages: [en]\ntemplate: "Question: {{question}}\\nAnswer:"\n'
    )
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
        p.name for p in out.iterdir()
    }
    scores = summarize(score_items(model, {"base": None, "ft": out}, load_items(task, "en", "test"))).set_index(
        "adapter"
    )
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


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_a_worker_keeping_the_base_model_trains_the_same_adapters(setup, tmp_path, monkeypatch, kind):
    """Three units in one worker (base model loaded once, LoRA attached and taken off per unit) give the same adapter
    bytes as each unit trained on a freshly loaded model; the base weights are untouched afterwards."""
    from xling.models import get_kind
    from xling.models.encoder import default_model_path
    from xling.train import keep_base_models, train_cell

    root, tiny = setup
    if kind == "causal":
        model, task = tiny, str(root / "task.yaml")
        units = [(task, "en", 1), (task, "en", 2), (task, "en", 1)]
    else:
        model = ModelSpec(name="minilm", path=default_model_path(), kind="encoder")
        units = [("mini:numbers", "en", 1), ("mini:region", "de", 2), ("mini:numbers", "en", 1)]
    spec = TrainSpec(lr=1e-2, epochs=1, max_train_items=24, batch_size=8)
    lora = LoraSpec(r=4, alpha=8)
    fresh = [
        (
            train_cell(model, t, lang, seed, tmp_path / f"fresh{i}", lora, spec) / "adapter_model.safetensors"
        ).read_bytes()
        for i, (t, lang, seed) in enumerate(units)
    ]
    loads = []
    kind_cls = type(get_kind(kind))
    original = kind_cls.load
    monkeypatch.setattr(kind_cls, "load", lambda self, spec: loads.append(spec.name) or original(self, spec))
    with keep_base_models():
        kept = [
            (
                train_cell(model, t, lang, seed, tmp_path / f"kept{i}", lora, spec) / "adapter_model.safetensors"
            ).read_bytes()
            for i, (t, lang, seed) in enumerate(units)
        ]
    assert loads == [model.name]  # loaded once for the three units
    assert kept == fresh and fresh[0] == fresh[2] and fresh[0] != fresh[1]


def test_batch_size_auto_halves_on_out_of_memory_and_starts_again(setup, tmp_path, monkeypatch):
    """``batch_size: auto`` as the Trainer's auto_find_batch_size: out of memory at 8 → train again from the seed at
    4; the adapter is the one a plain batch of 4 gives, and the log says what happened."""
    import torch

    from xling.models.causal import CausalKind
    from xling.train import train_cell

    root, model = setup
    task = str(root / "task.yaml")
    spec = TrainSpec(lr=1e-2, epochs=1, max_train_items=24, batch_size="auto")
    original = CausalKind.batch_loss

    def small_gpu(self, loaded, examples, train):
        if len(examples) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return original(self, loaded, examples, train)

    monkeypatch.setattr(CausalKind, "batch_loss", small_gpu)
    auto = train_cell(model, task, "en", 3, tmp_path / "auto", LoraSpec(r=4, alpha=8), spec)
    log = json.loads((auto / "train_log.json").read_text())
    assert (log["batch_size"], log["oom_restarts"]) == (4, 1)
    four = train_cell(
        model, task, "en", 3, tmp_path / "four", LoraSpec(r=4, alpha=8), spec.model_copy(update={"batch_size": 4})
    )
    assert (auto / "adapter_model.safetensors").read_bytes() == (four / "adapter_model.safetensors").read_bytes()
    with pytest.raises(torch.OutOfMemoryError):  # a fixed batch size is the user's choice: no silent change
        train_cell(
            model, task, "en", 3, tmp_path / "fixed", LoraSpec(r=4, alpha=8), spec.model_copy(update={"batch_size": 8})
        )
    assert not (tmp_path / "fixed").exists()


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_training_steps_read_nothing_from_the_device(setup, tmp_path, xling_host_reads, kind):
    """The loop reads tensor values into Python per epoch (losses, kept adapter), never per step: 2 epochs of 8
    steps make as many reads as 2 epochs of 2 (on a GPU each read waits for the device)."""
    from xling.models.encoder import default_model_path
    from xling.train import train_cell

    root, tiny = setup
    model, task, lang = tiny, str(root / "task.yaml"), "en"
    if kind == "encoder":
        model = ModelSpec(name="minilm", path=default_model_path(), kind="encoder")
        task = "mini:numbers"
    reads = []
    for batch in (8, 2):
        xling_host_reads.clear()
        spec = TrainSpec(lr=1e-2, epochs=2, max_train_items=20, batch_size=batch, val_fraction=0.2)
        train_cell(model, task, lang, 1, tmp_path / f"b{batch}", LoraSpec(r=4, alpha=8), spec)
        reads.append(dict(xling_host_reads))
    assert reads[0] == reads[1]
