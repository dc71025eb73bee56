"""Transactional notifications from the shop: built-in templates, idempotency, signed status webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.registry import channel_factory
from tresen.db.tables import Message, Notification, Workspace
from tresen.db.types import utcnow
from tresen.db.upsert import insert_ignore, rowcount
from tresen.domain.conversation import window_open
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, DeliveryState, SenderKind
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.net.guard import UrlRefused
from tresen.pipeline import templates
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.pipeline.recipients import Recipient, RecipientError, resolve

log = logging.getLogger(__name__)

WEBHOOK_JOB = "notification.webhook"
SIGNATURE_HEADER = "X-Tresen-Signature"
TRANSACTIONAL = "transactional"
# Consent states in which nothing is sent, even with a contract basis.
BLOCKED_STATES = frozenset({"refused", "restricted", "blocked", "erased"})
_FINAL = {DeliveryState.READ.value, DeliveryState.FAILED.value, DeliveryState.DEAD.value}
_STATUS = {
    DeliveryState.QUEUED.value: "queued",
    DeliveryState.SENDING.value: "queued",
    DeliveryState.SENT.value: "sent",
    DeliveryState.DELIVERED.value: "delivered",
    DeliveryState.READ.value: "read",
    DeliveryState.FAILED.value: "failed",
    DeliveryState.DEAD.value: "failed",
}

# Words that mark advertising rather than a message about an existing contract. A guard against
# the obvious, not a classifier: matched as whole words, case-insensitively, in free texts.
MARKETING_MARKERS = (
    "rabatt",
    "rabattcode",
    "gutschein",
    "gutscheincode",
    "sonderangebot",
    "angebote",
    "schnäppchen",
    "jetzt kaufen",
    "jetzt shoppen",
    "newsletter",
    "sale",
    "black friday",
    "prozent sparen",
    "discount",
    "coupon",
    "voucher",
    "promo",
    "promotion",
    "special offer",
    "buy now",
    "shop now",
    "limited time",
    "% off",
    "% rabatt",
)
_MARKER_RE = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(m) for m in MARKETING_MARKERS) + r")(?!\w)", re.IGNORECASE
)


class NotificationError(DomainError):
    """A notification request that is refused, with a stable code and an HTTP status."""


def _ref(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._/#-]{0,63}", value):
        raise ValueError("1 to 64 letters, digits, spaces or . _ / # -")
    return value


def _short(value: str) -> str:
    if not 1 <= len(value) <= 100 or "\n" in value or "\r" in value:
        raise ValueError("1 to 100 characters on one line")
    if re.search(r"https?:|www\.|\.[a-z]{2,}/", value, re.IGNORECASE):
        raise ValueError("no links")
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 500:
        raise ValueError("an http(s) URL of at most 500 characters")
    return value


def _date(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a date as YYYY-MM-DD")
    return date.fromisoformat(value).isoformat()


def _time(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError("HH:MM")
    return value


@dataclass(frozen=True)
class Template:
    """A built-in transactional text with typed variables."""

    required: dict[str, Any]
    optional: dict[str, Any]
    texts: dict[str, str]


TEMPLATES: dict[str, Template] = {
    "order_confirmation": Template(
        required={"name": _short, "order_number": _ref},
        optional={"total": _short},
        texts={
            "de": "Hallo {name}, vielen Dank für Ihre Bestellung {order_number}{total}. "
            "Wir melden uns, sobald sie unterwegs ist.",
            "en": "Hello {name}, thank you for your order {order_number}{total}. "
            "We will let you know as soon as it is on its way.",
        },
    ),
    "order_shipped": Template(
        required={"name": _short, "order_number": _ref, "tracking_url": _url},
        optional={"carrier": _short},
        texts={
            "de": "Hallo {name}, Ihre Bestellung {order_number} ist unterwegs{carrier}. "
            "Sendungsverfolgung: {tracking_url}",
            "en": "Hello {name}, your order {order_number} is on its way{carrier}. "
            "Tracking: {tracking_url}",
        },
    ),
    "appointment_reminder": Template(
        required={"name": _short, "date": _date, "time": _time},
        optional={"place": _short},
        texts={
            "de": "Hallo {name}, wir erinnern Sie an Ihren Termin am {date} um {time} Uhr{place}. "
            "Falls Sie nicht kommen können, antworten Sie bitte auf diese Nachricht.",
            "en": "Hello {name}, a reminder of your appointment on {date} at {time}{place}. "
            "If you cannot come, please reply to this message.",
        },
    ),
}
_DECORATE = {
    "total": {"de": " über {}", "en": " of {}"},
    "carrier": {"de": " mit {}", "en": " with {}"},
    "place": {"de": " ({})", "en": " ({})"},
}


def checked_values(name: str, variables: dict[str, str], language: str) -> dict[str, str]:
    """A built-in template's variables, checked (missing optional ones empty), or an error."""
    template = TEMPLATES.get(name)
    if template is None:
        raise NotificationError(
            "unknown_template", f"unknown template {name!r}; built in: {', '.join(TEMPLATES)}"
        )
    known = template.required | template.optional
    unknown = sorted(set(variables) - set(known))
    if unknown:
        raise NotificationError(
            "unknown_variable", f"template {name!r} has no variable {unknown[0]!r}"
        )
    values: dict[str, str] = {}
    for key, check in known.items():
        raw = variables.get(key)
        if raw is None:
            if key in template.required:
                raise NotificationError(
                    "missing_variable", f"template {name!r} needs the variable {key!r}"
                )
            values[key] = ""
            continue
        try:
            value = check(str(raw).strip())
        except ValueError as exc:
            raise NotificationError("invalid_variable", f"variable {key!r}: {exc}") from exc
        if key == "date" and language == "de":
            value = date.fromisoformat(value).strftime("%d.%m.%Y")
        values[key] = value
    return values


