"""Scoring a base model and K adapters: the cost of the adapters, and xling against the other ways to do it.

1. Overhead (the 1.10× goal): xling scoring the base and K adapters in one run against K+1 passes of the base model
   alone over the same items, with the model loaded (start-up excluded) and the same forward shapes (a base pass
   takes K+1 times the rows); also against peft's own mixed-batch forward (``adapter_names=``), which xling used
   before the grouped low-rank path. The floor is 1 + LoRA FLOPs / base FLOPs of the adapted projections.
2. Against the alternatives, end to end: lm-eval in-process with ``peft=`` once per adapter, the paper's merge →
   save → lm-eval loop per adapter (``--cli`` adds the ``lm_eval`` command per adapter, a fresh process each).

Anchor and contenders run in the same process on the same model, adapters and tasks (4 local lm-eval task YAMLs ×
3 languages, written here); it prints wall and CPU seconds, ratios, and the largest per-choice |Δ log-likelihood|.

    python benchmarks/bench_scoring.py                                       # hidden 512, 32K vocab, CPU, 1,500 items
    python benchmarks/bench_scoring.py --skip-compare                        # the overhead alone
    python benchmarks/bench_scoring.py --skip-overhead --items 10            # the comparison alone
    python benchmarks/bench_scoring.py --model Qwen/Qwen2.5-0.5B --items 200 --dtype bfloat16   # a GPU

Adapters are LoRA (r = ``--rank``, 8 by default) on every projection with random weights
(``init_lora_weights=False``): they cost the same to evaluate as trained ones.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

TASKS = ("colours", "animals", "letters", "long")
LANGS = ("en", "de", "fr")
WORDS = {
    "en": "red green blue cat dog bird tree river city house the of".split(),
    "de": "rot grün blau Katze Hund Vogel Baum Fluss Stadt Haus der die".split(),
    "fr": "rouge vert bleu chat chien oiseau arbre rivière ville maison le la".split(),
}


def write_tasks(root: Path, n_items: int) -> list[Path]:
    """4 lm-eval multiple_choice task YAMLs per language over local JSONL files."""
    yamls = []
    for lang in LANGS:
        words = WORDS[lang]
        for task in TASKS:
            rng = random.Random(f"{task}-{lang}")
            q_len = (20, 60) if task == "long" else (3, 12)
            docs = [
                {
                    "id": f"{task}{i}",
                    "question": " ".join(rng.choice(words) for _ in range(rng.randint(*q_len))),
                    "choices": [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(4)],
                    "gold": rng.randrange(4),
                }
                for i in range(n_items)
            ]
            data = root / f"{task}_{lang}.jsonl"
            data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
            if task == "letters":
                text = (
                    "{{question}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}"
                    "\\nAnswer:"
                )
                choice = "\"{{['A', 'B', 'C', 'D']}}\""
            else:
                text, choice = "Question: {{question}}\\nAnswer:", "choices"
            path = root / f"{task}_{lang}.yaml"
            path.write_text(
                f"task: {task}_{lang}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
                f'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{text}"\n'
                f"doc_to_choice: {choice}\ndoc_to_target: gold\nmetadata:\n  language: {lang}\n"
                "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
            )
            yamls.append(path)
    return yamls


def make_adapters(model: str, root: Path, k: int, dtype: str, rank: int) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from xling.models.adapters import quiet_peft, write_adapter_meta
    from xling.models.base import base_fingerprint

    out = {}
    for i in range(k):
        torch.manual_seed(i)
        base = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        fp = base_fingerprint(base)
        with quiet_peft():
            peft_model = get_peft_model(
                base, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
            )
        path = root / f"adapter{i}"
        peft_model.save_pretrained(path)
        write_adapter_meta(path, model, model, fp)
        out[f"adapter{i}"] = path
    return out


def run_xling(model: str, adapters: dict[str, Path], yamls: list[Path], dtype: str, batch: int):
    from xling.config import ModelSpec, ScoreSpec
    from xling.score import score_items
    from xling.tasks.registry import load_items

    items = [it for y in yamls for it in load_items(str(y), y.stem.split("_")[-1], "test")]
    spec = ModelSpec(name=model, path=model, dtype=dtype)
    df = score_items(
        spec, {"base": None, **adapters}, items, ScoreSpec(batch_size=batch, adapters_per_batch=len(adapters) + 1)
    )
    lls = {(r.adapter, r.task, r.item_id, r.choice): r.loglik for r in df.itertuples()}
    return lls, df.attrs["peak_memory_bytes"]


def lora_flop_share(model: str, rank: int) -> float:
    """LoRA FLOPs / base FLOPs per token: 2·r·(d_in + d_out) against 2·d_in·d_out for every adapted projection,
    plus the LM head (not adapted) on the base side."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model)
    d, ff = c.hidden_size, c.intermediate_size
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d)]
    base = c.num_hidden_layers * sum(i * o for i, o in shapes) + d * c.vocab_size
    lora = c.num_hidden_layers * sum(rank * (i + o) for i, o in shapes)
    return lora / base


