"""The encoder model kind: cosine scoring equal to sentence-transformers, many adapters equal to one at a time,
LoRA training raises a source cell's accuracy, deterministic, through ``xling.train`` and ``xling.score``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.errors import XlingError
from xling.models.encoder import _read_st_config, default_model_path
from xling.score import COLUMNS, score_items, summarize
from xling.tasks.items import MCItem
from xling.tasks.mini import load_items
from xling.train import train_adapter, train_cell

LORA = LoraSpec(r=8, alpha=16, target_modules=["query", "key", "value", "dense"])
TRAIN = TrainSpec(epochs=3, lr=1e-3, batch_size=8, val_fraction=0.2, max_train_items=40)


@pytest.fixture(scope="module")
def model() -> ModelSpec:
    return ModelSpec(name="all-MiniLM-L6-v2", path=default_model_path(), kind="encoder")


@pytest.fixture(scope="module")
def numbers_adapter(model, tmp_path_factory) -> Path:
    """A LoRA adapter trained through ``xling.train.train_cell`` on 32 items of mini:numbers in English."""
    return train_cell(model, "mini:numbers", "en", 0, tmp_path_factory.mktemp("a") / "numbers-en", LORA, TRAIN)


def _obvious_items() -> list[MCItem]:
    choices = (
        "A man is playing a guitar.",
        "The stock market fell sharply today.",
        "Pasta boils in a large pot.",
        "The cat sleeps on the sofa.",
    )
    return [
        MCItem("g0", "toy", "en", "Someone strums an acoustic guitar on stage.", choices, 0),
        MCItem("g1", "toy", "en", "Share prices dropped across all exchanges.", choices, 1),
        MCItem("g2", "toy", "en", "A kitten is napping on the couch.", choices, 3),
    ]


def test_default_model_ships_with_the_package():
    folder = Path(default_model_path())
    assert (folder / "model.safetensors").is_file() and (folder / "modules.json").is_file()


@pytest.mark.slow
def test_scores_are_sentence_transformers_cosines_and_the_obvious_choice_wins(model):
    from sentence_transformers import SentenceTransformer

    items = _obvious_items()
    frame = score_items(model, {"base": None}, items)
    assert list(frame.columns) == COLUMNS and set(frame["kind"]) == {"encoder"}
    assert frame.loc[frame.is_greedy, "is_gold"].all()
    reference = SentenceTransformer(default_model_path(), device="cpu")
    for item in items:
        emb = reference.encode([item.context, *item.choices], normalize_embeddings=True)
        got = frame.loc[frame.item_id == item.id].sort_values("choice")["loglik"].to_numpy()
        np.testing.assert_allclose(got, emb[1:] @ emb[0], atol=1e-5)
    assert frame.loc[frame.choice == 0, "n_tokens"].iloc[0] == 7  # "a man is playing a guitar ." without specials


@pytest.mark.slow
def test_training_raises_source_cell_accuracy(model, numbers_adapter):
    log = json.loads((numbers_adapter / "train_log.json").read_text())
    assert len(log["epochs"]) == 3 and 1 <= log["kept_epoch"] <= 3 and log["n_train"] + log["n_val"] == 40
    files = {p.name for p in numbers_adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json"} <= files
    items = load_items("numbers", "en", "test")[:40]
    acc = summarize(score_items(model, {"base": None, "tuned": numbers_adapter}, items)).set_index("adapter")["acc"]
    assert acc["tuned"] >= acc["base"] + 0.15, acc.to_dict()


@pytest.mark.slow
def test_many_adapters_at_once_equal_one_at_a_time(model, numbers_adapter, tmp_path):
    other = _random_adapter(model, tmp_path / "random")
    items = load_items("numbers", "de", "test")[:4] + load_items("currency", "en", "test")[:4]
    together = score_items(model, {"base": None, "n": numbers_adapter, "c": other}, items, ScoreSpec(batch_size=5))
    for label, path in (("base", None), ("n", numbers_adapter), ("c", other)):
        alone = score_items(model, {label: path}, items, ScoreSpec(batch_size=64))
        np.testing.assert_allclose(
            together.loc[together.adapter == label, "loglik"].to_numpy(), alone["loglik"].to_numpy(), atol=1e-5
        )
    base, tuned = (together.loc[together.adapter == a, "loglik"].to_numpy() for a in ("base", "n"))
    assert np.abs(base - tuned).max() > 1e-3  # the adapter really is switched on


def _random_adapter(model: ModelSpec, folder: Path) -> Path:
    """An untrained LoRA adapter with random (non-zero) B matrices: changes every embedding."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    from xling.models.adapters import quiet_peft

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False)
    with quiet_peft():
        get_peft_model(AutoModel.from_pretrained(model.location), config).save_pretrained(str(folder))
    return folder


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(model, tmp_path):
    from safetensors.numpy import load_file

    items = load_items("region", "fr", "train")[:6]
    spec = TrainSpec(epochs=1, lr=1e-3, batch_size=4, warmup_ratio=0.0)  # one step: no warm-up at lr 0
    weights = []
    for name in ("a", "b"):
        log = train_adapter(model, items[:4], items[4:], 5, tmp_path / name, LORA, spec)
        weights.append(load_file(tmp_path / name / "adapter_model.safetensors"))
        assert log["epochs"][0]["val_loss"] is not None and log["kept_epoch"] == 1
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(np.abs(v).max() > 0 for k, v in weights[0].items() if "lora_B" in k)  # B starts at zero: it trained
    assert not any("pooler" in k for k in weights[0])


def test_missing_adapter_and_unsupported_modules_raise(model, tmp_path):
    with pytest.raises(XlingError, match="no such folder"):
        score_items(model, {"x": tmp_path / "nowhere"}, _obvious_items())
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
            ]
        )
    )
    with pytest.raises(XlingError, match="'Dense' module"):
        _read_st_config(str(tmp_path), None)
