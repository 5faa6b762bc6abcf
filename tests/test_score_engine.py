"""Scoring many adapters in one pass: mixed batches equal one adapter at a time; metrics; bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from xling.errors import XlingError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


def random_adapter(base_dir, out_dir, seed: int):
    """A LoRA adapter with random (non-zero) weights on the tiny model, saved like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from xling.models.adapters import quiet_peft, write_adapter_meta
    from xling.models.base import base_fingerprint

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    fp = base_fingerprint(base)
    with quiet_peft():
        model = get_peft_model(
            base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
        )
    model.save_pretrained(out_dir)
    write_adapter_meta(out_dir, "tiny", str(base_dir), fp)
    return out_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("score")
    model = build_tiny_llama(root / "tiny", seed=0)
    rng = random.Random(1)
    words = "red green blue cat dog bird tree river city house".split()
    for lang in ("en", "de"):
        rows = [
            {
                "id": f"q{i}",
                "question": " ".join(rng.choice(words) for _ in range(rng.randint(2, 12))),
                "choices": [rng.choice(words) + (" x" * rng.randint(0, 2)) for _ in range(3)],
                "gold": rng.randrange(3),
            }
            for i in range(10)
        ]
        (root / f"{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "task.yaml").write_text(
        'name: toy\ndata: "{language}.jsonl"\nlanguages: [en, de]\nsplits: {test: x}\n'
        'template: "Q: {{question}}\\nA:"\n'
    )
    (root / "letters.yaml").write_text(
        'name: let\ndata: "{language}.jsonl"\nlanguages: [en, de]\nsplits: {test: x}\nprompt_format: letters\n'
    )
    adapters = {f"ad{i}": random_adapter(model, root / f"ad{i}", seed=i) for i in range(3)}
    return root, model, adapters


def test_mixed_batch_equals_one_adapter_at_a_time(setup):
    from xling.config import ModelSpec, ScoreSpec
    from xling.score import score_items
    from xling.tasks.registry import load_items

    root, model, adapters = setup
    spec = ModelSpec(name="tiny", path=str(model))
    items = [
        it
        for t in ("task.yaml", "letters.yaml")
        for lang in ("en", "de")
        for it in load_items(str(root / t), lang, "test")
    ]
    mixed = score_items(spec, {"base": None, **adapters}, items, ScoreSpec(batch_size=4, adapters_per_batch=3))
    assert mixed.attrs["peak_memory_bytes"] > 0
    assert list(mixed.columns) == [
        "adapter",
        "task",
        "language",
        "item_id",
        "choice",
        "loglik",
        "n_tokens",
        "n_chars",
        "n_bytes",
        "is_greedy",
        "is_gold",
        "kind",
    ]
    for label, path in {"base": None, **adapters}.items():
        alone = score_items(spec, {label: path}, items, ScoreSpec(batch_size=16))
        got = mixed[mixed.adapter == label].reset_index(drop=True)
        assert np.abs(got.loglik.to_numpy() - alone.loglik.to_numpy()).max() < 1e-4
        assert (got.is_greedy.to_numpy() == alone.is_greedy.to_numpy()).all()
    # the adapters really differ from the base and from each other
    by = mixed.pivot_table(index=["task", "language", "item_id", "choice"], columns="adapter", values="loglik")
    assert (by["ad0"] - by["base"]).abs().max() > 1e-3 and (by["ad0"] - by["ad1"]).abs().max() > 1e-3


def test_summarize_known_answer():
    from xling.score import summarize

    rows = []
    # item a: loglik favours choice 0 (gold 1); per char favours choice 1 (long); per byte the same
    for choice, (ll, chars, nbytes, gold) in enumerate([(-2.0, 1, 1, False), (-3.0, 10, 10, True)]):
        rows.append(("m", "t", "en", "a", choice, ll, 1, chars, nbytes, False, gold, "causal"))
    # item b: ties go to the first choice (gold), as numpy.argmax does; per byte choice 1 wins (UTF-8 is longer)
    for choice, (ll, chars, nbytes, gold) in enumerate([(-4.0, 2, 2, True), (-4.0, 2, 6, False)]):
        rows.append(("m", "t", "en", "b", choice, ll, 1, chars, nbytes, False, gold, "causal"))
    df = pd.DataFrame(
        rows,
        columns=[
            "adapter",
            "task",
            "language",
            "item_id",
            "choice",
            "loglik",
            "n_tokens",
            "n_chars",
            "n_bytes",
            "is_greedy",
            "is_gold",
            "kind",
        ],
    )
    out = summarize(df).iloc[0]
    assert (out.n, out.acc, out.acc_norm, out.acc_bytes) == (2, 0.5, 1.0, 0.5)
    out = summarize(df.assign(kind="encoder")).iloc[0]  # cosines: no length normalisation
    assert (out.acc, out.acc_norm, out.acc_bytes) == (0.5, 0.5, 0.5)


def test_adapter_of_another_base_is_refused(setup, tmp_path):
    from xling.config import ModelSpec
    from xling.models.tiny import build_tiny_llama
    from xling.score import score_items
    from xling.tasks.registry import load_items

    root, model, adapters = setup
    other = build_tiny_llama(tmp_path / "other", seed=5)
    foreign = random_adapter(other, tmp_path / "foreign", seed=0)
    items = load_items(str(root / "task.yaml"), "en", "test")
    with pytest.raises(XlingError, match="trained on base model"):
        score_items(ModelSpec(name="tiny", path=str(model)), {"base": None, "f": foreign}, items)
    with pytest.raises(XlingError, match="no such folder"):
        score_items(ModelSpec(name="tiny", path=str(model)), {"x": tmp_path / "missing"}, items)
    with pytest.raises(XlingError, match="no model at"):
        score_items(ModelSpec(name="nope", path=str(tmp_path / "nope")), {"base": None}, items)


def test_eval_cli_writes_outputs_and_fails_cleanly(setup, tmp_path, monkeypatch, capsys):
    import sys

    from xling.cli import main

    root, model, adapters = setup
    out = tmp_path / "out"
    argv = [
        "xling",
        "eval",
        "--model",
        str(model),
        "--adapter",
        f"one={adapters['ad0']}",
        "--task",
        str(root / "task.yaml"),
        "-o",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["adapter", "task", "language", "n", "acc", "acc_norm", "acc_bytes"]
    assert set(scores.adapter) == {"base", "one"} and (scores.n == 10).all()
    ll = pd.read_parquet(out / "loglikelihoods.parquet")
    assert len(ll) == 2 * 2 * 10 * 3 and json.loads((out / "run.json").read_text())["peak_memory_bytes"] > 0

    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("score:\n  batch_sise: 4\n")
    for extra, message in (
        (["--config", str(bad_cfg)], "batch_sise"),
        (["--lang", "xx"], "unknown language"),
        (["--adapter", str(tmp_path)], "not an adapter folder"),
    ):
        out2 = tmp_path / "out2"
        monkeypatch.setattr(sys, "argv", argv[:-1] + [str(out2)] + extra)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
        assert not out2.exists()
