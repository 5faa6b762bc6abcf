"""One entry point for every task: ``load_items(task, language, split)``.

``task`` is a path to an xling task YAML or an lm-eval task YAML, a paper benchmark name
(``arc_challenge``, ``global_mmlu``, ``hellaswag``, ``truthfulqa``), or ``mini:<name>`` for the built-in
offline suite. Every load checks item ids are unique; ``load_aligned`` also checks that all languages
share the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from xling.errors import XlingError
from xling.tasks.items import MCItem, check_aligned

SPLITS = ("train", "test")


def _load_yaml_task(path: Path, language: str, split: str) -> list[MCItem]:
    from xling.config import load_yaml
    from xling.tasks.lmeval import is_lmeval_yaml, load_lmeval_task
    from xling.tasks.local import is_xling_task_yaml, load_task_file

    if not path.is_file():
        raise XlingError(f"unknown task {str(path)!r}: no such file")
    try:
        data = load_yaml(path)
    except XlingError:
        data = None  # lm-eval YAMLs may use tags safe_load rejects (e.g. !function); its own reader says why
    if is_xling_task_yaml(data):
        return load_task_file(path, language, split)
    if data is None or is_lmeval_yaml(data):
        return load_lmeval_task(path, language, split)
    raise XlingError(
        f"{path}: not a task YAML (an xling task needs 'name' and 'data'; "
        "an lm-eval task needs 'task', 'doc_to_text' and 'doc_to_choice')"
    )


def load_items(task: str, language: str, split: str) -> list[MCItem]:
    """Items of ``task`` in ``language`` and ``split`` (``train`` or ``test``); unknown names raise ``XlingError``."""
    if split not in SPLITS:
        raise XlingError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    if task.startswith("mini:"):
        from xling.tasks import mini

        items = mini.load_items(task.removeprefix("mini:"), language, split)
    elif task.endswith((".yaml", ".yml")) or Path(task).is_file():
        items = _load_yaml_task(Path(task), language, split)
    else:
        from xling.tasks.paper import BENCHMARKS, load_paper_items

        if task not in BENCHMARKS:
            raise XlingError(
                f"unknown task {task!r} (expected a task YAML path, mini:<name>, or one of {', '.join(BENCHMARKS)})"
            )
        items = load_paper_items(task, language, split)
    check_aligned({language: items}, task)  # unique ids
    return items


def load_aligned(task: str, languages: Iterable[str], split: str) -> dict[str, list[MCItem]]:
    """Items of every language of ``task``, checked to share exactly the same item ids."""
    by_lang = {lang: load_items(task, lang, split) for lang in languages}
    check_aligned(by_lang, task)
    return by_lang


def is_prepared(task: str, language: str, split: str) -> bool:
    """Whether loading ``task`` needs no download: a paper benchmark once ``xling data prepare`` has cached it;
    every other task is read from files or generated (a missing file is reported when it is loaded)."""
    from xling.tasks.paper import BENCHMARKS, cached_path

    return task not in BENCHMARKS or cached_path(task, language, split).is_file()


def items_fingerprint(items: Sequence[MCItem]) -> str:
    """sha256 over the items' content (ids, contexts, choices, gold, fields), order included."""
    h = hashlib.sha256()
    for it in items:
        payload = [
            it.id,
            it.task,
            it.language,
            it.context,
            list(it.choices),
            it.gold,
            {k: it.fields[k] for k in sorted(it.fields)},
        ]
        h.update(json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def task_fingerprint(task: str, language: str, split: str) -> str:
    """A hash of the content of ``task``'s items in ``language``/``split`` (for store keys)."""
    return items_fingerprint(load_items(task, language, split))


def norm_metric(task: str) -> str:
    """The metric a task's ``score_norm`` uses, as the release's ``parse_lm_eval_output.py`` picks it: ``acc_norm``
    where the task reports it, else ``acc``. Paper benchmarks: acc_norm for ARC and HellaSwag, acc for TruthfulQA
    mc1 and Global-MMLU; an lm-eval YAML: acc_norm when its ``metric_list`` has it (or it has none: lm-eval's
    multiple-choice default reports both); xling task YAMLs and the mini suite: acc_norm."""
    if task.startswith("mini:"):
        return "acc_norm"
    if task.endswith((".yaml", ".yml")) or Path(task).is_file():
        from xling.config import load_yaml
        from xling.tasks.lmeval import is_lmeval_yaml, read_lmeval_yaml

        try:
            data = load_yaml(task)
        except XlingError:
            data = None
        if data is None or is_lmeval_yaml(data):
            metrics = read_lmeval_yaml(Path(task)).get("metric_list")
            if metrics:
                names = {m.get("metric") for m in metrics if isinstance(m, dict)}
                return "acc_norm" if "acc_norm" in names else "acc"
        return "acc_norm"
    from xling.tasks.paper import BENCHMARKS, NORM_METRIC

    if task not in BENCHMARKS:
        raise XlingError(
            f"unknown task {task!r} (expected a task YAML path, mini:<name>, or one of {', '.join(BENCHMARKS)})"
        )
    return NORM_METRIC[task]


def task_languages(task: str) -> list[str]:
    """The languages a task offers: an xling task YAML's ``languages``, the mini suite's, the paper's eleven;
    an lm-eval YAML is one language, ``metadata.language`` or ``und`` (undetermined)."""
    if task.startswith("mini:"):
        from xling.tasks import mini

        return list(mini.LANGUAGES)
    if task.endswith((".yaml", ".yml")) or Path(task).is_file():
        from xling.config import load_spec, load_yaml
        from xling.tasks.lmeval import read_lmeval_yaml
        from xling.tasks.local import TaskFileSpec, is_xling_task_yaml

        path = Path(task)
        if not path.is_file():
            raise XlingError(f"unknown task {task!r}: no such file")
        try:
            data = load_yaml(path)
        except XlingError:
            data = None
        if is_xling_task_yaml(data):
            return list(load_spec(TaskFileSpec, path).languages)
        meta = read_lmeval_yaml(path).get("metadata") or {}
        return [str(meta.get("language", "und"))]
    from xling.tasks.paper import BENCHMARKS, LANGUAGES

    if task not in BENCHMARKS:
        raise XlingError(
            f"unknown task {task!r} (expected a task YAML path, mini:<name>, or one of {', '.join(BENCHMARKS)})"
        )
    return list(LANGUAGES)
