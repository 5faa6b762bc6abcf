"""Write ``docs/xling-mini.md`` from the generator itself: each task with one example item per language.

Regenerate after changing a task or template: ``python -m xling.tasks.mini.docs > docs/xling-mini.md``
(a test checks that the committed file is up to date).
"""

from __future__ import annotations

import sys

from xling.tasks.mini import DEFAULT_N_TEST, DEFAULT_N_TRAIN, DEFAULT_SEED, LANGUAGES, TASKS, generate, load_items

_INTRO = f"""# xling-mini: a built-in multilingual task suite

`xling-mini` is an offline multiple-choice suite generated from real multilingual data, so that the whole
transfer study runs on a laptop CPU without any model or dataset hub. It has {len(TASKS)} tasks in
{len(LANGUAGES)} languages ({", ".join(LANGUAGES)}), four choices per item, item ids aligned across
languages, and disjoint `train` and `test` splits ({DEFAULT_N_TRAIN} and {DEFAULT_N_TEST} items per task and
language by default, drawn deterministically from seed {DEFAULT_SEED}).

```python
from xling.tasks.mini import TASKS, LANGUAGES, load_items
items = load_items("currency", "de", "test")          # list[MCItem]; also: seed=, n_train=, n_test=
```

In task specs the suite is named `mini:<task>` (for example `mini:currency`).

**Sources.** Localised month, weekday, country, region, language and currency names and the country →
currency and country → official-language tables come from CLDR through Babel (month and weekday names in
the stand-alone context: the nominative that a bare answer needs in Russian and Finnish). Which region of the
world a country lies in comes from CLDR territory containment (`supplemental/territoryContainment.json`
from the npm package `cldr-core`, vendored in `src/xling/tasks/mini/data/` with its Unicode licence).
Spelled-out numbers come from num2words. Countries are the 193 UN member states. Every prompt template is
written for its language (`src/xling/tasks/mini/templates.py`); no item mixes languages.

**Splits.** A fact (a country, a calendar question, a set of numbers) is kept only if it has a name in every
language and four distinct choices in each; train and test never share one. Distractors are of the same
kind as the answer (months for months, currencies for currencies, …).

Regenerate this page with `python -m xling.tasks.mini.docs > docs/xling-mini.md`.
"""

_ABOUT = {
    "calendar": "Which month is one to four months after or before the one named, or which weekday is the day "
    "after or before. Distractors: months or weekdays farther from the one named than the answer (never the "
    "one at the same distance in the other direction).",
    "currency": "Which currency a country uses (countries with one legal tender; a currency shared by many "
    f"countries is the answer at most {generate._MAX_SHARED_GOLD} times). Distractors: currencies of other "
    "countries, two of them from the same continent.",
    "language": "Which language is an official language of a country (each language is the answer at most "
    f"{generate._MAX_LANGUAGE_GOLD} times). Distractors: official languages of other countries, mostly on the "
    "same continent, that have no official status (national, regional or de facto) in this one.",
    "numbers": "Which of four spelled-out numbers (1–99) is the largest, or the smallest.",
    "region": "Which region of the world (UN M.49 subregion) a country lies in. Distractors: subregions of three "
    "other continents, one each.",
}


def render_markdown() -> str:
    """The whole page: the introduction, then per task a table with the first test item in every language."""
    parts = [_INTRO]
    for name in TASKS:
        parts.append(f"\n## `{name}`\n\n{_ABOUT[name]}\n")
        parts.append("| lang | context | choices (gold in bold) |\n|---|---|---|")
        for language in LANGUAGES:
            item = load_items(name, language, "test")[0]
            choices = " · ".join(f"**{c}**" if j == item.gold else c for j, c in enumerate(item.choices))
            parts.append(f"| {language} | {_cell(item.context)} | {_cell(choices)} |")
        parts.append(f"\nItem id: `{item.id}`.")
    return "\n".join(parts) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
