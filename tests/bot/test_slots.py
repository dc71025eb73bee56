"""Reading slot values out of free text: size vs budget vs height, colours, choices, "egal"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tresen.bot.slots import (
    Choices,
    colour_key,
    parse_amount,
    parse_colour,
    parse_height,
    read,
    says_any,
)

CATEGORIES = Choices(
    ("Radschuhe", "Helme", "Trikots", "Schlösser", "Beleuchtung"),
    {"Beleuchtung": ("Licht", "light"), "Radschuhe": ("shoes", "cycling shoes")},
)
BRANDS = Choices(("Pedalo", "Kettwerk", "Bergfix"))
ORDER = r"RH-?\d{5,8}"


def _read(text: str) -> dict[str, object]:
    return read(
        text, order_patterns=[ORDER], choices={"category": CATEGORIES, "brand": BRANDS}
    ).values()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ich suche Radschuhe in Größe 43", {"category": "Radschuhe", "size": "43"}),
        ("Radschuhe 43", {"category": "Radschuhe", "size": "43"}),
        ("Radschuhe bis 100 €", {"category": "Radschuhe", "budget": 100.0}),
        (
            "Schuhe unter 120 Euro, Größe 42,5",
            {"category": "Radschuhe", "budget": 120.0, "size": "42.5"},
        ),
        ("Helm in M bis 100 €", {"category": "Helme", "size": "M", "budget": 100.0}),
        ("max. 80", {"budget": 80.0}),
        ("bis 1.000 €", {"budget": 1000.0}),
        ("Fahrradhelm von Pedalo", {"category": "Helme", "brand": "Pedalo"}),
        (
            "cycling shoes size 44 under 150",
            {"category": "Radschuhe", "size": "44", "budget": 150.0},
        ),
        ("Ich bin 1,80 m groß", {"height": 180}),
        ("180 cm", {"height": 180}),
        ("Wo ist RH-100234? PLZ 70173", {"order:" + ORDER: "RH-100234", "postcode": "70173"}),
        ("jana@example.com", {"email": "jana@example.com"}),
        ("black helmet", {"colour": "schwarz", "category": "Helme"}),
        ("gibts die auch in schwarz?", {"colour": "schwarz"}),
        ("Was kostet der?", {}),
        ("100", {}),  # a bare number out of the shoe range is neither size nor budget
    ],
)
def test_one_message_fills_every_slot_it_names(text: str, expected: dict[str, object]) -> None:
    assert _read(text) == expected


def test_43_is_a_size_and_never_a_budget_too() -> None:
    found = _read("Ich suche Radschuhe in Größe 43")
    assert found["size"] == "43" and "budget" not in found
    assert "size" not in _read("bis 43 €") and _read("bis 43 €")["budget"] == 43.0


@pytest.mark.parametrize(
    "text", ["ich will keine Schuhe", "keine Helme bitte", "Rot nicht, bitte", "ohne Licht"]
)
def test_negated_values_are_not_read(text: str) -> None:
    found = _read(text)
    assert "category" not in found and "colour" not in found


def test_weiss_the_verb_is_no_colour() -> None:
    assert parse_colour("weiß nicht") is None
    assert parse_colour("ich weiß es nicht") is None
    assert parse_colour("in weiß bitte") == "weiss"
    assert colour_key("White") == colour_key("weiße") == "weiss"


@pytest.mark.parametrize(
    ("text", "cm"),
    [("1,80", 180), ("1.8 m", 180), ("180", 180), ("ich bin 175", 175), ("1,65m", 165)],
)
def test_heights(text: str, cm: int) -> None:
    assert parse_height(text) == cm


def test_heights_out_of_range_or_unmarked() -> None:
    assert parse_height("42") is None and parse_height("3,50 m") is None
    assert parse_height("180", bare=False) is None


def test_any_words_and_short_no() -> None:
    for text in ("egal", "Ist mir egal", "no preference", "doesn't matter", "Any", "nein"):
        assert says_any(text), text
    for text in ("ich will keine Schuhe", "nein, das ist mir zu teuer, lieber günstiger"):
        assert not says_any(text), text


def test_choices_by_number_name_stem_compound_synonym_and_typo() -> None:
    assert CATEGORIES.find("3", loose=True) == "Trikots"
    assert CATEGORIES.find("Helm") == "Helme"
    assert CATEGORIES.find("ein neues Trikot") == "Trikots"
    assert CATEGORIES.find("Fahrradschloss") == "Schlösser"
    assert CATEGORIES.find("ein Licht für vorne") == "Beleuchtung"
    assert CATEGORIES.find("Helmme", loose=True) == "Helme"
    assert CATEGORIES.find("Helmme") is None, "typos only for a short answer to the question"
    assert CATEGORIES.find("Helm und Schuhe") is None, "two at once: no guess"


def test_amount_answers() -> None:
    assert parse_amount("bis 120 €") == 120.0
    assert parse_amount("99,90") == 99.9
    assert parse_amount("0") is None and parse_amount("keine Ahnung") is None


@given(st.text(max_size=300))
def test_reading_never_fails(text: str) -> None:
    found = _read(text)
    assert isinstance(found, dict)
