"""The paper's four benchmarks in eleven languages, aligned across languages by item id.

Sources (``datasets.load_dataset``; ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are honoured by ``datasets``):

- ``aligned`` (default): the released aligned subsets ``Dr4kl3s/*`` (one config per language, ``train`` 300 /
  ``test`` 400; Global-MMLU 215/400), read in their real columns (``DATASETS.md`` and ``dataset_processors/`` of
  the release): ARC ``id, instruction, option_a…option_e, answer`` (a letter); Global-MMLU ``sample_id, question,
  option_a…option_d, answer, subject, subject_category, …``; HellaSwag ``id, activity_label, ctx_a, ctx_b,
  endings, label`` (a digit string); TruthfulQA ``truth_id, question, mc1_targets_choices, mc1_targets_labels,
  mc2_…`` (gold = the label equal to 1);
- a folder: local copies of those hub repos at ``FOLDER/<owner>/<name>/`` as ``huggingface-cli download
  --repo-type dataset <owner>/<name> --local-dir FOLDER/<owner>/<name>`` writes them (for clusters without hub
  access), read with the same ``datasets.load_dataset`` call;
- ``upstream``: the original multilingual datasets at the revisions ``split_benchmarks.py`` pins, filtered by an
  id manifest (``{split: [ids]}`` JSON, or the release's ``split_manifests/canonical/<benchmark>.csv``; by default
  the ids of the aligned release's English config), so every language uses the same items. As in the release,
  HellaSwag ``zh`` comes from ``richmondsin/m_hellaswag``, TruthfulQA ``en`` from ``Dr4kl3s/truthfulqa_en_aligned``
  (its ``mc1_targets``/``mc2_targets`` split into the aligned columns), and TruthfulQA rows get ``truth_id`` = their
  position over the source's splits in order.

``xling data prepare`` caches the raw rows (``xling.cache.cache_dir()``: ``$XLING_CACHE``, default
``~/.cache/xling``), after which ``load_paper_items`` runs offline. Each row becomes one ``MCItem`` whose context,
choices and gold are the evaluation format of the lm-eval task the release runs (``arc_{lang}``,
``hellaswag_{lang}``, ``truthfulqa_{lang}_mc1`` from lm-eval's okapi family, ``global_mmlu_{lang}``); the paper's
own task YAMLs are not released, so these formats are inferred from the task names. ``fields['plain']`` holds the
plain alternative (``Question: …\\nAnswer:`` + option text, no clean-up, TruthfulQA gold = the true label) and
``fields['paper_train']`` the release's training example for the row (``None`` where its processor drops the row).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xling.cache import cache_dir
from xling.errors import XlingError
from xling.io import atomic_file
from xling.tasks.items import MCItem
from xling.tasks.local import parse_gold
from xling.tasks.source import TaskSource

LANGUAGES = ("ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh")
# The revisions of the upstream sources that split_benchmarks.py pins (SOURCES).
UPSTREAM_REVISIONS = {
    "alexandrainst/m_arc": "69b0991ee606079105c4f9e271bcc1fef0014e03",
    "CohereLabs/Global-MMLU-Lite": "36c2fd756f19ccf13a9a96c8e53ccecc02192b8b",
    "alexandrainst/m_hellaswag": "9d31dc982bd6285e081e3e3136332a38b9c1d7b7",
    "richmondsin/m_hellaswag": "8d9642f16ae3031f7eddc3e3531b6ae58686d81a",
    "alexandrainst/m_truthfulqa": "f0445d470f1925882b990f5f247fdcf288972f60",
    "Dr4kl3s/truthfulqa_en_aligned": "7332da38d96e69b5d6f2502cd45db3fe011b2f19",
}
_ID_FIELDS = ("id", "sample_id", "truth_id", "item_id", "ind", "source_id")

# The six-shot QA primer of TruthfulQA (Lin et al., 2022) as lm-eval's okapi TruthfulQA tasks prepend it
# (lm_eval/tasks/okapi/truthfulqa_multilingual/utils.py; a test checks the two are equal).
TRUTHFULQA_QA_PROMPT = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def cached_path(name: str, language: str, split: str) -> Path:
    """The cached raw rows of one benchmark, language and split (JSON lines, the release's columns)."""
    return cache_dir() / "paper-rows" / name / language / f"{split}.jsonl"


def check_name(name: str, language: str) -> None:
    if name not in BENCHMARKS:
        raise XlingError(f"unknown benchmark {name!r} (expected one of {', '.join(BENCHMARKS)})")
    if language not in LANGUAGES:
        raise XlingError(f"benchmark {name!r}: unknown language {language!r} (expected one of {', '.join(LANGUAGES)})")


def format_record(names: Iterable[str], variant: str) -> dict[str, Any]:
    """What a run records about the evaluation format of the paper benchmarks it scored."""
    if variant == "plain":
        note = "plain: 'Question: ...\\nAnswer:' + option text, no clean-up; TruthfulQA gold = the true label"
    else:
        note = (
            "inferred from the release's lm-eval task names (its task YAMLs are not released): lm-eval's okapi "
            "arc/hellaswag/truthfulqa-mc1 and global_mmlu task formats over the aligned data"
        )
    return {
        "benchmark_format": variant,
        "inferred": variant == "lm-eval",
        "note": note,
        "lm_eval_tasks": {name: BENCHMARKS[name].lmeval_task for name in names},
        "score_norm_metric": {name: BENCHMARKS[name].norm_metric for name in names},
    }


# --- the lm-eval (okapi) text clean-up ---------------------------------------------------------------------


def okapi_clean(text: str | None) -> str:
    """lm-eval's okapi ``preprocess``: strip, ``' [title]'`` → ``'. '``, drop bracketed tags, collapse double
    spaces (ARC, HellaSwag and TruthfulQA questions; TruthfulQA maps a missing text to a space)."""
    if text is None:
        return " "
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


# --- one normaliser per benchmark: raw row → MCItem ------------------------------------------------------


def _col(row: dict[str, Any], column: str, where: str) -> Any:
    if column not in row:
        raise XlingError(f"{where}: no column {column!r} (row has {', '.join(row)})")
    return row[column]


def _arc(row: dict[str, Any], item_id: str, language: str, where: str) -> MCItem:
    """``arc_{lang}`` (okapi): ``Question: `` + cleaned instruction, the non-empty options A–E cleaned, gold = the
    answer letter (a numeric ARC key ``1``–``5`` counts from 1; okapi itself accepts only letters). Training
    (arc_challenge.py): options A–D raw after ``Question: {instruction.strip()}``, target ``" " + letter``; rows
    whose answer is not A–D are dropped."""
    instruction = str(_col(row, "instruction", where))
    raw = [row.get(f"option_{c}") for c in "abcde"]
    options = [str(o) for o in raw if o]
    answer = _col(row, "answer", where)
    letter = str(answer).strip().upper() if answer is not None else ""
    if len(letter) == 1 and letter in "ABCDE":
        gold = "ABCDE".index(letter)
    elif letter in ("1", "2", "3", "4", "5"):  # ARC's numeric answer keys count from 1
        gold = int(letter) - 1
    else:
        raise XlingError(f"{where}: answer {answer!r} is not a letter A–E")
    train = None
    if letter in ("A", "B", "C", "D"):
        a, b, c, d = (row.get(f"option_{x}") for x in "abcd")
        train = {
            "prompt": f"Question: {instruction.strip()}\nA) {a}\nB) {b}\nC) {c}\nD) {d}\nAnswer:",
            "target": f" {letter}",
        }
    plain = {"context": f"Question: {instruction}\nAnswer:", "choices": options, "gold": gold}
    return MCItem(
        item_id,
        "arc_challenge",
        language,
        f"Question: {okapi_clean(instruction)}\nAnswer:",
        tuple(okapi_clean(o) for o in options),
        gold,
        {"question": instruction, "plain": plain, "paper_train": train},
    )


def _hellaswag(row: dict[str, Any], item_id: str, language: str, where: str) -> MCItem:
    """``hellaswag_{lang}`` (okapi): cleaned ``activity_label: ctx_a Ctx_b`` + cleaned ending, gold = int(label).
    Training (hellaswag.py): the same query, the four endings lettered ``A) …``, target ``" " + letter``."""
    ctx = f"{_col(row, 'ctx_a', where)} {str(_col(row, 'ctx_b', where)).capitalize()}"
    query = okapi_clean(f"{_col(row, 'activity_label', where)}: {ctx}")
    endings = [okapi_clean(str(e)) for e in _col(row, "endings", where)]
    gold = parse_gold(_col(row, "label", where), endings, where)
    train = None
    if len(endings) >= 4 and 0 <= gold < 4:
        options = "\n".join(f"{'ABCD'[i]}) {endings[i]}" for i in range(4))
        train = {"prompt": f"{query}\n{options}\nAnswer:", "target": f" {'ABCD'[gold]}"}
    return MCItem(
        item_id, "hellaswag", language, query, tuple(endings), gold, {"question": query, "paper_train": train}
    )


def _global_mmlu(row: dict[str, Any], item_id: str, language: str, where: str) -> MCItem:
    """``global_mmlu_{lang}``: ``{question.strip()}\\nA. …\\nD. …\\nAnswer:`` + the letter, gold = the answer letter.
    Training (global_mmlu.py): the same prompt, target ``" " + letter`` (an int answer is an index)."""
    question = str(_col(row, "question", where))
    options = [str(_col(row, f"option_{c}", where)) for c in "abcd"]
    answer = _col(row, "answer", where)
    gold = parse_gold(answer, options, where)
    letter = "ABCD"[gold] if isinstance(answer, int) and not isinstance(answer, bool) else str(answer).strip().upper()
    prompt = f"{question.strip()}\n" + "".join(f"{'ABCD'[i]}. {o}\n" for i, o in enumerate(options)) + "Answer:"
    fields = {
        "question": question,
        "prompt_format": "letters",
        "letter_sep": ".",
        "paper_train": {"prompt": prompt, "target": f" {letter}"},
    }
    for extra in ("subject", "subject_category", "cultural_sensitivity_label"):
        if extra in row:
            fields[extra] = str(row[extra])
    return MCItem(item_id, "global_mmlu", language, f"Question: {question}\nAnswer:", tuple(options), gold, fields)


def _truthfulqa(row: dict[str, Any], item_id: str, language: str, where: str) -> MCItem:
    """``truthfulqa_{lang}_mc1`` (okapi): the six-shot QA primer, ``\\n\\nQ: `` + cleaned question + ``\\nA:``, the
    mc1 choices, gold at index 0 (``doc_to_target: 0``). Training (truthfulqa.py): language modelling of
    ``Question: {question}\\nAnswer: {true answer}`` (true = the label equal to 1)."""
    question = _col(row, "question", where)
    choices = [str(c) for c in _col(row, "mc1_targets_choices", where)]
    labels = [int(x) for x in _col(row, "mc1_targets_labels", where)]
    if len(labels) != len(choices) or 1 not in labels:
        raise XlingError(f"{where}: mc1_targets_labels must give one label per choice with a 1 for the true answer")
    true = labels.index(1)
    context = f"{TRUTHFULQA_QA_PROMPT}\n\nQ: {okapi_clean(question)}\nA:"
    plain = {"context": f"Question: {question}\nAnswer:", "choices": choices, "gold": true}
    return MCItem(
        item_id,
        "truthfulqa",
        language,
        context,
        tuple(choices),
        0,
        {
            "question": str(question),
            "plain": plain,
            "paper_train": {"text": f"Question: {question}\nAnswer: {choices[true]}"},
        },
    )


@dataclass(frozen=True)
class Benchmark:
    """Everything xling knows of one paper benchmark, in one record (each field names its source in the release)."""

    name: str
    aligned: str  # the aligned release on the hub: one config per language, train 300 / test 400 (GMMLU 215/400)
    upstream: str  # the original multilingual dataset split_benchmarks.py filters (SOURCES)
    id_column: str  # split_benchmarks.py ID_COLUMNS
    lmeval_task: str  # the lm-eval task the release evaluates with (dataset_processors/*.py build_tasks)
    norm_metric: str  # score_norm: acc_norm where the lm-eval task reports it, else acc (parse_lm_eval_output.py)
    train_max_length: int  # the training sequence length of the release's processor (dataset_processors/*.py)
    normalise: Callable[[dict[str, Any], str, str, str], MCItem]  # a raw row → the evaluation item
    upstream_for_language: dict[str, str] = field(default_factory=dict)  # language-specific upstream sources


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="arc_challenge",
            aligned="Dr4kl3s/arc_challenge_core_grid_seed42",
            upstream="alexandrainst/m_arc",
            id_column="id",
            lmeval_task="arc_{lang}",
            norm_metric="acc_norm",
            train_max_length=256,
            normalise=_arc,
        ),
        Benchmark(
            name="global_mmlu",
            aligned="Dr4kl3s/global_mmlu_lite_core_grid_seed42",
            upstream="CohereLabs/Global-MMLU-Lite",
            id_column="sample_id",
            lmeval_task="global_mmlu_{lang}",
            norm_metric="acc",
            train_max_length=512,
            normalise=_global_mmlu,
        ),
        Benchmark(
            name="hellaswag",
            aligned="Dr4kl3s/hellaswag_coregrid_seed42",
            upstream="alexandrainst/m_hellaswag",
            id_column="id",
            lmeval_task="hellaswag_{lang}",
            norm_metric="acc_norm",
            train_max_length=512,
            normalise=_hellaswag,
            upstream_for_language={"zh": "richmondsin/m_hellaswag"},
        ),
        Benchmark(
            name="truthfulqa",
            aligned="Dr4kl3s/truthfulqa_coregrid_seed42",
            upstream="alexandrainst/m_truthfulqa",
            id_column="truth_id",
            lmeval_task="truthfulqa_{lang}_mc1",
            norm_metric="acc",
            train_max_length=128,
            normalise=_truthfulqa,
            upstream_for_language={"en": "Dr4kl3s/truthfulqa_en_aligned"},
        ),
    )
}


