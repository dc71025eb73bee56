"""The e-mail row of the conformance table: mails read from the mailbox by the IMAP ingest."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import msgspec

from tests import helpers
from tests.channels.conformance import ChannelCase, Outcome
from tresen.channels.email import EmailChannel
from tresen.domain.message import ContentKind
from tresen.handlers.mailboxes import read_mailbox
from tresen.runtime import Runtime

SHOP = "shop@example.com"
MAX_MAIL = 200_000
CONFIG: dict[str, Any] = {
    "address": SHOP,
    "display_name": "Radladen",
    "smtp_host": "127.0.0.1",
    "smtp_password": "smtp-secret",
    "imap_host": "127.0.0.1",
    "imap_password": "imap-secret",
    "max_message_bytes": MAX_MAIL,
}


def address(sender: str) -> str:
    """The customer's address for a test's sender."""
    return f"kunde.{sender}@example.org"


def mail(
    pid: str,
    sender: str,
    text: str | None,
    *,
    at: datetime | None = None,
    subject: str = "Frage",
    **headers: str,
) -> bytes:
    """A customer's mail as it lies in the mailbox (Message-ID from the test's provider id)."""
    msg = EmailMessage()
    msg["From"] = f"Kundin <{address(sender)}>"
    msg["To"] = SHOP
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at or datetime.now(UTC))
    msg["Message-ID"] = f"<{pid}@mail.example.org>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if text is not None:
        msg.set_content(text)
    return msg.as_bytes()


def _headers_of(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in raw:
            return raw.split(sep, 1)[0] + sep
    return raw


class OneMailImap:
    """An IMAP connection to a mailbox holding one unseen mail (the commands fetch_unseen uses)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.seen = False

    def uid(self, command: str, *args: str) -> tuple[str, list[Any]]:
        if command == "SEARCH":
            return "OK", [b"" if self.seen else b"7"]
        if command == "FETCH" and args[1] == "(RFC822.SIZE)":
            return "OK", [b"7 (UID 7 RFC822.SIZE %d)" % len(self.raw)]
        if command == "FETCH":
            data = self.raw if args[1] == "(BODY.PEEK[])" else _headers_of(self.raw)
            return "OK", [(b"7 (UID 7 BODY[] {%d}" % len(data), data), b")"]
        if command == "STORE":
            self.seen = True
            return "OK", []
        raise AssertionError(f"unexpected IMAP command {command}")

    def logout(self) -> tuple[str, list[bytes]]:
        return "BYE", []


class _OneMailbox:
    """The runtime, with the channel's adapter reading from a OneMailImap."""

    def __init__(self, runtime: Runtime, loaded: Any, imap: OneMailImap) -> None:
        adapter = EmailChannel(msgspec.to_builtins(loaded.adapter.config), runtime.http)
        adapter._imap = lambda: imap  # type: ignore[method-assign]
        self.loaded = dataclasses.replace(loaded, adapter=adapter)
        self.runtime = runtime

    async def channel(self, _channel_id: str) -> Any:
        return self.loaded

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)


async def feed(runtime: Runtime, channel_id: str, raw: bytes) -> Outcome:
    """One unseen mail in the mailbox, read by the poller's ingest (fetch, store, mark seen)."""
    loaded = await runtime.channel(channel_id)
    if loaded is None or loaded.ref.kind != "email":
        return Outcome(404, "no email channel with this id")
    imap = OneMailImap(raw)
    done = await read_mailbox(_OneMailbox(runtime, loaded, imap), channel_id)  # type: ignore[arg-type]
    assert done.fetched == 1 and imap.seen, "a mail read is marked seen once it is stored"
    if done.stored or not done.errors:
        return Outcome(200)
    return Outcome(400, "; ".join(done.errors))


def _bounce(original: str) -> bytes:
    raw = helpers.fixture_bytes("email/bounce.eml")
    return raw.replace(b"<tresen.01JBOUNCED0000000000000000@example.com>", original.encode())


CASE = ChannelCase(
    kind="email",
    config=CONFIG,
    sign=lambda _body, _url: {"Content-Type": "message/rfc822"},
    forge=lambda _body, _url: {"Content-Type": "message/rfc822", "X-Forged": "1"},
    content_type="message/rfc822",
    inbound_text=lambda pid, sender, text: mail(pid, sender, text),
    inbound_at=lambda pid, sender, text, at: mail(pid, sender, text, at=at),
    unknown_type=lambda pid: mail(
        pid, "4915100000001", None, Content_Type="application/x-teleport"
    ),
    many_entries=None,
    status=None,
    feed=feed,
    size_limit=lambda _settings: MAX_MAIL,
    oversized_marker="too_large",
    recorded={
        "email/plain_reply.eml": ContentKind.TEXT,
        "email/html_only.eml": ContentKind.TEXT,
        "email/attachment.eml": ContentKind.TEXT,
        "email/no_message_id.eml": ContentKind.TEXT,
        "email/broken_mime.eml": ContentKind.UNSUPPORTED,
    },
    malformed={
        "empty": b"",
        "binary garbage": b"\x00\xff\xfe garbage \x00",
        "no From header": b"To: shop@example.com\r\nSubject: x\r\nMessage-ID: <m1@x>\r\n\r\nHallo\r\n",
        "From without an address": b"From: Kundin\r\nMessage-ID: <m2@x>\r\n\r\nHallo\r\n",
    },
    damaged={
        "broken MIME": helpers.fixture_bytes("email/broken_mime.eml"),
        "unknown charset and bad bytes": (
            b"From: kaputt@example.org\r\nMessage-ID: <charset.1@example.org>\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain; charset=x-nope\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"\xff\xfe!!\r\n--b--\r\n"
        ),
    },
    spoofed={
        "bounce naming a mail we never sent": _bounce(
            "<tresen.01NEVERSENT0000000000000000@example.com>"
        ),
        "bounce naming a foreign mail": _bounce("<someone.else@example.net>"),
        "mail from our own address": mail("own-1", "x", "Kopie").replace(
            address("x").encode(), SHOP.encode()
        ),
    },
)
