"""The paper's training and evaluation, run on the tiny offline Llama against reference computations.

- training: xling's loop gives the adapter and per-epoch validation losses a Hugging Face ``Trainer`` configured as
  the release's ``finetune.py`` gives (warm-up, clipping, AdamW, eval loss, best epoch), on the release's examples;
- evaluation: on local copies of the aligned datasets, xling's per-choice log-likelihoods with the chat template
  equal ``lm_eval`` run as ``evaluate.py`` runs it (``apply_chat_template``, zero-shot) on lm-eval's own okapi and
  Global-MMLU task configs pointed at the same data, and the reported metrics are the ones ``score_norm`` uses;
- scoring robustness: packed rows under eager and SDPA attention, CUDA out-of-memory retries, merged adapters,
  the pinned chat-template date.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest

from xling.config import LoraSpec, ModelSpec, ScoreSpec, TrainSpec
from xling.tasks import paper

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The tiny Llama, local copies of the aligned datasets (de, en; 16 train / 6 test items) and two random
    LoRA adapters."""
    from paper_fixtures import write_all
    from test_score_engine import random_adapter

    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("protocol")
    model = build_tiny_llama(root / "tiny", seed=5)
    hub = write_all(root / "hub", ["de", "en"], {"train": 16, "test": 6})
    adapters = {f"ad{i}": random_adapter(model, root / f"ad{i}", seed=10 + i) for i in range(2)}
    return model, hub, adapters


def test_release_tokenisation(assets):
    """ARC/Global-MMLU/HellaSwag: no special tokens, target tokens last; TruthfulQA: the tokenizer's BOS, padded to
    the length on the tokenizer's side, right-truncated, loss on every real token."""
    from transformers import AutoTokenizer

    from xling.models.causal import IGNORE, release_example, release_lm_example

    tok = AutoTokenizer.from_pretrained(assets[0])
    ids, labels, mask = release_example(tok, "Question: Sky?\nA) blue\nB) red\nAnswer:", " A", 256)
    target = tok(" A", add_special_tokens=False)["input_ids"]
    assert ids == tok("Question: Sky?\nA) blue\nB) red\nAnswer:", add_special_tokens=False)["input_ids"] + target
    assert ids[0] != tok.bos_token_id and labels == [IGNORE] * (len(ids) - len(target)) + target and all(mask)
    assert release_example(tok, "x " * 300, " A", 256)[0][-len(target) :] == target  # left truncation keeps the answer
    text = "Question: Why?\nAnswer: " + "because " * 10
    ids, labels, mask = release_lm_example(tok, text, 16)
    assert len(ids) == 16 and ids[0] == tok.bos_token_id and all(mask) and labels == ids  # right-truncated
    ids, labels, mask = release_lm_example(tok, "Question: Why?\nAnswer: no", 32)
    n = sum(mask)
    assert mask == [1] * n + [0] * (32 - n) and labels[:n] == ids[:n] and labels[n:] == [IGNORE] * (32 - n)
    tok.padding_side = "left"
    assert release_lm_example(tok, "Question: Why?\nAnswer: no", 32)[2] == [0] * (32 - n) + [1] * n


