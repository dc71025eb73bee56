"""Lexical features of the matcher: stems, compound parts, synonyms, character n-grams."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Protocol

import numpy as np
from rapidfuzz import fuzz, process
from scipy import sparse
from sklearn import config_context
from sklearn.feature_extraction.text import TfidfVectorizer

from tresen.bot.synonyms import Synonyms
from tresen.bot.text import (
    GENERIC_WORDS,
    compound_vocabulary,
    normalize,
    split_compound,
    stem,
    tokenize,
    without_generic,
)

# "default": lexical features fused with sentence embeddings; "lexical": no model at all.
BACKENDS = ("default", "lexical")
DEFAULT_BACKEND = "default"
GENERIC_WEIGHT = 0.3  # weight of a term made only of generic question words ("was kostet")


class FeatureBackend(Protocol):
    """Turns texts into L2-normalised sparse feature rows; fitted on the training phrasings."""

    name: str

    def fit(self, texts: Sequence[str]) -> FeatureBackend: ...

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix: ...

    def fresh(self) -> FeatureBackend: ...


class LexicalFeatures:
    """Snowball stems + compound parts + stem bigrams (TF-IDF) and character n-grams (TF-IDF)."""

    name = "lexical"

    def __init__(
        self,
        languages: Sequence[str] = ("de", "en"),
        char_range: tuple[int, int] = (1, 4),
        char_weight: float = 1.0,
        typo_cutoff: float = 84.0,
        generic_weight: float = GENERIC_WEIGHT,
        synonyms: bool = True,
    ) -> None:
        self.languages = tuple(languages)
        self.char_range = char_range
        self.char_weight = char_weight
        self.typo_cutoff = typo_cutoff
        self.generic_weight = generic_weight
        self.use_synonyms = synonyms and "de" in self.languages
        self.synonyms = Synonyms({})
        self._term_weights: sparse.dia_matrix | None = None
        self._compounds: frozenset[str] = frozenset()
        self._words: list[str] = []
        self._known: set[str] = set()
        self._word_tfidf: TfidfVectorizer | None = None
        self._char_tfidf: TfidfVectorizer | None = None
        self._typo_cache: dict[str, str | None] = {}

    def fresh(self) -> LexicalFeatures:
        """An unfitted copy with the same settings."""
        return LexicalFeatures(
            self.languages,
            self.char_range,
            self.char_weight,
            self.typo_cutoff,
            self.generic_weight,
            self.use_synonyms,
        )

    def _terms(self, text: str, correct: bool) -> list[str]:
        words = tokenize(text)
        if correct:
            words = [self._correct(w) for w in words]
        terms: list[str] = []
        for language in self.languages:
            stems = stem(words, language)
            terms.extend(stems)
            terms.extend(f"{a} {b}" for a, b in pairwise(stems))
        if "de" in self.languages:
            for word in words:
                parts = split_compound(word, self._compounds)
                if parts:
                    terms.extend(f"~{p}" for p in stem(parts, "de"))
        return terms

    def _read(self, word: str) -> str:
        """A query word as the index knows it: itself, plus KB synonyms, or its typo fix."""
        if word in self._known:
            return word
        same = self.synonyms.of(word) if self.use_synonyms else ()
        if same:
            return " ".join((word, *same))
        return self._correct(word)

    def _correct(self, word: str) -> str:
        if word in self._known or len(word) < 4 or word.isdigit():
            return word
        if word not in self._typo_cache:
            hit = process.extractOne(
                word, self._words, scorer=fuzz.ratio, score_cutoff=self.typo_cutoff
            )
            if len(self._typo_cache) > 50_000:
                self._typo_cache.clear()
            self._typo_cache[word] = hit[0] if hit else None
        return self._typo_cache[word] or word

    def _char_input(self, text: str) -> str:
        """Character n-grams come from the topic words when generic words weigh less."""
        return without_generic(text) if self.generic_weight < 1.0 else text

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        """Learn vocabularies and IDF weights from the training phrasings."""
        norm = [normalize(t) for t in texts]
        self._compounds = compound_vocabulary(norm)
        self._known = {w for t in norm for w in tokenize(t)}
        self._words = sorted(w for w in self._known if len(w) >= 4 and not w.isdigit())
        self._typo_cache = {}
        if self.use_synonyms:
            self.synonyms = Synonyms.for_vocabulary(self._known)
        min_df = 2 if len(norm) >= 2000 else 1
        self._word_tfidf = TfidfVectorizer(
            analyzer=lambda t: self._terms(t, correct=False), sublinear_tf=True
        )
        self._char_tfidf = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_range, sublinear_tf=True, min_df=min_df
        )
        self._word_tfidf.fit(norm)
        self._char_tfidf.fit([self._char_input(t) for t in norm])
        generic_stems = {s for lang in self.languages for s in stem(sorted(GENERIC_WORDS), lang)}
        self._term_weights = sparse.diags(
            [
                self.generic_weight
                if all(part.lstrip("~") in generic_stems for part in term.split())
                else 1.0
                for term in self._word_tfidf.get_feature_names_out()
            ]
        )
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Feature rows of `texts` (typos corrected against the training vocabulary)."""
        if self._word_tfidf is None or self._char_tfidf is None or self._term_weights is None:
            raise RuntimeError("LexicalFeatures.transform before fit")
        norm = [normalize(t) for t in texts]
        corrected = [" ".join(self._read(w) for w in tokenize(t)) for t in norm]
        # Our own inputs: sklearn's per-call validation would cost more than the transform.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            words = self._word_tfidf.transform(corrected) @ self._term_weights
            chars = self._char_tfidf.transform([self._char_input(t) for t in norm])
        return unit_rows(sparse.hstack([words, chars * self.char_weight]).tocsr())


def unit_rows(x: sparse.csr_matrix) -> sparse.csr_matrix:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sparse.csr_matrix(sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x)