def render_template(name: str, variables: dict[str, str], language: str) -> str:
    """The text of a built-in template, or a NotificationError naming the bad variable."""
    values = checked_values(name, variables, language)
    decorated = {
        key: _DECORATE[key][language].format(value) if key in _DECORATE and value else value
        for key, value in values.items()
    }
    return TEMPLATES[name].texts[language].format(**decorated)


def provider_parameters(name: str, variables: dict[str, str], language: str) -> list[str]:
    """Values for a provider template registered under a built-in name, in declared order.

    The order is the built-in template's variables, required first (e.g. order_shipped:
    name, order_number, tracking_url, carrier); a missing optional value is sent as "-".
    """
    values = checked_values(name, variables, language)
    template = TEMPLATES[name]
    return [values[key] or "-" for key in (*template.required, *template.optional)]


def render_text(text: str, variables: dict[str, str]) -> str:
    """A free text with {name} placeholders filled (only plain names; nothing else is evaluated)."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in variables:
            raise NotificationError("missing_variable", f"the text uses {{{key}}}; give it")
        return str(variables[key])

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]{0,40})\}", fill, text)


def marketing_marker(text: str) -> str | None:
    """The first advertising marker in a text, if any."""
    found = _MARKER_RE.search(text)
    return found.group(1) if found else None


def status_of(message: Message | None) -> str:
    """The notification status shown to the shop for a message's delivery state."""
    return "accepted" if message is None else _STATUS.get(message.state, message.state)


