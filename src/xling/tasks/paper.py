"""The paper's four benchmarks in eleven languages, aligned across languages by item id.

Sources (``datasets.load_dataset``; ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are honoured by ``datasets``):

- ``aligned`` (default): the released aligned subsets ``Dr4kl3s/*`` (one config per language, train 300 /
  test 400; Global-MMLU 215/400);
- ``upstream``: the original multilingual datasets filtered by an id manifest (``{split: [ids]}``; by default
  the ids of the aligned release's English config), so every language uses the same items.

``xling data prepare`` writes normalised items to the local cache (``$XLING_CACHE``, default
``~/.cache/xling``), after which ``load_paper_items`` runs offline. Rows are normalised per benchmark into
lm-eval's zero-shot evaluation format: ARC/TruthfulQA ``Question: …\\nAnswer:`` + option text, HellaSwag
lm-eval's preprocessed context + ending, Global-MMLU lettered options + letter.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xling.errors import XlingError
from xling.io import atomic_file
from xling.tasks.items import MCItem
from xling.tasks.local import parse_gold

LANGUAGES = ("ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh")
ALIGNED = {
    "arc_challenge": "Dr4kl3s/arc_challenge_core_grid_seed42",
    "global_mmlu": "Dr4kl3s/global_mmlu_lite_core_grid_seed42",
    "hellaswag": "Dr4kl3s/hellaswag_coregrid_seed42",
    "truthfulqa": "Dr4kl3s/truthfulqa_coregrid_seed42",
}
UPSTREAM = {
    "arc_challenge": "alexandrainst/m_arc",
    "global_mmlu": "CohereLabs/Global-MMLU-Lite",
    "hellaswag": "alexandrainst/m_hellaswag",
    "truthfulqa": "alexandrainst/m_truthfulqa",
}
BENCHMARKS = tuple(ALIGNED)
_ID_FIELDS = ("id", "sample_id", "item_id", "ind", "source_id")


def cache_dir() -> Path:
    """Where prepared datasets live: ``$XLING_CACHE`` or ``~/.cache/xling``."""
    return Path(os.environ.get("XLING_CACHE") or Path.home() / ".cache" / "xling")


def cached_path(name: str, language: str, split: str) -> Path:
    return cache_dir() / "tasks" / name / language / f"{split}.jsonl"


def check_name(name: str, language: str) -> None:
    if name not in ALIGNED:
        raise XlingError(f"unknown benchmark {name!r} (expected one of {', '.join(BENCHMARKS)})")
    if language not in LANGUAGES:
        raise XlingError(f"benchmark {name!r}: unknown language {language!r} (expected one of {', '.join(LANGUAGES)})")


def _options(row: dict[str, Any]) -> list[str]:
    """Options from ``option_a…`` columns, a ``choices`` list, or an ai2_arc ``{text, label}`` dict."""
    lettered = [row[f"option_{c}"] for c in "abcdefgh" if row.get(f"option_{c}") not in (None, "")]
    if lettered:
        return [str(x) for x in lettered]
    choices = row.get("choices")
    if isinstance(choices, dict):
        choices = choices.get("text")
    if isinstance(choices, (list, tuple)):
        return [str(x) for x in choices]
    raise XlingError(f"row {_row_id(row)!r}: no options (expected option_a… or choices)")


def _row_id(row: dict[str, Any]) -> str:
    for key in _ID_FIELDS:
        if row.get(key) not in (None, ""):
            return str(row[key])
    raise XlingError(f"row has no id field (expected one of {', '.join(_ID_FIELDS)}; has {', '.join(row)})")


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing: strip, ' [title]' → '. ', drop bracketed tags, collapse double spaces."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def normalise_row(name: str, row: dict[str, Any], language: str) -> MCItem:
    """One raw row of a paper benchmark (aligned or upstream schema) → ``MCItem`` in lm-eval's eval format."""
    item_id = _row_id(row)
    where = f"{name} {language} item {item_id!r}"
    if name == "hellaswag":
        ctx = f"{row['activity_label']}: {row['ctx_a']} {str(row['ctx_b']).capitalize()}"
        context = _hellaswag_clean(ctx)
        choices = [_hellaswag_clean(str(e)) for e in row["endings"]]
        gold = parse_gold(row["label"], choices, where)
        fields = {"question": context}
    elif name == "truthfulqa":
        question = str(row["question"])
        targets = row.get("mc1_targets")
        if targets:
            choices, gold = [str(c) for c in targets["choices"]], list(targets["labels"]).index(1)
        else:
            choices = _options(row)
            gold = parse_gold(row.get("answer", row.get("label", 0)), choices, where)
        context, fields = f"Question: {question}\nAnswer:", {"question": question, "train_format": "lm"}
    else:
        question = str(row.get("question") or row.get("instruction") or "")
        if not question:
            raise XlingError(f"{where}: no question (expected 'question' or 'instruction')")
        choices = _options(row)
        gold = parse_gold(row.get("answer", row.get("answerKey", row.get("label"))), choices, where)
        context, fields = f"Question: {question}\nAnswer:", {"question": question}
        if name == "global_mmlu":
            fields.update(prompt_format="letters", letter_sep=".")
            for extra in ("subject", "cultural_sensitivity_label"):
                if extra in row:
                    fields[extra] = str(row[extra])
    return MCItem(item_id, name, language, context, tuple(choices), gold, fields)


