"""MIME parts and charsets as mail clients read them, through the whole mail parser."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tresen.channels.email import parse_mail
from tresen.channels.mailparts import (
    attachment_parts,
    decode_text,
    fix_latin1,
    html_to_text,
    read_body,
)
from tresen.domain.message import ContentKind

HEAD = b"From: Jana <jana@example.org>\r\nMessage-ID: <m.1@example.org>\r\nMIME-Version: 1.0\r\n"


def plain(body: bytes, charset: str | None, subject: bytes = b"Frage") -> bytes:
    """A single-part text/plain mail with raw 8-bit body bytes."""
    ctype = b"text/plain" + (b"; charset=" + charset.encode() if charset else b"")
    return (
        HEAD + b"Subject: " + subject + b"\r\nContent-Type: " + ctype + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n"
    )


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        ("us-ascii", "Viele Grüße".encode(), "Viele Grüße"),
        (None, "Viele Grüße 🚲".encode(), "Viele Grüße 🚲"),
        ("us-ascii", "Viele Grüße".encode("cp1252"), "Viele Grüße"),
        ("iso-8859-1", "Preis: 5 € – fertig".encode("cp1252"), "Preis: 5 € – fertig"),
        ("ISO-8859-1", "Größe".encode("latin-1"), "Größe"),
        ("x-unknown-charset", "Grüße".encode(), "Grüße"),
        ("x-unknown-charset", "Grüße".encode("cp1252"), "Grüße"),
        ("utf-8", "Grüße".encode(), "Grüße"),
        ("windows-1251", "Спасибо".encode("cp1251"), "Спасибо"),
        ("koi8-r", "Спасибо".encode("koi8-r"), "Спасибо"),
        ("iso-8859-2", "Dziękuję".encode("iso-8859-2"), "Dziękuję"),
        ('"utf8"', "Grüße".encode(), "Grüße"),
        # Python's own codecs are no mail charsets: their escapes stay text as written.
        ("unicode_escape", rb"Gr\u00fc\u00dfe \x41", r"Gr\u00fc\u00dfe \x41"),
        ("punycode", b"Gre-zna", "Gre-zna"),
    ],
)
def test_charsets_read_as_mail_clients_read_them(
    charset: str | None, body: bytes, expected: str
) -> None:
    [msg] = parse_mail(plain(body, charset)).messages
    assert msg.body == expected and msg.content_kind == ContentKind.TEXT


def test_cp1252_bytes_without_a_character_become_c1_controls() -> None:
    assert decode_text(b"a\x81b\x80", "iso-8859-1") == "a\x81b€"
    assert decode_text(b"\xff\xfe", "utf-8") == "\ufffd\ufffd"


def test_latin1_labelled_subject_keeps_the_euro_sign() -> None:
    raw = plain(b"Hallo", "utf-8", subject=b"=?iso-8859-1?q?Preis_=80_5?=")
    [msg] = parse_mail(raw).messages
    assert msg.payload["subject"] == "Preis € 5"
    assert fix_latin1("ohne") == "ohne"


def mixed(*parts: bytes) -> bytes:
    """A multipart/mixed mail of the given parts (each with its own headers)."""
    body = b"".join(b"--B\r\n" + part + b"\r\n" for part in parts)
    return HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + body + b"--B--\r\n"


TEXT_1 = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHier ist das Foto vom Kratzer:"
IMAGE = (
    b'Content-Type: image/png\r\nContent-Disposition: inline; filename="kratzer.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo="
)
TEXT_2 = (
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Und hier die Rechnung als PDF. Gr\xc3\xbc\xc3\x9fe, Jana"
)


def test_text_after_an_inline_image_is_body_text_not_a_file() -> None:
    [msg] = parse_mail(mixed(TEXT_1, IMAGE, TEXT_2)).messages
    assert msg.body == (
        "Hier ist das Foto vom Kratzer:\n\nUnd hier die Rechnung als PDF. Grüße, Jana"
    )
    assert msg.payload["attachments"] == [{"name": "kratzer.png", "type": "image/png", "size": 8}]


def test_attachment_parts_match_the_listed_attachments() -> None:
    raw = mixed(TEXT_1, IMAGE, TEXT_2)
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert [p.get_filename() for p in attachment_parts(msg)] == ["kratzer.png"]


def test_alternative_reads_plain_and_html_only_when_plain_is_empty() -> None:
    alternative = (
        b'Content-Type: multipart/alternative; boundary="A"\r\n\r\n'
        b"--A\r\nContent-Type: text/plain\r\n\r\n \r\n"
        b"--A\r\nContent-Type: text/html\r\n\r\n<p>Nur <b>HTML</b></p>\r\n--A--"
    )
    [msg] = parse_mail(mixed(alternative)).messages
    assert msg.body == "Nur HTML" and msg.payload["from_html"] is True
    both = alternative.replace(b"\r\n \r\n", b"\r\nNur Text\r\n")
    [msg] = parse_mail(mixed(both)).messages
    assert msg.body == "Nur Text" and msg.payload["from_html"] is False


def test_text_file_attachment_stays_a_file() -> None:
    note = (
        b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="liste.txt"\r\n'
        b"\r\nSchrauben, Muttern"
    )
    [msg] = parse_mail(mixed(TEXT_1, note)).messages
    assert msg.body == "Hier ist das Foto vom Kratzer:"
    assert [a["name"] for a in msg.payload["attachments"]] == ["liste.txt"]


FORWARD = (
    "FYI\n\n---------- Forwarded message ---------\nFrom: DHL <noreply@dhl.de>\n"
    "Date: Mon, Dec 1, 2026 at 9:12 AM\nSubject: Your parcel\nTo: <jana@example.org>\n\n"
    "Your parcel could not be delivered.\n"
)


def test_forwarded_mail_keeps_the_forwarded_content_marked() -> None:
    raw = plain(FORWARD.encode(), "utf-8", subject=b"Fwd: Your parcel")
    [msg] = parse_mail(raw).messages
    assert msg.body is not None and msg.body.startswith("FYI\n\n---------- Forwarded message")
    assert msg.body.endswith("Your parcel could not be delivered.")
    assert msg.payload["reply_style"] == "forward"
    assert msg.payload["forwarded"]["headers"]["from"] == "DHL <noreply@dhl.de>"
    assert msg.payload["forwarded"]["text"] == "Your parcel could not be delivered."


def test_reply_quote_and_full_text_in_the_payload() -> None:
    text = "Ja, passt.\n\nAm 01.12.2026 um 10:00 schrieb Radladen <info@radladen.de>:\n> Samstag?\n"
    [msg] = parse_mail(plain(text.encode(), "utf-8")).messages
    assert msg.body == "Ja, passt."
    assert msg.payload["text"] == text.strip()
    assert msg.payload["quote"] == (
        "Am 01.12.2026 um 10:00 schrieb Radladen <info@radladen.de>:\n> Samstag?"
    )
    assert msg.payload["reply_style"] == "top"


def test_bottom_posted_reply_is_the_body() -> None:
    text = "Am 01.12.26 um 10:00 schrieb Radladen:\n> Wann holen Sie das Rad?\n\nSamstag.\n"
    [msg] = parse_mail(plain(text.encode(), "utf-8")).messages
    assert msg.body == "Samstag." and msg.payload["reply_style"] == "bottom"


def test_a_mail_that_is_only_a_quote_keeps_its_text() -> None:
    text = "Am 01.12.26 um 10:00 schrieb Radladen:\n> Wann holen Sie das Rad?\n"
    [msg] = parse_mail(plain(text.encode(), "utf-8")).messages
    assert msg.body == text.strip()


_PART = st.sampled_from([TEXT_1, IMAGE, TEXT_2, b"Content-Type: text/html\r\n\r\n<p>x</p>", b""])
_CHARSETS = st.sampled_from(
    [
        "utf-8",
        "us-ascii",
        "iso-8859-1",
        "x-nope",
        "koi8-r",
        "",
        "\x00",
        "base64",
        "undefined",
        "rot13",
        "unicode_escape",
        "idna",
        "utf-7",
        "hz",
    ]
)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300), _CHARSETS)
def test_any_bytes_in_any_charset_decode(data: bytes, charset: str) -> None:
    assert isinstance(decode_text(data, charset or None), str)
    parsed = parse_mail(plain(data, charset or None))
    assert parsed.messages or parsed.errors


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(_PART, max_size=5), st.binary(max_size=80))
def test_any_mix_of_parts_parses(parts: list[bytes], noise: bytes) -> None:
    raw = mixed(*parts) + noise
    parsed = parse_mail(raw)
    assert parsed.messages or parsed.errors
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert len(attachment_parts(msg)) == len(read_body(msg).attachments)


def test_html_lines_break_like_a_browser_and_quotes_nest() -> None:
    html = (
        "<div>Hallo,</div><div><br></div><div>bis <b>Samstag</b>.</div>"
        "<blockquote>Frage <i>eins</i><blockquote>alt</blockquote></blockquote>"
    )
    assert html_to_text(html) == "Hallo,\n\nbis Samstag.\n\n> Frage eins\n\n> > alt"


_HTML_BITS = st.sampled_from(
    ["<div>", "</div>", "<p>", "</p>", "<br>", "<blockquote>", "</blockquote>", "<li>", "<ul>",
     "<script>", "</script>", "<style>", "&nbsp;", "&lt;", "&#0;", "<!--", "-->", "<![CDATA[",
     "x", " ", "\n", "Grüße", "<", ">", "&", "<a href='x'>", "</a>", "\x00"]
)  # fmt: skip


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_HTML_BITS, max_size=60).map("".join))
def test_any_html_becomes_text(html: str) -> None:
    text = html_to_text(html)
    assert isinstance(text, str) and "\n\n\n" not in text and text == text.strip()
