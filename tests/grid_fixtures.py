"""A small grid on the tiny offline Llama and two generated local tasks in two languages."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

WORDS = {
    "en": ["red", "green", "blue", "black", "white", "cat", "dog", "bird", "fish", "tree"],
    "de": ["rot", "grün", "blau", "schwarz", "weiß", "Katze", "Hund", "Vogel", "Fisch", "Baum"],
    "fr": ["rouge", "vert", "bleu", "noir", "blanc", "chat", "chien", "oiseau", "poisson", "arbre"],
}
PROMPTS = {
    "copy": {
        "en": "Repeat the word: {w}\nAnswer:",
        "de": "Wiederhole das Wort: {w}\nAntwort:",
        "fr": "Répète le mot : {w}\nRéponse :",
    },
    "next": {
        "en": "Which word follows {w}?\nAnswer:",
        "de": "Welches Wort folgt auf {w}?\nAntwort:",
        "fr": "Quel mot suit {w} ?\nRéponse :",
    },
}
LANGUAGES = ["en", "de"]  # the small grid's; ``fr`` makes the adaptive grid's third language


def write_tasks(folder: Path, n_train: int = 12, n_test: int = 6, languages: list[str] = LANGUAGES) -> list[str]:
    """Write two aligned tasks (copy a word; name the next word in a list) in ``languages``; return YAML paths."""
    paths = []
    for task, prompts in PROMPTS.items():
        for lang in languages:
            words = WORDS[lang]
            rng = random.Random(f"{task}")  # same items (ids, golds) in every language
            for split, n in (("train", n_train), ("test", n_test)):
                rows = []
                for i in range(n):
                    k = rng.randrange(len(words))
                    answer = words[k] if task == "copy" else words[(k + 1) % len(words)]
                    others = [w for w in words if w != answer]
                    choices = [answer, *rng.sample(others, 2)]
                    rng.shuffle(choices)
                    rows.append(
                        {
                            "id": f"{task}-{split}-{i}",
                            "question": prompts[lang].format(w=words[k]),
                            "choices": choices,
                            "gold": choices.index(answer),
                        }
                    )
                path = folder / task / lang / f"{split}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        spec = {
            "name": task,
            "data": f"{task}/{{language}}/{{split}}.jsonl",
            "languages": list(languages),
            "template": "{{question}}",
        }
        yaml_path = folder / f"{task}.yaml"
        yaml_path.write_text(yaml.safe_dump(spec))
        paths.append(str(yaml_path))
    return paths


def grid_spec(model_dir: Path, tasks: list[str], out: Path, **overrides) -> dict:
    """A grid spec (as a dict) over the tasks: 2 tasks × 2 languages × 2 seeds on the tiny model."""
    spec = {
        "name": "tiny",
        "models": [{"name": "tiny-llama", "path": str(model_dir), "kind": "causal", "size": "1M"}],
        "tasks": tasks,
        "languages": LANGUAGES,
        "seeds": [1, 2],
        "lora": {"r": 4, "alpha": 8},
        "train": {"epochs": 1, "lr": 1e-3, "batch_size": 4, "val_fraction": 0.25},
        "score": {"batch_size": 16, "adapters_per_batch": 4},
        "output": str(out),
        "max_retries": 1,
    }
    spec.update(overrides)
    return spec


def write_spec(spec: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path
