"""Intent/FAQ matcher: lexical classifier + nearest phrasing, fused with sentence embeddings,
with a fitted "don't know"; reads the question sentences of a message, one match per question."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.svm import LinearSVC
from threadpoolctl import ThreadpoolController

from tresen.bot.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    FeatureBackend,
    LexicalFeatures,
    unit_rows,
)
from tresen.bot.language import detect_language
from tresen.bot.semantic import EmbeddingCache, Encoder, shared_encoder
from tresen.bot.text import clean, normalize, question_sentences

log = logging.getLogger(__name__)

OOS = "oos"
QUESTION_WEIGHT = 0.7  # share of the question sentence(s) in a longer message's features
MAX_QUESTIONS = 3  # questions of one message answered at most
# One message is a handful of small products: more BLAS threads only spin (measured: 17.8 ms CPU
# per message with 2 OpenBLAS threads on a busy 2-core machine, 1.1 ms with one).
_blas = ThreadpoolController()


@dataclass(frozen=True)
class Match:
    """The matcher's answer: `label` is None when declined; `guess` is the best label anyway."""

    label: str | None
    score: float
    language: str | None
    declined: bool
    guess: str | None = None
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass
class Calibration:
    """Platt scaling of the raw score into P(answer is right) and the fitted decline threshold."""

    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5
    in_scope_accuracy: float = float("nan")
    oos_recall: float = float("nan")
    oos_source: str = "none"
    n_in_scope: int = 0
    n_oos: int = 0

    def probability(self, raw: np.ndarray | float) -> np.ndarray:
        """Calibrated probability that an answer with raw score `raw` is right."""
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(raw, dtype=float) + self.b)))


@dataclass
class _Model:
    backend: FeatureBackend
    labels: np.ndarray
    svm: LinearSVC | None
    rows: sparse.csr_matrix
    row_labels: np.ndarray
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))

    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    rows_t: sparse.csr_matrix | None = None
    # Unit sentence embeddings of the rows (same order) and of each label's centroid.
    sem_rows_t: np.ndarray | None = None
    centroids_t: np.ndarray | None = None

    def scores(
        self,
        x: sparse.csr_matrix,
        knn_weight: float,
        emb: np.ndarray | None = None,
        sem_weights: tuple[float, float] = (0.0, 0.0),
        chunk: int = 256,
    ) -> np.ndarray:
        if x.shape[0] > chunk:
            return np.vstack(
                [
                    self.scores(
                        x[i : i + chunk],
                        knn_weight,
                        None if emb is None else emb[i : i + chunk],
                        sem_weights,
                    )
                    for i in range(0, x.shape[0], chunk)
                ]
            )
        if self.rows_t is None:
            self.rows_t = self.rows.T.tocsr()
        sims = (x @ self.rows_t).toarray()
        total = knn_weight * np.maximum.reduceat(sims, self.starts, axis=1)
        if self.svm is not None:
            if x.shape[0] == 1:
                # One query touches only a few hundred features: gather those weight rows.
                total += (x.data @ self.weights[x.indices])[None, :]
            else:
                total += np.asarray(x @ self.weights)
            total += self.intercept
        if emb is not None and self.sem_rows_t is not None and self.centroids_t is not None:
            nn_weight, centroid_weight = sem_weights
            total += nn_weight * np.maximum.reduceat(emb @ self.sem_rows_t, self.starts, axis=1)
            total += centroid_weight * (emb @ self.centroids_t)
        return total