def request_hash(body: dict[str, Any]) -> str:
    """A stable hash of a request body (keys sorted), to compare repeated idempotency keys."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class NotificationRequest:
    """What the shop asked for."""

    contact_id: str | None
    channel_id: str | None
    to: str | None
    template: str | None
    text: str | None
    category: str | None
    variables: dict[str, str]
    language: str


def content_for(req: NotificationRequest) -> tuple[str, str]:
    """The text to send and its category; refuses marketing and unknown templates."""
    if (req.template is None) == (req.text is None):
        raise NotificationError("template_or_text", "give either template or text", 400)
    if req.template is not None:
        if req.category not in (None, TRANSACTIONAL):
            raise NotificationError(
                "marketing_refused",
                "built-in templates are transactional; category must be 'transactional' or left out",
            )
        return render_template(req.template, req.variables, req.language), TRANSACTIONAL
    if req.category != TRANSACTIONAL:
        raise NotificationError(
            "marketing_refused",
            "this contract-basis path carries only transactional messages: a free text needs "
            "category 'transactional'; send advertising as a broadcast to subscribers",
        )
    text = render_text(req.text or "", req.variables).strip()
    if not text:
        raise NotificationError("empty_body", "the text must not be empty")
    marker = marketing_marker(text)
    if marker is not None:
        raise NotificationError(
            "marketing_refused",
            f"the text looks like advertising ({marker!r}); transactional messages only here",
        )
    return text, TRANSACTIONAL


async def submit(
    session: AsyncSession,
    workspace_id: str,
    token_id: str | None,
    key: str,
    body_hash: str,
    req: NotificationRequest,
    *,
    max_attempts: int = 8,
) -> tuple[Notification, Message | None, bool]:
    """Store and queue a notification once per idempotency key; (row, message, created)."""
    existing = await _by_key(session, workspace_id, key)
    if existing is None:
        notification_id = new_id()
        inserted = await session.execute(
            insert_ignore(session, Notification.__table__).values(
                id=notification_id,
                workspace_id=workspace_id,
                token_id=token_id,
                idempotency_key=key,
                request_hash=body_hash,
                template=req.template,
                category=req.category or TRANSACTIONAL,
                done=False,
                created_at=utcnow(),
            )
        )
        if rowcount(inserted):
            return await _create(session, notification_id, workspace_id, req, max_attempts)
        existing = await _by_key(session, workspace_id, key)  # a concurrent request won
        assert existing is not None
    if existing.request_hash != body_hash:
        raise NotificationError(
            "idempotency_conflict",
            "this Idempotency-Key was used with a different request body; use a new key",
            409,
        )
    message = await session.get(Message, existing.message_id) if existing.message_id else None
    return existing, message, False


async def _by_key(session: AsyncSession, workspace_id: str, key: str) -> Notification | None:
    return await session.scalar(
        select(Notification).where(
            Notification.workspace_id == workspace_id, Notification.idempotency_key == key
        )
    )


async def _create(
    session: AsyncSession,
    notification_id: str,
    workspace_id: str,
    req: NotificationRequest,
    max_attempts: int,
) -> tuple[Notification, Message | None, bool]:
    try:
        recipient = await resolve(
            session,
            workspace_id,
            contact_id=req.contact_id,
            channel_id=req.channel_id,
            address=req.to,
            create=True,
        )
    except RecipientError as error:
        raise NotificationError(error.code, error.message, error.status_code) from error
    text, _category = content_for(req)
    if (
        recipient.contact.consent_state in BLOCKED_STATES
        or recipient.contact.restricted_at is not None
    ):
        raise NotificationError(
            "recipient_blocked", "this contact refused or is restricted; nothing is sent to them"
        )
    if recipient.identity.unreachable:
        raise NotificationError(
            "recipient_blocked", "the customer blocked this channel or cannot be reached on it"
        )
    content = OutboundContent(ContentKind.TEXT, text)
    if req.template is not None:
        content = await _provider_template(session, recipient, req) or content
    message = await queue_message(
        session,
        recipient.conversation,
        recipient.channel,
        content,
        sender_kind=SenderKind.SYSTEM,
        max_attempts=max_attempts,
    )
    await session.flush()
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(message_id=message.id)
    )
    row = await session.get_one(Notification, notification_id)
    await session.refresh(row)
    return row, message, True


async def _provider_template(
    session: AsyncSession, recipient: Recipient, req: NotificationRequest
) -> OutboundContent | None:
    """The channel's approved template of the same name when its free-text window is closed."""
    caps = channel_factory(recipient.channel.kind).capabilities
    if not caps.templates or caps.window is None or req.template is None:
        return None
    if window_open(recipient.conversation.last_inbound_at, caps.window, utcnow()):
        return None
    candidates = [
        t
        for t in await templates.approved(session, recipient.channel.id)
        if t.name == req.template and t.language.split("_")[0] == req.language
    ]
    if not candidates:
        raise NotificationError(
            "window_closed",
            f"the customer's {caps.window // timedelta(hours=1)}-hour window on "
            f"{recipient.channel.kind} is closed and the channel has no approved template "
            f"{req.template!r} in {req.language!r}; register one (tresen template add) whose "
            f"variables are, in order: "
            f"{', '.join((*TEMPLATES[req.template].required, *TEMPLATES[req.template].optional))}",
        )
    values = provider_parameters(req.template, req.variables, req.language)
    needed = templates.variables(candidates[0].body)
    try:
        return templates.content(candidates[0], values[:needed])
    except OutboundRefused as refused:
        raise NotificationError("template_parameters", refused.message) from refused


