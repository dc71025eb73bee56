"""Buttons adapted to what a channel can show."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tresen.channels.registry import channel_factory
from tresen.domain.message import ContentKind
from tresen.pipeline.outbound import OutboundContent, adapt_content

WHATSAPP = channel_factory("whatsapp").capabilities
SMS = channel_factory("sms").capabilities


def _buttons(*titles: str) -> OutboundContent:
    payload = {"buttons": [{"id": f"b{i}", "title": t} for i, t in enumerate(titles)]}
    return OutboundContent(ContentKind.INTERACTIVE, "Welche Größe?", payload)


def test_buttons_that_fit_stay_buttons() -> None:
    content = _buttons("41", "42")
    assert adapt_content(content, WHATSAPP) is content


def test_too_many_or_too_long_buttons_become_numbered_options() -> None:
    four = adapt_content(_buttons("40", "41", "42", "43"), WHATSAPP)
    assert four.kind == ContentKind.TEXT
    assert four.body == "Welche Größe?\n\n1) 40\n2) 41\n3) 42\n4) 43"
    assert four.payload == {
        "options": [{"id": f"b{i}", "title": t} for i, t in enumerate(["40", "41", "42", "43"])]
    }
    long = adapt_content(_buttons("Damenrad mit tiefem Einstieg"), WHATSAPP)
    assert long.body is not None and long.body.endswith("1) Damenrad mit tiefem Einstieg")


def test_list_rows_become_numbered_options_on_sms() -> None:
    content = OutboundContent(
        ContentKind.INTERACTIVE,
        "Kategorie?",
        {
            "sections": [
                {
                    "title": "Räder",
                    "rows": [{"id": "city", "title": "Stadtrad"}, {"id": "mtb", "title": "MTB"}],
                }
            ]
        },
    )
    adapted = adapt_content(content, SMS)
    assert adapted.body == "Kategorie?\n\n1) Stadtrad\n2) MTB"


def test_malformed_buttons_are_left_for_validation_to_refuse() -> None:
    bad = OutboundContent(ContentKind.INTERACTIVE, "?", {"buttons": [{"id": "a"}, {"title": "B"}]})
    assert adapt_content(bad, SMS) is bad


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=25))
def test_numbering_keeps_every_choice_or_none(titles: list[str]) -> None:
    adapted = adapt_content(_buttons(*titles), SMS)
    if adapted.kind == ContentKind.TEXT:
        options = (adapted.payload or {})["options"]
        assert [o["id"] for o in options] == [f"b{i}" for i in range(len(titles))]
        assert all(f"{n}) " in (adapted.body or "") for n in range(1, len(titles) + 1))
    else:
        assert adapted.kind == ContentKind.INTERACTIVE
