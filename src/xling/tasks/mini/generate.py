"""Generate the xling-mini tasks: language-independent facts, rendered into each language.

Each task is two named steps:

1. ``facts``: every candidate question as language-independent codes (a country and currency codes,
   a month index and an offset, four numbers), with three plausible distractors of the same kind and
   the gold's position drawn from a seeded RNG;
2. ``render``: one fact in one language, with CLDR/num2words names and that language's template.

A fact is kept only if it renders in every language of the suite with four distinct choices, so item
ids (``<task>-<key>``) are aligned across languages; train and test never share a key (a country, a
calendar question, a set of numbers).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from num2words import num2words

from xling.errors import XlingError
from xling.tasks.items import MCItem
from xling.tasks.mini import cldr, templates

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "pt", "ru", "tr", "fi", "id")
N_CHOICES = 4


@dataclass(frozen=True)
class Fact:
    """One question, independent of language: ``subject`` is asked about, ``options`` are codes."""

    key: str
    subject: tuple
    options: tuple
    gold: int


def _with_gold(rng: random.Random, key: str, subject: tuple, gold: object, distractors: Sequence) -> Fact:
    """Put the gold among the distractors at a random position."""
    options = list(distractors)
    pos = rng.randrange(N_CHOICES)
    options.insert(pos, gold)
    return Fact(key, subject, tuple(options), pos)


def _pick_distractors(rng: random.Random, gold: object, near: Sequence, far: Sequence, n_near: int) -> list:
    """Up to ``n_near`` distractors from ``near`` (harder), the rest from ``far``; never the gold, no repeats."""
    near = sorted({x for x in near if x != gold}, key=str)
    picked = rng.sample(near, min(n_near, len(near)))
    far = sorted({x for x in far if x != gold and x not in picked}, key=str)
    picked += rng.sample(far, N_CHOICES - 1 - len(picked))
    return picked


# --- calendar: which month/weekday is n months/days after or before the given one -----------------

_CALENDAR_OFFSETS = {"month": (12, (-4, -3, -2, -1, 1, 2, 3, 4)), "day": (7, (-1, 1))}


def calendar_facts(rng: random.Random) -> list[Fact]:
    """Every (unit, start, offset): months ±1..4, weekdays ±1. Distractors: months or weekdays farther from
    the named one than the answer (so the same-distance month in the wrong direction is never offered)."""
    facts = []
    for unit, (period, offsets) in _CALENDAR_OFFSETS.items():
        for start in range(period):
            for offset in offsets:
                gold = (start + offset) % period
                farther = [i for i in range(period) if _circular_distance(i, start, period) > abs(offset)]
                distractors = _pick_distractors(rng, gold, [], farther, 0)
                key = f"{unit}{start + 1:02d}{offset:+d}"
                facts.append(_with_gold(rng, key, (unit, start, offset), gold, distractors))
    return facts


def _circular_distance(a: int, b: int, period: int) -> int:
    return min((a - b) % period, (b - a) % period)


def calendar_render(fact: Fact, language: str) -> tuple[str, tuple[str, ...]]:
    unit, start, offset = fact.subject
    names = cldr.month_names(language) if unit == "month" else cldr.weekday_names(language)
    table = templates.CALENDAR[language]
    context = f"{table[unit].format(x=names[start])} {table[(unit, offset)]}"
    return context, tuple(names[i] for i in fact.options)


# --- currency of a country --------------------------------------------------------------------------

_MAX_SHARED_GOLD = 2  # a currency shared by many countries (EUR, XOF, USD) is the answer at most twice


def currency_facts(rng: random.Random) -> list[Fact]:
    """Countries with one legal tender; distractors: currencies of other countries, two from its continent."""
    currency = {c: cur for c in cldr.un_members() if (cur := cldr.currency_of(c))}
    region = cldr.subregion_of()
    continent = cldr.continent_of()
    countries = sorted(currency)
    rng.shuffle(countries)
    used: Counter[str] = Counter()
    facts = []
    for country in countries:
        gold = currency[country]
        if used[gold] >= _MAX_SHARED_GOLD:
            continue
        used[gold] += 1
        same = [cur for c, cur in currency.items() if continent[region[c]] == continent[region[country]]]
        distractors = _pick_distractors(rng, gold, same, list(currency.values()), 2)
        facts.append(_with_gold(rng, country, (country,), gold, distractors))
    return facts


def currency_render(fact: Fact, language: str) -> tuple[str, tuple[str, ...]]:
    return _country_context(templates.CURRENCY, fact, language), tuple(
        cldr.currency_name(language, code) for code in fact.options
    )


# --- official language of a country -----------------------------------------------------------------

_MAX_LANGUAGE_GOLD = 6  # English, French, Arabic, Spanish are official in dozens of countries


def language_facts(rng: random.Random) -> list[Fact]:
    """Countries and one official language; distractors: official languages elsewhere on its continent
    that have no official status (national, regional or de facto) in the country."""
    region = cldr.subregion_of()
    continent = cldr.continent_of()
    official = {c: langs for c in cldr.un_members() if (langs := cldr.official_languages(c))}
    countries = sorted(official)
    rng.shuffle(countries)
    used: Counter[str] = Counter()
    facts = []
    for country in countries:
        choices = [lang for lang in official[country] if used[lang] < _MAX_LANGUAGE_GOLD]
        if not choices:
            continue
        gold = rng.choice(choices)
        used[gold] += 1
        avoid = set(cldr.official_languages(country, all_statuses=True))
        near = [
            lang
            for c, langs in official.items()
            if continent[region[c]] == continent[region[country]]
            for lang in langs
            if lang not in avoid
        ]
        far = [lang for langs in official.values() for lang in langs if lang not in avoid]
        distractors = _pick_distractors(rng, gold, near, far, 2)
        facts.append(_with_gold(rng, country, (country,), gold, distractors))
    return facts


def language_render(fact: Fact, language: str) -> tuple[str, tuple[str, ...]]:
    return _country_context(templates.LANGUAGE, fact, language), tuple(
        cldr.language_name(language, code) for code in fact.options
    )


# --- region of the world a country lies in (CLDR territory containment) -----------------------------


def region_facts(rng: random.Random) -> list[Fact]:
    """Countries and their UN subregion; distractors: subregions of three other continents, one each."""
    region = cldr.subregion_of()
    continent = cldr.continent_of()
    facts = []
    for country in cldr.un_members():
        gold = region[country]
        others = sorted({continent[r] for r in continent} - {continent[gold]})
        distractors = [rng.choice(sorted(r for r in continent if continent[r] == c)) for c in rng.sample(others, 3)]
        facts.append(_with_gold(rng, country, (country,), gold, distractors))
    return facts


def region_render(fact: Fact, language: str) -> tuple[str, tuple[str, ...]]:
    return _country_context(templates.REGION, fact, language), tuple(
        cldr.territory_name(language, code) for code in fact.options
    )


def _country_context(table: dict[str, str], fact: Fact, language: str) -> str | None:
    name = cldr.territory_name(language, fact.subject[0])
    return table[language].format(x=name) if name else None


# --- number words: the largest or smallest of four spelled-out numbers ------------------------------

_N_NUMBER_SETS = 300  # distinct questions to draw splits from


def numbers_facts(rng: random.Random) -> list[Fact]:
    """Four distinct numbers 1..99 and whether the largest or the smallest is asked for; the others are distractors."""
    facts: dict[str, Fact] = {}
    while len(facts) < _N_NUMBER_SETS:
        values = rng.sample(range(1, 100), N_CHOICES)
        which = rng.choice(("max", "min"))
        gold = max(values) if which == "max" else min(values)
        key = f"{which}-{'-'.join(map(str, sorted(values)))}"
        facts.setdefault(key, _with_gold(rng, key, (which,), gold, [v for v in values if v != gold]))
    return list(facts.values())


_NUM2WORDS_LANG = {"pt": "pt_BR"}  # CLDR's "pt" is Brazilian Portuguese; num2words' "pt" is European


def numbers_render(fact: Fact, language: str) -> tuple[str, tuple[str, ...]]:
    (which,) = fact.subject
    lang = _NUM2WORDS_LANG.get(language, language)
    return templates.NUMBERS[language][which], tuple(num2words(n, lang=lang) for n in fact.options)


# --- the suite ---------------------------------------------------------------------------------------

Render = Callable[[Fact, str], tuple[str | None, tuple[str | None, ...]]]
TASK_STEPS: dict[str, tuple[Callable[[random.Random], list[Fact]], Render]] = {
    "calendar": (calendar_facts, calendar_render),
    "currency": (currency_facts, currency_render),
    "language": (language_facts, language_render),
    "numbers": (numbers_facts, numbers_render),
    "region": (region_facts, region_render),
}


def _renders_everywhere(render: Render, fact: Fact) -> bool:
    """True if the fact has a name for every part in every language and four distinct choices."""
    for language in LANGUAGES:
        context, choices = render(fact, language)
        if context is None or None in choices or len(set(choices)) != N_CHOICES:
            return False
    return True


def split_facts(name: str, seed: int, n_train: int, n_test: int) -> dict[str, list[Fact]]:
    """The task's facts for ``train`` and ``test``: disjoint keys, drawn deterministically from ``seed``."""
    make_facts, render = TASK_STEPS[name]
    rng = random.Random(f"xling-mini:{name}:{seed}")
    facts = [f for f in make_facts(rng) if _renders_everywhere(render, f)]
    if n_train + n_test > len(facts):
        raise XlingError(
            f"xling-mini task {name!r}: asked for {n_train} train + {n_test} test items, "
            f"only {len(facts)} distinct questions exist"
        )
    rng.shuffle(facts)
    return {"test": facts[:n_test], "train": facts[n_test : n_test + n_train]}


def render_items(name: str, language: str, facts: Sequence[Fact]) -> list[MCItem]:
    """The facts as ``MCItem``s in ``language``; ``fields`` keeps the language-independent codes."""
    render = TASK_STEPS[name][1]
    items = []
    for fact in facts:
        context, choices = render(fact, language)
        items.append(
            MCItem(
                id=f"{name}-{fact.key}",
                task=f"mini:{name}",
                language=language,
                context=context,
                choices=choices,
                gold=fact.gold,
                fields={"subject": list(fact.subject), "options": list(fact.options)},
            )
        )
    return items
