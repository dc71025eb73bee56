"""E-mail channel: SMTP submission out (STARTTLS, AUTH), IMAP polling in."""

from __future__ import annotations

import asyncio
import dataclasses
import email.errors
import email.policy
import hashlib
import imaplib
import logging
import re
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, getaddresses, parsedate_to_datetime
from typing import Any, ClassVar, NamedTuple

import aiosmtplib
import httpx
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.addresses import email_address
from tresen.channels.base import (
    AuthError,
    Capabilities,
    ChannelBase,
    ConfigError,
    FetchedMedia,
    InboundMessage,
    LinkTarget,
    MediaRef,
    OutboundMessage,
    ParsedWebhook,
    PermanentError,
    PrivacyRecord,
    RateLimited,
    SendResult,
    StatusUpdate,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from tresen.channels.mailparts import attachment_parts, fix_latin1, read_body
from tresen.channels.mailtext import is_forward_subject, reply_payload, split_mail
from tresen.db import crypto
from tresen.db.tables import Message as MessageRow
from tresen.domain.message import ContentKind, DeliveryState
from tresen.media.store import STAGING as MEDIA_STAGING
from tresen.storage import FileStore

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 256
POLL_BATCH = 50
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
OWN_ID = re.compile(r"<tresen\.([0-9A-Za-z]{1,64})@[^<>\s]+>")
"""Message-IDs of mails tresen sent: `<tresen.{message id}@{shop domain}>`."""
_NETWORK_TIMEOUT = 30.0
# What the stdlib email package raises on broken input (unknown charsets, bad headers, bad MIME).
_MAIL_ERRORS = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    AssertionError,
    email.errors.MessageError,
)

_AUTO_PRECEDENCE = {"bulk", "auto_reply", "list", "junk"}
_DAEMON_SENDERS = {"mailer-daemon", "postmaster"}


class EmailConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one mailbox."""

    address: str
    smtp_host: str
    imap_host: str
    display_name: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    imap_port: int = 993
    imap_tls: bool = True
    imap_username: str = ""
    imap_password: str = ""
    imap_folder: str = "INBOX"
    messages_per_second: float = 5.0
    tls_ca_file: str | None = None
    """A CA bundle (PEM) for mail servers with a private certificate authority."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Larger mails are stored by their headers only (the agent reads them in the mailbox)."""


class FetchedMail(NamedTuple):
    """One unseen mail as the IMAP server handed it over."""

    uid: str
    raw: bytes
    size: int | None = None
    """The size the server declared, when the mail was larger than allowed (raw: headers only)."""


def _msg_id(raw: str | None) -> str | None:
    """The first <msg-id> of a header value, normalised; None when there is none."""
    if not raw:
        return None
    found = re.search(r"<[^<>\s]+>", str(raw))
    value = found.group(0) if found else str(raw).strip()
    if not value or any(c.isspace() for c in value):
        return None
    if len(value) > MAX_ID_LENGTH:
        return "<sha256." + hashlib.sha256(value.encode()).hexdigest() + "@long-id.tresen>"
    return value


def _msg_ids(raw: str | None) -> list[str]:
    """Every <msg-id> of a References-like header."""
    return [v for v in re.findall(r"<[^<>\s]+>", str(raw or "")) if len(v) <= MAX_ID_LENGTH]


def _header(msg: Any, name: str) -> str | None:
    """A header as text, or None when missing or unreadable."""
    try:
        value = msg.get(name)
    except _MAIL_ERRORS:  # a header the policy cannot parse
        value = None
    return None if value is None else str(value)


def _sent_at(msg: Message) -> datetime:
    try:
        when = parsedate_to_datetime(_header(msg, "date") or "")
    except (TypeError, ValueError, IndexError):
        return datetime.now(UTC)
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _sender(msg: Message) -> tuple[str, str | None]:
    """The From address (lower-cased) and display name."""
    pairs = getaddresses([_header(msg, "from") or ""])
    for name, addr in pairs:
        if "@" in addr:
            return addr.strip().lower(), (fix_latin1(name.strip()) or None)
    return "", None