class Matcher:
    """Fit on labelled phrasings; `match(text)` returns a label or declines ("don't know")."""

    def __init__(
        self,
        backend: FeatureBackend | None = None,
        *,
        svm_c: float = 2.0,
        knn_weight: float = 0.3,
        folds: int = 5,
        oos_weight: float = 0.1,
        oos_recall_target: float = 0.6,
        default_language: str | None = None,
        seed: int = 13,
        encoder: Encoder | EmbeddingCache | None = None,
        semantic_nn_weight: float = 1.0,
        semantic_centroid_weight: float = 1.0,
    ) -> None:
        self.backend = backend or LexicalFeatures()
        self.embeddings: EmbeddingCache | None = (
            encoder
            if isinstance(encoder, EmbeddingCache) or encoder is None
            else EmbeddingCache(encoder)
        )
        self.sem_weights = (semantic_nn_weight, semantic_centroid_weight)
        self.svm_c = svm_c
        self.knn_weight = knn_weight
        self.folds = folds
        self.oos_weight = oos_weight
        self.oos_recall_target = oos_recall_target
        self.default_language = default_language
        self.seed = seed
        self.calibration = Calibration()
        self._model: _Model | None = None

    @property
    def labels(self) -> list[str]:
        """The labels the matcher can answer with."""
        return [] if self._model is None else list(self._model.labels)

    @property
    def semantic(self) -> bool:
        """Whether sentence embeddings take part in the scores."""
        return self.embeddings is not None

    def _embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """Embeddings of training rows (cached, to be persisted per KB)."""
        return None if self.embeddings is None else self.embeddings.embed(texts)

    def _embed_queries(self, texts: Sequence[str]) -> np.ndarray | None:
        """Embeddings of customer messages: never cached, so never stored."""
        return None if self.embeddings is None else self.embeddings.encoder.encode(texts)

    def _train(
        self,
        backend: FeatureBackend,
        texts: list[str],
        labels: list[str],
        emb: np.ndarray | None = None,
    ) -> _Model:
        backend.fit(texts)
        x = backend.transform(texts)
        classes, row_labels = np.unique(np.asarray(labels), return_inverse=True)
        order = np.argsort(row_labels, kind="stable")
        starts = np.searchsorted(row_labels[order], np.arange(len(classes)))
        model = _Model(backend, classes, None, x[order], row_labels[order], starts=starts)
        if emb is not None:
            sem = emb[order]
            centroids = np.add.reduceat(sem, starts, axis=0)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            model.sem_rows_t = np.ascontiguousarray(sem.T)
            model.centroids_t = np.ascontiguousarray(centroids.T)
        if len(classes) >= 2:
            svm = LinearSVC(C=self.svm_c, random_state=self.seed).fit(x, row_labels)
            coef = svm.coef_ if len(classes) > 2 else np.vstack([-svm.coef_[0], svm.coef_[0]])
            icpt = (
                svm.intercept_
                if len(classes) > 2
                else np.array([-svm.intercept_[0], svm.intercept_[0]])
            )
            model.svm = svm
            model.weights = np.ascontiguousarray(coef.T, dtype=np.float32)
            model.intercept = icpt.astype(np.float32)
        return model

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], *, calibrate: bool = True
    ) -> Matcher:
        """Train on `texts`/`labels`; rows labelled "oos" are used only to fit the threshold."""
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        pairs = [(t, lab) for t, lab in zip(texts, labels, strict=True) if lab != OOS]
        oos_texts = [t for t, lab in zip(texts, labels, strict=True) if lab == OOS]
        if not pairs:
            raise ValueError("no in-scope training rows")
        in_texts = [t for t, _ in pairs]
        in_labels = [lab for _, lab in pairs]
        if self.default_language is None:
            self.default_language = _majority_language(in_texts)
        in_emb = self._embed(in_texts)
        model = self._train(self.backend, in_texts, in_labels, in_emb)
        if calibrate:
            # oos rows are never trained on, so the final model's scores on them are held-out scores.
            oos_raw = (
                self._scores(
                    model, model.backend.transform(oos_texts), self._embed_queries(oos_texts)
                ).max(1)
                if oos_texts
                else np.zeros(0)
            )
            self.calibration = self._calibrate(in_texts, in_labels, oos_raw, in_emb)
        self._model = model
        return self

    def _scores(self, model: _Model, x: sparse.csr_matrix, emb: np.ndarray | None) -> np.ndarray:
        return model.scores(x, self.knn_weight, emb, self.sem_weights)

    def raw_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Best label index and raw score for each text (batch form of `match`, no weighting)."""
        if self._model is None:
            raise RuntimeError("Matcher.match before fit")
        texts = list(texts)
        s = self._scores(
            self._model, self._model.backend.transform(texts), self._embed_queries(texts)
        )
        return s.argmax(1), s.max(1)

    def _query_scores(self, texts: list[str]) -> np.ndarray:
        """Scores of each text, its question sentence(s) weighted against the rest."""
        assert self._model is not None
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        for text in texts:
            questions = question_sentences(text)
            joined = " ".join(questions)
            if questions and normalize(joined) != normalize(text):
                spans.append((len(parts), 2))
                parts.extend([joined, text])
            else:
                spans.append((len(parts), 1))
                parts.append(text)
        x = self._model.backend.transform(parts)
        emb = self._embed_queries(parts)
        rows, emb_rows = [], []
        for start, n in spans:
            if n == 1:
                rows.append(x[start])
                if emb is not None:
                    emb_rows.append(emb[start])
                continue
            rows.append(QUESTION_WEIGHT * x[start] + (1 - QUESTION_WEIGHT) * x[start + 1])
            if emb is not None:
                emb_rows.append(
                    QUESTION_WEIGHT * emb[start] + (1 - QUESTION_WEIGHT) * emb[start + 1]
                )
        xq = unit_rows(sparse.vstack(rows).tocsr())
        eq = None
        if emb is not None:
            eq = np.vstack(emb_rows)
            eq /= np.maximum(np.linalg.norm(eq, axis=1, keepdims=True), 1e-12)
        return self._scores(self._model, xq, eq)

    def match(self, text: str) -> Match:
        """Best label for one customer message, or a decline when unsure or nothing to match."""
        return self._matches([text])[0]

    def match_all(self, text: str) -> list[Match]:
        """One match per question of the message ("Was kostet der Versand? Und wann habt ihr
        auf?" → two), in order, each label once; a single question or none → `[match(text)]`."""
        questions = question_sentences(text)[:MAX_QUESTIONS]
        if len(questions) < 2:
            return [self.match(text)]
        found: list[Match] = []
        for m in self._matches(questions):
            if not m.declined and m.label not in {f.label for f in found}:
                found.append(m)
        if len(found) < 2:
            whole = self.match(text)
            return [whole] if whole.label or not found else found
        return found

    def _matches(self, texts: list[str]) -> list[Match]:
        if self._model is None:
            raise RuntimeError("Matcher.match before fit")
        out: list[Match | None] = []
        scored: list[str] = []
        for text in texts:
            if not normalize(text).strip() or not any(ch.isalnum() for ch in clean(text)):
                language = detect_language(text, self.default_language).language
                out.append(Match(None, 0.0, language, True))
            else:
                out.append(None)
                scored.append(text)
        with _blas.limit(limits=1, user_api="blas"):
            all_scores = self._query_scores(scored) if scored else np.zeros((0, 0))
        rows = iter(all_scores)
        return [
            m if m is not None else self._decide(text, next(rows))
            for m, text in zip(out, texts, strict=True)
        ]

    def _decide(self, text: str, s: np.ndarray) -> Match:
        assert self._model is not None
        language = detect_language(text, self.default_language).language
        order = np.argsort(-s)[:3]
        probs = self.calibration.probability(s[order])
        alternatives = tuple(
            (str(self._model.labels[i]), round(float(p), 4))
            for i, p in zip(order, probs, strict=True)
        )
        guess, confidence = alternatives[0]
        declined = bool(probs[0] < self.calibration.threshold)
        return Match(
            None if declined else guess, confidence, language, declined, guess, alternatives
        )

    def _calibrate(
        self,
        texts: list[str],
        labels: list[str],
        oos_raw: np.ndarray,
        emb: np.ndarray | None = None,
    ) -> Calibration:
        """Cross-validate: held-out rows give in-scope scores; held-out labels act as unknown questions."""
        rng = np.random.default_rng(self.seed)
        k = max(2, self.folds)
        y = np.asarray(labels)
        fold_of = np.zeros(len(y), dtype=int)
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, lab in enumerate(y):
            by_label[lab].append(i)
        label_names = sorted(by_label)
        label_group = {lab: g % k for g, lab in enumerate(rng.permutation(label_names))}
        for lab in label_names:
            idx = rng.permutation(by_label[lab])
            offset = int(rng.integers(k))
            for j, i in enumerate(idx):
                fold_of[i] = (j + offset) % k
        in_raw: list[float] = []
        in_ok: list[bool] = []
        pseudo_raw: list[float] = []
        for f in range(k):
            held_labels = {lab for lab, g in label_group.items() if g == f}
            train_idx = [i for i in range(len(y)) if fold_of[i] != f and y[i] not in held_labels]
            if len({y[i] for i in train_idx}) < 2:
                continue
            model = self._train(
                self.backend.fresh(),
                [texts[i] for i in train_idx],
                [labels[i] for i in train_idx],
                None if emb is None else emb[train_idx],
            )
            test_idx = [i for i in range(len(y)) if fold_of[i] == f]
            if not test_idx:
                continue
            batch = [texts[i] for i in test_idx]
            s = self._scores(
                model, model.backend.transform(batch), None if emb is None else emb[test_idx]
            )
            best, raw = s.argmax(1), s.max(1)
            for pos, i in enumerate(test_idx):
                if y[i] in held_labels:
                    pseudo_raw.append(float(raw[pos]))
                else:
                    in_raw.append(float(raw[pos]))
                    in_ok.append(bool(model.labels[best[pos]] == y[i]))
        return _fit_calibration(
            np.asarray(in_raw),
            np.asarray(in_ok),
            np.asarray(pseudo_raw),
            np.asarray(oos_raw, dtype=float),
            self.oos_weight,
            self.oos_recall_target,
        )


def new_matcher(
    backend: str = DEFAULT_BACKEND,
    default_language: str | None = None,
    embeddings: EmbeddingCache | None = None,
) -> Matcher:
    """An unfitted matcher: "default" fuses the sentence encoder in, "lexical" uses no model."""
    if backend == "lexical":
        return Matcher(LexicalFeatures(), default_language=default_language)
    if backend == "default":
        return Matcher(
            LexicalFeatures(),
            default_language=default_language,
            encoder=embeddings or EmbeddingCache(shared_encoder()),
        )
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _majority_language(texts: Sequence[str]) -> str | None:
    votes = Counter(detect_language(t).language for t in texts[:2000])
    votes.pop(None, None)
    return votes.most_common(1)[0][0] if votes else None


def _platt(raw: np.ndarray, target: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """One-dimensional logistic regression by Newton steps (with a weak prior for stability)."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * raw + b)))
        w = np.maximum(p * (1 - p), 1e-9)
        g = np.array([np.sum((p - target) * raw) + 1e-3 * a, np.sum(p - target) + 1e-3 * b])
        h = np.array(
            [[np.sum(w * raw * raw) + 1e-3, np.sum(w * raw)], [np.sum(w * raw), np.sum(w) + 1e-3]]
        )
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def _fit_calibration(
    in_raw: np.ndarray,
    in_ok: np.ndarray,
    pseudo_raw: np.ndarray,
    real_raw: np.ndarray,
    oos_weight: float,
    oos_recall_target: float = 0.6,
) -> Calibration:
    """Calibrate P(right) on held-out scores and pick the decline threshold.

    With real unknown questions (training `oos` rows): the lowest threshold that declines at least
    `oos_recall_target` of them, i.e. the most in-scope answers subject to that oos recall.
    With held-out labels only (a pessimistic stand-in): maximise answered-right + w * declined.
    """
    if len(in_raw) == 0:
        return Calibration(oos_source="none")
    oos_raw = real_raw if len(real_raw) else pseudo_raw
    source = "training oos rows" if len(real_raw) else "held-out labels"
    raw = np.concatenate([in_raw, oos_raw])
    target = np.concatenate([in_ok.astype(float), np.zeros(len(oos_raw))])
    if target.min() == target.max():
        return Calibration(oos_source=source, n_in_scope=len(in_raw), n_oos=len(oos_raw))
    a, b = _platt(raw, target)
    cal = Calibration(a=a, b=b, oos_source=source, n_in_scope=len(in_raw), n_oos=len(oos_raw))
    p_in, p_oos = cal.probability(in_raw), cal.probability(oos_raw)
    above = [np.nextafter(p_oos.max(), 2.0)] if len(p_oos) else []
    candidates = np.unique(np.concatenate([[0.0], p_in, p_oos, above]))
    best = (-1.0, 0.0, 0.0, 0.0)
    for t in candidates:
        acc = float(np.mean(in_ok & (p_in >= t)))
        rec = float(np.mean(p_oos < t)) if len(p_oos) else 0.0
        if len(real_raw):
            if rec >= oos_recall_target:
                best = (acc, float(t), acc, rec)
                break
            continue
        value = acc + oos_weight * rec
        if value > best[0] + 1e-12:
            best = (value, float(t), acc, rec)
    cal.threshold, cal.in_scope_accuracy, cal.oos_recall = best[1], best[2], best[3]
    return cal
