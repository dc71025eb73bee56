"""Offline German/English detection per message from function words and spelling cues."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tresen.bot.text import clean, tokenize

LANGUAGES = ("de", "en")
# The name of a language (key) as written in another (inner key).
LANGUAGE_NAMES = {
    "de": {"de": "Deutsch", "en": "German"},
    "en": {"de": "Englisch", "en": "English"},
}

_DE_WORDS = frozenset(
    [
        "aber",
        "alle",
        "als",
        "also",
        "am",
        "an",
        "auch",
        "auf",
        "aus",
        "bei",
        "bin",
        "bis",
        "bitte",
        "bist",
        "da",
        "dann",
        "das",
        "dass",
        "dem",
        "den",
        "der",
        "des",
        "dich",
        "die",
        "dir",
        "doch",
        "du",
        "durch",
        "ein",
        "eine",
        "einem",
        "einen",
        "einer",
        "es",
        "euch",
        "euer",
        "eure",
        "fur",
        "gibt",
        "gern",
        "gerne",
        "geht",
        "guten",
        "habe",
        "haben",
        "habt",
        "hallo",
        "hast",
        "hat",
        "heute",
        "ich",
        "ihr",
        "ihnen",
        "im",
        "in",
        "ist",
        "ja",
        "jetzt",
        "kann",
        "kannst",
        "kein",
        "keine",
        "konnen",
        "konnt",
        "man",
        "mein",
        "meine",
        "mich",
        "mir",
        "mit",
        "morgen",
        "muss",
        "nach",
        "nicht",
        "noch",
        "nur",
        "ob",
        "oder",
        "schon",
        "sehr",
        "sein",
        "seid",
        "sich",
        "sie",
        "sind",
        "so",
        "uber",
        "um",
        "und",
        "uns",
        "unser",
        "vom",
        "von",
        "vor",
        "wann",
        "war",
        "warum",
        "was",
        "weil",
        "welche",
        "welcher",
        "wenn",
        "wer",
        "werden",
        "wie",
        "wieder",
        "wir",
        "wird",
        "wo",
        "wurde",
        "zu",
        "zum",
        "zur",
        "danke",
        "moin",
        "servus",
        "tschuss",
        "hi",
        "hey",
        "gut",
        "wieviel",
        "ne",
        "nen",
        "gib",
        "finde",
        "fuge",
        "setze",
        "zeig",
        "spiel",
    ]
)
_EN_WORDS = frozenset(
    [
        "a",
        "about",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "get",
        "got",
        "have",
        "has",
        "he",
        "hello",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "need",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "please",
        "she",
        "should",
        "so",
        "than",
        "thanks",
        "that",
        "the",
        "their",
        "them",
        "there",
        "they",
        "this",
        "to",
        "up",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yes",
        "hey",
        "hi",
        "good",
    ]
)
_DE_ENDINGS = re.compile(r"(ung|keit|heit|lich|chen|isch|schaft|sch|tz|ei|ie|en|ion)$")
_EN_ENDINGS = re.compile(r"(ing|ly|ed|th|ness|ay|ould|ck)$")
_DE_CHARS = re.compile(r"[äöüß]")


@dataclass(frozen=True)
class LanguageGuess:
    """A detected language ("de"/"en", or None when nothing tells) and how sure the guess is."""

    language: str | None
    confidence: float


def _fold_umlauts(word: str) -> str:
    return word.replace("ä", "a").replace("ö", "o").replace("ü", "u").replace("ß", "ss")


def detect_language(text: str, default: str | None = None) -> LanguageGuess:
    """Guess whether `text` is German or English; `default` when the text gives no evidence."""
    raw = clean(text)[:2000].casefold()
    words = tokenize(raw)
    de = 3.0 * len(_DE_CHARS.findall(raw))
    en = 0.0
    for word in words:
        plain = _fold_umlauts(word)
        in_de, in_en = plain in _DE_WORDS, word in _EN_WORDS
        if in_de and not in_en:
            de += 2.0
        elif in_en and not in_de:
            en += 2.0
        elif not (in_de or in_en) and len(word) > 3:
            de += 0.5 * bool(_DE_ENDINGS.search(plain))
            en += 0.5 * bool(_EN_ENDINGS.search(word))
    total = de + en
    if total == 0.0:
        return LanguageGuess(default, 0.0)
    language = "de" if de > en else "en" if en > de else default
    return LanguageGuess(language, abs(de - en) / total if language else 0.0)


def language_name(code: str, in_language: str) -> str:
    """The name of language `code` in `in_language` ("de" in "en" → "German"), or the code."""
    return LANGUAGE_NAMES.get(code, {}).get(in_language, code)
