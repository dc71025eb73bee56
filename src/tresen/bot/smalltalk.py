"""Messages that ask nothing: greetings, thanks, a bare yes or no."""

from __future__ import annotations

import re

from tresen.bot.slots import words_of
from tresen.bot.text import clean, fold

GREETING_WORDS = frozenset(
    [
        "hallo",
        "hi",
        "hey",
        "hello",
        "moin",
        "servus",
        "gruss",
        "grussgott",
        "gott",
        "guten",
        "tag",
        "morgen",
        "abend",
        "hallochen",
        "huhu",
        "good",
        "morning",
        "evening",
        "afternoon",
        "there",
        "liebes",
        "team",
        "ihr",
        "zusammen",
        "leute",
    ]
)
THANKS_WORDS = frozenset(
    [
        "danke",
        "dankeschon",
        "vielen",
        "dank",
        "schon",
        "thx",
        "thanks",
        "thank",
        "you",
        "merci",
        "super",
        "perfekt",
        "prima",
        "toll",
        "klasse",
        "ok",
        "okay",
        "alles",
        "klar",
        "passt",
        "great",
        "cool",
        "much",
        "so",
        "sehr",
    ]
)
THANKS_EMOJI = frozenset("👍🙏❤😊🙂👌😀😃🥰😍🤗")
YES_WORDS = ("ja", "jo", "gern", "gerne", "klar", "ok", "okay", "weiter", "yes", "sure", "yep")
NO_WORDS = ("nein", "no", "nope", "nee", "ne", "no thanks", "nein danke")


def greeting_only(text: str) -> bool:
    """A message that only says hello ("Hallo!", "Guten Tag", "hi there")."""
    words = re.findall(r"\w+", fold(clean(text)))
    return 0 < len(words) <= 4 and all(w in GREETING_WORDS for w in words)


def thanks_only(text: str) -> bool:
    """A message that only thanks or agrees ("Danke!", "ok super", "👍")."""
    cleaned = clean(text)
    words = words_of(cleaned)
    if not words:
        return bool(cleaned) and any(ch in THANKS_EMOJI for ch in cleaned)
    return (
        len(words) <= 5
        and all(w in THANKS_WORDS for w in words)
        and (
            any(
                w in ("danke", "dankeschon", "dank", "thx", "thanks", "thank", "merci")
                for w in words
            )
            or len(words) <= 2
        )
    )


def yes_or_no(text: str) -> bool:
    """A message that only says yes or no."""
    words = words_of(text)
    return 0 < len(words) <= 2 and all(w in YES_WORDS or w in NO_WORDS for w in words)
