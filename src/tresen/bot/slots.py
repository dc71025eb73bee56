"""Slot values read out of free text: sizes, amounts, body heights, colours, choices, order numbers.

Every message is read for every kind of value the flows know (`read`), so one message can fill
several slots. A number is read once: "Radschuhe in Größe 43" gives a size, "bis 100 €" a
budget, "1,80 m" a body height of 180 cm; a bare number is a size only when it can be one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz, process

from tresen.bot.text import clean, fold, stem

SHOE_SIZES = (35, 48)
HEIGHT_CM = (120, 230)
ANY = "*"
# Phrases that say "any value is fine" wherever they stand (folded) ...
ANY_PHRASES = (
    "egal",
    "beliebig",
    "keine rolle",
    "keine praferenz",
    "keine vorliebe",
    "no preference",
    "doesn t matter",
    "does not matter",
    "doesnt matter",
    "don t mind",
    "dont mind",
    "whatever",
    "any",
    "anything",
)
# ... and short answers that say so when they stand alone ("Lieblingsmarke?" – "nein").
ANY_SHORT = frozenset(["nein", "keine", "keins", "keiner", "no", "none", "nope", "nee", "ne"])
NEGATIONS = frozenset(
    ["kein", "keine", "keinen", "keiner", "keinem", "nicht", "no", "not", "ohne", "without"]
)

_SHOE = re.compile(
    r"(?<![\d.,])(\d{2})(?:\s*(?:[.,]\s*5|½|1[/⁄]2|einhalb|and a half))?(?![\d.,]*\d)"
)
_POSTCODE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_CLOTHING = re.compile(
    r"(?<!\w)(?:(?:gr(?:ö|o|oe)(?:ß|ss?)e|gr\.|size|in)\s*)?(XXXL|3XL|XXL|XXS|XL|XS|S|M|L)(?!\w)",
    re.IGNORECASE,
)
_NUMBER = r"(\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?|\d{1,6}(?:[.,]\d{1,2})?)"
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?")
_MONEY_AFTER = re.compile(r"(?<![\d.,])" + _NUMBER + r"\s*(?:€|euro?s?\b|eur\b|,-)", re.IGNORECASE)
_MONEY_BEFORE = re.compile(r"(?:€|\beur\b)\s*" + _NUMBER, re.IGNORECASE)
_MONEY_WORD = re.compile(
    r"(?:\bbis\s+(?:zu\s+)?|\bunter\s+|\bmax(?:imal|\.)?\s*|\bh(?:ö|o|oe)chstens\s+|\bunder\s+"
    r"|\bup\s+to\s+|\bbelow\s+|\bless\s+than\s+|\bbudget\s*(?:von\s+|of\s+|:\s*)?"
    r"|\bnicht\s+mehr\s+als\s+|\bno\s+more\s+than\s+)(?:€\s*)?" + _NUMBER + r"(?![.,]?\d)",
    re.IGNORECASE,
)
_MONEY_HINT = re.compile(
    r"€|\beuro?\b|\beur\b|\bbis\b|\bunter\b|\bunder\b|\bmax|\bbudget|\bh(?:ö|o|oe)chstens\b"
    r"|\bup to\b|\bbelow\b|\bless than\b",
    re.IGNORECASE,
)
_SIZE_WORD = re.compile(
    r"(?:\bgr(?:ö|o|oe)(?:ß|ss?)e\b|\bgr\.|\bschuhgr(?:ö|o|oe)(?:ß|ss?)e\b|\bsize\b|\bin\b|\beu\b)"
    r"\s*:?\s*(\d{2}(?:\s*(?:[.,]\s*5|½))?)(?![\d.,]*\d)",
    re.IGNORECASE,
)
_HEIGHT_M = re.compile(
    r"(?<![\d.,])([12])\s*[.,]\s*(\d{1,2})\s*(?:m\b|meter\b|metre\b)", re.IGNORECASE
)
_HEIGHT_CM = re.compile(r"(?<![\d.,])(\d{3})\s*(?:cm\b|zentimeter\b|centimet)", re.IGNORECASE)
_HEIGHT_SAID = re.compile(
    r"(?:\bbin\b|\bi am\b|\bi'm\b|\bkörpergröße\b|\bkorpergrosse\b|\bheight\b)"
    r"\s*(?:ca\.?\s*|etwa\s*|about\s*)?(?:([12])\s*[.,]\s*(\d{1,2})|(\d{3}))(?![\d.,]*\d)",
    re.IGNORECASE,
)
_BARE_HEIGHT = re.compile(r"(?<![\d.,])(?:([12])\s*[.,]\s*(\d{1,2})|(\d{3}))(?![\d.,]*\d)")

# Colours customers name, German and English (folded), by the key products are compared with.
COLOURS: dict[str, tuple[str, ...]] = {
    "schwarz": ("schwarz", "black"),
    "weiss": ("weiss", "white"),
    "grau": ("grau", "grey", "gray", "anthrazit"),
    "rot": ("rot", "red"),
    "blau": ("blau", "blue", "navy"),
    "gruen": ("grun", "green", "oliv"),
    "gelb": ("gelb", "yellow"),
    "orange": ("orange",),
    "braun": ("braun", "brown"),
    "pink": ("pink", "rosa"),
    "lila": ("lila", "violett", "purple"),
    "silber": ("silber", "silver"),
    "gold": ("gold", "golden"),
    "beige": ("beige",),
    "tuerkis": ("turkis", "turquoise"),
}
COLOUR_NAMES: dict[str, tuple[str, str]] = {
    "schwarz": ("Schwarz", "black"),
    "weiss": ("Weiß", "white"),
    "grau": ("Grau", "grey"),
    "rot": ("Rot", "red"),
    "blau": ("Blau", "blue"),
    "gruen": ("Grün", "green"),
    "gelb": ("Gelb", "yellow"),
    "orange": ("Orange", "orange"),
    "braun": ("Braun", "brown"),
    "pink": ("Pink", "pink"),
    "lila": ("Lila", "purple"),
    "silber": ("Silber", "silver"),
    "gold": ("Gold", "gold"),
    "beige": ("Beige", "beige"),
    "tuerkis": ("Türkis", "turquoise"),
}
_COLOUR_ENDINGS = ("", "e", "en", "er", "es", "em")  # German adjectives: schwarze, schwarzen ...
_COLOUR_WORDS = {
    word + ending: key
    for key, words in COLOURS.items()
    for word in words
    for ending in _COLOUR_ENDINGS
}
_WORD = re.compile(r"[^\W_]+")
_SEEN_MAX = 50_000  # words remembered per choice list


# --- single values ------------------------------------------------------------------------------


def parse_shoe_size(text: str) -> float | None:
    """EU shoe size 35–48, halves allowed: "42", "42,5", "42.5", "42½" → 42.0 / 42.5."""
    for m in _SHOE.finditer(clean(text).replace(" ½", "½")):
        whole = int(m.group(1))
        value = whole + (0.5 if m.group(0) != m.group(1) else 0.0)
        if SHOE_SIZES[0] <= value <= SHOE_SIZES[1]:
            return value
    return None


def parse_size(text: str) -> str | None:
    """A size asked for in free text: a shoe size (35–48, halves) or a clothing size (S–XXL)."""
    shoe = parse_shoe_size(text)
    if shoe is not None:
        return f"{shoe:g}"
    for m in _CLOTHING.finditer(clean(text)):
        token = m.group(1)
        # "m" or "s" alone are ordinary letters; "M", "in m", "Größe m" and "xl" are sizes.
        if m.group(0).strip() != token or token.isupper() or len(token) > 1:
            return token.upper()
    return None


def parse_postcode(text: str) -> str | None:
    """A German postcode (five digits, 01001–99998)."""
    for m in _POSTCODE.finditer(clean(text)):
        if 1001 <= int(m.group(1)) <= 99998:
            return m.group(1)
    return None


def parse_email(text: str) -> str | None:
    """The first e-mail address in the text."""
    m = _EMAIL.search(clean(text))
    return m.group(0) if m else None


def parse_pattern(text: str, pattern: str) -> str | None:
    """The first match of `pattern` in the text (case-insensitive), upper-cased."""
    m = re.search(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", clean(text), re.IGNORECASE)
    return m.group(0).upper() if m else None


def _number(raw: str) -> float:
    raw = raw.replace(" ", "")
    if _THOUSANDS.fullmatch(raw):
        raw = raw.replace(".", "")
    return float(raw.replace(",", "."))


def parse_amount(text: str) -> float | None:
    """A money amount answering "up to which price?": "bis 120 €", "100", "99,90"."""
    cleaned = clean(text).replace("\u202f", "")
    m = re.search(r"(?<![\d.,])" + _NUMBER + r"(?!\d)", cleaned)
    if not m:
        return None
    value = _number(m.group(1))
    return value if value > 0 else None


def _height_cm(m: re.Match[str]) -> int | None:
    groups = [g for g in m.groups() if g is not None]
    metres = len(groups) == 2  # "1,80": metres and centimetres; "180": centimetres
    cm = int(groups[0]) * 100 + int(groups[1].ljust(2, "0")) if metres else int(groups[0])
    return cm if HEIGHT_CM[0] <= cm <= HEIGHT_CM[1] else None


def parse_height(text: str, *, bare: bool = True) -> int | None:
    """A body height in cm: "1,80 m", "1.8m", "180 cm", "ich bin 180"; a bare "180" or "1,80"
    only when `bare` (the answer to "how tall are you?")."""
    cleaned = clean(text)
    patterns = [_HEIGHT_M, _HEIGHT_CM, _HEIGHT_SAID] + ([_BARE_HEIGHT] if bare else [])
    for pattern in patterns:
        for m in pattern.finditer(cleaned):
            cm = _height_cm(m)
            if cm is not None:
                return cm
    return None


def colour_key(name: str) -> str:
    """The key a colour is compared by: "Schwarz", "black" and "schwarze" → "schwarz"."""
    folded = fold(clean(name))
    return _COLOUR_WORDS.get(folded, folded)


def colour_name(key: str, language: str) -> str:
    """A colour key as the customer reads it ("weiss" → "Weiß" in German, "white" in English)."""
    names = COLOUR_NAMES.get(key)
    if names is None:
        return key
    return names[0] if language == "de" else names[1]


def parse_colour(text: str, extra: Iterable[str] = ()) -> str | None:
    """The colour a message names (its key), not counting negated ones ("nicht in Rot")."""
    words = words_of(text)
    extra_keys = {fold(clean(e)): colour_key(e) for e in extra}
    for n, word in enumerate(words):
        key = _COLOUR_WORDS.get(word) or extra_keys.get(word)
        if key and not _negated(words, n):
            return key
    return None


@lru_cache(maxsize=64)
def _phrases(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for a list of folded phrases, each matched as whole words."""
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in phrases) + r")(?!\w)")


