"""E-mail adapter: parsing mail, building replies, and real SMTP and IMAP servers on loopback."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tresen.channels.base import (
    Attachment,
    AuthError,
    ConfigError,
    OutboundMessage,
    PermanentError,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from tresen.channels.email import EmailChannel, parse_mail
from tresen.channels.mailparts import html_to_text
from tresen.channels.mailtext import strip_quoted
from tresen.channels.registry import channel_factory
from tresen.db import crypto
from tresen.domain.message import ContentKind, DeliveryState
from tresen.media import store
from tresen.sim.email import (
    DOVECOT,
    Dovecot,
    SmtpServer,
    TlsFiles,
    free_port,
    make_tls,
    run_dovecot,
    run_smtp_server,
)
from tresen.storage import LocalStore

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"
IN_CI = os.environ.get("CI", "").lower() == "true"


def fixture(name: str) -> bytes:
    """A recorded mail."""
    return (FIXTURES / name).read_bytes()


def config(**overrides: Any) -> dict[str, Any]:
    """A valid channel configuration."""
    base = {
        "address": "shop@example.com",
        "display_name": "Radladen",
        "smtp_host": "127.0.0.1",
        "smtp_password": "smtp-secret",
        "imap_host": "127.0.0.1",
        "imap_password": "imap-secret",
    }
    return EmailChannel.check_config({**base, **overrides})


def channel(**overrides: Any) -> EmailChannel:
    """An adapter with a valid configuration."""
    return EmailChannel(config(**overrides), httpx.AsyncClient())


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    """A throw-away CA and server certificate."""
    pytest.importorskip("trustme", reason="trustme (test dependency) is not installed")
    return make_tls(tmp_path)


@pytest.fixture
async def smtp(tls: TlsFiles) -> AsyncIterator[SmtpServer]:
    """A real SMTP submission server with STARTTLS and AUTH."""
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (test dependency) is not installed")
    async with run_smtp_server(tls) as server:
        yield server


@pytest.fixture
def dovecot_binary() -> Iterator[str]:
    """The dovecot binary, or a skip (a failure under CI=true)."""
    if DOVECOT is None:
        if IN_CI:
            pytest.fail("CI=true but dovecot is missing: apt-get install -y dovecot-imapd")
        pytest.skip("dovecot not installed (apt-get install -y dovecot-imapd)")
    yield DOVECOT


@pytest.fixture
async def dovecot(tls: TlsFiles, dovecot_binary: str) -> AsyncIterator[Dovecot]:
    """A real IMAP server with one mailbox."""
    async with run_dovecot(tls, binary=dovecot_binary) as server:
        yield server


def text_out(body: str = "Ja, Samstag geht.", **payload: Any) -> OutboundMessage:
    """An agent's text reply."""
    return OutboundMessage(
        to="jana.mueller@example.org",
        content_kind=ContentKind.TEXT,
        body=body,
        payload=payload,
        client_reference="01JREPLY",
    )


# --- configuration and webhook surface ---


