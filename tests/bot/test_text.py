"""Text normalisation, tokens, compounds, stems and language detection."""

from __future__ import annotations

from tresen.bot.language import detect_language
from tresen.bot.text import (
    clean,
    compound_vocabulary,
    fold,
    normalize,
    split_compound,
    stem,
    tokenize,
)


def test_normalize_folds_umlauts_case_and_control_characters() -> None:
    assert normalize("Öffnungs\u200bZEITEN\x00 der Straße") == "offnungs zeiten der strasse"
    assert fold("ÄÖÜß") == "aouss"
    assert clean("  a\n\tb  ") == "a b"


def test_tokenize_keeps_words_and_numbers_only() -> None:
    assert tokenize(normalize("Größe 42,5? 🙂 e-bike!")) == ["grosse", "42", "5", "e", "bike"]


def test_stems_agree_with_and_without_umlauts() -> None:
    assert stem(["öffnungszeiten"], "de") == stem(["offnungszeiten"], "de")
    assert stem(["fahrräder"], "de") == stem(["fahrraeder"], "de") == ["fahrrad"]
    assert stem(["cards", "waiting"], "en") == ["card", "wait"]


def test_compounds_split_into_known_parts() -> None:
    vocab = compound_vocabulary([normalize("Termin für die Reparatur in der Werkstatt")])
    assert split_compound("reparaturtermin", vocab) == ["reparatur", "termin"]
    assert split_compound("werkstatttermin", vocab) == ["werkstatt", "termin"]
    assert split_compound("versandkosten", vocab) == ["versand", "kosten"]
    assert split_compound("kontakt", vocab) == []


def test_language_detection() -> None:
    assert detect_language("Wann habt ihr heute geöffnet?").language == "de"
    assert detect_language("When are you open today?").language == "en"
    assert detect_language("🙂🙂", default="de").language == "de"
    assert detect_language("").language is None
    guess = detect_language("Hallo, I need help mit meiner Bestellung please")
    assert guess.language in {"de", "en"}
