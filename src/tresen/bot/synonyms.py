"""German synonyms from OpenThesaurus, narrowed to the words a knowledge base actually uses."""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from tresen.bot.text import fold, stem

# Derived from OpenThesaurus (LGPL-2.1-or-later) by scripts/build_synonyms.py; see the file header.
SYNONYMS_FILE = Path(__file__).resolve().parent / "data" / "synonyms_de.txt.gz"
MAX_TARGETS = 3  # a word with more meanings than this in the KB is left alone (too vague)


@lru_cache(maxsize=4)
def synonym_groups(path: Path = SYNONYMS_FILE) -> tuple[frozenset[str], ...]:
    """Groups of German stems with one meaning (folded), read once per process."""
    try:
        raw = gzip.decompress(path.read_bytes()).decode("utf-8")
    except OSError:
        return ()
    groups: list[frozenset[str]] = []
    for line in raw.splitlines():
        if line and not line.startswith("#"):
            words = [fold(w) for w in line.split(";") if w]
            stems = frozenset(stem(words, "de"))
            if len(stems) >= 2:
                groups.append(stems)
    return tuple(groups)


class Synonyms:
    """Maps a word the knowledge base lacks to the KB's own words of the same meaning."""

    def __init__(self, mapping: Mapping[str, tuple[str, ...]]) -> None:
        self._by_stem = dict(mapping)

    @classmethod
    def for_vocabulary(
        cls, words: Iterable[str], groups: Iterable[frozenset[str]] | None = None
    ) -> Synonyms:
        """Synonyms restricted to `words` (folded KB words): only mappings onto them are kept."""
        kb_word_of: dict[str, str] = {}
        for word in sorted(set(words)):
            if len(word) >= 3 and not word.isdigit():
                kb_word_of.setdefault(stem([word], "de")[0], word)
        targets: dict[str, set[str]] = defaultdict(set)
        for group in synonym_groups() if groups is None else groups:
            inside = group & kb_word_of.keys()
            if not inside:
                continue
            for other in group - inside:
                targets[other].update(kb_word_of[s] for s in inside)
        return cls({s: tuple(sorted(t)) for s, t in targets.items() if 0 < len(t) <= MAX_TARGETS})

    def __len__(self) -> int:
        return len(self._by_stem)

    def of(self, word: str) -> tuple[str, ...]:
        """The KB words meaning the same as folded `word` (empty when none or the KB has it)."""
        return self._by_stem.get(stem([word], "de")[0], ())
