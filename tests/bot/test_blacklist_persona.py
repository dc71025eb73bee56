"""Blacklist scrubbing and the persona's texts."""

from __future__ import annotations

import pytest

from tresen.bot.blacklist import Blacklist
from tresen.bot.persona import Persona, strip_emoji


def test_blacklist_detects_and_scrubs() -> None:
    bl = Blacklist.of(["Rose Bikes", "Fahrrad-XXL", "", "billig"])
    assert bl.mentions("Ist das bei rose-bikes günstiger?") == ["Rose Bikes"]
    assert bl.mentions("FAHRRAD XXL hat das auch") == ["Fahrrad-XXL"]
    assert bl.mentions("Rosenheim") == []
    out = bl.scrub("Anders als Rose Bikes (https://www.rosebikes.de/x) sind wir nicht billig.")
    assert bl.is_clean(out)
    assert "rosebikes" not in out.lower()
    assert out.startswith("Anders als")
    assert Blacklist.of([]).scrub("nichts") == "nichts"


def test_blacklist_keeps_umlaut_text_intact() -> None:
    bl = Blacklist.of(["Größtmarkt"])
    assert (
        bl.scrub("Wir sind nicht Grösstmarkt, wir sind größer.")
        == "Wir sind nicht …, wir sind größer."
    )


def test_persona_du_sie_emoji_and_overrides() -> None:
    sie = Persona(name="Radi", business="Radhaus", form="sie")
    du = Persona(name="Radi", business="Radhaus", form="du", emoji=False)
    assert "Ihnen" in sie.greeting("de") and "Radhaus" in sie.greeting("de")
    assert "dir" in du.greeting("de") and "👋" not in du.greeting("de")
    assert "How" in sie.greeting("en")
    custom = Persona(texts={"de": {"greeting": "Moin aus {business}!"}}, business="Kiel")
    assert custom.greeting("de") == "Moin aus Kiel!"
    assert custom.greeting("fr") == "Moin aus Kiel!"
    with pytest.raises(ValueError):
        Persona(form="ihr")


def test_fallback_replies_vary() -> None:
    p = Persona()
    replies = {p.fallback("de", turn, "conv-1") for turn in range(3)}
    assert len(replies) == 3
    assert p.fallback("en", 0, "c") != p.fallback("de", 0, "c")


def test_strip_emoji() -> None:
    assert strip_emoji("Hallo 👋 Welt 🙂") == "Hallo Welt"