def sign(secret: str, body: bytes) -> str:
    """The signature header value for a webhook body: sha256=<hex HMAC-SHA256>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether a webhook body carries a valid signature (what the shop's server checks)."""
    return hmac.compare_digest(sign(secret, body), header or "")


def webhook_config(workspace: Workspace) -> tuple[str, str] | None:
    """The workspace's notification webhook (URL, secret), if configured."""
    conf = (workspace.settings or {}).get("notifications_webhook") or {}
    url, secret = conf.get("url"), conf.get("secret")
    return (str(url), str(secret)) if url and secret else None


EVENTS = ("queued", "sent", "delivered", "read", "failed")
"""The statuses a shop can ask status events for (all by default)."""
MIN_SECRET = 16


def webhook_events(workspace: Workspace) -> frozenset[str]:
    """The statuses the workspace's webhook wants events for."""
    conf = (workspace.settings or {}).get("notifications_webhook") or {}
    chosen = conf.get("events")
    return frozenset(chosen) if isinstance(chosen, list) else frozenset(EVENTS)


async def configure_webhook(
    session: AsyncSession,
    workspace_id: str,
    url: str,
    events: list[str],
    *,
    secret: str | None = None,
    new_secret: bool = False,
) -> str | None:
    """Set URL and events; a new secret (returned once) on first use, on request or as given."""
    _url(url)
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ValueError("choose at least one of the statuses " + ", ".join(EVENTS))
    if secret is not None and not MIN_SECRET <= len(secret) <= 200:
        raise ValueError(f"the secret needs {MIN_SECRET} to 200 characters")
    workspace = await session.get_one(Workspace, workspace_id)
    settings = dict(workspace.settings or {})
    old = settings.get("notifications_webhook") or {}
    shown: str | None = None
    if secret is None and (new_secret or not old.get("secret")):
        secret = shown = "whsec_" + secrets.token_urlsafe(32)
    settings["notifications_webhook"] = {
        "url": url,
        "secret": secret or old["secret"],
        "events": [e for e in EVENTS if e in events],
    }
    workspace.settings = settings
    return shown


