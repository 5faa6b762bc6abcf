"""xling-mini: aligned ids, valid golds against the sources, distractors of the same kind, no English leaking,
determinism, errors, vendored data, and the generated documentation."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from babel.numbers import get_territory_currencies

from xling.errors import XlingError
from xling.tasks.items import check_aligned
from xling.tasks.mini import LANGUAGES, TASKS, cldr, load_items, templates
from xling.tasks.mini.generate import split_facts

REPO = Path(__file__).resolve().parents[1]


def _digest(items) -> str:
    text = json.dumps([[i.id, i.language, i.context, list(i.choices), i.gold] for i in items], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_suite_has_at_least_four_tasks_in_six_languages_with_default_splits():
    assert len(TASKS) >= 4 and len(LANGUAGES) >= 6
    for name in TASKS:
        assert len(load_items(name, "en", "train")) == 52
        assert len(load_items(name, "en", "test")) == 52


@pytest.mark.parametrize("name", TASKS)
def test_ids_aligned_across_languages_and_splits_disjoint(name):
    for split in ("train", "test"):
        by_lang = {lang: load_items(name, lang, split) for lang in LANGUAGES}
        check_aligned(by_lang, name)
        # the same question in every language: gold position and language-independent codes agree
        ref = by_lang["en"]
        for lang, items in by_lang.items():
            assert [(i.gold, dict(i.fields)) for i in items] == [(i.gold, dict(i.fields)) for i in ref], lang
    train = {i.id for i in load_items(name, "en", "train")}
    test = {i.id for i in load_items(name, "en", "test")}
    assert not train & test


@pytest.mark.parametrize("name", TASKS)
def test_items_have_four_distinct_choices_in_every_language(name):
    for lang in LANGUAGES:
        for item in load_items(name, lang, "test") + load_items(name, lang, "train"):
            assert len(item.choices) == 4 and len(set(item.choices)) == 4
            assert item.language == lang and item.task == f"mini:{name}"


def _raw_containment() -> dict[str, list[str]]:
    text = resources.files("xling.tasks.mini").joinpath("data/territoryContainment.json").read_text("utf-8")
    return {k: v["_contains"] for k, v in json.loads(text)["supplemental"]["territoryContainment"].items()}


def test_golds_are_true_and_distractors_false_of_the_same_kind():
    """Recompute every gold from the sources, independently of the generator's code paths."""
    raw = _raw_containment()
    subregions = {r for r, members in raw.items() if r.isdigit() and any(m.isalpha() for m in members)}
    region_of = {c: r for r in subregions for c in raw[r] if c.isalpha()}
    all_currencies = {cur for c in raw["UN"] for cur in get_territory_currencies(c, tender=True)}
    for name in TASKS:
        for item in load_items(name, "en", "test") + load_items(name, "en", "train"):
            subject, options = item.fields["subject"], item.fields["options"]
            gold, wrong = options[item.gold], [o for j, o in enumerate(options) if j != item.gold]
            if name == "calendar":
                unit, start, offset = subject
                period = 12 if unit == "month" else 7
                assert gold == (start + offset) % period
                distance = [min((o - start) % period, (start - o) % period) for o in wrong]
                assert all(0 <= o < period for o in wrong) and min(distance) > abs(offset)
            elif name == "currency":
                assert get_territory_currencies(subject[0], tender=True) == [gold]
                assert all(o in all_currencies for o in wrong)
            elif name == "language":
                official = cldr.official_languages(subject[0], all_statuses=True)
                assert gold in cldr.official_languages(subject[0])
                assert not set(wrong) & set(official)
            elif name == "numbers":
                assert gold == (max if subject[0] == "max" else min)(options)
                assert all(1 <= o <= 99 for o in options)
            elif name == "region":
                assert subject[0] in raw["UN"] and gold == region_of[subject[0]]
                assert all(o in subregions and o != gold for o in wrong)


def test_calendar_names_are_stand_alone_nominatives():
    assert cldr.month_names("ru")[2] == "март" and cldr.month_names("fi")[2] == "maaliskuu"
    assert cldr.weekday_names("fi")[0] == "maanantai"
    months = [i for i in load_items("calendar", "ru", "test") if i.fields["subject"][0] == "month"]
    assert months and all(not c.endswith(("а", "я")) for i in months for c in i.choices)  # not genitive "марта"


_ENGLISH_WORDS = {
    w.lower()
    for text in [
        *(t["en"] for t in (templates.CURRENCY, templates.LANGUAGE, templates.REGION)),
        *templates.NUMBERS["en"].values(),
        *templates.CALENDAR["en"].values(),
    ]
    for w in re.findall(r"[A-Za-z]{4,}", text)
}


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_no_english_in_other_languages(lang):
    assert {"which", "country", "currency", "month", "largest"} <= _ENGLISH_WORDS
    same_as_english = total = 0
    for name in TASKS:
        english = load_items(name, "en", "test")
        for item, en in zip(load_items(name, lang, "test"), english):
            words = {w.lower() for w in re.findall(r"\w+", " ".join([item.context, *item.choices]))}
            assert not words & _ENGLISH_WORDS, (item.id, words & _ENGLISH_WORDS)
            assert item.context != en.context
            same_as_english += sum(a == b for a, b in zip(item.choices, en.choices))
            total += len(item.choices)
    assert same_as_english / total < 0.35  # CLDR's names really are localised (a few, like "Japan", coincide)
    if lang == "ru":
        # no Latin script at all, except CLDR's own acronyms ("франк КФА BEAC")
        assert not any(
            re.search(r"\b(?![A-Z]+\b)[A-Za-z]+", i.context + " ".join(i.choices))
            for name in TASKS
            for i in load_items(name, lang, "test")
        )


def test_deterministic_across_processes_and_seed_dependent():
    items = [i for name in TASKS for i in load_items(name, "de", "test")]
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from test_mini import _digest; "
        "from xling.tasks.mini import TASKS, load_items; "
        "print(_digest([i for n in TASKS for i in load_items(n, 'de', 'test')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == _digest(items)
    other = [i for name in TASKS for i in load_items(name, "de", "test", seed=1)]
    assert _digest(other) != _digest(items)
    assert split_facts("currency", 0, 10, 5) == split_facts("currency", 0, 10, 5)


def test_counts_are_parameters():
    assert len(load_items("numbers", "fi", "train", n_train=100, n_test=20)) == 100
    assert len(load_items("numbers", "fi", "test", n_train=100, n_test=20)) == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("weather", "en", "test"), "unknown task 'weather'"),
        (("currency", "xx", "test"), "unknown language 'xx'"),
        (("currency", "en", "dev"), "unknown split 'dev'"),
    ],
)
def test_unknown_names_raise(args, message):
    with pytest.raises(XlingError, match=message):
        load_items(*args)


def test_asking_for_more_items_than_exist_raises():
    with pytest.raises(XlingError, match="only .* distinct questions exist"):
        load_items("calendar", "en", "test", n_train=100, n_test=100)


def test_vendored_containment_ships_with_its_licence():
    data = resources.files("xling.tasks.mini").joinpath("data")
    assert "UNICODE LICENSE" in data.joinpath("LICENSE-cldr-core").read_text("utf-8")
    assert cldr.subregion_of()["JP"] == "030" and cldr.continent_of()["030"] == "142"
    assert len(cldr.un_members()) == 193


def test_docs_page_is_generated_from_the_code():
    from xling.tasks.mini.docs import render_markdown

    page = (REPO / "docs" / "xling-mini.md").read_text("utf-8")
    assert page == render_markdown(), "regenerate: python -m xling.tasks.mini.docs > docs/xling-mini.md"
