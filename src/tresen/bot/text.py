"""Text normalisation for matching: Unicode, folding, tokens, German compounds, Snowball stems."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

import Stemmer

# The whole message is read; only beyond this (long e-mails) is it cut.
MAX_MATCH_CHARS = 20_000

_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "ẞ": "ss"})
_TOKEN = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;…])\s+|\n+|(?<=\?)(?=\S)")
# "..., und wie lange dauert das?": a clause that starts a second question.
_SECOND_QUESTION = re.compile(
    r"[,;]?\s+(?:und|oder|and|or|also|außerdem|ausserdem|sowie)\s+"
    r"(?=(?:wie|was|wann|wo|wohin|woher|warum|wieso|weshalb|welche[rsmn]?|wieviel|gibt|habt|"
    r"kann|konnt|könnt|muss|darf|ist|sind|how|what|when|where|which|why|do|does|can|is|are)\b)",
    re.IGNORECASE,
)
# Words that open a question in German or English (folded: no umlauts).
QUESTION_OPENERS = frozenset(
    [
        "wie",
        "was",
        "wann",
        "wo",
        "wohin",
        "woher",
        "warum",
        "wieso",
        "weshalb",
        "welche",
        "welcher",
        "welches",
        "welchen",
        "welchem",
        "wieviel",
        "wieviele",
        "wer",
        "wen",
        "wem",
        "gibt",
        "gebt",
        "habt",
        "hast",
        "haben",
        "hat",
        "kann",
        "kannst",
        "konnt",
        "konnen",
        "konnte",
        "muss",
        "musst",
        "mussen",
        "darf",
        "durft",
        "ist",
        "sind",
        "seid",
        "bin",
        "bietet",
        "bietest",
        "liefert",
        "liefern",
        "verschickt",
        "versendet",
        "nehmt",
        "nimmst",
        "macht",
        "machst",
        "geht",
        "verkauft",
        "repariert",
        "fuhrt",
        "tauscht",
        "how",
        "what",
        "when",
        "where",
        "which",
        "why",
        "who",
        "whom",
        "do",
        "does",
        "did",
        "can",
        "could",
        "is",
        "are",
        "am",
        "will",
        "would",
        "should",
        "may",
        "have",
        "has",
    ]
)
# Words of a question that say how it is asked rather than what about ("was kostet", "wie lange",
# "möglich", "kann man"): they get less weight in matching (folded forms).
GENERIC_WORDS = frozenset(
    [
        "was",
        "wie",
        "wo",
        "wann",
        "welche",
        "welcher",
        "welches",
        "welchen",
        "wieviel",
        "wer",
        "kostet",
        "kosten",
        "koste",
        "kostest",
        "lange",
        "dauert",
        "dauern",
        "dauer",
        "moglich",
        "kann",
        "konnen",
        "konnte",
        "konnt",
        "kannst",
        "man",
        "gibt",
        "es",
        "habt",
        "ihr",
        "hast",
        "hat",
        "haben",
        "bei",
        "euch",
        "ihnen",
        "mal",
        "bitte",
        "eigentlich",
        "auch",
        "noch",
        "denn",
        "frage",
        "fragen",
        "hallo",
        "viel",
        "viele",
        "ich",
        "mir",
        "mich",
        "wir",
        "uns",
        "sie",
        "du",
        "dich",
        "dir",
        "der",
        "die",
        "das",
        "den",
        "dem",
        "des",
        "ein",
        "eine",
        "einen",
        "einem",
        "einer",
        "ist",
        "sind",
        "bin",
        "und",
        "oder",
        "mit",
        "fur",
        "von",
        "zu",
        "zum",
        "zur",
        "im",
        "in",
        "am",
        "an",
        "auf",
        "aus",
        "what",
        "how",
        "where",
        "when",
        "which",
        "who",
        "much",
        "many",
        "long",
        "does",
        "do",
        "did",
        "cost",
        "costs",
        "possible",
        "can",
        "could",
        "there",
        "is",
        "are",
        "am",
        "you",
        "your",
        "i",
        "me",
        "my",
        "we",
        "our",
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "for",
        "to",
        "in",
        "on",
        "at",
        "with",
        "please",
        "question",
        "hello",
        "hi",
    ]
)
_SPACES = re.compile(r"\s+")

STEMMER_LANGUAGES = {"de": "german", "en": "english"}

# Common German word parts of customer questions, so that compounds split even when a part
# never occurs alone in the knowledge base (folded: no umlauts, ß as ss).
COMMON_GERMAN_PARTS = frozenset(
    [
        "abhol",
        "akku",
        "angebot",
        "anmeld",
        "antrag",
        "arbeit",
        "art",
        "auftrag",
        "ausweis",
        "auto",
        "bahn",
        "bank",
        "bestell",
        "betrag",
        "bike",
        "brems",
        "buch",
        "datum",
        "dauer",
        "dienst",
        "ersatz",
        "fahr",
        "fahrrad",
        "farbe",
        "frage",
        "frist",
        "garantie",
        "geld",
        "gebuhr",
        "geschaft",
        "gross",
        "gruppe",
        "gutschein",
        "haus",
        "kauf",
        "karte",
        "kette",
        "kind",
        "kinder",
        "kosten",
        "kredit",
        "kunde",
        "kunden",
        "laden",
        "lager",
        "leasing",
        "leih",
        "liefer",
        "lieferung",
        "marke",
        "miet",
        "modell",
        "monat",
        "nummer",
        "online",
        "paket",
        "platz",
        "post",
        "preis",
        "probe",
        "programm",
        "rad",
        "raum",
        "rechnung",
        "reifen",
        "reparatur",
        "retour",
        "ruck",
        "schaden",
        "schlauch",
        "schloss",
        "service",
        "sitz",
        "sommer",
        "stadt",
        "stand",
        "status",
        "tag",
        "teil",
        "telefon",
        "termin",
        "tour",
        "umtausch",
        "versand",
        "vertrag",
        "wagen",
        "waren",
        "werk",
        "werkstatt",
        "woche",
        "wunsch",
        "zahl",
        "zahlung",
        "zeit",
        "zubehor",
        "zug",
        "zustell",
    ]
)
_LINKERS = ("", "s", "es", "n", "en", "e", "er")


def clean(text: str) -> str:
    """NFKC-normalise, drop control and format characters, collapse white space."""
    text = unicodedata.normalize("NFKC", text or "")
    chars = [" " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in text]
    return _SPACES.sub(" ", "".join(chars)).strip()


def fold(text: str) -> str:
    """Casefold and fold umlauts and ß, so that "Öffnungszeiten" and "offnungszeiten" agree."""
    return text.casefold().translate(_FOLD)


def normalize(text: str, limit: int = MAX_MATCH_CHARS) -> str:
    """The form every matcher input takes: cleaned, cut to `limit` characters, folded."""
    return fold(clean(text)[:limit])


def sentences(text: str) -> list[str]:
    """The sentences of cleaned text (a second question after "und"/"and" is one more)."""
    parts: list[str] = []
    for piece in _SENTENCE_END.split(clean(text)):
        parts.extend(p.strip() for p in _SECOND_QUESTION.split(piece))
    return [p for p in parts if any(ch.isalnum() for ch in p)]


def is_question(sentence: str) -> bool:
    """A sentence asks something: it ends with "?" or opens with a question word or verb."""
    if sentence.rstrip().endswith("?"):
        return True
    words = tokenize(fold(sentence))
    return bool(words) and words[0] in QUESTION_OPENERS


def question_sentences(text: str) -> list[str]:
    """The sentences of `text` that ask something, in order (empty when none does)."""
    return [s for s in sentences(text) if is_question(s)]


def without_generic(text: str) -> str:
    """Normalised text without the generic question words (the text itself if nothing is left)."""
    words = tokenize(text)
    kept = [w for w in words if w not in GENERIC_WORDS]
    return " ".join(kept) if kept else " ".join(words)


def tokenize(text: str) -> list[str]:
    """Word tokens (letters and digits) of already normalised text."""
    return _TOKEN.findall(text)


@lru_cache(maxsize=8)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(STEMMER_LANGUAGES.get(language, language))


def stem(words: Sequence[str], language: str) -> list[str]:
    """Snowball stems of casefolded `words` in `language` ("de" or "en")."""
    return [w.translate(_FOLD) for w in _stemmer(language).stemWords(list(words))]


def _stem_de(word: str) -> str:
    return stem([word], "de")[0]


def split_compound(
    word: str, vocabulary: frozenset[str] | set[str], min_part: int = 3
) -> list[str]:
    """Split a German compound into known parts ("reparaturtermin" → reparatur, termin), or []."""
    if len(word) < 2 * min_part + 1:
        return []
    best: list[str] = []
    for cut in range(len(word) - min_part, min_part - 1, -1):
        head, tail = word[:cut], word[cut:]
        base = _known_head(head, vocabulary, min_part)
        if base is None:
            continue
        if tail in vocabulary or _stem_de(tail) in vocabulary:
            parts = [base, tail]
        else:
            rest = split_compound(tail, vocabulary, min_part)
            if not rest:
                continue
            parts = [base, *rest]
        if not best or len(parts) < len(best):
            best = parts
            if len(best) == 2:
                break
    return best


def _known_head(head: str, vocabulary: frozenset[str] | set[str], min_part: int) -> str | None:
    for linker in _LINKERS:
        if linker and not head.endswith(linker):
            continue
        base = head[: len(head) - len(linker)] if linker else head
        if len(base) >= min_part and base in vocabulary:
            return base
    return None


def compound_vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Words (and their German stems) of normalised `texts` plus common parts, for splitting."""
    words = {w for t in texts for w in tokenize(t) if len(w) >= 3 and not w.isdigit()}
    stems = {s for s in stem(sorted(words), "de") if len(s) >= 3}
    return frozenset(words | stems | COMMON_GERMAN_PARTS)
