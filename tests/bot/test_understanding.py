"""Understanding: encoder fusion, synonyms, generic words, question sentences, several questions,
cross-language answers and declines on the demo knowledge base."""

from __future__ import annotations

import warnings
from importlib.resources import files

import numpy as np
import pytest

from tresen.bot.backends import LexicalFeatures
from tresen.bot.blacklist import Blacklist
from tresen.bot.engine import Bot
from tresen.bot.live import build_bot
from tresen.bot.matcher import Matcher, new_matcher
from tresen.bot.persona import Persona
from tresen.bot.semantic import (
    EmbeddingCache,
    EncoderUnavailable,
    FunctionEncoder,
    UseEncoder,
    embedding_key,
    shared_encoder,
)
from tresen.bot.store import read_import
from tresen.bot.synonyms import Synonyms
from tresen.bot.text import fold, is_question, question_sentences, sentences, stem

DEMO_FAQ = files("tresen.bot") / "data" / "demo_faq.yaml"


@pytest.fixture(scope="module")
def demo_bot() -> Bot:
    """The demo shop's bot with the real encoder (built once for the module: ~2 s)."""
    parsed = read_import(str(DEMO_FAQ))
    return build_bot(
        parsed.kb, Persona(), Blacklist(()), {}, {}, None, EmbeddingCache(shared_encoder())
    )


# --- text: sentences and questions ----------------------------------------------------------


def test_question_sentences_of_a_long_message() -> None:
    text = (
        "Hallo zusammen, ich war letzte Woche bei euch. Das Rad läuft super! "
        "Kann ich den Helm noch umtauschen?"
    )
    assert question_sentences(text) == ["Kann ich den Helm noch umtauschen?"]
    assert len(sentences(text)) == 3


def test_second_question_after_und_is_split_off() -> None:
    assert question_sentences("Was kostet der Versand und wie lange dauert die Lieferung?") == [
        "Was kostet der Versand",
        "wie lange dauert die Lieferung?",
    ]
    assert question_sentences("Do you ship? And how much is it?") == [
        "Do you ship?",
        "And how much is it?",
    ]


def test_questions_without_question_mark_and_keywords() -> None:
    assert is_question("wie lange habt ihr heute offen")
    assert is_question("Kann man bei euch mieten")
    assert not is_question("Ich suche Radschuhe.")
    assert question_sentences("öffnungszeiten") == []


# --- synonyms -----------------------------------------------------------------------------


def test_synonyms_map_only_onto_the_kbs_own_words() -> None:
    group = frozenset(stem(["rucksendung", "umtausch", "ruckgabe", "erstattung"], "de"))
    other = frozenset(stem(["fission", "kernspaltung"], "de"))
    syn = Synonyms.for_vocabulary(["rucksendung", "versand"], [group, other])
    assert syn.of("umtausch") == ("rucksendung",)
    assert syn.of("erstattung") == ("rucksendung",)
    assert syn.of("rucksendung") == ()  # the KB has the word itself
    assert syn.of("kernspaltung") == ()  # no KB word of that meaning
    assert len(syn) == 3  # umtausch, ruckgabe, erstattung


def test_shipped_thesaurus_is_read_and_restricted() -> None:
    syn = Synonyms.for_vocabulary([fold("kostenlos"), "versand"])
    assert "kostenlos" in syn.of("gratis")
    assert syn.of("fission") == ()


def test_a_synonym_reaches_the_entry_without_the_word() -> None:
    rows = {
        "ruecksendung": ["Wie funktioniert die Rücksendung?", "Rücksendung eines Artikels"],
        "versand": ["Was kostet der Versand?", "Versandkosten nach Österreich"],
        "termin": ["Wie bekomme ich einen Termin?", "Termin vereinbaren"],
    }
    texts = [t for ts in rows.values() for t in ts]
    labels = [k for k, ts in rows.items() for _ in ts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = Matcher(LexicalFeatures(synonyms=False), folds=2).fit(texts, labels)
        with_syn = Matcher(LexicalFeatures(), folds=2).fit(texts, labels)
    question = "Wie läuft ein Umtausch?"
    assert with_syn.match(question).guess == "ruecksendung"
    assert with_syn.match(question).alternatives[0][1] > plain.match(question).alternatives[0][1]


# --- generic question words -----------------------------------------------------------------


def test_generic_words_weigh_less_than_the_topic() -> None:
    rows = {
        "versand": ["Was kostet der Versand?", "Wie viel kostet das Porto?"],
        "rueckgabe": ["Rückgabe von Artikeln", "Rückgabe im Laden"],
        "reparatur": ["Reparatur vom Fahrrad", "Reparatur bei euch"],
    }
    texts = [t for ts in rows.values() for t in ts]
    labels = [k for k, ts in rows.items() for _ in ts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = Matcher(LexicalFeatures(generic_weight=1.0), folds=2).fit(texts, labels)
        weighted = Matcher(LexicalFeatures(), folds=2).fit(texts, labels)
    question = "Was kostet die Rückgabe?"
    assert full.match(question).guess == "versand"  # "was kostet" outweighs the topic
    assert weighted.match(question).guess == "rueckgabe"


# --- the encoder and its cache -------------------------------------------------------------


def _fake_encoder(calls: list[list[str]]) -> FunctionEncoder:
    topics = ("ship", "open", "pay")

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[float(w in t.lower()) for w in topics] + [0.1] for t in texts])

    return FunctionEncoder("fake-1", encode)


