"""The matcher: answers, declines, typos, compounds, hostile input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tresen.bot.matcher import Match, Matcher, _fit_calibration

ROWS = {
    "oeffnungszeiten": [
        "Wann habt ihr geöffnet?",
        "Wie sind die Öffnungszeiten?",
        "Bis wann ist der Laden offen?",
    ],
    "versandkosten": [
        "Was kostet der Versand?",
        "Wie hoch sind die Versandkosten?",
        "Ist der Versand kostenlos?",
    ],
    "reparatur_termin": [
        "Wie bekomme ich einen Reparaturtermin?",
        "Kann ich einen Werkstatttermin buchen?",
        "Termin für die Reparatur vereinbaren",
    ],
    "rueckgabe": [
        "Kann ich Ware zurückgeben?",
        "Wie funktioniert die Rücksendung?",
        "Umtausch möglich?",
    ],
    "hours_en": ["When are you open?", "What are your opening hours?", "Are you open on Saturday?"],
    "shipping_en": ["How much is shipping?", "What does delivery cost?", "Is shipping free?"],
}


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    texts = [t for ts in ROWS.values() for t in ts]
    labels = [lab for lab, ts in ROWS.items() for _ in ts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Matcher(folds=3).fit(texts, labels)


def test_matches_paraphrases_typos_and_missing_umlauts(matcher: Matcher) -> None:
    assert matcher.match("öffnungszeiten?").guess == "oeffnungszeiten"
    assert matcher.match("offnungszeiten laden").guess == "oeffnungszeiten"
    assert matcher.match("was kostet versnd").guess == "versandkosten"
    assert matcher.match("reparatur termin buchen").guess == "reparatur_termin"
    assert matcher.match("how much does shipping cost").guess == "shipping_en"


def test_match_reports_language_and_calibrated_score(matcher: Matcher) -> None:
    m = matcher.match("What are your opening hours?")
    assert isinstance(m, Match)
    assert m.language == "en"
    assert 0.0 <= m.score <= 1.0
    assert m.declined == (m.label is None)
    assert matcher.calibration.oos_source == "held-out labels"
    assert 0.0 <= matcher.calibration.threshold <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "🙂🙂🙂",
        "\x00\x01\x1b[31m",
        "a" * 10_000,
        "Wann habt ihr offen " * 600,
        "Hallo, what are your Öffnungszeiten please?",
        "‮gnipeed‬",
        "'; DROP TABLE faq; --",
    ],
)
def test_hostile_input_never_raises(matcher: Matcher, text: str) -> None:
    m = matcher.match(text)
    assert m.declined or m.label in ROWS


def test_empty_and_emoji_only_are_declined(matcher: Matcher) -> None:
    assert matcher.match("").declined
    assert matcher.match("👍🏻🙂").declined


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Matcher().fit(["a"], ["x", "y"])
    with pytest.raises(ValueError):
        Matcher().fit(["a"], ["oos"])


def test_oos_training_rows_fit_the_threshold() -> None:
    texts = [t for ts in ROWS.values() for t in ts] + [
        "Wie wird das Wetter?",
        "Tell me a joke",
        "Wer wird Meister?",
    ]
    labels = [lab for lab, ts in ROWS.items() for _ in ts] + ["oos"] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Matcher(folds=3).fit(texts, labels)
    assert "oos" not in m.labels
    assert m.calibration.oos_source == "training oos rows"


@pytest.mark.parametrize("target", [0.3, 0.6, 0.9])
def test_oos_rows_set_the_lowest_threshold_reaching_the_recall_target(target: float) -> None:
    rng = np.random.default_rng(3)
    in_raw = rng.normal(1.0, 0.5, 400)
    in_ok = in_raw + rng.normal(0.0, 0.3, 400) > 0.5
    oos_raw = rng.normal(0.0, 0.5, 50)
    cal = _fit_calibration(in_raw, in_ok, np.zeros(0), oos_raw, 0.1, target)
    p_in, p_oos = cal.probability(in_raw), cal.probability(oos_raw)
    assert cal.oos_source == "training oos rows"
    assert np.mean(p_oos < cal.threshold) >= target
    below = p_oos[p_oos < cal.threshold]
    # One oos row fewer declined would miss the target: no needless in-scope declines.
    assert np.mean(p_oos < below.max()) < target
    assert cal.in_scope_accuracy == pytest.approx(np.mean(in_ok & (p_in >= cal.threshold)))


def test_held_out_labels_use_the_cost_rule() -> None:
    in_raw = np.array([2.0, 1.8, 1.5, 1.2, 0.4, 0.3])
    in_ok = np.array([True, True, True, True, False, False])
    pseudo = np.array([0.2, 0.35, 1.6, 0.1])
    cal = _fit_calibration(in_raw, in_ok, pseudo, np.zeros(0), 0.1, 0.99)
    assert cal.oos_source == "held-out labels"
    assert cal.in_scope_accuracy == pytest.approx(4 / 6)
    assert cal.oos_recall == pytest.approx(0.75)
