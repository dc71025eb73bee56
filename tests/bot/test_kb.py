"""Knowledge base loading and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tresen.bot.kb import KnowledgeBaseError, load_kb, parse_kb

GOOD = {
    "business": "Radhaus",
    "language": "de",
    "faqs": [
        {"id": "zeiten", "questions": ["Wann habt ihr offen?"], "answer": "Mo–Fr 9–18 Uhr."},
        {
            "id": "versand",
            "questions": ["Was kostet der Versand?", "Versandkosten?"],
            "answer": {"de": "4,90 €", "en": "EUR 4.90"},
        },
    ],
}


def test_parse_good_kb() -> None:
    kb = parse_kb(GOOD)
    assert [e.id for e in kb.entries] == ["zeiten", "versand"]
    assert kb.by_id["versand"].answer("en", "de") == "EUR 4.90"
    assert kb.by_id["zeiten"].answer("en", "de") == "Mo–Fr 9–18 Uhr."
    _, labels = kb.training_rows()
    assert labels.count("versand") == 4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"questions": ["x"], "answer": "y"}, "entry 1: 'id'"),
        ({"id": "a", "questions": [], "answer": "y"}, "(id 'a'): 'questions'"),
        ({"id": "a", "questions": ["x"]}, "(id 'a'): 'answer'"),
        ({"id": "a", "questions": ["x"], "answer": {"deutsch": "y"}}, "not a two-letter code"),
        ({"id": "oos", "questions": ["x"], "answer": "y"}, "reserved"),
    ],
)
def test_bad_entries_are_named(entry: dict, message: str) -> None:
    with pytest.raises(KnowledgeBaseError, match=None) as info:
        parse_kb({"faqs": [entry]}, "kb.yaml")
    assert message in str(info.value)
    assert "kb.yaml" in str(info.value)


def test_duplicate_ids_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="duplicate id 'zeiten'"):
        parse_kb({"faqs": [GOOD["faqs"][0], GOOD["faqs"][0]]})
    bad = tmp_path / "kb.yaml"
    bad.write_text("faqs: [unclosed", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="not valid YAML"):
        load_kb(bad)
    with pytest.raises(KnowledgeBaseError, match="cannot read"):
        load_kb(tmp_path / "missing.yaml")