class PaperBenchmark(TaskSource):
    """A paper benchmark as a task source: the prepared cache if there is one, else the aligned release."""

    @property
    def norm_metric(self) -> str:  # type: ignore[override]
        return BENCHMARKS[self.name].norm_metric

    def languages(self) -> list[str]:
        return list(LANGUAGES)

    def _load(self, language: str, split: str) -> list[MCItem]:
        return load_paper_items(self.name, language, split)

    def is_prepared(self, language: str, split: str) -> bool:
        return cached_path(self.name, language, split).is_file()

    @classmethod
    def run_record(cls, names: Sequence[str], benchmark_format: str) -> dict[str, Any]:
        return {"paper_benchmark_formats": format_record(names, benchmark_format)}


def row_id(row: dict[str, Any], name: str | None = None) -> str:
    """The item id of a raw row: the release's id column for ``name``, else the first id-like column."""
    column = BENCHMARKS[name].id_column if name is not None else None
    if column is not None and row.get(column) not in (None, ""):
        return str(row[column])
    for key in _ID_FIELDS:
        if row.get(key) not in (None, ""):
            return str(row[key])
    expected = column or ", ".join(_ID_FIELDS)
    raise XlingError(f"row has no id field (expected {expected}; has {', '.join(row)})")


def normalise_row(name: str, row: dict[str, Any], language: str) -> MCItem:
    """One raw row of a paper benchmark → ``MCItem`` (lm-eval's evaluation format; see the module docstring)."""
    bench = BENCHMARKS[name]
    item_id = row_id(row, name)
    where = f"{name} {language} item {item_id!r}"
    item = bench.normalise(row, item_id, language, where)
    return MCItem(
        item.id,
        item.task,
        item.language,
        item.context,
        item.choices,
        item.gold,
        {
            **item.fields,
            "train_max_length": bench.train_max_length,
            "lm_eval_task": bench.lmeval_task.format(lang=language),
        },
    )


