"""What a message says about the customer's wish and mood: a person, a call back, a complaint or
a lost parcel, frustration (mild or strong). No I/O; phrases are matched on folded whole words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tresen.bot.slots import has_phrase
from tresen.bot.text import clean

PERSON_PHRASES = (
    "mitarbeiter",
    "mitarbeiterin",
    "mensch",
    "menschen",
    "echte person",
    "echten person",
    "einer person",
    "person sprechen",
    "berater",
    "beraterin",
    "kundenservice",
    "kundendienst",
    "mit jemandem sprechen",
    "mit jemandem reden",
    "jemanden sprechen",
    "gebt mir jemanden",
    "geben sie mir jemanden",
    "jemand vom team",
    "jemand aus dem team",
    "jemand anderen",
    "agent",
    "human",
    "real person",
    "a person",
    "talk to someone",
    "speak to someone",
    "speak with someone",
    "talk to somebody",
    "someone real",
    "operator",
    "representative",
)
CALLBACK_PHRASES = (
    "ruckruf",
    "zuruckrufen",
    "zuruckruft",
    "ruft mich an",
    "ruf mich an",
    "rufen sie mich an",
    "mich anrufen",
    "call me",
    "call back",
    "callback",
    "ring me",
    "phone me",
)
COMPLAINT_PHRASES = (
    "beschwerde",
    "beschweren",
    "reklamation",
    "reklamieren",
    "unzufrieden",
    "enttauscht",
    "mein geld zuruck",
    "geld zuruck",
    "complaint",
    "complain",
    "disappointed",
    "money back",
)
LOST_PARCEL_PHRASES = (
    "nicht angekommen",
    "nie angekommen",
    "niemals angekommen",
    "verloren gegangen",
    "ist verloren",
    "verschwunden",
    "kaputt angekommen",
    "beschadigt angekommen",
    "kam beschadigt",
    "kam kaputt",
    "beschadigt geliefert",
    "falschen artikel",
    "falsche ware",
    "falsches paket",
    "never arrived",
    "not arrived",
    "hasn t arrived",
    "has not arrived",
    "didn t arrive",
    "did not arrive",
    "got lost",
    "arrived damaged",
    "arrived broken",
    "wrong item",
)
INSULTS = (
    "idiot",
    "idioten",
    "idiotisch",
    "depp",
    "trottel",
    "dumm",
    "dummer bot",
    "bloder bot",
    "bloder",
    "blode",
    "scheiss",
    "scheisse",
    "arsch",
    "arschloch",
    "verarschen",
    "verarscht",
    "fuck",
    "fucking",
    "shit",
    "stupid",
    "moron",
    "dumb",
    "crap",
    "wtf",
)
ANGRY = (
    "nutzlos",
    "sinnlos",
    "useless",
    "pointless",
    "frechheit",
    "unverschamt",
    "unverschamtheit",
    "katastrophe",
    "sauerei",
    "zumutung",
    "zeitverschwendung",
    "lacherlich",
    "bringt nichts",
    "das hilft nicht",
    "hilft mir nicht",
    "hilft nicht",
    "du verstehst nichts",
    "verstehst du mich nicht",
    "verstehst mich nicht",
    "ridiculous",
    "not helpful",
    "this is not helping",
    "waste of time",
)
ANNOYED = (
    "nervt",
    "nervig",
    "genervt",
    "mist",
    "verdammt",
    "immer noch nicht",
    "schon wieder",
    "annoying",
    "annoyed",
    "seriously",
    "ernsthaft",
)
# Text written to steer a language model, not to ask the shop anything.
INJECTION_PHRASES = (
    "ignore all previous instructions",
    "ignore previous instructions",
    "ignore the above",
    "ignore your instructions",
    "disregard all previous",
    "system prompt",
    "you are now",
    "act as",
    "pretend to be",
    "ignoriere alle vorherigen anweisungen",
    "ignoriere alle anweisungen",
    "ignoriere deine anweisungen",
    "vergiss alle anweisungen",
    "vergiss deine anweisungen",
    "du bist jetzt",
    "systemprompt",
)
_SHOUT_LETTERS = 12  # a message in capitals counts as shouting from this many letters


class Intent:
    """Why a customer wants a person, from the words of one message."""

    PERSON = "asked_for_person"
    CALLBACK = "callback"
    COMPLAINT = "complaint"
    LOST_PARCEL = "lost_parcel"


@dataclass(frozen=True)
class Mood:
    """How upset a message sounds: 0 calm, 1 annoyed (one sign), 2 angry or insulting."""

    level: int
    insult: bool = False


def intent(text: str) -> str | None:
    """A wish only a person can meet: a person, a call back, a complaint, a lost parcel."""
    if has_phrase(text, CALLBACK_PHRASES):
        return Intent.CALLBACK
    if has_phrase(text, PERSON_PHRASES):
        return Intent.PERSON
    if has_phrase(text, LOST_PARCEL_PHRASES):
        return Intent.LOST_PARCEL
    if has_phrase(text, COMPLAINT_PHRASES):
        return Intent.COMPLAINT
    return None


def injection(text: str) -> bool:
    """A message that tries to give the bot instructions ("ignore all previous instructions")."""
    return has_phrase(text, INJECTION_PHRASES)


def shouting(text: str) -> bool:
    """A long message written in capitals."""
    letters = [ch for ch in clean(text) if ch.isalpha()]
    return (
        len(letters) >= _SHOUT_LETTERS and sum(ch.isupper() for ch in letters) / len(letters) > 0.8
    )


def mood(text: str) -> Mood:
    """The message's mood: insults and angry words are 2; each sign of annoyance (a word, !!! or
    ???, capitals) counts 1, two signs in one message are 2."""
    if has_phrase(text, INSULTS):
        return Mood(2, insult=True)
    if has_phrase(text, ANGRY):
        return Mood(2)
    signs = (
        int(has_phrase(text, ANNOYED))
        + int(bool(re.search(r"[!?]{3,}", clean(text))))
        + int(shouting(text))
    )
    return Mood(min(signs, 2))
