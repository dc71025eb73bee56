"""One bot turn without I/O: hand-over signals, greetings, flows with slots, blacklist, summary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.bot.kbdata import BLACKLISTED, kb_data
from tests.examples import examples
from tresen.bot import store
from tresen.bot.blacklist import Blacklist
from tresen.bot.engine import Bot, Turn, frustrated, greeting_only, summary, wants_person
from tresen.bot.flows import parse_flow
from tresen.bot.live import build_bot
from tresen.bot.persona import Persona
from tresen.bot.text import fold
from tresen.channels.registry import channel_factory
from tresen.domain.message import ContentKind
from tresen.handlers.bot_turn import _contents


@pytest.fixture(scope="module")
def bot() -> Bot:
    """The test knowledge base as a bot (fitted once for the module)."""
    parsed = store.parse_import(kb_data(), "test kb")
    flows = {f["id"]: parse_flow(f) for f in parsed.flows}
    return build_bot(
        parsed.kb,
        Persona(business="Radladen Test"),
        Blacklist.of(parsed.blacklist or []),
        flows,
        parsed.entry_flows,
    )


@pytest.mark.parametrize(
    "text",
    ["Mitarbeiter bitte", "Ich will einen MENSCHEN sprechen", "agent", "talk to a human please"],
)
def test_asking_for_a_person(text: str) -> None:
    assert wants_person(text)


@pytest.mark.parametrize("text", ["Was kostet der Versand?", "Menschenskind, wie teuer?", ""])
def test_not_asking_for_a_person(text: str) -> None:
    assert not wants_person(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Das ist echt eine Frechheit", True),
        ("WO BLEIBT MEINE BESTELLUNG ENDLICH", True),
        ("Hallo???", True),
        ("this is useless", True),
        ("Wann habt ihr offen?", False),
        ("OK", False),
    ],
)
def test_frustration(text: str, expected: bool) -> None:
    assert frustrated(text) is expected


def test_greeting_gets_the_persona_greeting_and_is_no_miss(bot: Bot) -> None:
    assert greeting_only("Hallo!") and not greeting_only("Hallo, was kostet der Versand?")
    turn = bot.respond("Hallo!", {}, 0.0)
    assert turn.outcome == "greeting" and "Radladen Test" in turn.texts[0]
    assert turn.state["misses"] == 0


def test_frustration_hands_over(bot: Bot) -> None:
    turn = bot.respond("Das ist doch eine Frechheit!!!", {}, 0.0)
    assert turn.outcome == "handover" and turn.handover == "frustration"


def test_flow_keeps_slots_over_turns_and_cancels(bot: Bot) -> None:
    first = bot.respond("Gibt es die Radschuhe auch in anderen Größen?", {}, 0.0)
    assert first.faq_key == "schuhe" and first.texts[-1] == "Welche Größe brauchen Sie?"
    wrong = bot.respond("keine Ahnung", first.state, 1.0)
    assert wrong.outcome == "flow" and "35 und 48" in wrong.texts[0]
    size = bot.respond("42,5", wrong.state, 2.0)
    assert size.texts == ("Größe 42,5 haben wir vorrätig.",)
    again = bot.respond("und in 44?", size.state, 3.0)
    assert again.texts == ("Größe 44 haben wir vorrätig.",) and again.state["slots"]["size"] == 44
    other = bot.respond("Was kostet der Versand?", again.state, 4.0)
    assert other.faq_key == "versand" and other.state["slots"]["size"] == 44


def test_a_flow_hands_over_after_too_many_wrong_answers(bot: Bot) -> None:
    turn = bot.respond("Habt ihr den Radschuh in meiner Größe?", {}, 0.0)
    for n in range(3):
        turn = bot.respond("weiß nicht", turn.state, float(n + 1))
    assert turn.outcome == "handover" and turn.handover == "flow"


def test_summary_names_reason_matches_and_slots(bot: Bot) -> None:
    turn = bot.respond("Habt ihr die Radschuhe in 42?", {}, 0.0)
    turn = bot.respond("Mitarbeiter", turn.state, 1.0)
    text = bot.summary(turn.state, turn.handover or "", "Mitarbeiter")
    assert "Wunsch nach einer Person" in text and "Radschuh" in text and "Schuhgröße 42" in text
    assert "size=" not in text and "asked_for_person" not in text and "*" not in text
    assert summary(turn.state, bot.kb, turn.handover or "", "Mitarbeiter").startswith(
        "Vom Bot übergeben: Wunsch nach einer Person"
    )


@settings(max_examples=examples(60), deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_turn_and_never_the_blacklisted_term(bot: Bot, text: str) -> None:
    turn = bot.respond(text + f" {BLACKLISTED}", {}, 0.0)
    assert turn.texts and all(fold(BLACKLISTED) not in fold(t) for t in turn.texts)


def test_one_message_per_turn_with_buttons_or_numbered_options() -> None:

    turn = Turn("answered", ("Antwort.", "Welche Farbe?"), {}, "de", ("Rot", "Blau"))
    [wa] = _contents(turn, channel_factory("whatsapp").capabilities)
    assert wa.kind == ContentKind.INTERACTIVE and wa.body == "Antwort.\n\nWelche Farbe?"
    assert [b["title"] for b in (wa.payload or {})["buttons"]] == ["Rot", "Blau"]
    [sms] = _contents(turn, channel_factory("sms").capabilities)
    assert sms.kind == ContentKind.TEXT and sms.body == "Antwort.\n\nWelche Farbe?\n1. Rot\n2. Blau"
