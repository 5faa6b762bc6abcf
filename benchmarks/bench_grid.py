"""Orchestration overhead of the grid: local vs Ray (2 workers) on tiny units.

A grid of the tiny offline Llama on 2 generated tasks × 3 languages × 2 seeds (12 train units, 13 score units)
runs once under ``local`` and once under ``ray`` with 2 CPU workers, each into a fresh store. For each run it prints
the wall time, the time spent inside units (from the store's event log), the scheduling overhead per unit
((wall - work / workers) / units), and the speed-up of Ray over local.

    python benchmarks/bench_grid.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

from xling.config import GridSpec, parse_spec
from xling.grid.run import run_grid, store_for
from xling.grid.units import make_plan
from xling.models.tiny import build_tiny_llama

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
                    rows.append({"id": f"{i}", "question": f"[{lang}] {task} {WORDS[k]}:", "choices": choices,
                                 "gold": choices.index(answer)})
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
    final = run_grid(spec, plan=plan)
    wall = time.perf_counter() - start
    assert all(not st.failed and st.pending == 0 for st in final)
    events = store_for(spec).events()
    work = sum(e.get("seconds", 0.0) for e in events if e["event"] == "done")
    units = len(plan.train) + len(plan.score)
    return {"wall": wall, "work": work, "units": units, "overhead_per_unit": (wall - work / workers) / units}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, tasks = build_tiny_llama(root / "tiny"), write_tasks(root / "tasks")
        base = {
            "models": [{"name": "tiny-llama", "path": str(model), "kind": "causal"}],
            "tasks": tasks, "languages": list(LANGS), "seeds": [1, 2],
            "lora": {"r": 4, "alpha": 8}, "train": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
            "score": {"batch_size": 32, "adapters_per_batch": 4}, "analyze": False,
        }
        local = measure({**base, "output": str(root / "local")}, workers=1)
        ray_run = measure({**base, "output": str(root / "ray"), "executor": {"kind": "ray", "num_workers": 2}},
                          workers=2)
    print(f"{'executor':8s} {'units':>5s} {'wall s':>8s} {'in units s':>10s} {'overhead s/unit':>15s}")
    for name, r in (("local", local), ("ray x2", ray_run)):
        print(f"{name:8s} {r['units']:5d} {r['wall']:8.2f} {r['work']:10.2f} {r['overhead_per_unit']:15.3f}")
    print(f"ray (2 workers) speed-up over local: {local['wall'] / ray_run['wall']:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