def test_registered_and_config_normalised() -> None:
    assert channel_factory("email") is EmailChannel
    cfg = config(address=" shop@example.com ")
    assert cfg["address"] == "shop@example.com"
    assert cfg["smtp_port"] == 587 and cfg["imap_port"] == 993 and cfg["imap_folder"] == "INBOX"
    assert cfg["smtp_username"] == "shop@example.com"
    assert EmailChannel.capabilities.window is None
    assert EmailChannel.capabilities.max_text_length == 100_000


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"address": "no-at-sign"}, "address"),
        ({"smtp_host": " "}, "smtp_host"),
        ({"imap_port": 0}, "imap_port"),
        ({"smtp_portt": 25}, "smtp_portt"),
        ({"messages_per_second": 0}, "messages_per_second"),
    ],
)
def test_config_refused_clearly(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        config(**overrides)


def test_no_webhook_handshake_404_verify_405() -> None:
    adapter = channel()
    request = WebhookRequest("POST", "http://x/webhooks/email/1", {}, {}, b"")
    with pytest.raises(WebhookRejected) as hs:
        adapter.handshake(request)
    with pytest.raises(WebhookRejected) as vf:
        adapter.verify(request)
    assert hs.value.status_code == 404 and vf.value.status_code == 405
    assert "IMAP" in vf.value.message
    parsed = adapter.parse(
        WebhookRequest("POST", "", {}, {}, fixture("plain_reply.eml"))
    )  # parse stays usable
    assert len(parsed.messages) == 1


# --- parsing ---


def test_plain_reply_quotes_stripped_full_text_kept() -> None:
    [msg] = parse_mail(fixture("plain_reply.eml")).messages
    assert msg.provider_message_id == "<CAF=jana.4711@mail.example.org>"
    assert msg.sender_address == "jana.mueller@example.org" and msg.sender_name == "Jana Müller"
    assert msg.reply_to_provider_id == "<tresen.01JOUT000000000000000000@example.com>"
    assert msg.body == "Danke! Kann ich das Rad auch am Samstag abholen? 🚲\n\nGrüße\nJana"
    assert "Ihre Bestellung 4711 ist fertig" in msg.payload["text"]
    assert msg.payload["subject"] == "Re: Ihre Bestellung 4711"
    assert msg.payload["references"][0] == "<first.4711@mail.example.org>"
    assert msg.sent_at.isoformat() == "2026-11-21T09:15:00+00:00"


def test_html_only_mail_becomes_safe_text() -> None:
    [msg] = parse_mail(fixture("html_only.eml")).messages
    assert msg.content_kind == ContentKind.TEXT and msg.payload["from_html"] is True
    assert msg.body == "Hallo & guten Tag,\n\nwann kommt mein Paket?"
    for bad in ("<p", "<b>", "<img", "alert", "color:red", "ignored title", "pixel.gif"):
        assert bad not in msg.payload["text"]
    assert "> Alte Nachricht" in msg.payload["text"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ja gern\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <s@x.de> wrote:\n> alt", "Ja gern"),
        ("Ja\nOn Mon, 1 Dec 2026 at 10:00, Radladen\n<s@x.de> wrote:\n> alt", "Ja"),
        ("Okay\n-----Ursprüngliche Nachricht-----\nVon: Shop", "Okay"),
        ("Hi\nVon: Shop <s@x.de>\nGesendet: Montag\nAn: Jana\nalt", "Hi"),
        ("Am Montag komme ich vorbei.", "Am Montag komme ich vorbei."),
        ("> nur zitat\nneu", "neu"),
    ],
)
def test_strip_quoted(text: str, expected: str) -> None:
    assert strip_quoted(text) == expected


def test_html_to_text_never_keeps_markup() -> None:
    html = "<p>a<script>x()</script><iframe src=//evil></iframe>&lt;b&gt;</p><ul><li>eins</li></ul>"
    assert html_to_text(html) == "a<b>\n\n- eins"


def test_auto_reply_is_ignored_with_an_error() -> None:
    parsed = parse_mail(fixture("auto_reply.eml"))
    assert parsed.messages == [] and parsed.statuses == []
    assert "Auto-Submitted" in parsed.errors[0]


@pytest.mark.parametrize(
    "header",
    [
        "Precedence: bulk",
        "Precedence: auto_reply",
        "X-Autoreply: yes",
        "Auto-Submitted: auto-generated",
    ],
)
def test_other_automatic_markers_ignored(header: str) -> None:
    raw = f"From: a@example.org\r\nMessage-ID: <a.1@x>\r\n{header}\r\n\r\nweg\r\n".encode()
    parsed = parse_mail(raw)
    assert parsed.messages == [] and parsed.errors


