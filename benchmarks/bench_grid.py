"""Grid overheads: training workers that keep the base model vs a process per unit; local vs Ray (2 workers).

1. Training units (``--units 12``): the shipped sentence encoder (all-MiniLM-L6-v2) on xling-mini cells with the
   quickstart's training settings, trained (a) by one worker that keeps the base model loaded
   (``xling.train.keep_base_models``, as the grid's training jobs do) and (b) one ``xling train`` process per unit
   (a fresh interpreter and model load each, as a naive job array would). The per-unit overhead is the wall time
   per unit minus the training loop's own time (``loop_seconds`` in ``train_log.json``); the goal is <= 10% of
   the loop's time. Both give the same adapter bytes (checked).
2. Scheduling (``--executors``): a grid of the tiny offline Llama on 2 generated tasks × 3 languages × 2 seeds
   (12 train units, 13 score units) under ``local`` and under ``ray`` with 2 CPU workers, each into a fresh store:
   wall time, time inside units (from the event log), overhead per unit ((wall - work / workers) / units).

    python benchmarks/bench_grid.py                 # both
    python benchmarks/bench_grid.py --skip-executors
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from xling.config import GridSpec, ModelSpec, parse_spec
from xling.models.tiny import build_tiny_llama
from xling.studies import run_grid, store_for
from xling.studies.transfer.units import make_plan

LANGS = ("en", "de", "fr")
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]


def write_tasks(folder: Path) -> list[str]:
    """Two aligned tasks in three languages (same items; a language tag keeps the prompts distinct)."""
    paths = []
    for task in ("copy", "next"):
        for lang in LANGS:
            rng = random.Random(task)
            for split, n in (("train", 24), ("test", 16)):
                rows = []
                for i in range(n):
                    k = rng.randrange(len(WORDS))
                    answer = WORDS[k] if task == "copy" else WORDS[(k + 1) % len(WORDS)]
                    choices = [answer, *rng.sample([w for w in WORDS if w != answer], 3)]
                    rng.shuffle(choices)
                    rows.append(
                        {
                            "id": f"{i}",
                            "question": f"[{lang}] {task} {WORDS[k]}:",
                            "choices": choices,
                            "gold": choices.index(answer),
                        }
                    )
                path = folder / task / lang / f"{split}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        spec = {"name": task, "data": f"{task}/{{language}}/{{split}}.jsonl", "languages": list(LANGS)}
        (folder / f"{task}.yaml").write_text(yaml.safe_dump(spec))
        paths.append(str(folder / f"{task}.yaml"))
    return paths


def measure(spec_dict: dict, workers: int) -> dict[str, float]:
    spec = parse_spec(GridSpec, spec_dict)
    plan = make_plan(spec)
    start = time.perf_counter()
    final = run_grid(spec, plan.units)
    wall = time.perf_counter() - start
    assert all(not st.failed and st.pending == 0 for st in final)
    events = store_for(spec).events()
    work = sum(e.get("seconds", 0.0) for e in events if e["event"] == "done")
    units = len(plan.train) + len(plan.score)
    return {"wall": wall, "work": work, "units": units, "overhead_per_unit": (wall - work / workers) / units}


def training_workers(root: Path, n_units: int, causal_hidden: int | None = None) -> None:
    """(a) one worker keeping the base model vs (b) one process per unit, on the same training units: the shipped
    encoder on xling-mini cells with the quickstart's settings, or (``causal_hidden``) a tiny Llama of that width
    on the generated copy/next tasks (LoRA r 32, 3 epochs; the GPU variant)."""
    from xling.config import LoraSpec, TrainSpec
    from xling.quickstart import LORA, QUICK_TRAIN
    from xling.train import keep_base_models, train_cell

    if causal_hidden is None:
        from xling.models.encoder import default_model_path

        model_path, kind, lora, train = default_model_path(), "encoder", LORA, QUICK_TRAIN
        cells = [(f"mini:{t}", lang) for t in ("numbers", "region", "currency") for lang in ("en", "de", "fr", "ru")]
        name = "all-MiniLM-L6-v2 on xling-mini cells, quickstart settings"
    else:
        model_path = str(build_tiny_llama(root / "tiny", hidden_size=causal_hidden, n_layers=4, vocab_size=32000))
        kind, lora, train = "causal", LoraSpec(r=32, alpha=64), TrainSpec(epochs=3, lr=1e-3, batch_size=8)
        cells = [(t, lang) for t in write_tasks(root / "tasks") for lang in LANGS]
        name = f"a tiny Llama (hidden {causal_hidden}, 4 layers, 32K vocabulary) on generated tasks"
    units = [(*cells[i % len(cells)], 17 + i // len(cells)) for i in range(n_units)]  # more seeds past the cells
    model = ModelSpec(name=Path(model_path).name, path=model_path, kind=kind)
    t0 = time.perf_counter()
    with keep_base_models():
        for i, (task, lang, seed) in enumerate(units):
            train_cell(model, task, lang, seed, root / f"kept{i}", lora, train)
    kept_wall = time.perf_counter() - t0
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump({"lora": lora.model_dump(mode="json"), "train": train.model_dump(mode="json")}))
    t0 = time.perf_counter()
    for i, (task, lang, seed) in enumerate(units):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xling",
                "train",
                "--model",
                model_path,
                "--kind",
                kind,
                "--task",
                task,
                "--lang",
                lang,
                "--seed",
                str(seed),
                "--config",
                str(config),
                "-o",
                str(root / f"fresh{i}"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    fresh_wall = time.perf_counter() - t0
    same = all(
        (root / f"kept{i}" / "adapter_model.safetensors").read_bytes()
        == (root / f"fresh{i}" / "adapter_model.safetensors").read_bytes()
        for i in range(len(units))
    )
    loop = sum(
        json.loads((root / f"kept{i}" / "train_log.json").read_text())["loop_seconds"] for i in range(len(units))
    ) / len(units)
    print(
        f"\ntraining units: {len(units)} ({name}); training "
        f"loop {loop:.2f} s per unit; same adapter bytes both ways: {same}"
    )
    print(f"{'worker':34s} {'wall s':>8s} {'s/unit':>7s} {'overhead s/unit':>15s} {'% of loop':>9s}")
    for name, wall in (("keeps the base model (grid jobs)", kept_wall), ("a process per unit", fresh_wall)):
        per = wall / len(units)
        print(f"{name:34s} {wall:8.1f} {per:7.2f} {per - loop:15.2f} {100 * (per - loop) / loop:9.1f}")
    print(f"keeping the model is {fresh_wall / kept_wall:.2f}x faster")


def executors(root: Path) -> None:
    """Local vs Ray (2 workers) on the tiny grid."""
    model, tasks = build_tiny_llama(root / "tiny"), write_tasks(root / "tasks")
    base = {
        "models": [{"name": "tiny-llama", "path": str(model), "kind": "causal"}],
        "tasks": tasks,
        "languages": list(LANGS),
        "seeds": [1, 2],
        "lora": {"r": 4, "alpha": 8},
        "train": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
        "score": {"batch_size": 32, "adapters_per_batch": 4},
        "analyze": False,
    }
    local = measure({**base, "output": str(root / "local")}, workers=1)
    ray_run = measure({**base, "output": str(root / "ray"), "executor": {"kind": "ray", "num_workers": 2}}, workers=2)
    print(f"{'executor':8s} {'units':>5s} {'wall s':>8s} {'in units s':>10s} {'overhead s/unit':>15s}")
    for name, r in (("local", local), ("ray x2", ray_run)):
        print(f"{name:8s} {r['units']:5d} {r['wall']:8.2f} {r['work']:10.2f} {r['overhead_per_unit']:15.3f}")
    print(f"ray (2 workers) speed-up over local: {local['wall'] / ray_run['wall']:.2f}x")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=12, help="training units for the worker comparison")
    parser.add_argument(
        "--causal-hidden",
        type=int,
        default=None,
        help="workers on a tiny Llama of this width (the GPU variant) instead of the shipped encoder",
    )
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-executors", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_workers:
            training_workers(Path(tmp) / "workers", args.units, args.causal_hidden)
        if not args.skip_executors:
            executors(Path(tmp) / "executors")


if __name__ == "__main__":
    main()
