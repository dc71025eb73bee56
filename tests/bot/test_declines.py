"""Every "don't know" the bot says offers a way to a person, in German and English, du and Sie."""

from __future__ import annotations

import re

import pytest

from tests.bot.test_dialogue_state import Chat, demo_bot, said
from tresen.bot.engine import Bot, wants_person
from tresen.bot.persona import Persona
from tresen.bot.texts import DEFAULT_TEXTS

QUOTED = re.compile(r"[„“\"]([^„“”\"]+)[“”\"]")
DECLINES = ("fallback", "dont_know")


def _way_to_a_person(text: str) -> str | None:
    """The word the text tells the customer to write, when writing it reaches a person."""
    for word in QUOTED.findall(text):
        if wants_person(word):
            return word
    return None


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("form", ["du", "sie"])
@pytest.mark.parametrize("key", DECLINES)
def test_every_variant_names_a_word_that_reaches_a_person(
    language: str, form: str, key: str
) -> None:
    value = DEFAULT_TEXTS[language][key][form]
    variants = [value] if isinstance(value, str) else value
    assert variants
    for text in variants:
        assert _way_to_a_person(text), f"{language}/{form}/{key}: no way to a person in {text!r}"


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("form", ["du", "sie"])
def test_the_fallback_a_conversation_gets_always_offers_a_person(language: str, form: str) -> None:
    persona = Persona(form=form, default_language="de")
    n = len(DEFAULT_TEXTS[language]["fallback"][form])
    # Which variant comes first depends on the conversation; every start and every turn after.
    said_texts = {
        persona.fallback(language, turn, f"conversation-{c}") for c in range(12) for turn in (0, 1)
    }
    assert len(said_texts) == n
    assert all(_way_to_a_person(t) for t in said_texts)


@pytest.fixture(scope="module")
def bot() -> Bot:
    return demo_bot()


@pytest.mark.parametrize(
    "question",
    ["Wie wird das Wetter morgen?", "Habt ihr ein Kundenklo?"],
)
def test_the_demo_bot_declines_an_unknown_question_with_a_way_to_a_person(
    bot: Bot, question: str
) -> None:
    replies = []
    for c in range(6):  # conversations start on different variants
        chat = Chat(bot)
        turn = bot.respond(question, chat.state, 1.0, conversation=f"c{c}")
        assert turn.outcome == "fallback", said(turn)
        replies.append(said(turn))
    assert all("„Mitarbeiter“" in r for r in replies), replies