def test_auto_submitted_no_is_a_customer_mail() -> None:
    raw = b"From: a@example.org\r\nMessage-ID: <a.2@x>\r\nAuto-Submitted: no\r\n\r\nHallo\r\n"
    assert len(parse_mail(raw).messages) == 1


def test_bounce_becomes_failed_status_not_a_message() -> None:
    parsed = parse_mail(fixture("bounce.eml"))
    assert parsed.messages == []
    [status] = parsed.statuses
    assert status.provider_message_id == "<tresen.01JBOUNCED0000000000000000@example.com>"
    assert status.state == DeliveryState.FAILED and status.error_code == "5.1.1"
    assert status.recipient_address == "nobody@example.org"
    assert status.error_reason and "User unknown" in status.error_reason


def test_mailer_daemon_without_report_is_ignored() -> None:
    raw = b"From: MAILER-DAEMON@mx.example\r\nMessage-ID: <d.1@x>\r\n\r\nfailed\r\n"
    parsed = parse_mail(raw)
    assert parsed.messages == [] and "mailer daemon" in parsed.errors[0]


def test_attachments_listed_not_stored() -> None:
    [msg] = parse_mail(fixture("attachment.eml")).messages
    assert msg.body == "Anbei das Foto vom Schaden."
    assert msg.payload["attachments"] == [
        {"name": "schaden.jpg", "type": "image/jpeg", "size": 21},
        {"name": "rechnung.pdf", "type": "application/pdf", "size": 23},
    ]


def test_attachment_only_is_media() -> None:
    raw = (
        b"From: a@example.org\r\nMessage-ID: <m.1@x>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b'Content-Type: image/png\r\nContent-Disposition: attachment; filename="a.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--B--\r\n"
    )
    [msg] = parse_mail(raw).messages
    assert msg.content_kind == ContentKind.MEDIA and msg.body is None


def test_missing_message_id_gets_stable_hash_id() -> None:
    raw = fixture("no_message_id.eml")
    [first] = parse_mail(raw).messages
    [again] = parse_mail(raw).messages
    [other] = parse_mail(raw + b"x").messages
    assert first.provider_message_id == again.provider_message_id
    assert first.provider_message_id != other.provider_message_id
    assert first.provider_message_id.endswith("@no-message-id.tresen>")
    assert first.body == "Hallo ohne Message-ID"


@pytest.mark.parametrize(
    "raw",
    [
        fixture("broken_mime.eml"),
        b"",
        b"\x00\xff\xfe garbage",
        b"From: \r\n\r\n",
        b"From: a@example.org\r\nContent-Type: text/plain; charset=x-nope\r\n\r\n\xff\xfe",
        b"From: a@example.org\r\nMessage-ID: <" + b"x" * 400 + b"@y>\r\n\r\nlang",
    ],
)
def test_malformed_mail_never_crashes(raw: bytes) -> None:
    parsed = parse_mail(raw)
    assert parsed.messages or parsed.errors
    for msg in parsed.messages:
        assert len(msg.provider_message_id) <= 256
        assert msg.content_kind in (ContentKind.TEXT, ContentKind.UNSUPPORTED)


def test_broken_mime_stored_as_unsupported() -> None:
    [msg] = parse_mail(fixture("broken_mime.eml")).messages
    assert msg.content_kind == ContentKind.UNSUPPORTED and msg.payload["defects"]


# --- building replies ---


def test_reply_headers_threading_and_subject() -> None:
    mail = channel().build(
        text_out(
            subject="Ihre Bestellung",
            in_reply_to="<CAF=jana.4711@mail.example.org>",
            references=["<first.4711@mail.example.org>", "<CAF=jana.4711@mail.example.org>"],
        )
    )
    assert mail["Message-ID"] == "<tresen.01JREPLY@example.com>"
    assert mail["Subject"] == "Re: Ihre Bestellung"
    assert mail["In-Reply-To"] == "<CAF=jana.4711@mail.example.org>"
    assert mail["References"] == "<first.4711@mail.example.org> <CAF=jana.4711@mail.example.org>"
    assert mail["From"] == "Radladen <shop@example.com>" and mail["Auto-Submitted"] is None
    assert channel().build(text_out(subject="AW: schon")).get("Subject") == "AW: schon"


