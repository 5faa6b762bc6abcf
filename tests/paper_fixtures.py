"""Local copies of the paper's four aligned hub datasets, in their real schemas and hub layout.

Columns and types are the ones the release's processors read (``dataset_processors/*.py``) and ``DATASETS.md``
names: ARC ``id, instruction, option_a…option_e, answer`` (a letter, strings throughout); Global-MMLU-Lite's columns
(``sample_id, subject, subject_category, question, option_a…option_d, answer, …``); HellaSwag ``id,
activity_label, ctx_a, ctx_b, endings`` (list of strings) ``, label`` (a digit string); TruthfulQA ``truth_id``
(int64) ``, question, mc1_targets_choices, mc1_targets_labels`` (list of int64) ``, mc2_…``. Rows are sorted by
id, as ``split_benchmarks.py`` materialises them. The folder layout is what ``huggingface-cli download
--repo-type dataset <owner>/<name> --local-dir FOLDER/<owner>/<name>`` writes for a ``push_to_hub(config_name=…)``
dataset: ``README.md`` with a ``configs:`` block and ``<config>/<split>-00000-of-00001.parquet``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from xling.tasks.paper import BENCHMARKS

STR = pa.string()
SCHEMAS = {
    "arc_challenge": pa.schema(
        [("id", STR), ("answer", STR), ("instruction", STR)] + [(f"option_{c}", STR) for c in "abcde"]
    ),
    "global_mmlu": pa.schema(
        [("sample_id", STR), ("subject", STR), ("subject_category", STR), ("question", STR)]
        + [(f"option_{c}", STR) for c in "abcd"]
        + [
            ("answer", STR),
            ("required_knowledge", STR),
            ("time_sensitive", STR),
            ("reference", STR),
            ("culture", STR),
            ("region", STR),
            ("country", STR),
            ("cultural_sensitivity_label", STR),
            ("is_annotated", pa.bool_()),
        ]
    ),
    "hellaswag": pa.schema(
        [
            ("id", STR),
            ("activity_label", STR),
            ("ctx_a", STR),
            ("ctx_b", STR),
            ("endings", pa.list_(STR)),
            ("label", STR),
        ]
    ),
    "truthfulqa": pa.schema(
        [
            ("truth_id", pa.int64()),
            ("question", STR),
            ("mc1_targets_choices", pa.list_(STR)),
            ("mc1_targets_labels", pa.list_(pa.int64())),
            ("mc2_targets_choices", pa.list_(STR)),
            ("mc2_targets_labels", pa.list_(pa.int64())),
        ]
    ),
}
WORDS = {
    "en": ["the", "cat", "sees", "a", "tree", "near", "the", "river", "and", "the", "dog"],
    "de": ["die", "Katze", "sieht", "einen", "Baum", "am", "Fluss", "und", "der", "Hund"],
    "hi": ["बिल्ली", "नदी", "के", "पास", "एक", "पेड़", "देखती", "है", "और", "कुत्ता"],
}


def _text(rng: random.Random, lang: str, n: int) -> str:
    words = WORDS.get(lang, WORDS["en"])
    return " ".join(rng.choice(words) for _ in range(n))


def make_rows(name: str, lang: str, split: str, n: int) -> list[dict]:
    """``n`` rows of one benchmark, language and split; the same ids (and gold answers) in every language."""
    rows = []
    for i in range(n):
        rng, text = random.Random(f"{name}{split}{i}"), random.Random(f"{name}{split}{i}{lang}")
        if name == "arc_challenge":
            five = i % 7 == 3  # a few five-option items, and answers E (dropped from the paper's training)
            answer = "E" if five and i % 2 else "ABCD"[rng.randrange(4)]
            opts = {f"option_{c}": _text(text, lang, 3) for c in "abcd"}
            rows.append(
                {
                    "id": f"Mercury_{split}_{i:04d}",
                    "answer": answer,
                    "instruction": f" {_text(text, lang, 8)} [title] {lang}?  ",
                    **opts,
                    "option_e": _text(text, lang, 2) if five else None,
                }
            )
        elif name == "global_mmlu":
            subject = rng.choice(["astronomy", "world_religions", "high_school_physics"])
            rows.append(
                {
                    "sample_id": f"{subject}/test/{i}",
                    "subject": subject,
                    "subject_category": rng.choice(["STEM", "Humanities", "Social Sciences"]),
                    "question": f" {_text(text, lang, 9)}? ",
                    **{f"option_{c}": _text(text, lang, 2) for c in "abcd"},
                    "answer": "ABCD"[rng.randrange(4)],
                    "required_knowledge": "['none']",
                    "time_sensitive": "['No']",
                    "reference": "['-']",
                    "culture": "['-']",
                    "region": "['-']",
                    "country": "['-']",
                    "cultural_sensitivity_label": rng.choice(["CS", "CA"]),
                    "is_annotated": bool(i % 2),
                }
            )
        elif name == "hellaswag":
            rows.append(
                {
                    "id": f"hellaswag/validation/{1000 + 37 * i}",
                    "activity_label": "Cooking",
                    "ctx_a": f"[header] {_text(text, lang, 6)}.",
                    "ctx_b": f"the {_text(text, lang, 2)}",
                    "endings": [f"{_text(text, lang, 4)} [title] {_text(text, lang, 2)}." for _ in range(4)],
                    "label": str(rng.randrange(4)),
                }
            )
        else:
            n_choices = 2 + rng.randrange(3)
            rows.append(
                {
                    "truth_id": 3 * i + (0 if split == "test" else 1),
                    "question": f"{_text(text, lang, 7)}?",
                    "mc1_targets_choices": [_text(text, lang, 4) for _ in range(n_choices)],
                    "mc1_targets_labels": [1] + [0] * (n_choices - 1),
                    "mc2_targets_choices": [_text(text, lang, 3) for _ in range(3)],
                    "mc2_targets_labels": [1, 1, 0],
                }
            )
    key = "truth_id" if name == "truthfulqa" else ("sample_id" if name == "global_mmlu" else "id")
    return sorted(rows, key=lambda r: r[key])


def write_hub_copy(folder: Path, name: str, languages: list[str], sizes: dict[str, int]) -> Path:
    """``folder/<owner>/<name>/`` of the aligned release of ``name``: parquet per language and split, README."""
    repo = Path(folder) / BENCHMARKS[name].aligned
    configs = []
    for lang in languages:
        (repo / lang).mkdir(parents=True, exist_ok=True)
        files = []
        for split, n in sizes.items():
            path = f"{lang}/{split}-00000-of-00001.parquet"
            pq.write_table(pa.Table.from_pylist(make_rows(name, lang, split, n), schema=SCHEMAS[name]), repo / path)
            files.append(f"  - split: {split}\n    path: {path}\n")
        configs.append(f"- config_name: {lang}\n  data_files:\n" + "".join(files))
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n")
    (repo / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
    return repo


def write_all(folder: Path, languages: list[str], sizes: dict[str, int]) -> Path:
    """Local copies of all four aligned releases under ``folder``."""
    for name in BENCHMARKS:
        write_hub_copy(folder, name, languages, sizes)
    return Path(folder)