def has_phrase(text: str, phrases: tuple[str, ...]) -> bool:
    """Whether the text holds one of the phrases (folded, whole words; "don't" = "don t")."""
    joined = " ".join(words_of(text.replace("'", " ").replace("’", " ")))
    return bool(phrases) and _phrases(tuple(fold(p) for p in phrases)).search(joined) is not None


def says_any(text: str) -> bool:
    """The customer says any value is fine ("egal", "no preference"; "nein" alone)."""
    if has_phrase(text, ANY_PHRASES):
        return True
    words = words_of(text)
    return 0 < len(words) <= 3 and any(w in ANY_SHORT for w in words)


def words_of(text: str) -> list[str]:
    """The folded words of a text."""
    return list(_words_of(text))


@lru_cache(maxsize=256)
def _words_of(text: str) -> tuple[str, ...]:
    # One message is read by many checks in one turn: its words are worked out once.
    return tuple(_WORD.findall(fold(clean(text))))


# "weiß" is also the verb "to know": "ich weiß nicht", "weiß ich nicht", "wer weiß".
_KNOW_BEFORE = frozenset(["ich", "man", "er", "sie", "wer", "du", "nicht", "jeder", "niemand"])
_KNOW_AFTER = frozenset(
    ["nicht", "es", "ich", "ja", "auch", "gar", "leider", "das", "schon", "noch", "ob", "wie"]
)