def overhead(model: str, adapters: dict[str, Path], yamls: list[Path], dtype: str, batch: int, repeats: int):
    """Seconds (wall, CPU) of scoring base + K adapters in one run, of K+1 base passes, and of peft's mixed batch,
    each with the model already loaded; the best of ``repeats`` runs. The K+1 base passes run in exactly the
    grouped run's forward shapes (every segment switched to the base model), so they differ only by the adapters'
    work: the batch composition decides how many positions reach the 32K-wide LM head."""
    from xling.config import ModelSpec, ScoreSpec
    from xling.models import causal, multilora
    from xling.tasks.registry import load_items

    items = [it for y in yamls for it in load_items(str(y), y.stem.split("_")[-1], "test")]
    spec = ModelSpec(name=model, path=model, dtype=dtype)
    k1 = len(adapters) + 1
    assert multilora  # CausalScorer groups adapters by default

    def best(scorer, runs: int):
        times = []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(runs):
                frame = scorer.score(items)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        return min(times), frame

    scorer = causal.CausalScorer(spec, {"base": None, **adapters}, ScoreSpec(batch_size=batch, adapters_per_batch=k1))
    grouped, frame = best(scorer, 1)
    slots, scorer.slot = scorer.slot, {}  # every segment the base model: K+1 base passes in the same shapes
    base, _ = best(scorer, 1)
    scorer.slot = slots
    alone, _ = best(causal.CausalScorer(spec, {"base": None}, ScoreSpec(batch_size=batch)), k1)  # the usual way
    original = causal.group_adapters
    causal.group_adapters = lambda *a: (_ for _ in ()).throw(causal.XlingError("peft's own mixed batch"))
    try:
        peft_scorer = causal.CausalScorer(
            spec, {"base": None, **adapters}, ScoreSpec(batch_size=batch, adapters_per_batch=k1)
        )
        assert peft_scorer.peft_mixed
        mixed, peft_frame = best(peft_scorer, 1)
    finally:
        causal.group_adapters = original
    delta = float(np.abs(frame.loglik.to_numpy() - peft_frame.loglik.to_numpy()).max())
    return grouped, base, alone, mixed, delta, len(items)


def run_lmeval(model_args: str, label: str, yamls: list[Path], root: Path, device: str, batch: int) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(root), include_defaults=False)
    out = simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=[y.stem for y in yamls],
        task_manager=manager,
        log_samples=True,
        batch_size=batch,
        device=device,
    )
    lls = {}
    for task, samples in out["samples"].items():
        for s in samples:
            for c, resp in enumerate(s["filtered_resps"]):
                lls[(label, task, s["doc"]["id"], c)] = float(resp[0])
    return lls


