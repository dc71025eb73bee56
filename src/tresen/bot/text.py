"""Text normalisation for matching: Unicode, folding, tokens, German compounds, Snowball stems."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

import Stemmer

# Longer messages are cut before matching; the question is nearly always at the start.
MAX_MATCH_CHARS = 1000

_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "ẞ": "ss"})
_TOKEN = re.compile(r"[^\W_]+")
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
