"""Every text the bot sends exists in du and Sie, German and English, and keeps to the form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.bot.test_dialogue_state import DATA, Chat, demo_bot
from tresen.bot.engine import Bot
from tresen.bot.persona import DEFAULT_TEXTS, Persona, address_forms
from tresen.bot.store import read_import

OTHER = {"du": "sie", "sie": "du"}


def test_the_form_checker_tells_du_from_sie() -> None:
    assert address_forms("Bitte wähle eine der Möglichkeiten.") == {"du"}
    assert address_forms("Bitte gib eine Größe an.") == {"du"}
    assert address_forms("Bitte wählen Sie eine der Möglichkeiten.") == {"sie"}
    assert address_forms("Wie lautet Ihre Bestellnummer?") == {"sie"}
    assert address_forms("Die Bestellnummer steht auf der Rechnung.") == set()
    assert address_forms("Ihre Nachricht ist lang, dass sie jemand liest.") == {"sie"}


def _values() -> Iterator[tuple[str, str, str, str]]:
    """(language, key, form or "", text) of every default text."""
    for lang, texts in DEFAULT_TEXTS.items():
        for key, value in texts.items():
            if isinstance(value, dict):
                for form, text in value.items():
                    for line in [text] if isinstance(text, str) else text:
                        yield lang, key, form, line
            else:
                yield lang, key, "", value


def test_every_text_exists_in_both_languages_and_both_forms() -> None:
    assert set(DEFAULT_TEXTS["de"]) == set(DEFAULT_TEXTS["en"])
    for lang in ("de", "en"):
        for key, value in DEFAULT_TEXTS[lang].items():
            if isinstance(value, dict):
                assert set(value) == {"du", "sie"}, (lang, key)
                assert all(value.values()), (lang, key)
            else:
                assert isinstance(value, str) and value, (lang, key)


@pytest.mark.parametrize(("lang", "key", "form", "text"), list(_values()))
def test_no_default_text_uses_the_other_form(lang: str, key: str, form: str, text: str) -> None:
    if lang != "de":
        return
    forms = address_forms(text)
    if form:
        assert OTHER[form] not in forms, f"{key} ({form}): {text}"
    else:
        assert not forms, f"{key} is one text for both forms: {text}"


def _flow_texts() -> Iterator[tuple[str, Any]]:
    parsed = read_import(DATA / "demo_faq.yaml")
    for flow in parsed.flows:
        for field in ("done", "title"):
            if flow.get(field):
                yield f"{flow['id']}.{field}", flow[field]
        for slot in flow["slots"]:
            for field in ("ask", "error"):
                if slot.get(field):
                    yield f"{flow['id']}.{slot['name']}.{field}", slot[field]


@pytest.mark.parametrize(("where", "value"), list(_flow_texts()))
def test_the_demo_flows_speak_both_forms(where: str, value: Any) -> None:
    german = value.get("de") if isinstance(value, dict) else value
    if isinstance(german, dict):
        assert set(german) == {"du", "sie"}, where
        for form, text in german.items():
            assert OTHER[form] not in address_forms(text), f"{where} ({form}): {text}"
    else:
        assert not address_forms(german), f"{where} has one German text for both forms: {german}"


WALK = [
    ["Hallo", "Ich suche was", "blabla", "quatsch", "Abbrechen", "danke"],
    ["Ich suche Radschuhe", "riesig", "43", "weiß nicht", "egal", "egal", "Was kostet der?"],
    ["Welche Rahmengröße brauche ich?", "groß", "sehr groß", "Jemand vom Team"],
    ["Wo ist meine Bestellung?", "weiß ich nicht", "RH-100234", "nein"],
    ["Ich suche was", "Wann habt ihr geöffnet?", "Nein, danke"],
    ["Habt ihr den Helm Urban Light?", "und in gelb?", "und in XL?", "gibts den in schwarz?"],
    ["Habt ihr den Faltschloss Safe 900?", "und in rot?"],
    ["Habt ihr die Akkuleuchte Nachtfalke?"],
    ["Ich suche Trikots in Größe S", "egal", "egal"],
    ["Kann ich eine Probefahrt machen?", "Kostet das was?"],
    ["🚲", "🚲"],
    ["Können Sie mich zurückrufen?"],
    ["Das ist doch nutzlos"],
    ["x" * 5000],
    ["Velo-Discount ist billiger"],
]


@pytest.mark.parametrize("form", ["du", "sie"])
def test_a_walk_through_the_demo_keeps_to_the_form(form: str) -> None:
    bot: Bot = demo_bot(form)
    answers = {a for e in bot.kb.entries for a in e.answers.values()}  # the business's own texts
    seen = 0
    for script in WALK:
        chat = Chat(bot)
        for text in script:
            turn = chat.say(text)
            for reply in [*turn.texts, *turn.buttons]:
                if reply in answers or turn.language != "de":
                    continue
                seen += 1
                assert OTHER[form] not in address_forms(reply), f"{form}: {text!r} → {reply!r}"
        media = Chat(bot).say("", kind="image")
        assert OTHER[form] not in address_forms(media.texts[0])
    assert seen > 40


def test_the_persona_picks_the_form_and_falls_back_to_the_default_in_it() -> None:
    sie = Persona(texts={"de": {"invalid_choice": {"du": "Nimm eine!"}}})
    assert sie.say("invalid_choice", "de") == "Bitte wählen Sie eine der Möglichkeiten."
    assert Persona(form="du").say("invalid_choice", "de") == "Bitte wähle eine der Möglichkeiten."
    assert Persona(form="du").say("cancelled", "en").startswith("All right, I've cancelled")