def run_lmeval_cli(model_args: str, yamls: list[Path], root: Path, device: str, batch: int, threads: int) -> None:
    """lm-eval as a user runs it: one ``lm_eval`` command (a fresh process) per model or adapter."""
    import os
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        model_args,
        "--tasks",
        ",".join(y.stem for y in yamls),
        "--include_path",
        str(root),
        "--batch_size",
        str(batch),
        "--device",
        device,
        "--output_path",
        str(root / "lmeval-cli"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def merge_and_save(model: str, adapter: Path, out: Path, dtype: str) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def max_delta(ours: dict, theirs: dict) -> float:
    keys = [k for k in theirs]
    assert all(k in ours for k in keys), "request sets differ"
    return float(np.max(np.abs(np.array([ours[k] for k in keys]) - np.array([theirs[k] for k in keys]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or hub id (default: the tiny offline Llama)")
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the adapters")
    parser.add_argument("--items", type=int, default=125, help="items per task and language (12 cells)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden-size", type=int, default=512, help="width of the tiny model (no --model)")
    parser.add_argument("--layers", type=int, default=2, help="layers of the tiny model (no --model)")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary of the tiny model (no --model)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both sides)")
    parser.add_argument("--repeats", type=int, default=2, help="overhead runs per side (the best counts)")
    parser.add_argument("--skip-merge", action="store_true")
    parser.add_argument("--skip-compare", action="store_true", help="only the overhead measurement")
    parser.add_argument("--skip-overhead", action="store_true", help="only the comparison with lm-eval")
    parser.add_argument("--cli", action="store_true", help="also run the lm_eval command once per adapter")
    args = parser.parse_args()

    import lm_eval.evaluator
    import lm_eval.models.huggingface  # noqa: F401
    import torch

    import xling.score  # noqa: F401

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="xling-bench-"))
    try:
        if args.model is None:
            from xling.models.tiny import build_tiny_llama

            args.model = str(
                build_tiny_llama(
                    root / "tiny", seed=0, hidden_size=args.hidden_size, n_layers=args.layers, vocab_size=args.vocab
                )
            )
        yamls = write_tasks(root, args.items)
        adapters = make_adapters(args.model, root, args.adapters, args.dtype, args.rank)
        n_choices = len(yamls) * args.items * 4
        print(
            f"model {args.model} on {device}, {len(adapters)} adapters (r={args.rank}) + base, {len(yamls)} task "
            f"cells, {n_choices} choices per model"
        )

        if not args.skip_overhead:
            (g_wall, g_cpu), (b_wall, b_cpu), (a_wall, a_cpu), (m_wall, m_cpu), delta, n_items = overhead(
                args.model, adapters, yamls, args.dtype, args.batch, args.repeats
            )
            floor = 1 + lora_flop_share(args.model, args.rank)
            k1 = len(adapters) + 1
            print(f"\noverhead on {n_items} items, model loaded (best of {args.repeats}):")
            print(f"{'':44s} {'wall s':>7s} {'× base':>7s} {'CPU s':>7s} {'× base':>7s}")
            for name, wall, cpu in (
                (f"{k1} base passes, same shapes (anchor)", b_wall, b_cpu),
                (f"{k1} runs of the base alone, batch {args.batch}", a_wall, a_cpu),
                ("xling, base + adapters, grouped LoRA", g_wall, g_cpu),
                ("peft mixed batch (adapter_names=)", m_wall, m_cpu),
            ):
                print(f"{name:44s} {wall:7.1f} {wall / b_wall:7.2f} {cpu:7.1f} {cpu / b_cpu:7.2f}")
            print(f"FLOP floor 1 + LoRA/base = {floor:.3f}; goal <= 1.10x; grouped vs peft max |Δ loglik| {delta:.1e}")

        if args.skip_compare:
            return

        t0, c0 = time.perf_counter(), time.process_time()
        ours, peak = run_xling(args.model, adapters, yamls, args.dtype, args.batch)
        t_xling, c_xling = time.perf_counter() - t0, time.process_time() - c0
        print(f"xling one pass: {t_xling:.1f}s, peak memory {peak / 2**20:.0f} MiB")

        t0, c0 = time.perf_counter(), time.process_time()
        ref = run_lmeval(f"pretrained={args.model},dtype={args.dtype}", "base", yamls, root, device, args.batch)
        for name, path in adapters.items():
            ref.update(
                run_lmeval(
                    f"pretrained={args.model},peft={path},dtype={args.dtype}", name, yamls, root, device, args.batch
                )
            )
        rows = [
            ("xling, one process, mixed adapters", t_xling, c_xling, 0.0),
            (
                "lm-eval once per adapter (peft=)",
                time.perf_counter() - t0,
                time.process_time() - c0,
                max_delta(ours, ref),
            ),
        ]

        if args.cli:
            import resource

            t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            run_lmeval_cli(f"pretrained={args.model},dtype={args.dtype}", yamls, root, device, args.batch, args.threads)
            for path in adapters.values():
                run_lmeval_cli(
                    f"pretrained={args.model},peft={path},dtype={args.dtype}",
                    yamls,
                    root,
                    device,
                    args.batch,
                    args.threads,
                )
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
            rows.append(("lm-eval CLI per adapter (peft=), new process", time.perf_counter() - t0, cpu, float("nan")))

        if not args.skip_merge:
            t0, c0 = time.perf_counter(), time.process_time()
            merged_ref = run_lmeval(
                f"pretrained={args.model},dtype={args.dtype}", "base", yamls, root, device, args.batch
            )
            for name, path in adapters.items():
                folder = merge_and_save(args.model, path, root / f"merged-{name}", args.dtype)
                merged_ref.update(
                    run_lmeval(f"pretrained={folder},dtype={args.dtype}", name, yamls, root, device, args.batch)
                )
                shutil.rmtree(folder)
            rows.append(
                (
                    "merge, save, lm-eval per adapter (paper)",
                    time.perf_counter() - t0,
                    time.process_time() - c0,
                    max_delta(ours, merged_ref),
                )
            )

        # CPU seconds of this process are the steadier measure on a shared machine; wall time is what a user waits
        print(f"\n{'method':42s} {'wall s':>7s} {'× xling':>7s} {'CPU s':>7s} {'× xling':>7s} {'max |Δ loglik|':>14s}")
        for name, wall, cpu, delta in rows:
            print(f"{name:42s} {wall:7.1f} {wall / t_xling:7.1f} {cpu:7.1f} {cpu / c_xling:7.1f} {delta:14.2e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