def test_embedding_cache_encodes_each_text_once_and_lists_new_ones() -> None:
    calls: list[list[str]] = []
    cache = EmbeddingCache(_fake_encoder(calls))
    first = cache.embed(["ship it", "open now", "ship it"])
    assert calls == [["ship it", "open now"]]
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert set(cache.added) == {
        embedding_key("fake-1", "ship it"),
        embedding_key("fake-1", "open now"),
    }
    restarted = EmbeddingCache(_fake_encoder(calls), known=cache.added)
    restarted.embed(["open now", "pay here"])
    assert calls[-1] == ["pay here"]
    assert (restarted.hits, restarted.misses) == (1, 1)


def test_matcher_fuses_embeddings_and_never_caches_customer_messages() -> None:
    calls: list[list[str]] = []
    cache = EmbeddingCache(_fake_encoder(calls))
    texts = ["ship cost", "ship price", "open hours", "open times", "pay card", "pay cash"]
    labels = ["ship", "ship", "open", "open", "pay", "pay"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Matcher(LexicalFeatures(), folds=2, encoder=cache).fit(texts, labels)
    stored = set(cache.added)
    assert m.semantic
    # No word in common with any phrasing: only the embedding knows it is about shipping.
    assert m.match("when will you SHIP?").guess == "ship"
    assert set(cache.added) == stored


def test_unknown_backend_and_changed_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        new_matcher("minilm")
    monkeypatch.setattr("tresen.bot.semantic.USE_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(EncoderUnavailable, match="expected 0000"):
        UseEncoder()


def test_real_encoder_understands_across_languages() -> None:
    rows = shared_encoder().encode(
        ["Wann habt ihr geöffnet?", "When are you open?", "Wie wird das Wetter?"]
    )
    assert rows[0] @ rows[1] > 0.6 > rows[1] @ rows[2]


# --- the demo knowledge base ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "right"),
    [
        ("Wie ist eure Rückgaberegelung?", "rueckgabe"),
        ("What is your return policy?", "rueckgabe"),
        ("Habt ihr das Cube Stereo 150?", None),
        ("Was haltet ihr vom Canyon Spectral?", None),
        ("Wie wird das Wetter morgen?", None),
        ("What's the weather like tomorrow?", None),
        ("Erzähl mir einen Witz", None),
    ],
)
def test_demo_kb_answers_right_or_declines(demo_bot: Bot, question: str, right: str | None) -> None:
    turn = demo_bot.respond(question, {}, 0.0)
    if right is None:
        assert turn.outcome == "fallback", turn.texts
    else:
        assert turn.outcome == "answered" and turn.faq_key == right


def test_two_questions_get_two_answers_in_one_turn(demo_bot: Bot) -> None:
    turn = demo_bot.respond("Was kostet der Versand? Und wann habt ihr samstags auf?", {}, 0.0)
    assert turn.outcome == "answered"
    assert len(turn.texts) == 2
    assert "4,95 €" in turn.texts[0]
    assert "samstags von 9:30 bis 15 Uhr" in turn.texts[1]
    assert turn.state["matched"][-2:] == ["versand", "oeffnungszeiten"]


def test_long_message_with_the_question_at_the_end(demo_bot: Bot) -> None:
    story = "Ich war am Wochenende mit meiner Familie unterwegs und wir hatten viel Spaß. " * 30
    turn = demo_bot.respond(story + "Kann ich mit PayPal bezahlen?", {}, 0.0)
    assert len(story) > 1000
    assert turn.faq_key == "zahlung"


def test_english_question_gets_the_english_answer(demo_bot: Bot) -> None:
    turn = demo_bot.respond("Do you deliver, and what does it cost?", {}, 0.0)
    assert turn.faq_key == "versand"
    assert turn.texts[0].startswith("We ship accessories")


def test_english_question_on_a_german_only_entry_says_so(demo_bot: Bot) -> None:
    turn = demo_bot.respond("Where can I find your terms and conditions?", {}, 0.0)
    assert turn.faq_key == "rechtliches"
    answer, note = turn.texts[0].rsplit("\n", 1)
    assert answer.startswith("Unsere AGB")
    assert note == "(This answer is only available in German.)"
