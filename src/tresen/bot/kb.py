"""The FAQ knowledge base: load and validate the YAML of the spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
RESERVED_IDS = frozenset({"oos"})


class KnowledgeBaseError(ValueError):
    """The knowledge base file is unreadable or an entry is malformed (the message names it)."""


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ: several phrasings of a question and its answer per language."""

    id: str
    questions: tuple[str, ...]
    answers: Mapping[str, str]

    def answer(self, language: str | None, fallback: str) -> str:
        """The answer in `language` when the entry has one, otherwise in `fallback` (or any)."""
        return self.answer_in(language, fallback)[0]

    def answer_in(self, language: str | None, fallback: str) -> tuple[str, str]:
        """The answer and the language it is in: `language` when the entry has it, else
        `fallback`, else the first the entry has."""
        if language and language in self.answers:
            return self.answers[language], language
        if fallback in self.answers:
            return self.answers[fallback], fallback
        first = next(iter(self.answers))
        return self.answers[first], first


@dataclass(frozen=True)
class KnowledgeBase:
    """A business's FAQ entries in file order."""

    business: str
    language: str
    entries: tuple[FaqEntry, ...]
    by_id: Mapping[str, FaqEntry] = field(default_factory=dict)

    def training_rows(self, include_answers: bool = True) -> tuple[list[str], list[str]]:
        """(texts, labels) to fit a matcher: every phrasing, and each answer as one more."""
        texts: list[str] = []
        labels: list[str] = []
        for entry in self.entries:
            rows = list(entry.questions)
            if include_answers:
                rows.extend(dict.fromkeys(entry.answers.values()))
            texts.extend(rows)
            labels.extend([entry.id] * len(rows))
        return texts, labels


def parse_kb(data: Any, source: str = "knowledge base") -> KnowledgeBase:
    """Validate parsed YAML; raises KnowledgeBaseError naming the file and the entry."""
    if not isinstance(data, dict):
        raise KnowledgeBaseError(
            f"{source}: expected a mapping with 'faqs', got {type(data).__name__}"
        )
    language = data.get("language", "de")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2}", language):
        raise KnowledgeBaseError(f"{source}: 'language' must be a two-letter code like 'de'")
    business = data.get("business", "")
    if not isinstance(business, str):
        raise KnowledgeBaseError(f"{source}: 'business' must be text")
    faqs = data.get("faqs")
    if not isinstance(faqs, list) or not faqs:
        raise KnowledgeBaseError(f"{source}: 'faqs' must be a non-empty list")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for n, item in enumerate(faqs, start=1):
        entry = _parse_entry(item, f"{source}: entry {n}", language)
        if entry.id in seen:
            raise KnowledgeBaseError(f"{source}: entry {n}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return KnowledgeBase(business, language, tuple(entries), {e.id: e for e in entries})


def _parse_entry(item: Any, where: str, language: str) -> FaqEntry:
    if not isinstance(item, dict):
        raise KnowledgeBaseError(f"{where}: expected a mapping with id, questions, answer")
    entry_id = item.get("id")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise KnowledgeBaseError(
            f"{where}: 'id' must be text of letters, digits, '_', '-' or '.', got {entry_id!r}"
        )
    where = f"{where} (id {entry_id!r})"
    if entry_id in RESERVED_IDS:
        raise KnowledgeBaseError(f"{where}: the id 'oos' is reserved for out-of-scope")
    questions = item.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if (
        not isinstance(questions, list)
        or not questions
        or not all(isinstance(q, str) and q.strip() for q in questions)
    ):
        raise KnowledgeBaseError(f"{where}: 'questions' must be a non-empty list of texts")
    answer = item.get("answer")
    if isinstance(answer, str) and answer.strip():
        answers = {language: answer.strip()}
    elif isinstance(answer, dict) and answer:
        answers = {}
        for lang, text in answer.items():
            if not isinstance(lang, str) or not re.fullmatch(r"[a-z]{2}", lang):
                raise KnowledgeBaseError(
                    f"{where}: answer language {lang!r} is not a two-letter code"
                )
            if not isinstance(text, str) or not text.strip():
                raise KnowledgeBaseError(f"{where}: answer for {lang!r} must be non-empty text")
            answers[lang] = text.strip()
    else:
        raise KnowledgeBaseError(
            f"{where}: 'answer' must be non-empty text or a mapping like {{de: ..., en: ...}}"
        )
    return FaqEntry(entry_id, tuple(q.strip() for q in questions), answers)


def load_kb(path: str | Path) -> KnowledgeBase:
    """Read and validate a knowledge base YAML file."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"{path}: not valid YAML: {exc}") from exc
    return parse_kb(data, str(path))