def test_bot_replies_marked_auto_replied() -> None:
    msg = OutboundMessage(
        "a@example.org", ContentKind.TEXT, "Hallo", {}, "01JBOT", sender_kind="bot"
    )
    assert channel().build(msg)["Auto-Submitted"] == "auto-replied"


def test_non_text_refused_permanently() -> None:
    msg = OutboundMessage("a@example.org", ContentKind.TEMPLATE, None, {}, "01J")
    with pytest.raises(PermanentError):
        channel().build(msg)
    without_file = OutboundMessage("a@example.org", ContentKind.MEDIA, "x", {}, "01J")
    with pytest.raises(PermanentError, match="file"):
        channel().build(without_file)


def file_out(tmp_path: Path, content: bytes, caption: str | None = None) -> OutboundMessage:
    """An agent's file (stored by the upload) with an optional caption."""
    path = tmp_path / "stored-file"
    path.write_bytes(content)
    return OutboundMessage(
        to="jana.mueller@example.org",
        content_kind=ContentKind.MEDIA,
        body=caption,
        payload={"media_id": "01JMEDIA", "subject": "Rechnung"},
        client_reference="01JFILE",
        attachment=Attachment(path, "Rechnung März.pdf", "application/pdf"),
    )


def test_file_goes_as_a_mime_attachment(tmp_path: Path) -> None:
    pdf = b"%PDF-1.7\nRechnung\n%%EOF\n"
    mail = channel().build(file_out(tmp_path, pdf, "Anbei die Rechnung"), pdf)
    assert mail.get_content_type() == "multipart/mixed"
    assert mail.get_body(("plain",)).get_content().strip() == "Anbei die Rechnung"  # type: ignore[union-attr]
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "Rechnung März.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == pdf
    assert mail["Subject"] == "Re: Rechnung"


# --- a real SMTP server ---


async def test_send_over_starttls_with_auth(smtp: SmtpServer, tls: TlsFiles) -> None:
    adapter = channel(smtp_port=smtp.port, tls_ca_file=str(tls.ca_file))
    result = await adapter.send(text_out(subject="Frage", in_reply_to="<q.1@example.org>"))
    assert result.provider_message_id == "<tresen.01JREPLY@example.com>"
    [mail] = smtp.ledger
    assert mail.login == "shop@example.com" and mail.recipients == ["jana.mueller@example.org"]
    assert mail.message["In-Reply-To"] == "<q.1@example.org>"
    assert mail.message.get_content().strip() == "Ja, Samstag geht."
    assert smtp.duplicates() == 0


async def test_file_sent_over_smtp_arrives_whole(
    smtp: SmtpServer, tls: TlsFiles, tmp_path: Path
) -> None:
    adapter = channel(smtp_port=smtp.port, tls_ca_file=str(tls.ca_file))
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    result = await adapter.send(file_out(tmp_path, pdf))
    [mail] = smtp.ledger
    assert mail.message["Message-ID"] == result.provider_message_id
    [part] = list(mail.message.iter_attachments())
    assert part.get_payload(decode=True) == pdf
    assert part.get_filename() == "Rechnung März.pdf"