async def set_webhook(session: AsyncSession, workspace_id: str, url: str | None) -> str | None:
    """Set (or with None, remove) the webhook URL; returns the new signing secret."""
    workspace = await session.get_one(Workspace, workspace_id)
    settings = dict(workspace.settings or {})
    if url is None:
        settings.pop("notifications_webhook", None)
        workspace.settings = settings
        return None
    _url(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    settings["notifications_webhook"] = {"url": url, "secret": secret}
    workspace.settings = settings
    return secret


async def scan_status_changes(session: AsyncSession, limit: int = 500) -> int:
    """Queue one webhook job per notification whose message changed state; returns how many."""
    rows = (
        await session.execute(
            select(Notification, Message)
            .join(Message, Message.id == Notification.message_id)
            .where(
                Notification.done.is_(False),
                (Notification.notified_state.is_(None))
                | (Notification.notified_state != Message.state),
            )
            .order_by(Notification.created_at)
            .limit(limit)
        )
    ).all()
    hooks: dict[str, tuple[str, str] | None] = {}
    wanted: dict[str, frozenset[str]] = {}
    queued = 0
    stale = utcnow() - timedelta(days=7)
    for notification, message in rows:
        old = notification.notified_state
        same = (
            Notification.notified_state.is_(None)
            if old is None
            else Notification.notified_state == old
        )
        claimed = await session.execute(
            update(Notification)
            .where(Notification.id == notification.id, same)
            .values(
                notified_state=message.state,
                done=message.state in _FINAL or notification.created_at < stale,
            )
        )
        if not rowcount(claimed) or _STATUS.get(message.state) == _STATUS.get(old or ""):
            continue  # another worker took it, or the shop-visible status did not change
        if notification.workspace_id not in hooks:
            workspace = await session.get_one(Workspace, notification.workspace_id)
            hooks[notification.workspace_id] = webhook_config(workspace)
        if hooks[notification.workspace_id] is None:
            continue
        if notification.workspace_id not in wanted:
            workspace = await session.get_one(Workspace, notification.workspace_id)
            wanted[notification.workspace_id] = webhook_events(workspace)
        if status_of(message) not in wanted[notification.workspace_id]:
            continue
        body = {
            "event": "notification.status",
            "id": notification.id,
            "status": status_of(message),
            "message_id": message.id,
            "error_code": message.error_code,
            "occurred_at": utcnow().isoformat(),
        }
        queue.enqueue(
            session,
            WEBHOOK_JOB,
            {"body": body},
            workspace_id=notification.workspace_id,
            max_attempts=10,
        )
        queued += 1
    return queued


async def deliver_webhook_job(runtime: Any, job: ClaimedJob, worker_id: str) -> None:
    """POST one signed status event to the shop; any failure raises, so the worker retries."""
    async with runtime.sessions() as session:
        workspace = await session.get(Workspace, job.workspace_id) if job.workspace_id else None
    hook = webhook_config(workspace) if workspace is not None else None
    if hook is not None:
        url, secret = hook
        body = json.dumps(job.payload.get("body") or {}, separators=(",", ":")).encode()
        try:
            response = await runtime.http.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, body),
                    "X-Tresen-Event": "notification.status",
                    "X-Tresen-Delivery": job.id,
                },
            )
        except UrlRefused as refused:
            if not refused.permanent:
                raise
            # Retrying cannot help until the URL or TRESEN_OUTBOUND_ALLOW_HOSTS changes.
            reason = f"the outbound guard refused the shop's webhook URL: {refused}"
            async with runtime.sessions() as session, session.begin():
                await queue.bury(session, job.id, reason)
            queue.dead_letter(job)
            log.error("notification webhook job %s not retried: %s", job.id, reason)
            return
        if response.status_code >= 300:
            raise RuntimeError(f"the shop's webhook answered HTTP {response.status_code}")
    async with runtime.sessions() as session, session.begin():
        await queue.finish(session, job.id, worker_id)


async def send_test_event(http: Any, url: str, secret: str) -> int:
    """POST one signed `notification.test` event to the shop now; the HTTP status it answered."""
    body = json.dumps(
        {"event": "notification.test", "occurred_at": utcnow().isoformat()},
        separators=(",", ":"),
    ).encode()
    response = await http.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "X-Tresen-Event": "notification.test",
        },
    )
    return int(response.status_code)


async def status_poller(runtime: Any, stopping: asyncio.Event) -> None:
    """Every TRESEN_NOTIFICATION_POLL_SECONDS, turn delivery-state changes into webhook jobs."""
    interval = runtime.settings.notification_poll_seconds
    if interval <= 0:
        return
    while not stopping.is_set():
        try:
            async with runtime.sessions() as session, session.begin():
                queued = await scan_status_changes(session)
            if queued:
                runtime.jobs_ready.set()
        except Exception:
            log.exception("scanning notification statuses failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)


HANDLERS = {WEBHOOK_JOB: deliver_webhook_job}
