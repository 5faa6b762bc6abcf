"""xling's per-choice log-likelihoods equal lm-evaluation-harness 0.4.x's on a tiny offline Llama.

lm-eval runs in-process (``simple_evaluate`` with ``model="hf"``, ``pretrained=<tiny folder>``) on local
lm-eval task YAMLs; xling loads the same YAMLs and scores them. The tasks cover the rules that matter:
trailing whitespace in the context, non-Latin text, left truncation past the context length (the tiny
model has 64 positions), empty contexts (BOS as the context), multi-token continuations and single-token
letter continuations (one forward per item), and a chat template.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

WORDS = "red green blue yellow cat dog bird fish tree river city house der die das la le el és não 世界 मिल".split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("parity")
    model = build_tiny_llama(root / "tiny", seed=3, max_positions=64)
    rng = random.Random(0)
    docs = []
    for i in range(14):
        n_words = 60 if i in (3, 9) else rng.randint(2, 9)  # items 3 and 9 exceed 64 tokens: left truncation
        question = " ".join(rng.choice(WORDS) for _ in range(n_words)) + (" " if i % 3 == 0 else "")
        choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(4)]
        docs.append(
            {
                "id": f"d{i}",
                "question": question,
                "choices": choices,
                "answer": rng.randrange(4),
                "letter": "ABCD"[rng.randrange(4)],
            }
        )
    data = root / "docs.jsonl"
    data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    (root / "par_cont.yaml").write_text(
        f"task: par_cont\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_choice: choices\ndoc_to_target: answer\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
    )
    (root / "par_letters.yaml").write_text(
        f"task: par_letters\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}'
        '\\nD. {{choices[3]}}\\nAnswer:"\n'
        "doc_to_choice: \"{{['A', 'B', 'C', 'D']}}\"\ndoc_to_target: letter\n"
        "metric_list:\n  - metric: acc\n"
    )
    (root / "par_empty.yaml").write_text(
        f"task: par_empty\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: \"{{'' if id in ['d1', 'd4'] else question}}\"\ndoc_to_choice: choices\ndoc_to_target: answer\n"
    )
    return root, model


def run_lmeval(root, model, tasks=("par_cont", "par_letters", "par_empty"), chat=False):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(root), include_defaults=False)
    out = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32",
        tasks=list(tasks),
        task_manager=manager,
        log_samples=True,
        batch_size=4,
        device="cpu",
        apply_chat_template=chat,
    )
    lls = {}
    for task, samples in out["samples"].items():
        for s in samples:
            for c, resp in enumerate(s["filtered_resps"]):
                lls[(task, s["doc"]["id"], c)] = float(resp[0])
    return lls, out["results"]


def test_loglikelihoods_equal_lmeval(setup):
    from xling.config import ModelSpec, ScoreSpec
    from xling.score import score_items, summarize
    from xling.tasks.registry import load_items

    root, model = setup
    ref, ref_results = run_lmeval(root, model)
    items = [
        it
        for t in ("par_cont", "par_letters", "par_empty")
        for it in load_items(str(root / f"{t}.yaml"), "und", "test")
    ]
    assert sum(it.context == "" for it in items) == 2
    df = score_items(ModelSpec(name="tiny", path=str(model)), {"base": None}, items, ScoreSpec(batch_size=3))
    assert len(df) == len(ref) == 14 * 4 * 3
    ours = np.array([df_row.loglik for df_row in df.itertuples()])
    theirs = np.array([ref[(r.task, r.item_id, r.choice)] for r in df.itertuples()])
    assert np.abs(ours - theirs).max() < 1e-4
    # the letter task takes the single-token path, the other has multi-token continuations
    assert (df[df.task == "par_letters"].n_tokens == 1).all()
    assert (df[df.task == "par_cont"].n_tokens > 1).any()
    scores = summarize(df).set_index("task")
    assert scores.loc["par_cont", "acc"] == pytest.approx(ref_results["par_cont"]["acc,none"])
    assert scores.loc["par_cont", "acc_norm"] == pytest.approx(ref_results["par_cont"]["acc_norm,none"])
    assert scores.loc["par_letters", "acc"] == pytest.approx(ref_results["par_letters"]["acc,none"])


def test_chat_template_loglikelihoods_equal_lmeval(setup):
    """With a chat template lm-eval wraps the context as a user turn and drops the target delimiter."""
    from xling.config import ModelSpec, ScoreSpec
    from xling.score import score_items
    from xling.tasks.registry import load_items

    root, model = setup
    ref, _ = run_lmeval(root, model, ("par_cont",), chat=True)
    items = load_items(str(root / "par_cont.yaml"), "und", "test")
    df = score_items(ModelSpec(name="tiny", path=str(model)), {"base": None}, items, ScoreSpec(chat_template=True))
    theirs = np.array([ref[(r.task, r.item_id, r.choice)] for r in df.itertuples()])
    assert np.abs(df.loglik.to_numpy() - theirs).max() < 1e-4