# --- where rows come from -----------------------------------------------------------------------------------


def _hub_rows(repo: str, language: str | None, split: str | None, revision: str | None = None) -> list[dict[str, Any]]:
    """Rows of one config of a hub dataset (a hub id or a local copy): one split, or every split in order when
    ``split`` is ``None``; ``language=None`` is the dataset's only config."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if split is None:
            return [dict(r) for part in datasets.load_dataset(repo, language, revision=revision).values() for r in part]
        return [dict(r) for r in datasets.load_dataset(repo, language, split=split, revision=revision)]
    except Exception as err:
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
        hint = " (offline: run `xling data prepare` on a connected machine first)" if offline else ""
        raise XlingError(
            f"cannot load {repo} config {language!r} split {split or 'all'!r}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{hint}"
        ) from None


def local_repo(folder: str | Path, repo: str) -> str:
    """``FOLDER/<owner>/<name>``, the local copy of hub dataset ``repo``; missing is one line naming it."""
    path = Path(folder).expanduser() / repo
    if not path.is_dir():
        raise XlingError(
            f"{path}: no local copy of hub dataset {repo} (create it with `huggingface-cli download "
            f"--repo-type dataset {repo} --local-dir {path}`)"
        )
    return str(path)


def read_manifest(path: str | Path) -> dict[str, list[str]]:
    """An id manifest: JSON ``{split: [ids]}``, or the release's CSV with the header ``split,id``."""
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise XlingError(f"{path}: cannot read id manifest ({err.strerror or err})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames != ["split", "id"]:
            raise XlingError(f"{path}: id manifest CSV must have the header 'split,id' (has {reader.fieldnames})")
        out: dict[str, list[str]] = {}
        for row in reader:
            out.setdefault(row["split"], []).append(row["id"])
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise XlingError(f"{path}: cannot read id manifest ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise XlingError(f"{path}: id manifest must map split names to lists of ids")
    return {k: [str(i) for i in v] for k, v in data.items()}


_NP_ARRAY = re.compile(r"array\((\[.*?\])\s*,\s*dtype=[^)]*\)", re.DOTALL)


def _mc_target(value: Any, where: str) -> tuple[list[str], list[int]]:
    """``{choices, labels}`` from a dict or its printed form (numpy arrays included), as the English TruthfulQA
    source stores ``mc1_targets``; read with ``ast.literal_eval`` (literals only, no code runs)."""
    import ast

    if not isinstance(value, dict):
        try:
            value = ast.literal_eval(_NP_ARRAY.sub(r"\1", str(value).strip()))
        except (SyntaxError, ValueError):
            raise XlingError(f"{where}: cannot read {str(value)[:60]!r} as choices and labels") from None
    return [str(c) for c in value["choices"]], [int(x) for x in value["labels"]]


def upstream_rows(name: str, language: str) -> list[dict[str, Any]]:
    """Every row of the upstream source of ``name`` in ``language`` (all splits, in order), in the aligned columns."""
    bench = BENCHMARKS[name]
    repo = bench.upstream_for_language.get(language, bench.upstream)
    english_tqa = (name, language) == ("truthfulqa", "en")
    rows = _hub_rows(repo, None if english_tqa else language, None, UPSTREAM_REVISIONS.get(repo))
    if name == "truthfulqa":
        for i, row in enumerate(rows):  # split_benchmarks.py add_synthetic_id: position over the splits in order
            if english_tqa:
                for key in ("mc1", "mc2"):
                    if f"{key}_targets" in row:
                        choices, labels = _mc_target(row.pop(f"{key}_targets"), f"{repo} row {i}")
                        row[f"{key}_targets_choices"], row[f"{key}_targets_labels"] = choices, labels
            row.setdefault("truth_id", i)
    return rows


def select_by_manifest(
    rows: Iterable[dict[str, Any]], ids: list[str], where: str, name: str | None = None
) -> list[dict[str, Any]]:
    """Rows whose id is in ``ids``, in manifest order; a missing id is an error (languages must align)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_id.setdefault(row_id(row, name), row)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise XlingError(f"{where}: {len(missing)} manifest ids are missing, e.g. {missing[0]!r}")
    return [by_id[i] for i in ids]


def fetch_rows(
    name: str, language: str, split: str, source: str = "aligned", manifest: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Raw rows from the hub (aligned release, or upstream filtered by ``manifest``) or from a folder of local
    copies of the aligned release (any other ``source``), in the release's row order."""
    check_name(name, language)
    if source == "aligned":
        return _hub_rows(BENCHMARKS[name].aligned, language, split)
    if source == "upstream":
        if manifest is None:  # the aligned release's English ids define the items
            manifest = {split: [row_id(row, name) for row in _hub_rows(BENCHMARKS[name].aligned, "en", split)]}
        if split not in manifest:
            raise XlingError(f"{name}: the id manifest has no split {split!r} (has {', '.join(manifest)})")
        rows = select_by_manifest(upstream_rows(name, language), manifest[split], f"{name} upstream {language}", name)
        column = BENCHMARKS[name].id_column
        return sorted(rows, key=lambda row: row[column])  # the release's order (split_benchmarks.py sort)
    return _hub_rows(local_repo(source, BENCHMARKS[name].aligned), language, split)


def fetch_items(
    name: str, language: str, split: str, source: str = "aligned", manifest: dict[str, list[str]] | None = None
) -> list[MCItem]:
    """Items from the hub or a local folder (see ``fetch_rows``)."""
    return [normalise_row(name, row, language) for row in fetch_rows(name, language, split, source, manifest)]


def write_cache(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_file(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def read_cache(path: Path, name: str, language: str) -> list[MCItem]:
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise XlingError(f"{path}:{lineno}: corrupt cache entry ({err}); rerun `xling data prepare`") from None
        if not isinstance(row, dict):
            raise XlingError(f"{path}:{lineno}: corrupt cache entry (not a row); rerun `xling data prepare`")
        items.append(normalise_row(name, row, language))
    return items


def load_paper_items(name: str, language: str, split: str) -> list[MCItem]:
    """Items of a paper benchmark: the local cache if prepared, else the aligned release on the hub."""
    check_name(name, language)
    path = cached_path(name, language, split)
    if path.is_file():
        return read_cache(path, name, language)
    return fetch_items(name, language, split)


def prepare(
    names: Iterable[str],
    languages: Iterable[str],
    splits: Iterable[str] = ("train", "test"),
    source: str = "aligned",
    manifest: str | Path | None = None,
) -> list[Path]:
    """Materialise every (benchmark, language, split) into the local cache; returns the files written.
    Rows are checked (every one must normalise) before anything is written."""
    ids = read_manifest(manifest) if manifest else None
    written = []
    for name in names:
        for language in languages:
            for split in splits:
                rows = fetch_rows(name, language, split, source, ids)
                for row in rows:
                    normalise_row(name, row, language)
                path = cached_path(name, language, split)
                write_cache(rows, path)
                written.append(path)
    return written
