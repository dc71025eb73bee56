"""Terms the brand never says: scrub them from bot output, notice them in customer text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tresen.bot.text import clean, fold

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def _pattern(term: str) -> str:
    # Match the folded term as whole words, with any run of spaces, dots or hyphens inside.
    parts = [re.escape(p) for p in re.split(r"[\s.\-]+", fold(term).strip()) if p]
    return r"(?<!\w)" + r"[\s.\-]*".join(parts) + r"(?!\w)"


@dataclass(frozen=True)
class Blacklist:
    """Configured terms (competitors, words the brand avoids)."""

    terms: tuple[str, ...]

    @classmethod
    def of(cls, terms: Iterable[str]) -> Blacklist:
        """Build from configured terms; blanks and duplicates are dropped."""
        seen = dict.fromkeys(t.strip() for t in terms if t and t.strip())
        return cls(tuple(seen))

    def _regex(self) -> re.Pattern[str] | None:
        if not self.terms:
            return None
        return re.compile("|".join(_pattern(t) for t in self.terms), re.IGNORECASE)

    def mentions(self, text: str) -> list[str]:
        """Which configured terms the customer's text mentions (umlauts and case folded)."""
        folded = fold(clean(text))
        return [t for t in self.terms if re.search(_pattern(t), folded)]

    def scrub(self, text: str, replacement: str = "…") -> str:
        """Bot output with every term, and every link containing one, removed."""
        regex = self._regex()
        if regex is None:
            return text
        out = _URL.sub(lambda m: "" if self.mentions(m.group(0)) else m.group(0), text)
        # Match on a folded copy (same length per character except ß/ẞ), then cut the original.
        chars = list(out)
        folded_chars = [fold(ch) for ch in chars]
        folded = "".join(folded_chars)
        origin = [i for i, f in enumerate(folded_chars) for _ in f]
        spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in regex.finditer(folded)]
        for start, end in reversed(spans):
            chars[start:end] = [replacement]
        return re.sub(r"[ \t]{2,}", " ", "".join(chars)).strip()

    def is_clean(self, text: str) -> bool:
        """True when `text` mentions none of the terms."""
        return not self.mentions(text)