def _is_automatic(msg: Message, sender: str) -> str | None:
    """Why a mail is an auto-reply or a bounce (RFC 3834, RFC 3464), or None."""
    auto = (_header(msg, "auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto.split(';')[0]}"
    precedence = (_header(msg, "precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("x-autoreply", "x-autorespond"):
        if msg.get(name) is not None:
            return name
    if msg.get_content_type() == "multipart/report":
        return "delivery report"
    if sender.split("@", 1)[0] in _DAEMON_SENDERS:
        return "mailer daemon"
    return None


def _bounce_statuses(msg: Message, when: datetime) -> list[StatusUpdate]:
    """FAILED statuses for the original messages a delivery report (RFC 3464) names."""
    original: str | None = None
    failures: list[tuple[str | None, str | None, str | None]] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                original = _msg_id(_header(inner[0], "message-id"))
            elif isinstance(inner, str):
                head = BytesParser(policy=email.policy.default).parsebytes(
                    inner.encode("utf-8", "replace"), headersonly=True
                )
                original = _msg_id(_header(head, "message-id"))
        elif ctype == "message/delivery-status":
            blocks = part.get_payload()
            for block in blocks[1:] if isinstance(blocks, list) else []:
                action = (_header(block, "action") or "").strip().lower()
                if action != "failed":
                    continue
                final = (_header(block, "final-recipient") or "").split(";")[-1].strip()
                failures.append(
                    (
                        final.lower() or None,
                        (_header(block, "status") or "").strip() or None,
                        (_header(block, "diagnostic-code") or "").split(";")[-1].strip() or None,
                    )
                )
    own = OWN_ID.fullmatch(original or "")
    if own is None or not failures:
        return []
    recipient, code, reason = failures[0]
    return [
        StatusUpdate(
            provider_message_id=own.group(0),
            state=DeliveryState.FAILED,
            occurred_at=when,
            recipient_address=recipient,
            error_code=code,
            error_reason=reason or "the receiving mail server refused the message",
            client_reference=own.group(1),
        )
    ]


def _attachment_info(part: Message) -> dict[str, Any]:
    """Name, type and size of one attachment (the bytes are not stored)."""
    try:
        data = part.get_payload(decode=True)
    except _MAIL_ERRORS:
        data = None
    name = part.get_filename()
    return {
        "name": fix_latin1(name) if name else None,
        "type": part.get_content_type(),
        "size": len(data) if isinstance(data, bytes) else None,
    }


def _unknown_types(msg: Message) -> list[str]:
    """Types of body parts that are neither readable text nor attachments (e.g. text/calendar)."""
    found: set[str] = set()
    for part in msg.walk():
        ctype = part.get_content_type()
        if part.is_multipart() or ctype in ("text/plain", "text/html"):
            continue
        if part.get_content_disposition() == "attachment" or (
            msg.is_multipart() and part.get_filename()
        ):
            continue
        found.add(ctype[:100])
    return sorted(found)[:5]


def parse_mail(raw: bytes) -> ParsedWebhook:
    """One RFC 822 message as typed events: a customer message, a bounce status, or an error."""
    fallback_id = "<sha256." + hashlib.sha256(raw).hexdigest()[:40] + "@no-message-id.tresen>"
    try:
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    except _MAIL_ERRORS as exc:
        return ParsedWebhook(errors=[f"{fallback_id}: unreadable mail ({type(exc).__name__})"])
    message_id = _msg_id(_header(msg, "message-id")) or fallback_id
    sender, name = _sender(msg)
    when = _sent_at(msg)
    automatic = _is_automatic(msg, sender)
    if automatic is not None:
        statuses = _bounce_statuses(msg, when) if automatic != "Precedence: list" else []
        return ParsedWebhook(
            statuses=statuses, errors=[f"{message_id}: ignored automatic mail ({automatic})"]
        )
    if not sender:
        return ParsedWebhook(errors=[f"{message_id}: mail without a From address"])
    defects = [type(d).__name__ for d in getattr(msg, "defects", [])]
    try:
        read = read_body(msg)
        full_text, from_html = read.text, read.from_html
        attachments = [_attachment_info(part) for part in read.attachments]
    except _MAIL_ERRORS as exc:  # broken MIME the policy let through
        full_text, from_html, attachments = "", False, []
        defects.append(type(exc).__name__)
    subject = fix_latin1((_header(msg, "subject") or "").strip())
    split = split_mail(full_text, forwarded_subject=is_forward_subject(subject))
    body = split.reply or full_text
    in_reply_to = _msg_id(_header(msg, "in-reply-to"))
    try:
        unknown = [] if body or attachments else _unknown_types(msg)
    except _MAIL_ERRORS as exc:
        unknown = []
        defects.append(type(exc).__name__)
    if body:
        kind: ContentKind = ContentKind.TEXT
    elif attachments:
        kind = ContentKind.MEDIA
    elif subject and not defects and not unknown:
        kind, body = ContentKind.TEXT, subject
    else:
        kind = ContentKind.UNSUPPORTED
    payload: dict[str, Any] = {
        "subject": subject,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": _msg_ids(_header(msg, "references")),
        "text": full_text,
        "from_html": from_html,
        "attachments": attachments,
        **reply_payload(split),
    }
    if defects:
        payload["defects"] = sorted(set(defects))
    if unknown:
        payload["unknown_types"] = unknown
    return ParsedWebhook(
        messages=[
            InboundMessage(
                provider_message_id=message_id,
                sender_address=sender,
                sender_name=name,
                sent_at=when,
                content_kind=kind,
                body=body or None,
                payload=payload,
                reply_to_provider_id=in_reply_to,
            )
        ]
    )


def _smtp_error(exc: Exception) -> Exception:
    """Map an SMTP failure to the pipeline's four error kinds."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthError(f"SMTP login refused ({exc.code})", code=str(exc.code))
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        if first is not None:
            return _smtp_error(first)
        return PermanentError("every recipient was refused", code="550")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, (exc.message or "").strip()
        reason = f"{code} {text}"[:500]
        # Enhanced status codes, RFC 3463: x.7.x policy; 4.7.x/451/452 often mean "too fast".
        if 400 <= code < 500:
            if code in (421, 450, 451, 452) and re.search(
                r"\b4\.7\.\d+\b|rate|too many|try again later", text, re.IGNORECASE
            ):
                return RateLimited(reason, code=str(code), retry_after=60.0)
            return TransientError(reason, code=str(code))
        if code in (550, 551, 553) and re.search(
            r"\b5\.1\.[0-3]\b|unknown|no such|does not exist", text, re.IGNORECASE
        ):
            return PermanentError(reason, code=str(code), unreachable=True)
        if code == 535:
            return AuthError(reason, code=str(code))
        return PermanentError(reason, code=str(code))
    if isinstance(exc, aiosmtplib.SMTPException | OSError | asyncio.TimeoutError):
        return TransientError(f"mail server not reachable ({type(exc).__name__})")
    return TransientError(f"sending failed ({type(exc).__name__})")


class EmailChannel(ChannelBase):
    """One mailbox: sends replies over SMTP and reads customer mail over IMAP."""

    kind: ClassVar[str] = "email"
    display_name: ClassVar[str] = "E-Mail"
    address_form: ClassVar[str | None] = "e-mail address (stored lower-case)"
    write_first: ClassVar[bool] = True
    poller: ClassVar[str | None] = "mailbox"
    simulator: ClassVar[str | None] = "email"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "the business's own mail provider (SMTP/IMAP server below)",
        "where that server is operated",
        (),
        "the business's contract with its mail provider",
        "the mail provider's data processing agreement and location",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """A lower-cased e-mail address."""
        return email_address(raw)

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """None: a mailto: link would subscribe nobody (mail has no keyword commands yet)."""
        return None

    @staticmethod
    def privacy_detail(config: Mapping[str, Any]) -> str:
        """The business's SMTP and IMAP servers."""
        return f"SMTP {config.get('smtp_host', '?')}, IMAP {config.get('imap_host', '?')}"

    @staticmethod
    async def reply_context(session: AsyncSession, conversation_id: str) -> dict[str, Any]:
        """Replies thread under the customer's last mail (subject, In-Reply-To, References)."""
        return await thread_payload(session, conversation_id)

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_length=100_000,
        window=None,
        templates=False,
        media=True,
        interactive=False,
        messages_per_second=5.0,
    )
    config_type: ClassVar[type[EmailConfig]] = EmailConfig

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient) -> None:
        self.config = msgspec.convert(dict(config), EmailConfig)
        self.http = http

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise a mailbox configuration."""
        try:
            cfg = msgspec.convert(dict(config), EmailConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError("email channel: {detail}", params={"detail": str(exc)}) from exc
        address = cfg.address.strip()
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address):
            raise ConfigError("email channel: address must look like shop@example.com")
        for name in ("smtp_host", "imap_host"):
            if not getattr(cfg, name).strip():
                raise ConfigError("email channel: {field} is required", params={"field": name})
        for name in ("smtp_port", "imap_port"):
            if not 0 < getattr(cfg, name) < 65536:
                raise ConfigError(
                    "email channel: {field} must be a TCP port (1-65535)", params={"field": name}
                )
        if not cfg.imap_folder.strip():
            raise ConfigError("email channel: imap_folder must not be empty")
        if cfg.messages_per_second <= 0:
            raise ConfigError("email channel: messages_per_second must be positive")
        if not 10_000 <= cfg.max_message_bytes <= 200 * 1024 * 1024:
            raise ConfigError("email channel: max_message_bytes must be 10 kB to 200 MB")
        out = msgspec.to_builtins(cfg)
        out["address"] = address
        out["smtp_username"] = cfg.smtp_username or address
        out["imap_username"] = cfg.imap_username or address
        return dict(out)

    def handshake(self, request: WebhookRequest) -> str:
        """E-mail has no webhook."""
        raise WebhookRejected(404, "the email channel has no webhook; mail is read over IMAP")

    def verify(self, request: WebhookRequest) -> None:
        """E-mail has no webhook: every call is refused."""
        raise WebhookRejected(405, "the email channel has no webhook; mail is read over IMAP")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse one raw RFC 822 message (the body) into typed events."""
        return parse_mail(request.body)

    def tls_context(self) -> ssl.SSLContext:
        """A verifying TLS context (with the configured private CA, if any)."""
        return ssl.create_default_context(cafile=self.config.tls_ca_file)

    def _smtp_options(self) -> dict[str, Any]:
        """How to reach and sign in at the SMTP server (port 465: TLS from the start)."""
        cfg = self.config
        implicit_tls = cfg.smtp_port == 465
        return {
            "hostname": cfg.smtp_host,
            "port": cfg.smtp_port,
            "username": cfg.smtp_username or None,
            "password": cfg.smtp_password or None,
            "use_tls": implicit_tls,
            "start_tls": cfg.smtp_starttls if not implicit_tls else False,
            "tls_context": self.tls_context(),
            "timeout": _NETWORK_TIMEOUT,
        }

    @property
    def domain(self) -> str:
        """The domain of the shop's address (right-hand side of our Message-IDs)."""
        return self.config.address.rsplit("@", 1)[-1].strip().lower()

    def build(self, message: OutboundMessage, attachment: bytes | None = None) -> EmailMessage:
        """The MIME message for one outbound text or file (as an attachment), threading headers."""
        if message.content_kind == ContentKind.MEDIA:
            if message.attachment is None or attachment is None:
                raise PermanentError("the file of this message is missing", code="no_file")
        elif message.content_kind != ContentKind.TEXT or not message.body:
            raise PermanentError(
                f"email can carry text and files only, not {message.content_kind.value}",
                code="unsupported",
            )
        p = message.payload
        mail = EmailMessage()
        mail["From"] = formataddr((self.config.display_name, self.config.address))
        mail["To"] = message.to
        subject = str(p.get("subject") or "").strip()
        if not subject:
            subject = f"Ihre Nachricht an {self.config.display_name or self.config.address}"
        elif not p.get("campaign") and not re.match(r"^(re|aw|antw)\s*:", subject, re.I):
            subject = f"Re: {subject}"
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = f"<tresen.{message.client_reference}@{self.domain}>"
        in_reply_to = _msg_id(p.get("in_reply_to"))
        references = [r for r in p.get("references") or [] if isinstance(r, str)]
        if in_reply_to:
            mail["In-Reply-To"] = in_reply_to
            refs = [*_msg_ids(" ".join(references)), in_reply_to]
            mail["References"] = " ".join(dict.fromkeys(refs))
        if message.sender_kind == "bot":
            # RFC 3834: automatic answers say so, so other autoresponders do not answer back.
            mail["Auto-Submitted"] = "auto-replied"
        if message.attachment is not None and attachment is not None:
            name = message.attachment.filename
            mail.set_content(message.body or f"Anhang / attachment: {name}")
            maintype, _, subtype = message.attachment.content_type.partition("/")
            mail.add_attachment(
                attachment,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=name,
            )
        else:
            mail.set_content(message.body or "")
        return mail

    async def send(self, message: OutboundMessage) -> SendResult:
        """Submit one reply to the SMTP server (a file goes as a MIME attachment)."""
        content = None
        if message.content_kind == ContentKind.MEDIA and message.attachment is not None:
            content = await asyncio.to_thread(message.attachment.read)
        mail = self.build(message, content)
        try:
            await aiosmtplib.send(mail, **self._smtp_options())
        except Exception as exc:
            raise _smtp_error(exc) from exc
        return SendResult(provider_message_id=str(mail["Message-ID"]))

    async def check(self) -> str | None:
        """Sign in at the SMTP server and at the IMAP server (opening the folder), then leave."""
        smtp = aiosmtplib.SMTP(**self._smtp_options())
        try:
            await smtp.connect()
            await smtp.quit()
        except Exception as exc:
            raise _smtp_error(exc) from exc
        try:
            conn = await asyncio.to_thread(self._imap)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise TransientError(f"IMAP server not reachable ({type(exc).__name__})") from exc
        await asyncio.to_thread(conn.logout)
        return self.config.address

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Nothing to confirm: mail is marked seen by the poller after the commit."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """Attachments the poller kept under the data dir (or why one was not kept)."""
        refs: list[MediaRef] = []
        attachments = payload.get("attachments")
        for item in attachments if isinstance(attachments, list) else []:
            if not isinstance(item, dict):
                continue
            staged, refused = item.get("staged"), item.get("refused")
            if isinstance(staged, str):
                ref: dict[str, Any] = {"local": staged}
            elif isinstance(refused, str):
                ref = {"refused": refused}
            else:
                continue
            raw_type = item.get("type")
            ctype = raw_type if isinstance(raw_type, str) else ""
            top = ctype.split("/", 1)[0]
            refs.append(
                MediaRef(
                    kind=top if top in ("image", "audio", "video") else "document",
                    ref=ref,
                    mime_type=ctype or None,
                    filename=item.get("name") if isinstance(item.get("name"), str) else None,
                )
            )
        return refs

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Attachments arrive inside the mail: one that was not kept stays unavailable."""
        raise PermanentError(str(ref.ref.get("refused") or "the attachment was not kept"))

    def _imap(self) -> imaplib.IMAP4:
        cfg = self.config
        if cfg.imap_tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                cfg.imap_host,
                cfg.imap_port,
                ssl_context=self.tls_context(),
                timeout=_NETWORK_TIMEOUT,
            )
        else:
            conn = imaplib.IMAP4(cfg.imap_host, cfg.imap_port, timeout=_NETWORK_TIMEOUT)
            conn.starttls(ssl_context=self.tls_context())
        try:
            conn.login(cfg.imap_username or cfg.address, cfg.imap_password)
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise AuthError("IMAP login refused") from exc
        status, _ = conn.select(_quote(cfg.imap_folder))
        if status != "OK":
            conn.logout()
            raise PermanentError(f"IMAP folder {cfg.imap_folder!r} cannot be opened")
        return conn

    def fetch_unseen(self, limit: int = POLL_BATCH) -> list[FetchedMail]:
        """Up to `limit` unseen mails, left unseen; too large ones by their headers (blocking)."""
        conn = self._imap()
        try:
            status, data = conn.uid("SEARCH", "UNSEEN")
            if status != "OK":
                raise TransientError("IMAP search failed")
            uids = [u.decode() for u in (data[0] or b"").split()[:limit]]
            found: list[FetchedMail] = []
            for uid in uids:
                status, sizes = conn.uid("FETCH", uid, "(RFC822.SIZE)")
                size = re.search(rb"RFC822\.SIZE (\d+)", sizes[0] or b"") if sizes else None
                too_large = (
                    int(size[1]) if size and int(size[1]) > self.config.max_message_bytes else None
                )
                part = "BODY.PEEK[HEADER]" if too_large else "BODY.PEEK[]"
                status, fetched = conn.uid("FETCH", uid, f"({part})")
                raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
                if status == "OK" and isinstance(raw, bytes):
                    found.append(FetchedMail(uid, raw, too_large))
            return found
        finally:
            conn.logout()

    def mark_seen(self, uids: list[str]) -> None:
        """Set \\Seen on the given UIDs (blocking)."""
        if not uids:
            return
        conn = self._imap()
        try:
            conn.uid("STORE", ",".join(uids), "+FLAGS.SILENT", "(\\Seen)")
        finally:
            conn.logout()


def _quote(folder: str) -> str:
    """An IMAP quoted string for a folder name."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stage_attachments(raw: bytes, parsed: ParsedWebhook, files: FileStore, max_bytes: int) -> None:
    """Put each attachment of a parsed mail under media/incoming in the file store, noting where."""
    if not parsed.messages or not parsed.messages[0].payload.get("attachments"):
        return
    payload = parsed.messages[0].payload
    try:
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
        parts = attachment_parts(msg)
    except _MAIL_ERRORS:
        return
    stem = hashlib.sha256(str(payload.get("message_id", "")).encode()).hexdigest()[:24]
    for index, (item, part) in enumerate(zip(payload["attachments"], parts, strict=False)):
        try:
            data = part.get_payload(decode=True)
        except _MAIL_ERRORS:
            data = None
        if not isinstance(data, bytes) or not data:
            item["refused"] = "the attachment could not be decoded"
        elif len(data) > max_bytes:
            item["refused"] = f"the file is {len(data)} bytes; at most {max_bytes} are accepted"
        else:
            relative = f"{MEDIA_STAGING}/{stem}-{index}"
            files.put(relative, crypto.seal_bytes(data))
            item["staged"] = relative


def parse_fetched(mail: FetchedMail, own_address: str) -> ParsedWebhook:
    """A fetched mail as typed events; one too large to fetch is kept by its headers."""
    parsed = parse_mail(mail.raw)
    if parsed.messages and parsed.messages[0].sender_address == own_address.strip().lower():
        # A copy of our own mail (a Bcc, a server's sent copy) or a forged sender: no customer.
        return ParsedWebhook(errors=["ignored mail from the shop's own address"])
    if mail.size is None or not parsed.messages:
        return parsed
    msg = parsed.messages[0]
    payload = {**msg.payload, "too_large": mail.size, "attachments": []}
    cut = dataclasses.replace(
        msg,
        content_kind=ContentKind.UNSUPPORTED,
        body=payload.get("subject") or None,
        payload=payload,
    )
    return ParsedWebhook([cut], parsed.statuses, parsed.errors)


async def thread_payload(session: AsyncSession, conversation_id: str) -> dict[str, Any]:
    """Subject and threading headers for a reply: from the conversation's last inbound mail."""
    last = await session.scalar(
        select(MessageRow)
        .where(MessageRow.conversation_id == conversation_id, MessageRow.direction == "inbound")
        .order_by(MessageRow.created_at.desc())
        .limit(1)
    )
    if last is None or not last.provider_message_id:
        return {}
    p = last.payload or {}
    refs = [r for r in p.get("references") or [] if isinstance(r, str)]
    return {
        "subject": p.get("subject") or "",
        "in_reply_to": last.provider_message_id,
        "references": [*refs, last.provider_message_id][-20:],
    }
