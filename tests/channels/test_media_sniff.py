"""The media allow-list and content sniffing: what a file claims must match its first bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tresen.media.sniff import ALLOWED, MediaRefused, check, normalise, sniff
from tresen.media.store import clean_filename

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
JPEG = b"\xff\xd8\xff\xe0" + bytes(32)
PDF = b"%PDF-1.7\n"
HTML = b"<!doctype html><script>alert(1)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'


@pytest.mark.parametrize(
    ("declared", "head", "stored_as"),
    [
        ("image/png", PNG, "image/png"),
        ("image/jpg", JPEG, "image/jpeg"),
        ("application/pdf", PDF, "application/pdf"),
        ("application/octet-stream", PDF, "application/pdf"),
        (None, JPEG, "image/jpeg"),
        ("audio/ogg; codecs=opus", b"OggS\x00\x02", "audio/ogg"),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        ("audio/mp4", b"\x00\x00\x00\x18ftypM4A ", "audio/mp4"),
        ("text/plain", "Grüße aus Köln\n".encode(), "text/plain"),
        ("text/plain; charset=utf-8", b"Bestellung 42", "text/plain"),
    ],
)
def test_accepted(declared: str | None, head: bytes, stored_as: str) -> None:
    assert check(declared, head) == stored_as


@pytest.mark.parametrize(
    ("declared", "head", "code"),
    [
        ("image/png", HTML, "type_mismatch"),
        ("image/png", JPEG, "type_mismatch"),
        ("application/pdf", PNG, "type_mismatch"),
        ("text/plain", HTML, "type_mismatch"),
        ("text/plain", SVG, "type_mismatch"),
        ("text/plain", b"\x00\x01binary", "type_mismatch"),
        ("text/html", HTML, "type_not_allowed"),
        ("image/svg+xml", SVG, "type_not_allowed"),
        ("application/x-msdownload", b"MZ\x90\x00", "type_not_allowed"),
        (None, HTML, "type_mismatch"),
        ("application/octet-stream", b"MZ\x90\x00", "type_mismatch"),
    ],
)
def test_refused(declared: str | None, head: bytes, code: str) -> None:
    with pytest.raises(MediaRefused) as refused:
        check(declared, head)
    assert refused.value.code == code and refused.value.message


def test_normalise() -> None:
    assert normalise(" Image/JPG ; q=1") == "image/jpeg"
    assert normalise(None) == ""


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\Rechnung März.pdf", "Rechnung März.pdf"),
        ('a"<b>\r\n.pdf', "a__b_.pdf"),
        ("...", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_filename(raw: str | None, clean: str | None) -> None:
    assert clean_filename(raw) == clean


_declared = st.one_of(
    st.none(),
    st.sampled_from([*sorted(ALLOWED), "application/octet-stream", "text/html", "image/svg+xml"]),
    st.text(max_size=40),
)
_heads = st.one_of(
    st.binary(max_size=600),
    st.sampled_from([PNG, JPEG, PDF, HTML, SVG]).flatmap(
        lambda prefix: st.binary(max_size=64).map(lambda tail: prefix + tail)
    ),
    st.text(max_size=200).map(lambda t: t.encode()),
)


@settings(max_examples=examples(500), deadline=None)
@given(declared=_declared, head=_heads)
def test_fuzz_check_never_lets_markup_or_lies_through(declared: str | None, head: bytes) -> None:
    """Any input either gets an allowed type that its bytes support, or a clear refusal."""
    try:
        stored = check(declared, head)
    except MediaRefused as refused:
        assert refused.code in ("type_mismatch", "type_not_allowed") and refused.message
        return
    assert stored in ALLOWED
    found = sniff(head)
    if stored == "text/plain":
        assert found is None and not head.lstrip().startswith(b"<") and b"\x00" not in head
    else:
        assert found is not None
        assert stored == found or (
            found == "video/mp4" and stored.split("/")[0] in ("audio", "video")
        )
    if head.lstrip().startswith((b"<", b"\xef\xbb\xbf<")):
        assert sniff(head) is not None, "markup is never stored as text"
