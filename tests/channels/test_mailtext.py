"""Reply, quote and forwarded content of real-world mail texts (the corpus) and odd input."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tresen.channels.mailparts import html_to_text
from tresen.channels.mailtext import (
    ReplyStyle,
    is_forward_subject,
    split_mail,
    strip_quoted,
)

CORPUS = Path(__file__).parent.parent / "fixtures" / "email" / "corpus"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text("utf-8"))["case"]


def corpus_text(name: str) -> str:
    """A corpus mail's text as tresen reads it (an HTML part turned into text first)."""
    raw = (CORPUS / name).read_text("utf-8")
    return html_to_text(raw) if name.endswith(".html") else raw


def test_every_corpus_file_has_an_expected_reply_and_a_source() -> None:
    files = {path.name for path in CORPUS.iterdir() if path.suffix in (".txt", ".html")}
    assert files == {case["file"] for case in CASES}
    assert len(files) >= 100
    for case in CASES:
        assert case["source"] and case["licence"], case["file"]


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_corpus_reply(case: dict[str, Any]) -> None:
    text = corpus_text(case["file"])
    split = split_mail(text, forwarded_subject=is_forward_subject(case.get("subject", "")))
    assert split.reply == case["reply"]
    assert split.style == ReplyStyle(case["style"])
    # Nothing is lost: every line of the mail is in the reply or in the quote.
    kept = {line.strip() for line in split.reply.splitlines() + split.quote.splitlines()}
    for line in text.splitlines():
        assert line.strip() in kept or not line.strip(), line


def test_forward_keeps_headers_and_text() -> None:
    text = (CORPUS / "own_forward_gmail_en.txt").read_text("utf-8")
    split = split_mail(text)
    assert split.forwarded is not None
    assert split.forwarded.marker == "---------- Forwarded message ---------"
    assert split.forwarded.headers == {
        "from": "DHL <noreply@dhl.de>",
        "date": "Mon, Dec 1, 2026 at 9:12 AM",
        "subject": "Your parcel",
        "to": "<tom@example.org>",
    }
    assert split.forwarded.text == "Your parcel could not be delivered."


def test_outlook_forward_needs_the_subject_to_count_as_forward() -> None:
    text = (CORPUS / "own_forward_outlook_de.txt").read_text("utf-8")
    as_reply = split_mail(text)
    assert as_reply.reply == "Siehe unten." and as_reply.style == ReplyStyle.TOP
    assert "anbei Ihre Rechnung" in as_reply.quote
    forwarded = split_mail(text, forwarded_subject=True).forwarded
    assert forwarded is not None and forwarded.marker == ""
    assert forwarded.headers["subject"] == "Rechnung 2026-117"


@pytest.mark.parametrize(
    ("subject", "forwarded"),
    [
        ("Fwd: Paket", True),
        ("FW: Rechnung", True),
        ("WG: Rechnung", True),
        ("TR : Facture", True),
        ("Doorst: factuur", True),
        ("PD: Faktura", True),
        ("Re: Fwd: Paket", False),
        ("AW: Rechnung", False),
        ("Wegbeschreibung", False),
    ],
)
def test_forward_subjects(subject: str, forwarded: bool) -> None:
    assert is_forward_subject(subject) is forwarded


def test_quote_keeps_what_was_cut() -> None:
    split = split_mail("Ja gern\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <s@x.de> wrote:\n> alt")
    assert split.reply == "Ja gern"
    assert split.quote == "On Mon, 1 Dec 2026 at 10:00, Shop <s@x.de> wrote:\n> alt"


def test_plain_text_untouched() -> None:
    split = split_mail("Hallo,\n\nwann kommt mein Paket?\n\nGrüße\nJana")
    assert split.reply == "Hallo,\n\nwann kommt mein Paket?\n\nGrüße\nJana"
    assert split.quote == "" and split.style == ReplyStyle.PLAIN


def test_only_a_quote_gives_an_empty_reply() -> None:
    split = split_mail("On Mon, 1 Dec 2026 at 10:00, Shop <s@x.de> wrote:\n> alt\n")
    assert split.reply == "" and "> alt" in split.quote


_MAIL_ALPHABET = st.sampled_from(
    [
        "\n",
        " ",
        ">",
        "-",
        "_",
        ":",
        "*",
        "<",
        ">",
        "@",
        "x",
        "Am",
        "On",
        "wrote",
        "schrieb",
        "Von: ",
        "From: ",
        "Sent: ",
        "To: ",
        "Betreff: ",
        "10:00",
        "2026",
        "a écrit",
        "пишет",
        "---------- Forwarded message ---------",
        "-----Original Message-----",
        "Sent from my ",
        "\t",
        "\r\n",
        "ß",
        "€",
        "\u00a0",
        "\x00",
    ]
)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(_MAIL_ALPHABET, max_size=80).map("".join), st.booleans())
def test_never_raises_and_loses_no_line(text: str, forwarded_subject: bool) -> None:
    split = split_mail(text, forwarded_subject=forwarded_subject)
    kept = {line.strip() for line in split.reply.splitlines() + split.quote.splitlines()}
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    for line in normalised.split("\n"):
        assert line.strip() in kept or not line.strip()


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_taken_apart(text: str) -> None:
    split = split_mail(text)
    assert isinstance(split.reply, str) and isinstance(split.quote, str)
    assert strip_quoted(text) == split.reply


def test_very_long_mail_is_split_on_its_first_lines_only() -> None:
    quoted = "\n".join(f"> alte Zeile {n}" for n in range(6000))
    split = split_mail(f"Danke!\n\nAm 01.12.2026 um 10:00 schrieb Shop <s@x.de>:\n{quoted}")
    assert split.reply == "Danke!" and split.quote.endswith("> alte Zeile 5999")
    plain = "\n".join(f"Zeile {n}" for n in range(6000))
    assert split_mail(plain).reply == plain


@pytest.mark.parametrize(
    "text",
    [
        "Termin bitte so:\n\nDatum: 12.12.2026\nVon: 10 Uhr\nBis: 12 Uhr\n\nGeht das?",
        "Lieferung:\n\nAn: Hauptstraße 5\nBetreff: Bestellung 4711\n\nDanke!",
        "Bitte notieren:\n\nVon: Jana Müller\nAn: Radladen\n\nDanke!",
    ],
)
def test_field_like_lines_of_the_customer_are_not_a_quote(text: str) -> None:
    split = split_mail(text)
    assert split.reply == text and split.style == ReplyStyle.PLAIN