def _negated(words: Sequence[str], n: int) -> bool:
    """The word at `n` is negated ("keine Schuhe", "Rot nicht") or is the verb "weiß"."""
    before = words[max(0, n - 2) : n]
    after = words[n + 1] if n + 1 < len(words) else ""
    if any(w in NEGATIONS for w in before) or after == "nicht":
        return True
    previous = before[-1] if before else ""
    return words[n] == "weiss" and (previous in _KNOW_BEFORE or after in _KNOW_AFTER)


# --- choices ------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _forms(word: str) -> frozenset[str]:
    """A folded word and its German and English stems."""
    return frozenset({word, *stem([word], "de"), *stem([word], "en")})


@dataclass(frozen=True)
class Choices:
    """Values to choose from, each with the words that name it (its name, stems, synonyms)."""

    values: tuple[str, ...]
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _forms: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False)
    _phrases: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _seen: dict[tuple[str, str], bool] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for value in self.values:
            names = [value, *self.synonyms.get(value, ())]
            forms: set[str] = set()
            for name in names:
                words = words_of(name)
                if len(words) == 1:
                    forms |= _forms(words[0])
                elif words:
                    self._phrases.setdefault(value, []).append(" ".join(words))
            self._forms[value] = {f for f in forms if len(f) >= 2}

    def names(self, value: str, word: str) -> bool:
        """Whether one folded word names `value` (its form, stem, a compound part of it)."""
        known = self._seen.get((value, word))
        if known is None:
            if len(self._seen) >= _SEEN_MAX:  # customers keep writing new words: stay bounded
                self._seen.clear()
            known = self._seen[(value, word)] = self._names(value, word)
        return known

    def _names(self, value: str, word: str) -> bool:
        forms = self._forms[value]
        if _forms(word) & forms:
            return True
        # German compounds: "Fahrradhelm" names "Helme", "Schuhe" names "Radschuhe".
        return any(
            len(f) >= 4 and len(word) >= 4 and (word.endswith(f) or f.endswith(word))
            for f in forms
            if f.isalpha()
        )

    def named(self, text: str) -> list[str]:
        """Every value the text names (not negated: "keine Schuhe" names none)."""
        words = words_of(text)
        joined = " ".join(words)
        hits = []
        for value in self.values:
            phrase_hit = any(
                re.search(rf"(?<!\w){re.escape(p)}(?!\w)", joined)
                for p in self._phrases.get(value, [])
            )
            word_hit = any(
                self.names(value, w) and not _negated(words, n) for n, w in enumerate(words)
            )
            if phrase_hit or word_hit:
                hits.append(value)
        return hits

    def find(self, text: str, *, loose: bool = False) -> str | None:
        """The one value the text names (None when none or several); `loose` also takes a close
        spelling or the number of a value (a short answer to the question)."""
        words = words_of(text)
        if loose and len(words) == 1 and words[0].isdigit():
            n = int(words[0])
            return self.values[n - 1] if 1 <= n <= len(self.values) else None
        hits = self.named(text)
        if len(hits) == 1:
            return hits[0]
        if hits or not loose or not words or len(words) > 3:
            return None
        folded = [fold(v) for v in self.values]
        hit = process.extractOne(" ".join(words), folded, scorer=fuzz.WRatio, score_cutoff=85)
        return self.values[hit[2]] if hit else None