async def test_file_from_the_store_goes_out_decrypted(
    smtp: SmtpServer, tls: TlsFiles, tmp_path: Path
) -> None:
    """A file loaded from the file store (S3: no path on disk), sealed at rest, arrives plain."""
    adapter = channel(smtp_port=smtp.port, tls_ca_file=str(tls.ca_file))
    pdf = b"%PDF-1.7\nRechnung 4711\n%%EOF\n"
    crypto.use(crypto.parse_keys(f"k1={crypto.new_key()}"))
    try:
        files = LocalStore(tmp_path / "data")
        saved = store.save(files, "ws1", "01JMEDIA", pdf, "application/pdf", 10_000)
        assert pdf not in (tmp_path / "data" / saved.path).read_bytes()
        loaded = store.load(files, saved.path)
        message = dataclasses.replace(
            file_out(tmp_path, b"unused"),
            attachment=Attachment(None, "Rechnung.pdf", "application/pdf", loaded),
        )
        await adapter.send(message)
    finally:
        crypto.use(None)
    [mail] = smtp.ledger
    [part] = list(mail.message.iter_attachments())
    assert part.get_payload(decode=True) == pdf


async def test_wrong_password_is_auth_error(smtp: SmtpServer, tls: TlsFiles) -> None:
    adapter = channel(smtp_port=smtp.port, smtp_password="wrong", tls_ca_file=str(tls.ca_file))
    with pytest.raises(AuthError):
        await adapter.send(text_out())
    assert smtp.ledger == []


async def test_untrusted_certificate_is_not_accepted(smtp: SmtpServer) -> None:
    adapter = channel(smtp_port=smtp.port)  # no private CA configured
    with pytest.raises(TransientError):
        await adapter.send(text_out())
    assert smtp.ledger == []


async def test_unknown_recipient_permanent_and_unreachable(smtp: SmtpServer, tls: TlsFiles) -> None:
    smtp.refuse["jana.mueller@example.org"] = (550, "5.1.1 User unknown")
    adapter = channel(smtp_port=smtp.port, tls_ca_file=str(tls.ca_file))
    with pytest.raises(PermanentError) as err:
        await adapter.send(text_out())
    assert err.value.unreachable and err.value.code == "550"


async def test_greylisting_transient_and_rate_limit(smtp: SmtpServer, tls: TlsFiles) -> None:
    adapter = channel(smtp_port=smtp.port, tls_ca_file=str(tls.ca_file))
    smtp.refuse["jana.mueller@example.org"] = (451, "4.3.0 try later, greylisted")
    with pytest.raises(TransientError):
        await adapter.send(text_out())
    smtp.refuse["jana.mueller@example.org"] = (450, "4.7.1 too many messages, slow down")
    with pytest.raises(Exception) as err:
        await adapter.send(text_out())
    assert getattr(err.value, "kind", "") == "rate_limited" and err.value.retry_after == 60.0  # type: ignore[attr-defined]


async def test_server_down_is_transient() -> None:
    adapter = channel(smtp_port=free_port())
    with pytest.raises(TransientError):
        await adapter.send(text_out())


# --- a real IMAP server ---


async def test_imap_fetch_leaves_unseen_until_marked(dovecot: Dovecot, tls: TlsFiles) -> None:
    adapter = channel(
        imap_port=dovecot.port, imap_password=dovecot.password, tls_ca_file=str(tls.ca_file)
    )
    dovecot.deliver(fixture("plain_reply.eml"))
    dovecot.deliver(fixture("html_only.eml"))
    first = adapter.fetch_unseen()
    assert [parse_mail(m.raw).messages[0].provider_message_id for m in first] == [
        "<CAF=jana.4711@mail.example.org>",
        "<html.only.1@example.net>",
    ]
    assert len(adapter.fetch_unseen()) == 2  # peeking does not set \Seen
    assert [m.size for m in first] == [None, None]
    adapter.mark_seen([m.uid for m in first])
    assert adapter.fetch_unseen() == [] and dovecot.seen_count() == 2


async def test_imap_wrong_password_is_auth_error(dovecot: Dovecot, tls: TlsFiles) -> None:
    adapter = channel(imap_port=dovecot.port, imap_password="nope", tls_ca_file=str(tls.ca_file))
    with pytest.raises(AuthError):
        adapter.fetch_unseen()
