"""Real-world facts and their localised names, from CLDR.

Babel supplies the localised names (months, weekdays, territories, languages, currencies) and the
territory -> currencies and territory -> official languages tables. Babel lacks CLDR's territory
containment (which country lies in which region of the world), so ``data/territoryContainment.json``
is vendored unchanged from the npm package ``cldr-core`` (its licence is ``data/LICENSE-cldr-core``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from babel import Locale
from babel.languages import get_official_languages
from babel.numbers import get_territory_currencies

# Stand-alone names are the nominative forms a choice needs (ru "март", fi "maaliskuu"; the format
# context gives the genitive "марта" and partitive "maaliskuuta"). For the other languages here both
# contexts agree, so the stand-alone context is used everywhere.
_CONTEXT = "stand-alone"


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def month_names(language: str) -> tuple[str, ...]:
    """The 12 month names, January first."""
    months = _locale(language).months[_CONTEXT]["wide"]
    return tuple(months[m] for m in range(1, 13))


def weekday_names(language: str) -> tuple[str, ...]:
    """The 7 weekday names, Monday first."""
    days = _locale(language).days[_CONTEXT]["wide"]
    return tuple(days[d] for d in range(7))


def territory_name(language: str, code: str) -> str | None:
    """A country or region name (``"JP"``, ``"014"``), or None when CLDR has none for ``language``."""
    return _locale(language).territories.get(code)


def language_name(language: str, code: str) -> str | None:
    """A language name (``"fr"``), or None when CLDR has none for ``language``."""
    return _locale(language).languages.get(code)


def currency_name(language: str, code: str) -> str | None:
    """A currency name (``"JPY"``), or None when CLDR has none for ``language``."""
    return _locale(language).currencies.get(code)


@cache
def _containment() -> dict[str, tuple[str, ...]]:
    """CLDR territory containment: region code -> contained codes (status variants kept under their keys)."""
    text = resources.files("xling.tasks.mini").joinpath("data/territoryContainment.json").read_text("utf-8")
    table = json.loads(text)["supplemental"]["territoryContainment"]
    return {code: tuple(entry["_contains"]) for code, entry in table.items()}


@cache
def un_members() -> tuple[str, ...]:
    """The 193 UN member states (CLDR grouping ``UN``): the countries every country task draws from."""
    return tuple(sorted(_containment()["UN"]))


@cache
def subregion_of() -> dict[str, str]:
    """Country -> its UN M.49 subregion (``"JP"`` -> ``"030"`` Eastern Asia), from the non-grouping tree."""
    table = _containment()
    out: dict[str, str] = {}
    for region, members in table.items():
        if not region.isdigit():  # status variants ("029-status-deprecated") and groupings (EU, UN, QO)
            continue
        for code in members:
            if code.isalpha() and len(code) == 2:
                out[code] = region
    return out


@cache
def continent_of() -> dict[str, str]:
    """Subregion -> continent (``"030"`` -> ``"142"`` Asia), from the world's top level ``001``.

    Only the numeric UN M.49 subregions: Oceania also lists ``QO`` (Outlying Oceania, no UN member).
    """
    table = _containment()
    return {sub: continent for continent in table["001"] for sub in table[continent] if sub.isdigit()}


def currency_of(country: str) -> str | None:
    """The country's one legal-tender currency today, or None when it has none or several."""
    currencies = get_territory_currencies(country, tender=True)
    return currencies[0] if len(currencies) == 1 else None


def official_languages(country: str, *, all_statuses: bool = False) -> tuple[str, ...]:
    """Base codes of the country's official languages (``sr_Latn`` -> ``sr``).

    ``all_statuses`` adds regional and de-facto official languages: what a distractor must avoid.
    """
    codes = get_official_languages(country, regional=all_statuses, de_facto=all_statuses)
    return tuple(dict.fromkeys(code.split("_")[0] for code in codes))
