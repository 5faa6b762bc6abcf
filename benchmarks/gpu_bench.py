"""The GPU figures of issue 18, one step at a time; every row of the issue's table is printed with its goal as soon as
it is measured (``benchmarks/gpu.sh`` runs the steps, each under its own time limit, so a run cut short still
reports what it measured).

    python benchmarks/gpu_bench.py scoring  --work DIR [--smoke]   # rows 1, 5, 4, 2: adapters' cost, bf16 parity,
                                                                   #   memory
    python benchmarks/gpu_bench.py training --work DIR [--smoke]   # row 6: loop vs HF Trainer, kept workers
    python benchmarks/gpu_bench.py lmeval   --work DIR [--smoke]   # rows 7, 3: base-model tokens/s and end to end
                                                                   #   against lm-eval

The models are tiny Llamas (``xling.models.tiny``) widened to the issue's shapes with random weights, built on the
device and saved in bf16 under ``--work`` (kept between steps); nothing is fetched. Adapters are random LoRA on every
projection (peft's ``init_lora_weights=False``, B scaled by 0.05). ``--smoke`` runs the same rows at tiny sizes on
whatever device there is (a CI test runs it on a CPU, to prove the script before GPU time is spent on it); figures
that exist only on a GPU (peak device memory, host synchronisations, model FLOP utilisation) say so there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scoring  # the task files, adapters and lm-eval runs of the CPU benchmark


@dataclass(frozen=True)
class Shape:
    """A Llama shape: its description and ``build_tiny_llama``'s arguments."""

    text: str
    hidden: int
    layers: int
    heads: int
    kv: int
    ffn: int
    vocab: int
    tied: bool = False


@dataclass(frozen=True)
class Sizes:
    shape_a: Shape  # the "hidden 2048, 8 layers, 32K vocab"
    shape_1b: Shape  # Llama-3.2-1B's shape
    shape_train: Shape  # bench_grid's --causal-hidden 1024
    small: int  # items per task cell (12 cells): 240 items
    large: int  # 1,500 items
    langs: tuple[str, ...]
    adapters: int
    ranks: tuple[int, ...]
    e2e_adapters: int
    batch: int
    repeats: int
    init_range: float
    train_items: int
    train_words: int
    units: int
    unit_items: int  # training items of each unit in the per-unit overhead row
    fresh_process: bool  # also time one unit in a fresh ``xling train`` process


FULL = Sizes(
    shape_a=Shape("hidden 2048, 8 layers, 16/8 heads, FFN 4096, 32K vocab", 2048, 8, 16, 8, 4096, 32000),
    shape_1b=Shape(
        "Llama-3.2-1B shape (16 layers, 32/8 heads, FFN 8192, 128K vocab)", 2048, 16, 32, 8, 8192, 128256, True
    ),
    shape_train=Shape("hidden 1024, 4 layers, 16/8 heads, 32K vocab", 1024, 4, 16, 8, 2048, 32000),
    small=20,
    large=125,
    langs=("en", "de", "fr"),
    adapters=8,
    ranks=(8, 32),
    e2e_adapters=4,
    batch=32,
    repeats=2,
    init_range=0.02,
    train_items=256,
    train_words=120,
    units=3,
    unit_items=1024,
    fresh_process=True,
)
SMOKE = Sizes(
    shape_a=Shape("smoke: hidden 64, 2 layers, 1K vocab", 64, 2, 4, 2, 128, 1000),
    shape_1b=Shape("smoke: hidden 64, 2 layers, 2K vocab, tied", 64, 2, 4, 2, 256, 2000, True),
    shape_train=Shape("smoke: hidden 64, 2 layers, 1K vocab", 64, 2, 4, 2, 128, 1000),
    small=1,
    large=2,
    langs=("en",),
    adapters=2,
    ranks=(8, 32),
    e2e_adapters=1,
    batch=8,
    repeats=1,
    init_range=0.1,
    train_items=16,
    train_words=20,
    units=2,
    unit_items=16,
    fresh_process=False,
)


# --- printing ------------------------------------------------------------------------------------------------------