def _hub_rows(repo: str, language: str, split: str | None) -> list[dict[str, Any]]:
    """Rows of one config of a hub dataset: one split, or every split in turn when ``split`` is None."""
    import datasets

    try:
        if split is None:
            return [dict(r) for part in datasets.load_dataset(repo, language).values() for r in part]
        return [dict(r) for r in datasets.load_dataset(repo, language, split=split)]
    except Exception as err:  # noqa: BLE001  (datasets raises many types for "not available")
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
        hint = " (offline: run `xling data prepare` on a connected machine first)" if offline else ""
        raise XlingError(f"cannot load {repo} config {language!r} split {split or 'all'!r}: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{hint}") from None


def read_manifest(path: str | Path) -> dict[str, list[str]]:
    """An id manifest ``{split: [ids]}`` (JSON)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise XlingError(f"{path}: cannot read id manifest ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise XlingError(f"{path}: id manifest must map split names to lists of ids")
    return {k: [str(i) for i in v] for k, v in data.items()}


def select_by_manifest(rows: Iterable[dict[str, Any]], ids: list[str], where: str) -> list[dict[str, Any]]:
    """Rows whose id is in ``ids``, in manifest order; a missing id is an error (languages must align)."""
    by_id = {}
    for row in rows:
        by_id.setdefault(_row_id(row), row)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise XlingError(f"{where}: {len(missing)} manifest ids are missing, e.g. {missing[0]!r}")
    return [by_id[i] for i in ids]


def fetch_items(name: str, language: str, split: str, source: str = "aligned",
                manifest: dict[str, list[str]] | None = None) -> list[MCItem]:
    """Items from the hub (aligned release, or upstream filtered by ``manifest``)."""
    check_name(name, language)
    if source == "aligned":
        rows = _hub_rows(ALIGNED[name], language, split)
    elif source == "upstream":
        if manifest is None:  # the aligned release's English ids define the items
            manifest = {split: [_row_id(row) for row in _hub_rows(ALIGNED[name], "en", split)]}
        if split not in manifest:
            raise XlingError(f"{name}: the id manifest has no split {split!r} (has {', '.join(manifest)})")
        rows = select_by_manifest(_hub_rows(UPSTREAM[name], language, None), manifest[split],
                                  f"{UPSTREAM[name]} {language}")
    else:
        raise XlingError(f"unknown source {source!r} (expected aligned or upstream)")
    return [normalise_row(name, row, language) for row in rows]


def write_cache(items: list[MCItem], path: Path) -> None:
    with atomic_file(path) as fh:
        for it in items:
            fh.write(json.dumps({"id": it.id, "context": it.context, "choices": list(it.choices), "gold": it.gold,
                                 "fields": dict(it.fields)}, ensure_ascii=False) + "\n")


def read_cache(path: Path, name: str, language: str) -> list[MCItem]:
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            items.append(MCItem(row["id"], name, language, row["context"], tuple(row["choices"]), int(row["gold"]),
                                row.get("fields", {})))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise XlingError(f"{path}:{lineno}: corrupt cache entry ({err}); rerun `xling data prepare`") from None
    return items


def load_paper_items(name: str, language: str, split: str) -> list[MCItem]:
    """Items of a paper benchmark: the local cache if prepared, else the aligned release on the hub."""
    check_name(name, language)
    path = cached_path(name, language, split)
    if path.is_file():
        return read_cache(path, name, language)
    return fetch_items(name, language, split)


def prepare(names: Iterable[str], languages: Iterable[str], splits: Iterable[str] = ("train", "test"),
            source: str = "aligned", manifest: str | Path | None = None) -> list[Path]:
    """Materialise every (benchmark, language, split) into the local cache; returns the files written."""
    ids = read_manifest(manifest) if manifest else None
    written = []
    for name in names:
        for language in languages:
            for split in splits:
                items = fetch_items(name, language, split, source, ids)
                path = cached_path(name, language, split)
                write_cache(items, path)
                written.append(path)
    return written
