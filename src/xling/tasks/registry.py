"""One entry point for every task: a task name is resolved once into its source (``resolve_task``).

A name is a path to an xling task YAML or an lm-eval task YAML, a paper benchmark (``arc_challenge``,
``global_mmlu``, ``hellaswag``, ``truthfulqa``), or ``mini:<name>`` for the built-in offline suite. ``resolve_task``
is the only function that looks at the shape of a name; everything else asks the source it returns for its items,
languages, headline metric (``norm_metric``), whether it is prepared, and what a scoring run records about its
format. Every load checks item ids are unique; ``load_aligned`` also checks that all languages share the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from xling.errors import XlingError
from xling.tasks.items import MCItem, check_aligned
from xling.tasks.source import TaskSource


class MiniTask(TaskSource):
    """A task of the built-in offline suite xling-mini (``mini:<name>``)."""

    def languages(self) -> list[str]:
        from xling.tasks import mini

        return list(mini.LANGUAGES)

    def _load(self, language: str, split: str) -> list[MCItem]:
        from xling.tasks import mini

        return mini.load_items(self.name.removeprefix("mini:"), language, split)


class TaskFile(TaskSource):
    """An xling task YAML: local JSONL/CSV/Parquet files described by field names and a template."""

    def languages(self) -> list[str]:
        from xling.config import load_spec
        from xling.tasks.local import TaskFileSpec

        return list(load_spec(TaskFileSpec, self.name).languages)

    def _load(self, language: str, split: str) -> list[MCItem]:
        from xling.tasks.local import load_task_file

        return load_task_file(self.name, language, split)


class LmevalTask(TaskSource):
    """An lm-evaluation-harness ``multiple_choice`` task YAML; one language (``metadata.language`` or ``und``)."""

    @cached_property
    def config(self) -> dict[str, Any]:
        from xling.tasks.lmeval import read_lmeval_yaml

        return read_lmeval_yaml(Path(self.name))

    @property
    def norm_metric(self) -> str:  # type: ignore[override]
        """acc_norm when its ``metric_list`` has it, or it has none (lm-eval's multiple-choice default reports both)."""
        metrics = self.config.get("metric_list")
        if metrics:
            names = {m.get("metric") for m in metrics if isinstance(m, dict)}
            return "acc_norm" if "acc_norm" in names else "acc"
        return "acc_norm"

    def languages(self) -> list[str]:
        meta = self.config.get("metadata") or {}
        return [str(meta.get("language", "und"))]

    def _load(self, language: str, split: str) -> list[MCItem]:
        from xling.tasks.lmeval import load_lmeval_task

        return load_lmeval_task(self.name, language, split)


def _yaml_source(path: Path) -> TaskSource:
    from xling.config import load_yaml
    from xling.tasks.lmeval import is_lmeval_yaml
    from xling.tasks.local import is_xling_task_yaml

    if not path.is_file():
        raise XlingError(f"unknown task {str(path)!r}: no such file")
    try:
        data = load_yaml(path)
    except XlingError:
        data = None  # lm-eval YAMLs may use tags safe_load rejects (e.g. !function); its own reader says why
    if is_xling_task_yaml(data):
        return TaskFile(str(path))
    if data is None or is_lmeval_yaml(data):
        return LmevalTask(str(path))
    raise XlingError(
        f"{path}: not a task YAML (an xling task needs 'name' and 'data'; "
        "an lm-eval task needs 'task', 'doc_to_text' and 'doc_to_choice')"
    )


def resolve_task(task: str) -> TaskSource:
    """The source of ``task``; an unknown name raises ``XlingError`` listing what a name can be."""
    if task.startswith("mini:"):
        return MiniTask(task)
    if task.endswith((".yaml", ".yml")) or Path(task).is_file():
        return _yaml_source(Path(task))
    from xling.tasks.paper import BENCHMARKS, PaperBenchmark

    if task not in BENCHMARKS:
        raise XlingError(
            f"unknown task {task!r} (expected a task YAML path, mini:<name>, or one of {', '.join(BENCHMARKS)})"
        )
    return PaperBenchmark(task)


def load_items(task: str, language: str, split: str) -> list[MCItem]:
    """Items of ``task`` in ``language`` and ``split`` (``train`` or ``test``); unknown names raise ``XlingError``."""
    return resolve_task(task).items(language, split)


def load_aligned(task: str, languages: Iterable[str], split: str) -> dict[str, list[MCItem]]:
    """Items of every language of ``task``, checked to share exactly the same item ids."""
    source = resolve_task(task)
    by_lang = {lang: source.items(lang, split) for lang in languages}
    check_aligned(by_lang, task)
    return by_lang


def format_records(tasks: Iterable[str], benchmark_format: str) -> dict[str, Any]:
    """What a scoring run of ``tasks`` records about their evaluation formats (each source type says its part)."""
    by_type: dict[type[TaskSource], list[str]] = {}
    for task in sorted(set(tasks)):
        by_type.setdefault(type(resolve_task(task)), []).append(task)
    out: dict[str, Any] = {}
    for cls, names in by_type.items():
        out |= cls.run_record(names, benchmark_format)
    return out


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