def row(number: str, what: str, measured: str, goal: str, met: bool | None) -> None:
    """One row of the issue's table, with its goal and whether this run meets it."""
    verdict = "n/a" if met is None else ("met" if met else "NOT met")
    print(f"[row {number}] {what} | {measured} | goal: {goal} | {verdict}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


# --- models, adapters, items ----------------------------------------------------------------------------------------


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_dir(work: Path, shape: Shape, sizes: Sizes) -> str:
    """The model of ``shape`` under ``work`` (built on the device in bf16 the first time)."""
    from xling.models.tiny import build_tiny_llama

    folder = work / f"model-{shape.hidden}-{shape.layers}-{shape.ffn}-{shape.vocab}"
    if not (folder / "config.json").is_file():
        t0 = time.perf_counter()
        build_tiny_llama(
            folder,
            hidden_size=shape.hidden,
            n_layers=shape.layers,
            n_heads=shape.heads,
            n_kv_heads=shape.kv,
            intermediate_size=shape.ffn,
            vocab_size=shape.vocab,
            tie_embeddings=shape.tied,
            init_range=sizes.init_range,
            dtype="bfloat16",
            device=str(device()),
        )
        note(f"built {shape.text} in {time.perf_counter() - t0:.1f} s")
    return str(folder)


def adapters(work: Path, model: str, k: int, rank: int) -> dict[str, Path]:
    """``k`` random LoRA adapters of rank ``rank`` on ``model`` (made the first time, on one loaded base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from xling.models.adapters import quiet_peft, write_adapter_meta
    from xling.models.base import base_fingerprint

    folder = work / f"adapters-{Path(model).name}-r{rank}"
    paths = {f"adapter{i}": folder / f"adapter{i}" for i in range(k)}
    if all((p / "adapter_config.json").is_file() for p in paths.values()):
        return paths
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16).to(device())
    fingerprint = base_fingerprint(base)
    for i, path in enumerate(paths.values()):
        torch.manual_seed(1000 * rank + i)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
        with quiet_peft():
            wrapped = get_peft_model(base, config)
        with torch.no_grad():
            for name, p in wrapped.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.05)
        wrapped.save_pretrained(path)
        write_adapter_meta(path, model, model, fingerprint)
        base = wrapped.unload()
    return paths


def tasks(work: Path, n_items: int, sizes: Sizes) -> tuple[list[Path], list]:
    """lm-eval task YAMLs (4 tasks × ``sizes.langs``) of ``n_items`` items each, and the same items for xling."""
    from xling.tasks.registry import load_items

    folder = work / f"tasks-{n_items}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        bench_scoring.write_tasks(folder, n_items)
    yamls = [y for y in sorted(folder.glob("*.yaml")) if y.stem.split("_")[-1] in sizes.langs]
    items = [it for y in yamls for it in load_items(str(y), y.stem.split("_")[-1], "test")]
    return yamls, items


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed(fn, repeats: int) -> float:
    """Best wall seconds of ``repeats`` calls (each ends in a synchronisation)."""
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def host_syncs(fn) -> int | None:
    """Synchronising CUDA calls made by ``fn`` (torch's sync debug mode); ``None`` without a GPU."""
    import warnings

    import torch

    if not torch.cuda.is_available():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


# --- step: scoring (rows 1, 5, 4, 2) --------------------------------------------------------------------------------


def overhead(
    number: str, what: str, model: str, paths: dict, items: list, sizes: Sizes, count_syncs: bool = False
) -> dict:
    """xling's grouped pass (base + K adapters) against K+1 base passes in the same forward shapes (the anchor),
    K+1 runs of the base alone, and peft's mixed batch; each side printed as measured, then the row."""
    from xling.config import ModelSpec, ScoreSpec
    from xling.models import causal

    spec = ModelSpec(name=Path(model).name, path=model, dtype="bfloat16")
    k1 = len(paths) + 1
    score = ScoreSpec(batch_size=sizes.batch, adapters_per_batch=k1)
    scorer = causal.CausalScorer(spec, {"base": None, **paths}, score)
    scorer.score(items[: sizes.batch])  # warm-up: kernels, cuBLAS handles, the allocator
    frames = {}
    grouped = timed(lambda: frames.setdefault("grouped", scorer.score(items)), sizes.repeats)
    note(f"{what}: xling grouped {grouped:.2f} s")
    slots, scorer.slot = scorer.slot, {}  # every segment the base model: K+1 base passes in the same shapes
    anchor = timed(lambda: scorer.score(items), sizes.repeats)
    scorer.slot = slots
    note(f"{what}: {k1} base passes in the same shapes (anchor) {anchor:.2f} s")
    syncs = None
    if count_syncs:
        rows = causal.plan_rows(causal.encode_items(items, scorer.lm.tokenizer), scorer.lm.max_length)
        n_batches = -(-len(rows) // sizes.batch)
        syncs = host_syncs(lambda: scorer.score(items))
        if syncs is not None:
            note(f"host synchronisations in one grouped pass: {syncs} ({n_batches} batches)")
    scorer = None  # free its memory
    free_memory()
    alone_scorer = causal.CausalScorer(spec, {"base": None}, ScoreSpec(batch_size=sizes.batch))
    alone_scorer.score(items[: sizes.batch])
    alone = timed(lambda: [alone_scorer.score(items) for _ in range(k1)], sizes.repeats)
    note(f"{what}: {k1} runs of the base alone {alone:.2f} s")
    alone_scorer = None  # free its memory
    free_memory()
    original = causal.group_adapters
    causal.group_adapters = lambda *a: (_ for _ in ()).throw(causal.XlingError("peft's own mixed batch"))
    try:
        peft_scorer = causal.CausalScorer(spec, {"base": None, **paths}, score)
    finally:
        causal.group_adapters = original
    peft_scorer.score(items[: sizes.batch])
    mixed = timed(lambda: frames.setdefault("peft", peft_scorer.score(items)), sizes.repeats)
    peft_scorer = None  # free its memory
    free_memory()
    floor = 1 + bench_scoring.lora_flop_share(
        model, int(json.loads((paths["adapter0"] / "adapter_config.json").read_text())["r"])
    )
    delta = float(np.abs(frames["grouped"].loglik.to_numpy() - frames["peft"].loglik.to_numpy()).max())
    ratio = grouped / anchor
    row(
        number,
        what,
        f"xling grouped {ratio:.2f}x ({grouped:.2f} s vs {anchor:.2f} s); peft mixed batch {mixed / anchor:.2f}x; "
        f"{k1} separate base runs {alone / anchor:.2f}x; FLOP floor {floor:.3f}x",
        "<= 1.10x",
        ratio <= 1.10,
    )
    return {"grouped": frames["grouped"], "peft_delta": delta, "syncs": syncs}


def parity(model: str, paths: dict, items: list, peft_delta: float) -> None:
    """Row 5: grouped bf16 scoring and the release's merged-bf16 path against float32 scoring of the same weights
    (saved in bf16, so float32 holds them exactly)."""
    from xling.config import ModelSpec, ScoreSpec
    from xling.models.causal import CausalScorer

    labels = {"base": None, **paths}
    frames = {}
    for name, dtype, merge in (
        ("fp32", "float32", False),
        ("grouped", "bfloat16", False),
        ("merged", "bfloat16", True),
    ):
        spec = ModelSpec(name=Path(model).name, path=model, dtype=dtype)
        frames[name] = CausalScorer(spec, labels, ScoreSpec(merge=merge, batch_size=16)).score(items)
        free_memory()

    def answers(frame):
        best = frame.groupby(["adapter", "item_id", "task"]).loglik.idxmax()
        return frame.loc[best].set_index(["adapter", "item_id", "task"]).choice

    ref = frames["fp32"]
    adapted = (ref.adapter != "base").to_numpy()
    out = {}
    for name in ("grouped", "merged"):
        err = np.abs(frames[name].loglik.to_numpy() - ref.loglik.to_numpy())[adapted]
        out[name] = (float(err.mean()), float(err.max()), float((answers(frames[name]) == answers(ref)).mean()))
    (gm, gx, ga), (mm, mx, ma) = out["grouped"], out["merged"]
    row(
        "5",
        "bf16 parity: per-choice |Δ log-likelihood| against float32 scoring of the same weights, and answers agreeing",
        f"grouped mean {gm:.4f}, max {gx:.3f}, agree {100 * ga:.2f} %; merged bf16 (the release's) mean {mm:.4f}, "
        f"max {mx:.3f}, agree {100 * ma:.2f} %; grouped vs peft mixed max {peft_delta:.3f}",
        "grouped error <= merged's (mean and max); agrees at least as often",
        gm <= mm and gx <= mx and ga >= ma,
    )


def memory(model: str, paths: dict, items: list, sizes: Sizes, shape: Shape) -> None:
    """Row 4: the peak memory of one xling pass against the formula, weights + adapters + one batch
    (``xling.models.causal.forward_bytes``), at the fixed batch and with ``batch_size: auto``."""
    import torch

    from xling.config import ModelSpec, ScoreSpec
    from xling.models.causal import CausalScorer, forward_bytes
    from xling.models.lmeval import encode_items, plan_rows

    spec = ModelSpec(name=Path(model).name, path=model, dtype="bfloat16")
    k1 = len(paths) + 1
    for batch in (sizes.batch, "auto"):
        scorer = CausalScorer(spec, {"base": None, **paths}, ScoreSpec(batch_size=batch, adapters_per_batch=k1))
        net = scorer.net
        weights = sum(p.numel() * p.element_size() for p in scorer.lm.model.parameters())
        extra = sum(b.numel() * b.element_size() for n, b in net.named_buffers() if n.endswith(("A_t", "B_t")))
        budget = scorer.budget
        t0 = time.perf_counter()
        frame = scorer.score(items)
        seconds = time.perf_counter() - t0
        rows = plan_rows(encode_items(items, scorer.lm.tokenizer), scorer.lm.max_length, scorer.pack)
        size = frame.attrs["batch_size"]
        e = next(scorer.lm.model.parameters()).element_size()
        eager = scorer.lm.model.config._attn_implementation == "eager"
        batch_bytes, r0 = 0, 0
        while r0 < len(rows):  # the batches the scorer made
            n = scorer._rows_for(rows, r0, k1)
            needed = sum(len(c) for r in rows[r0 : r0 + n] for _, c, _ in r.requests)
            step = forward_bytes(scorer.lm.model.config, n * k1, len(rows[r0].tokens), needed * k1, e, eager)
            batch_bytes, r0 = max(batch_bytes, step), r0 + n
        predicted = weights + extra + batch_bytes
        gib = 2**30
        text = (
            f"{shape.text}, base + {len(paths)} adapters, {len(items)} items, batch {batch} ({size} rows), "
            f"{seconds:.1f} s"
        )
        if torch.cuda.is_available():
            peak = frame.attrs["peak_memory_bytes"]
            total = torch.cuda.get_device_properties(0).total_memory
            measured = (
                f"peak {peak / gib:.2f} GiB; formula {predicted / gib:.2f} GiB = weights {weights / gib:.2f} + "
                f"adapters {extra / gib:.3f} + largest batch {batch_bytes / gib:.2f}"
            )
            if budget is not None:
                retries = frame.attrs["oom_retries"]
                used = 100 * (peak - weights - extra) / budget
                measured += (
                    f"; auto budget {budget / gib:.1f} GiB of {total / gib:.0f} GiB, {used:.0f} % used (a batch stops "
                    f"at the budget, the 2^31-element cap or the last row), {retries} OOM retries"
                )
            ok = peak <= predicted and (
                budget is None or (frame.attrs["oom_retries"] == 0 and peak <= weights + extra + budget)
            )
        else:
            measured = (
                f"no GPU: peak device memory not measured; formula {predicted / gib:.3f} GiB = weights "
                f"{weights / gib:.3f} + adapters {extra / gib:.4f} + largest batch {batch_bytes / gib:.3f}"
            )
            ok = None
        row(
            "4",
            f"peak GPU memory of one xling pass: {text}",
            measured,
            "peak <= weights + adapters + one batch (the formula); auto: rows from the free memory, no OOM retry",
            ok,
        )
        scorer = net = None  # free their memory
        free_memory()


def step_scoring(work: Path, sizes: Sizes) -> None:
    """Rows 1, 5, 4 and 2, cheapest first."""
    _, small = tasks(work, sizes.small, sizes)
    _, large = tasks(work, sizes.large, sizes)
    a = model_dir(work, sizes.shape_a, sizes)
    a8 = adapters(work, a, sizes.adapters, sizes.ranks[0])
    what = (
        f"base + {sizes.adapters} adapters (r={sizes.ranks[0]}) vs {sizes.adapters + 1} base passes, "
        f"{sizes.shape_a.text}, {len(small)} items, batch {sizes.batch}"
    )
    first = overhead("1", what, a, a8, small, sizes, count_syncs=True)
    if first["syncs"] is None:
        note("host synchronisations: n/a without a GPU (tests/test_multilora.py counts xling's own device reads)")
    parity(a, a8, small, first["peft_delta"])
    for rank in sizes.ranks[1:]:
        paths = adapters(work, a, sizes.adapters, rank)
        what = f"same at r={rank}, {sizes.shape_a.text}, {len(small)} items"
        overhead("1", what, a, paths, small, sizes)
    b = model_dir(work, sizes.shape_1b, sizes)
    b8 = adapters(work, b, sizes.adapters, sizes.ranks[0])
    overhead("2", f"{sizes.shape_1b.text}, r={sizes.ranks[0]}, {len(small)} items", b, b8, small, sizes)
    e2e = dict(list(b8.items())[: sizes.e2e_adapters])
    memory(b, e2e, large, sizes, sizes.shape_1b)
    for rank in sizes.ranks[1:]:
        paths = adapters(work, b, sizes.adapters, rank)
        overhead("2", f"{sizes.shape_1b.text}, r={rank}, {len(small)} items", b, paths, small, sizes)
    overhead("2", f"{sizes.shape_a.text}, r={sizes.ranks[0]}, {len(large)} items", a, a8, large, sizes)
    overhead("2", f"{sizes.shape_1b.text}, r={sizes.ranks[0]}, {len(large)} items", b, b8, large, sizes)


# --- step: training (row 6) ----------------------------------------------------------------------------------------


def step_training(work: Path, sizes: Sizes) -> None:
    """Row 6: xling's loop per step against the HF Trainer's, host synchronisations per step, and the per-unit
    overhead of a worker that keeps the base model (against a fresh process for one unit)."""
    import subprocess

    import bench_train
    import yaml

    from xling.config import LoraSpec, ModelSpec, TrainSpec
    from xling.train import keep_base_models, train_cell

    model = model_dir(work, sizes.shape_train, sizes)
    items = bench_train.make_items(sizes.train_items, sizes.train_words)
    root = work / "training"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    ours, steps = bench_train.xling_seconds_per_step(model, items, 8, 5e-5, root)
    note(f"xling loop {1000 * ours:.1f} ms per step ({steps} steps per epoch, batch 8)")
    theirs, optim = bench_train.trainer_seconds_per_step(model, items, 8, 5e-5, root)
    what = (
        f"training on {device().type} ({sizes.shape_train.text}; {len(items)} examples of up to "
        f"~{2 * sizes.train_words} tokens, batch 8, LoRA r 32)"
    )
    row(
        "6",
        f"{what}: loop time per step",
        f"xling {1000 * ours:.1f} ms; HF Trainer ({optim}, same settings) {1000 * theirs:.1f} ms "
        f"({ours / theirs:.2f}x)",
        "<= the Trainer's",
        ours <= theirs,
    )
    syncs = host_syncs(lambda: _three_steps(model, items))
    if syncs is None:
        note("host synchronisations per step: n/a without a GPU (tests/test_train_cell.py counts xling's own reads)")
    else:
        note(
            f"host synchronisations in 3 training steps: {syncs} (transformers' mask preparation reads one per forward)"
        )

    data = root / "task"
    data.mkdir()
    unit_items = bench_train.make_items(sizes.unit_items, sizes.train_words, seed=1)
    rows = [{"id": it.id, "question": it.context, "choices": list(it.choices), "gold": it.gold} for it in unit_items]
    (data / "en.train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "en.test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (data / "task.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "long",
                "data": "{language}.{split}.jsonl",
                "languages": ["en"],
                "template": "{{question}}\nAnswer:",
            }
        )
    )
    spec = ModelSpec(name="bench", path=model)
    lora, train = LoraSpec(r=32, alpha=64), TrainSpec(epochs=3, lr=5e-5, batch_size=8, max_length=512)
    walls, loops = [], []
    with keep_base_models():
        for i in range(sizes.units):
            t0 = time.perf_counter()
            out = train_cell(spec, str(data / "task.yaml"), "en", i, root / f"kept{i}", lora, train)
            walls.append(time.perf_counter() - t0)
            loops.append(json.loads((out / "train_log.json").read_text())["loop_seconds"])
    per_unit = [w - lp for w, lp in zip(walls[1:], loops[1:])]  # the first unit loads the model
    overhead, loop = float(np.mean(per_unit)), float(np.mean(loops[1:]))
    note(
        f"kept worker: units {', '.join(f'{w:.2f}' for w in walls)} s; loops {', '.join(f'{lp:.2f}' for lp in loops)} s"
    )
    fresh = "a fresh process per unit: not run at these sizes"
    if sizes.fresh_process:
        config = root / "train.yaml"
        settings = {"lora": lora.model_dump(mode="json"), "train": train.model_dump(mode="json")}
        config.write_text(yaml.safe_dump(settings))
        cmd = [sys.executable, "-m", "xling", "train", "--model", model, "--task", str(data / "task.yaml")]
        cmd += ["--lang", "en", "--seed", "0", "--config", str(config), "-o", str(root / "fresh")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        fresh = f"a fresh process for one unit {time.perf_counter() - t0:.1f} s"
    row(
        "6",
        f"{what}: per-unit overhead of a worker that keeps the base model",
        f"{overhead:.2f} s per unit = {100 * overhead / loop:.1f} % of the {loop:.2f} s loop ({sizes.unit_items} "
        f"items, 3 epochs); {fresh}",
        "<= 10 % of the loop",
        overhead <= 0.1 * loop,
    )


def _three_steps(model: str, items) -> None:
    """Three steps of the training loop's own calls (batch loss, backward, clip, AdamW, schedule) on ``model``."""
    import torch
    from peft import get_peft_model

    from xling.config import LoraSpec, ModelSpec, TrainSpec
    from xling.models import get_kind

    kind, spec = get_kind("causal"), TrainSpec(batch_size=8, max_length=512)
    loaded = kind.load(ModelSpec(name="bench", path=model))
    loaded.model = net = get_peft_model(loaded.model, kind.lora_config(LoraSpec(r=32, alpha=64)))
    net.train()
    examples = kind.examples(loaded, items[:24], spec, False)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-5, fused=True)
    for i in range(3):
        loss = kind.batch_loss(loaded, examples[8 * i : 8 * i + 8], spec)
        loss.value.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()


# --- step: lm-eval (rows 7, 3) --------------------------------------------------------------------------------------


def matmul_peak() -> float | None:
    """The device's bf16 matrix rate in FLOP/s (8192³ products, best of 10), or ``None`` without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    seconds = timed(lambda: a @ b, 10)
    return 2 * 8192**3 / seconds


def step_lmeval(work: Path, sizes: Sizes) -> None:
    """Rows 7 and 3 on the Llama-3.2-1B shape at 1,500 items: the base model alone, xling against lm-eval's HF
    backend (model loaded), then base + adapters end to end against lm-eval once per adapter (``peft=``) and the
    paper's merge → save → lm-eval loop."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from xling.config import ModelSpec, ScoreSpec
    from xling.models.causal import CausalScorer
    from xling.models.lmeval import encode_items, plan_rows

    model = model_dir(work, sizes.shape_1b, sizes)
    paths = dict(list(adapters(work, model, sizes.adapters, sizes.ranks[0]).items())[: sizes.e2e_adapters])
    yamls, items = tasks(work, sizes.large, sizes)
    root = yamls[0].parent
    dev, dtype = str(device()), "bfloat16"
    spec = ModelSpec(name=Path(model).name, path=model, dtype=dtype)
    peak = matmul_peak()
    if peak:
        note(f"bf16 matrix rate of this device: {peak / 1e12:.0f} TFLOP/s (8192³, best of 10)")

    # xling, the base model alone, loaded
    scorer = CausalScorer(spec, {"base": None}, ScoreSpec(batch_size=sizes.batch))
    scorer.score(items[: sizes.batch])
    encoded = encode_items(items, scorer.lm.tokenizer)
    lm_tokens = sum(len(e.context) + len(e.continuation) - 1 for e in encoded)  # what lm-eval forwards
    our_tokens = sum(len(r.tokens) for r in plan_rows(encoded, scorer.lm.max_length, scorer.pack))
    n_params = sum(p.numel() for n, p in scorer.lm.model.named_parameters() if "embed" not in n)
    ours = timed(lambda: scorer.score(items), sizes.repeats)
    scorer = None  # free its memory
    free_memory()

    # end to end, as a user runs each (model loading included)
    t0 = time.perf_counter()
    bench_scoring.run_xling(model, paths, yamls, dtype, sizes.batch)
    sync()
    t_xling = time.perf_counter() - t0
    note(f"xling end to end, base + {len(paths)} adapters: {t_xling:.1f} s")
    free_memory()
    t0 = time.perf_counter()
    bench_scoring.run_lmeval(f"pretrained={model},dtype={dtype}", "base", yamls, root, dev, sizes.batch)
    t_base = time.perf_counter() - t0
    free_memory()

    # lm-eval, the base model alone, loaded (its task set-up included)
    lm = HFLM(pretrained=model, dtype=dtype, batch_size=sizes.batch, device=dev)
    manager = TaskManager(include_path=str(root), include_defaults=False)
    theirs = timed(
        lambda: simple_evaluate(model=lm, tasks=[y.stem for y in yamls], task_manager=manager, log_samples=False),
        1,
    )
    lm = None  # free its memory
    free_memory()

    def mfu(tokens: int, seconds: float) -> str:
        return "" if not peak else f", MFU {100 * 2 * n_params * tokens / seconds / peak:.1f} %"

    row(
        "7",
        f"base-model scoring, {sizes.shape_1b.text}, {len(items)} items ({lm_tokens} tokens as lm-eval forwards "
        f"them), model loaded",
        f"xling {lm_tokens / ours:,.0f} tokens/s ({ours:.2f} s; {our_tokens} tokens forwarded after packing"
        f"{mfu(our_tokens, ours)}); lm-eval HF backend {lm_tokens / theirs:,.0f} tokens/s ({theirs:.2f} s"
        f"{mfu(lm_tokens, theirs)}; its task set-up included)",
        ">= lm-eval's tokens/s",
        ours <= theirs,
    )

    t0 = time.perf_counter()
    for name, path in paths.items():
        folder = bench_scoring.merge_and_save(model, path, root / f"merged-{name}", dtype)
        bench_scoring.run_lmeval(f"pretrained={folder},dtype={dtype}", name, yamls, root, dev, sizes.batch)
        shutil.rmtree(folder)
        free_memory()
    t_merge = t_base + time.perf_counter() - t0
    what = f"{sizes.shape_1b.text}, base + {len(paths)} adapters, {len(items)} items, end to end (loading included)"
    row(
        "3",
        f"{what}: against the paper's loop",
        f"xling {t_xling:.1f} s; merge -> save -> lm-eval per adapter {t_merge:.1f} s ({t_merge / t_xling:.1f}x)",
        ">= 5x faster than the merge loop",
        t_merge >= 5 * t_xling,
    )
    t0 = time.perf_counter()
    for path in paths.values():
        bench_scoring.run_lmeval(f"pretrained={model},peft={path},dtype={dtype}", "a", yamls, root, dev, sizes.batch)
        free_memory()
    t_peft = t_base + time.perf_counter() - t0
    row(
        "3",
        f"{what}: against lm-eval once per adapter",
        f"xling {t_xling:.1f} s; lm-eval with peft= per adapter {t_peft:.1f} s ({t_peft / t_xling:.1f}x; lm-eval "
        "shrinks the embeddings to the tokenizer's 512 tokens on this path, so its LM head is smaller)",
        "none set (the merge loop's is)",
        None,
    )


STEPS = {"scoring": step_scoring, "training": step_training, "lmeval": step_lmeval}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--work", type=Path, required=True, help="folder for the models, adapters and tasks")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check of the script)")
    args = parser.parse_args()
    import torch

    sizes = SMOKE if args.smoke else FULL
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("error: no CUDA device (use --smoke for the CPU check)")
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"== step {args.step} on {name} ({'smoke' if args.smoke else 'full'} sizes), torch {torch.__version__}",
        flush=True,
    )
    t0 = time.perf_counter()
    STEPS[args.step](args.work, sizes)
    print(f"== step {args.step} done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
