"""Which parts of a MIME mail are its text and which are files, and their text read as mail clients read it."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser
from typing import ClassVar

_BLANK_RUNS = re.compile(r"\n{3,}")
_C1 = re.compile(r"[\x80-\x9f]")

# Labels mail clients read as another charset (the WHATWG Encoding Standard, which Thunderbird,
# Apple Mail and the webmailers follow): https://encoding.spec.whatwg.org/#names-and-labels
_READ_AS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_UNLABELLED = frozenset({None, "", "us-ascii", "ascii", "ansi_x3.4-1968", "x-unknown", "unknown"})
_NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "charmap"}
)
"""Python codecs that are no mail charset: a label naming one is read like an unknown one."""


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes of a text part as a mail client shows them; never raises, never drops the text.

    Unlabelled or ASCII-labelled text is tried as UTF-8 first; ISO-8859-1 is read as
    windows-1252 (so "€" survives); an unknown charset name falls back to UTF-8, then
    windows-1252.
    """
    label = (charset or "").strip().strip("\"'").lower() or None
    if label in _UNLABELLED:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return _cp1252(data)
    codec = _READ_AS.get(label or "", label or "utf-8")
    try:
        info = codecs.lookup(codec)
        if info.name == "cp1252":
            return _cp1252(data)
        if getattr(info, "_is_text_encoding", True) and info.name not in _NOT_CHARSETS:
            return data.decode(info.name, errors="replace")
    except (LookupError, ValueError, UnicodeError):  # an unknown, binary or broken codec name
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _cp1252(data)


def _cp1252(data: bytes) -> str:
    """windows-1252 as browsers read it: its five unassigned bytes become the C1 controls."""
    decoded = data.decode("cp1252", errors="surrogateescape")
    return "".join(chr(ord(c) - 0xDC00) if "\udc80" <= c <= "\udcff" else c for c in decoded)


def fix_latin1(text: str) -> str:
    """Text that a parser read as ISO-8859-1 although it is windows-1252 ("\\x80" -> "€")."""
    if not _C1.search(text):
        return text
    return _C1.sub(
        lambda m: m.group(0).encode("latin-1").decode("cp1252", "ignore") or m.group(0), text
    )


class _HtmlText(HTMLParser):
    """Collects the visible text of an HTML document; nothing is rendered or fetched.

    Lines break where a browser breaks them: a div, list item or row starts a new line, a
    paragraph, heading, list or quote stands apart by an empty line, every br is a break.
    Quoted text (blockquote) gets "> " at the start of each of its lines.
    """

    _SKIP: ClassVar[set[str]] = {"script", "style", "head", "title", "template", "noscript"}
    _LINE: ClassVar[set[str]] = {"div", "li", "tr", "section", "article", "hr", "dt", "dd"}
    _PARAGRAPH: ClassVar[set[str]] = {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tail = "\n\n"
        self.skipping = 0
        self.quote_depth = 0

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.tail = (self.tail + text)[-2:]

    def _break(self, newlines: int) -> None:
        missing = newlines - (len(self.tail) - len(self.tail.rstrip("\n")))
        if missing > 0:
            self._emit("\n" * missing)

    def _block(self, tag: str) -> None:
        if tag == "br":
            self._emit("\n")
        elif tag in self._LINE:
            self._break(1)
        elif tag in self._PARAGRAPH:
            self._break(2)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
            return
        self._block(tag)
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "li":
            self._emit("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
            return
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        if tag != "br":
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        text = re.sub(r"[ \t\r\f\v\n]+", " ", data)
        at_line_start = self.tail.endswith("\n")
        if at_line_start:
            text = text.lstrip()
            if not text:
                return
            if self.quote_depth:
                text = "> " * self.quote_depth + text
        self._emit(text)


def html_to_text(html: str) -> str:
    """Plain text of an HTML mail part: tags, scripts and styles dropped, entities decoded."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (ValueError, AssertionError):  # HTMLParser is lenient; else: no usable text
        return ""
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class MailBody:
    """The readable text of a mail and the parts that are files."""

    text: str
    from_html: bool
    attachments: list[Message]


def read_body(msg: Message) -> MailBody:
    """Every text/plain and text/html part that is not a file, in order, and the files.

    Of a multipart/alternative the plain text is read (the HTML when the plain part is
    empty); a text part between files (Apple Mail's text, image, text) is body text.
    """
    texts: list[str] = []
    files: list[Message] = []
    if not msg.is_multipart() and not _is_body_text(msg):
        # A mail that is one non-text part: a file only when it says it is one.
        named = msg.get_content_disposition() == "attachment" or msg.get_filename() is not None
        return MailBody("", False, [msg] if named else [])
    used_html = _walk(msg, texts, files)
    text = "\n\n".join(t for t in texts if t.strip())
    return MailBody(_BLANK_RUNS.sub("\n\n", text).strip(), used_html, files)


def attachment_parts(msg: Message) -> list[Message]:
    """The parts of a mail that are files, in the order `read_body` lists them."""
    return read_body(msg).attachments


def _walk(part: Message, texts: list[str], files: list[Message]) -> bool:
    """Collect body texts and files below `part`; whether HTML was read."""
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if part.get_content_subtype() == "alternative" and children:
            return _walk(_best_alternative(children), texts, files)
        used_html = False
        for child in children:
            used_html = _walk(child, texts, files) or used_html
        return used_html
    if not _is_body_text(part):
        files.append(part)
        return False
    text = _text(part)
    if part.get_content_subtype() == "html":
        texts.append(html_to_text(text))
        return True
    texts.append(text.replace("\r\n", "\n"))
    return False


def _best_alternative(children: list[Message]) -> Message:
    """Plain text when it says something, else HTML, else the last (richest) alternative."""
    plain = next((c for c in children if c.get_content_type() == "text/plain"), None)
    if plain is not None and _text(plain).strip():
        return plain
    for child in children:
        if child.get_content_type() == "text/html" or child.is_multipart():
            return child
    return plain or children[-1]


def _is_body_text(part: Message) -> bool:
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    return part.get_content_disposition() != "attachment" and part.get_filename() is None


def _text(part: Message) -> str:
    """The decoded text of one leaf part (empty when its transfer encoding is broken)."""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError, AssertionError):
        return ""
    if not isinstance(data, bytes):
        return ""
    try:
        charset = part.get_param("charset")
    except (ValueError, TypeError):
        charset = None
    return decode_text(data, charset if isinstance(charset, str) else None)