def parse_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """A choice by its number ("2"), its name, or a close spelling of it."""
    return Choices(choices).find(text, loose=True)


# --- a whole message ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """Everything a message says that a flow could use; None where it says nothing."""

    size: str | None = None
    budget: float | None = None
    height: int | None = None
    colour: str | None = None
    email: str | None = None
    postcode: str | None = None
    orders: Mapping[str, str] = field(default_factory=dict)  # pattern → order number
    choices: Mapping[str, str] = field(default_factory=dict)  # source (category, brand) → value

    def values(self) -> dict[str, object]:
        """The values found, by kind."""
        found: dict[str, object] = {
            k: v
            for k, v in (
                ("size", self.size),
                ("budget", self.budget),
                ("height", self.height),
                ("colour", self.colour),
                ("email", self.email),
                ("postcode", self.postcode),
            )
            if v is not None
        }
        found.update(self.choices)
        found.update({f"order:{p}": v for p, v in self.orders.items()})
        return found


def _blank(text: str, m: re.Match[str]) -> str:
    return text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]


def read(
    text: str,
    *,
    order_patterns: Iterable[str] = (),
    choices: Mapping[str, Choices] | None = None,
    colours: Iterable[str] = (),
) -> Reading:
    """Read every value a message holds; each span of text counts for one value only."""
    rest = clean(text).replace("\u202f", " ")
    email = None
    if m := _EMAIL.search(rest):
        email, rest = m.group(0), _blank(rest, m)
    orders: dict[str, str] = {}
    for pattern in order_patterns:
        found = re.search(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", rest, re.IGNORECASE)
        if found:
            orders[pattern] = found.group(0).upper()
            rest = _blank(rest, found)
    height = None
    for regex in (_HEIGHT_M, _HEIGHT_CM, _HEIGHT_SAID):
        m = regex.search(rest)
        if m and (cm := _height_cm(m)) is not None:
            height, rest = cm, _blank(rest, m)
            break
    budget = None
    for regex in (_MONEY_WORD, _MONEY_AFTER, _MONEY_BEFORE):
        m = regex.search(rest)
        if m and (amount := _number(m.group(1))) > 0:
            budget, rest = amount, _blank(rest, m)
            break
    size = None
    m = _SIZE_WORD.search(rest)
    if m and (shoe := parse_shoe_size(m.group(1))) is not None:
        size, rest = f"{shoe:g}", _blank(rest, m)
    if size is None:
        size = _clothing_only(rest) if _MONEY_HINT.search(rest) else parse_size(rest)
    found_choices = {
        source: value
        for source, options in (choices or {}).items()
        if (value := options.find(text)) is not None
    }
    return Reading(
        size=size,
        budget=budget,
        height=height,
        colour=parse_colour(text, colours),
        email=email,
        postcode=parse_postcode(rest),
        orders=orders,
        choices=found_choices,
    )


def _clothing_only(text: str) -> str | None:
    """A clothing size in a message that also talks money (its numbers are not sizes)."""
    size = parse_size(re.sub(r"\d", " ", text))
    return size if size is not None and not size[0].isdigit() else None
