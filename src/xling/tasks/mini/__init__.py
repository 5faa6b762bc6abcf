"""xling-mini: a built-in, offline multiple-choice suite generated from real multilingual data.

Five tasks (``calendar``, ``currency``, ``language``, ``numbers``, ``region``) in ten languages, four
choices per item, item ids aligned across languages, disjoint ``train`` and ``test`` splits. Names come
from CLDR (via Babel, plus the vendored territory containment) and num2words; every prompt template is
written per language. See ``docs/xling-mini.md`` for one example item per task and language.

>>> from xling.tasks.mini import load_items
>>> items = load_items("currency", "de", "test")
"""

from __future__ import annotations

from functools import cache

from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.mini.generate import LANGUAGES, TASK_STEPS, render_items, split_facts

TASKS: tuple[str, ...] = tuple(TASK_STEPS)
SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_SEED = 0
DEFAULT_N_TRAIN = 52
DEFAULT_N_TEST = 52

__all__ = ["LANGUAGES", "SPLITS", "TASKS", "load_items"]


@cache
def _facts(name: str, seed: int, n_train: int, n_test: int):
    return split_facts(name, seed, n_train, n_test)


def load_items(
    name: str,
    language: str,
    split: str,
    *,
    seed: int = DEFAULT_SEED,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
) -> list[MCItem]:
    """The items of task ``name`` in ``language`` for ``split`` (``train`` or ``test``).

    The same ``seed``, ``n_train`` and ``n_test`` give the same items, in every language with the same ids.
    """
    if name not in TASKS:
        raise XlingError(f"xling-mini: unknown task {name!r}; expected one of {', '.join(TASKS)}")
    if language not in LANGUAGES:
        raise XlingError(f"xling-mini: unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if split not in SPLITS:
        raise XlingError(f"xling-mini: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n_train < 0 or n_test < 0:
        raise XlingError(f"xling-mini: item counts must be >= 0 (got n_train={n_train}, n_test={n_test})")
    return render_items(name, language, _facts(name, seed, n_train, n_test)[split])
