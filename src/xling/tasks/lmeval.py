"""lm-evaluation-harness task YAMLs of ``output_type: multiple_choice`` (the common subset), so users can
reuse their lm-eval tasks: ``dataset_path`` (hub id or ``json``/``csv``/``parquet``), ``dataset_name``,
``dataset_kwargs.data_files``, ``test_split``/``validation_split``/``training_split``, Jinja
``doc_to_text``/``doc_to_choice``/``doc_to_target`` (or a field name), ``target_delimiter``, ``description``.

Rendering follows lm-eval 0.4.x (``api/task.py``): a template equal to a field name returns that field;
a rendered ``doc_to_choice`` is a Python list literal; a digit ``doc_to_target`` is an index, otherwise
the text of a choice. Python hooks (``!function``, ``process_docs``) are not run: they would execute
code from the YAML.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.templates import render

SUPPORTED = {
    "task",
    "tag",
    "group",
    "output_type",
    "dataset_path",
    "dataset_name",
    "dataset_kwargs",
    "test_split",
    "validation_split",
    "training_split",
    "fewshot_split",
    "doc_to_text",
    "doc_to_choice",
    "doc_to_target",
    "target_delimiter",
    "fewshot_delimiter",
    "description",
    "metric_list",
    "metadata",
    "num_fewshot",
    "should_decontaminate",
    "doc_to_decontamination_query",
}


def read_lmeval_yaml(path: Path) -> dict[str, Any]:
    """Parse an lm-eval task YAML safely; ``!function`` hooks and ``include`` are reported as unsupported."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def _function(loader, node):
        raise XlingError(f"{path}: '!function' hooks run Python code from the YAML and are not supported")

    Loader.add_constructor("!function", _function)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    except OSError as err:
        raise XlingError(f"{path}: cannot read file ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise XlingError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise XlingError(f"{path}: expected a mapping at the top level")
    return data


def is_lmeval_yaml(data: object) -> bool:
    return isinstance(data, dict) and "doc_to_text" in data and ("task" in data or "output_type" in data)


def check_config(config: dict[str, Any], path: Path) -> None:
    """Reject what this subset cannot honour, naming the key."""
    if config.get("output_type", "multiple_choice") != "multiple_choice":
        raise XlingError(f"{path}: output_type {config['output_type']!r} is not supported (expected multiple_choice)")
    if "include" in config:
        raise XlingError(f"{path}: 'include' is not supported; write the task in one file")
    unknown = sorted(set(config) - SUPPORTED)
    if unknown:
        raise XlingError(f"{path}: unsupported lm-eval key {unknown[0]!r} (supported: {', '.join(sorted(SUPPORTED))})")
    if config.get("num_fewshot") not in (None, 0):
        raise XlingError(f"{path}: num_fewshot {config['num_fewshot']!r} is not supported (xling scores zero-shot)")
    if "doc_to_choice" not in config:
        raise XlingError(f"{path}: missing key 'doc_to_choice'")


def split_name(config: dict[str, Any], split: str, path: Path) -> str:
    """xling's ``test``/``train`` → the YAML's ``test_split`` (else ``validation_split``) / ``training_split``."""
    if split == "test":
        name = config.get("test_split") or config.get("validation_split")
    elif split == "train":
        name = config.get("training_split")
    else:
        name = config.get(f"{split}_split")
    if not name:
        raise XlingError(f"{path}: no split for {split!r} (set test_split or training_split)")
    return str(name)


def load_docs(config: dict[str, Any], split: str, path: Path) -> list[dict[str, Any]]:
    """Documents with ``datasets.load_dataset`` (offline flags honoured); relative data files resolve from the YAML."""
    import datasets

    kwargs = dict(config.get("dataset_kwargs") or {})
    files = kwargs.get("data_files")
    if files is not None:
        kwargs["data_files"] = _resolve_files(files, path.parent)
    try:
        ds = datasets.load_dataset(config["dataset_path"], config.get("dataset_name"), split=split, **kwargs)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        raise XlingError(
            f"{path}: cannot load dataset {config.get('dataset_path')!r} split {split!r}: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    return [dict(doc) for doc in ds]


def _resolve_files(files: Any, base: Path) -> Any:
    if isinstance(files, str):
        return files if os.path.isabs(files) or "://" in files or not (base / files).exists() else str(base / files)
    if isinstance(files, list):
        return [_resolve_files(f, base) for f in files]
    if isinstance(files, dict):
        return {k: _resolve_files(v, base) for k, v in files.items()}
    return files


def doc_value(template: Any, doc: dict[str, Any], where: str) -> Any:
    """lm-eval's rule: a field name returns the field, an int returns itself, else render as Jinja."""
    if isinstance(template, (int, list)):
        return template
    if template in doc:
        return doc[template]
    return render(str(template), doc, where)


def doc_to_item(config: dict[str, Any], doc: dict[str, Any], task: str, language: str, n: int, where: str) -> MCItem:
    """One document → one ``MCItem`` (context = description + doc_to_text, choices, gold index)."""
    text = doc_value(config["doc_to_text"], doc, where)
    choices = doc_value(config["doc_to_choice"], doc, where)
    if isinstance(choices, str):
        try:
            choices = ast.literal_eval(choices)
        except (SyntaxError, ValueError):
            raise XlingError(f"{where}: doc_to_choice rendered {choices[:60]!r}, not a list") from None
    if isinstance(choices, dict):
        choices = list(choices.values())
    if not isinstance(choices, (list, tuple)):
        raise XlingError(f"{where}: doc_to_choice must give a list, found {type(choices).__name__}")
    choices = [str(c) for c in choices]
    target = doc_value(config.get("doc_to_target", "gold"), doc, where)
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    if isinstance(target, str):
        if target not in choices:
            raise XlingError(f"{where}: target {target!r} is not one of the choices")
        target = choices.index(target)
    if not isinstance(target, int):
        raise XlingError(f"{where}: doc_to_target must give an index or a choice, found {type(target).__name__}")
    description = render(config["description"], doc, where) if config.get("description") else ""
    fields = {k: v for k, v in doc.items() if isinstance(v, (str, int, float, bool))}
    fields["target_delimiter"] = config.get("target_delimiter", " ")
    fields["prompt_format"] = "continuation"
    item_id = str(doc.get("id", n))
    try:
        return MCItem(item_id, task, language, description + str(text), tuple(choices), target, fields)
    except XlingError as err:
        raise XlingError(f"{where}: {err}") from None


def load_lmeval_task(path: str | Path, language: str, split: str) -> list[MCItem]:
    """Items of an lm-eval multiple_choice task YAML (zero-shot contexts, as lm-eval builds them)."""
    path = Path(path)
    config = read_lmeval_yaml(path)
    check_config(config, path)
    docs = load_docs(config, split_name(config, split, path), path)
    task = str(config.get("task", path.stem))
    items = [doc_to_item(config, doc, task, language, n, f"{path}: doc {n}") for n, doc in enumerate(docs)]
    if not items:
        raise XlingError(f"{path}: split {split!r} has no documents")
    return items