def test_training_loop_equals_hf_trainer(assets, tmp_path):
    """One batch per epoch (so the Trainer's shuffling cannot matter), 10 validation items in batches of 4: the
    adapter kept and every epoch's validation loss equal the Trainer's; clipping is on and changes the result."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )
    from transformers import set_seed as hf_set_seed

    from xling.models.causal import tokenize_examples
    from xling.tasks.prompts import paper_trainable
    from xling.train import split_train_val, train_adapter

    model_dir, hub, _ = assets
    items = [it for it in paper.fetch_items("arc_challenge", "de", "train", str(hub)) if paper_trainable(it)][:14]
    train_items, val_items = split_train_val(items, 0.7, 42)
    assert (len(train_items), len(val_items)) == (4, 10)
    spec = TrainSpec(prompt_format="paper", batch_size=4, epochs=4, lr=2e-2, warmup_ratio=0.5, val_fraction=0.7)
    lora = LoraSpec(
        r=4, alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    model = ModelSpec(name="tiny", path=str(model_dir))
    log = train_adapter(model, train_items, val_items, 17, tmp_path / "xling", lora, spec)
    ours = load_file(tmp_path / "xling" / "adapter_model.safetensors")

    tok = AutoTokenizer.from_pretrained(model_dir)

    def dataset(examples):  # padded to one width, as the release's processors pad to max_length
        width = max(len(ids) for ids, _, _ in examples)
        return Dataset.from_dict(
            {
                "input_ids": [ids + [tok.pad_token_id] * (width - len(ids)) for ids, _, _ in examples],
                "attention_mask": [m + [0] * (width - len(m)) for _, _, m in examples],
                "labels": [y + [-100] * (width - len(y)) for _, y, _ in examples],
            }
        )

    hf_set_seed(17)  # finetune.py: set_seed, load the model, attach LoRA
    ref_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules=lora.target_modules, task_type="CAUSAL_LM"),
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        num_train_epochs=4,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=2e-2,
        warmup_steps=0.5,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=3,
        prediction_loss_only=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to=[],
        seed=17,
        data_seed=17,
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=ref_model,
        args=args,
        data_collator=default_data_collator,
        train_dataset=dataset(tokenize_examples(train_items, tok, spec, False)),
        eval_dataset=dataset(tokenize_examples(val_items, tok, spec, False)),
    )
    trainer.train()
    ref_val = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    assert np.allclose([e["val_loss"] for e in log["epochs"]], ref_val, rtol=1e-4)
    assert log["kept_epoch"] == 1 + int(np.argmin(ref_val)) and log["warmup_steps"] == 2
    ref = {k.replace(".default", ""): v for k, v in trainer.model.state_dict().items() if "lora_" in k}
    assert ours.keys() == ref.keys()
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ours) < 1e-5
    unclipped = train_adapter(
        model, train_items, val_items, 17, tmp_path / "noclip", lora, spec.model_copy(update={"max_grad_norm": None})
    )
    assert unclipped["epochs"][-1]["val_loss"] != pytest.approx(log["epochs"][-1]["val_loss"], rel=1e-4)


LMEVAL_TASKS = {  # lm-eval's own task configs (okapi and Global-MMLU), pointed at the local copies
    "arc_challenge": ("okapi/arc_multilingual/_arc_yaml", "validation_split: null\ntest_split: test\n"),
    "hellaswag": ("okapi/hellaswag_multilingual/_hellaswag_yaml", "validation_split: null\ntest_split: test\n"),
    "truthfulqa": ("okapi/truthfulqa_multilingual/_truthfulqa_mc1_yaml", "validation_split: null\ntest_split: test\n"),
    "global_mmlu": ("global_mmlu/default/de/_de_template_yaml", "fewshot_split: train\n"),  # zero-shot: unused
}


def test_paper_evaluation_equals_lm_eval_with_chat_template(assets, tmp_path):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from xling.score import score_items, summarize
    from xling.tasks.registry import resolve_task

    model_dir, hub, _ = assets
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    for name, (base, extra) in LMEVAL_TASKS.items():
        (tmp_path / f"{name}.yaml").write_text(
            f"include: {tasks_dir / base}\ntask: fx_{name}\ndataset_path: {hub / paper.BENCHMARKS[name].aligned}\n"
            f"dataset_name: de\n{extra}"
        )
    out = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=[f"fx_{n}" for n in LMEVAL_TASKS],
        num_fewshot=0,
        apply_chat_template=True,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
        log_samples=True,
        batch_size=4,
        device="cpu",
    )
    ref = {}
    for task, samples in out["samples"].items():
        for s in samples:
            for c, resp in enumerate(s["filtered_resps"]):
                ref[(task.removeprefix("fx_"), s["doc_id"], c)] = float(resp[0])
    items = [it for n in LMEVAL_TASKS for it in paper.fetch_items(n, "de", "test", str(hub))]
    df = score_items(
        ModelSpec(name="tiny", path=str(model_dir)), {"base": None}, items, ScoreSpec(chat_template=True, batch_size=4)
    )
    position = {
        (it.task, it.id): i for n in LMEVAL_TASKS for i, it in enumerate(paper.fetch_items(n, "de", "test", str(hub)))
    }
    theirs = np.array([ref[(r.task, position[(r.task, r.item_id)], r.choice)] for r in df.itertuples()])
    assert len(df) == len(ref) and np.abs(df.loglik.to_numpy() - theirs).max() < 1e-4
    scores = summarize(df).set_index("task")
    for name in LMEVAL_TASKS:
        results = out["results"][f"fx_{name}"]
        metric = resolve_task(name).norm_metric
        assert ("acc_norm,none" in results) == (metric == "acc_norm")  # score_norm = acc_norm where reported
        assert scores.loc[name, metric] == pytest.approx(results[f"{metric},none"])


def test_packed_rows_under_eager_and_sdpa_equal_unpacked(assets, monkeypatch):
    from xling.models import causal
    from xling.score import score_items

    model_dir, hub, adapters = assets
    items = paper.fetch_items("hellaswag", "en", "test", str(hub)) + paper.fetch_items(
        "arc_challenge", "en", "test", str(hub)
    )
    from xling.models.causal import load_causal

    runs = {}
    for attn in ("eager", "sdpa"):
        model = ModelSpec(name="tiny", path=str(model_dir), attn_implementation=attn)
        assert load_causal(model).model.config._attn_implementation == attn
        for pack in (True, False):
            runs[attn, pack] = score_items(
                model, {"base": None, **adapters}, items, ScoreSpec(pack_choices=pack)
            ).loglik.to_numpy()
    first = runs["eager", False]
    assert all(np.abs(v - first).max() < 1e-5 for v in runs.values())

    from types import SimpleNamespace

    assert not causal.can_pack(SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2")))
    seen = []
    original = causal.plan_rows
    monkeypatch.setattr(causal, "can_pack", lambda model: False)
    monkeypatch.setattr(causal, "plan_rows", lambda enc, n, pack=True: seen.append(pack) or original(enc, n, pack))
    loglik = score_items(ModelSpec(name="tiny", path=str(model_dir)), {"base": None, **adapters}, items).loglik
    assert seen == [False, False] and np.abs(loglik.to_numpy() - first).max() < 1e-5


def test_cuda_out_of_memory_halves_the_batch_and_retries(assets, monkeypatch):
    import torch

    from xling import score
    from xling.models import causal

    model_dir, hub, adapters = assets
    items = paper.fetch_items("truthfulqa", "de", "test", str(hub))
    model, spec = ModelSpec(name="tiny", path=str(model_dir)), ScoreSpec(batch_size=4, adapters_per_batch=2)
    expected = score.score_items(model, {"base": None, **adapters}, items, spec).loglik.to_numpy()
    original, sizes = causal.forward_rows, []

    def small_gpu(model, rows, n_ad, *args, limit=1, **kwargs):
        sizes.append((len(rows), n_ad))
        if len(rows) * n_ad > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(model, rows, n_ad, *args, **kwargs)

    monkeypatch.setattr(causal, "forward_rows", small_gpu)
    scorer = causal.CausalScorer(model, {"base": None, **adapters}, spec)
    frame = scorer.score(items)
    assert np.abs(frame.loglik.to_numpy() - expected).max() < 1e-5  # other batch shapes: float rounding only
    assert (scorer.batch_size, scorer.adapters_per_batch) == (1, 1) and frame.attrs["oom_retries"] == 3
    assert sizes[:3] == [(4, 2), (2, 2), (1, 2)]
    monkeypatch.setattr(causal, "forward_rows", lambda *a, **k: small_gpu(*a, limit=0))
    with pytest.raises(torch.OutOfMemoryError):
        causal.CausalScorer(model, {"base": None}, spec).score(items)


def test_merged_scoring_and_how_far_it_moves_logliks(assets):
    """Merged into fp32 weights the adapters score as unmerged (to float rounding) and the base weights come back
    exactly; merged into bf16 weights (the paper's dtype) log-likelihoods move by the bf16 rounding of W + BA."""
    import torch

    from xling.models.causal import CausalScorer

    model_dir, hub, adapters = assets
    items = paper.fetch_items("global_mmlu", "en", "test", str(hub)) + paper.fetch_items(
        "hellaswag", "en", "test", str(hub)
    )
    moved = {}
    for dtype in ("float32", "bfloat16"):
        model = ModelSpec(name="tiny", path=str(model_dir), dtype=dtype)
        unmerged = CausalScorer(model, {"base": None, **adapters}, ScoreSpec()).score(items).loglik.to_numpy()
        scorer = CausalScorer(model, {"base": None, **adapters}, ScoreSpec(merge=True))
        before = {k: v.clone() for k, v in scorer.lm.model.state_dict().items()}
        merged = scorer.score(items).loglik.to_numpy()
        assert all(torch.equal(before[k], v) for k, v in scorer.lm.model.state_dict().items())  # restored exactly
        n_base = len(merged) // 3
        assert np.abs(merged[:n_base] - unmerged[:n_base]).max() < 1e-5  # the base model: batch shapes only
        moved[dtype] = float(np.abs(merged[n_base:] - unmerged[n_base:]).max())
    print(f"merged vs unmerged adapters, max |delta loglik|: {moved}")
    assert moved["float32"] < 1e-4
    assert 1e-4 < moved["bfloat16"] < 0.5, moved


def test_chat_template_date_is_pinned(assets):
    from transformers import AutoTokenizer

    from xling.tasks.prompts import apply_chat

    tok = AutoTokenizer.from_pretrained(assets[0])
    tok.chat_template = (  # the date logic of Llama-3.2-Instruct's template
        "{%- if not date_string is defined %}{%- if strftime_now is defined %}{%- set date_string = "
        'strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- endif %}'
        "Today Date: {{ date_string }}\n{{ messages[0]['content'] }}"
    )
    assert apply_chat(tok, "Hi") == "Today Date: 26 Jul 2024\nHi"
    assert apply_chat(tok, "Hi", "03 Jan 2025") == "Today Date: 03 Jan 2025\nHi"
    today = datetime.datetime.now()
    assert apply_chat(tok, "Hi", None) == f"Today Date: {today.strftime('%d %b %Y')}\nHi"
