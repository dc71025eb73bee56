"""Topics and subscriptions: double opt-in from a keyword or the API, one-word opt-out."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast.clicktochat import inbound_text
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import (
    ChannelRow,
    ConsentEvent,
    Contact,
    Conversation,
    Message,
    Subscription,
    Topic,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.errors import DomainError
from tresen.domain.events import SubscriptionChanged
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.pipeline.outbound import (
    OutboundContent,
    OutboundRefused,
    contact_restricted,
    queue_message,
)
from tresen.privacy.consent import classify
from tresen.settings import Settings

log = logging.getLogger(__name__)

PENDING, CONFIRMED, WITHDRAWN = "pending", "confirmed", "withdrawn"
PURGED = "purged"
"""Not a stored state: what `subscription.changed` says of a request deleted unconfirmed."""
OPTED_OUT = "opted_out"
KEYWORD_RE = re.compile(r"^[a-z0-9]{1,32}$")
SUBSCRIBE_WORDS = frozenset({"start", "anmelden", "abonnieren", "subscribe"})
OPT_OUT_WORDS = frozenset({"stop", "stopp", "abmelden", "abbestellen", "unsubscribe"})
GERMAN_WORDS = frozenset({"anmelden", "abonnieren", "stopp", "abmelden", "abbestellen"})
ENGLISH_WORDS = frozenset({"subscribe", "unsubscribe"})
CONFIRM_BUTTON = "optin_yes:"
ALL_TOPICS = "topics:all"
CONFIRM_VERSION = "2026-12"
MAX_DESCRIPTION = 300

CONFIRM_TEXT = {
    "de": (
        "Bitte bestätigen Sie: Sie möchten von {business} Nachrichten zum Thema „{topic}“ "
        "erhalten{description}. Antworten Sie mit JA oder öffnen Sie diesen Link: {link} "
        "(gültig {hours} Stunden). Waren Sie das nicht? Dann ignorieren Sie diese Nachricht; "
        "ohne Bestätigung erhalten Sie nichts. Abmelden jederzeit mit STOP {keyword}."
    ),
    "en": (
        "Please confirm: you would like to receive messages about “{topic}” from {business}"
        "{description}. Reply YES or open this link: {link} (valid for {hours} hours). "
        "Not you? Then ignore this message; without confirmation you will receive nothing. "
        "Unsubscribe at any time with STOP {keyword}."
    ),
}
BUTTON_TITLE = {"de": "Ja, bestätigen", "en": "Yes, confirm"}
CONFIRMED_TEXT = {
    "de": "Danke, Sie sind für „{topic}“ angemeldet. Abmelden jederzeit mit STOP {keyword}.",
    "en": "Thank you, you are subscribed to “{topic}”. Unsubscribe at any time with STOP {keyword}.",
}
ALREADY_TEXT = {
    "de": "Sie sind für „{topic}“ bereits angemeldet. Abmelden mit STOP {keyword}.",
    "en": "You are already subscribed to “{topic}”. Unsubscribe with STOP {keyword}.",
}
EXPIRED_TEXT = {
    "de": "Diese Bestätigung ist abgelaufen. Schreiben Sie START {keyword}, um es erneut zu versuchen.",
    "en": "This confirmation has expired. Write START {keyword} to try again.",
}
STOPPED_ALL_TEXT = {
    "de": "Sie sind abgemeldet und erhalten von uns keine Themen-Nachrichten mehr.",
    "en": "You are unsubscribed and will receive no more topic messages from us.",
}
STOPPED_ONE_TEXT = {
    "de": "Sie sind von „{topic}“ abgemeldet.",
    "en": "You are unsubscribed from “{topic}”.",
}


class TopicError(DomainError):
    """A topic or subscription request that cannot be carried out, with a stable code."""


@dataclass(frozen=True)
class Command:
    """What an inbound message asks of the topics: subscribe, unsubscribe or confirm."""

    action: Literal["subscribe", "unsubscribe", "confirm"]
    keyword: str | None = None  # None with unsubscribe: all topics
    subscription_id: str | None = None  # set when a confirm button names the subscription
    language: str | None = None
    carrier_handled: bool = False  # SMS: the carrier already blocked and answered the STOP


def command_words(text: str) -> list[str]:
    """The words of a short command, folded (letters and digits only, lower case)."""
    cleaned = unicodedata.normalize("NFKC", text).lower()
    cleaned = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in cleaned)
    return cleaned.split()


def button_id(payload: dict[str, Any]) -> str | None:
    """The id of a pressed button (WhatsApp reply button, Telegram callback, Messenger quick reply)."""
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = []
    interactive = payload.get("interactive")
    if isinstance(interactive, dict) and isinstance(interactive.get("button_reply"), dict):
        candidates.append(interactive["button_reply"].get("id"))
    query = payload.get("callback_query")
    if isinstance(query, dict):
        candidates.append(query.get("data"))
    message = payload.get("message")
    if isinstance(message, dict) and isinstance(message.get("quick_reply"), dict):
        candidates.append(message["quick_reply"].get("payload"))
    return next((c for c in candidates if isinstance(c, str) and c), None)


def parse_command(text: str | None, payload: dict[str, Any], channel_kind: str) -> Command | None:
    """Read a subscribe/opt-out/confirm command from one inbound message (None: not one)."""

    pressed = button_id(payload)
    if pressed and pressed.startswith(CONFIRM_BUTTON):
        return Command("confirm", subscription_id=pressed[len(CONFIRM_BUTTON) :][:26])
    if channel_factory(channel_kind).carrier_opt_out(payload):
        return Command("unsubscribe", carrier_handled=True)
    text = inbound_text(text, payload, channel_kind)  # a deep link's start/ref payload
    if not text or len(text) > 200:
        return None
    words = command_words(text)
    language = None
    if words and words[0] in GERMAN_WORDS:
        language = "de"
    elif words and words[0] in ENGLISH_WORDS:
        language = "en"
    if len(words) == 1 and words[0] in OPT_OUT_WORDS:
        return Command("unsubscribe", language=language)
    if len(words) == 2 and KEYWORD_RE.match(words[1]):
        if words[0] in OPT_OUT_WORDS:
            return Command("unsubscribe", keyword=words[1], language=language)
        if words[0] in SUBSCRIBE_WORDS:
            return Command("subscribe", keyword=words[1], language=language)
    if classify(text, {}) == "yes":
        return Command("confirm")
    return None


def confirmation_text(
    workspace: Workspace, topic: Topic, language: str, link: str, hours: float
) -> str:
    """The confirmation message: what was asked for, how to confirm, how to leave; no advertising."""
    description = str((topic.descriptions or {}).get(language) or "").strip()[:MAX_DESCRIPTION]
    return CONFIRM_TEXT[language].format(
        business=workspace.name,
        topic=topic.name,
        description=f" ({description})" if description else "",
        link=link,
        hours=f"{hours:g}",
        keyword=topic.keyword.upper(),
    )


def hash_token(token: str) -> str:
    """The stored form of a confirmation token."""
    return hashlib.sha256(token.encode()).hexdigest()


def validate_topic(keyword: str, name: str, descriptions: dict[str, str]) -> str:
    """The normalised keyword, or a TopicError naming what is wrong."""
    key = keyword.strip().lower()
    if not KEYWORD_RE.match(key):
        raise TopicError("invalid_keyword", "a topic keyword is 1 to 32 letters a-z or digits")
    if key in SUBSCRIBE_WORDS | OPT_OUT_WORDS | {"tracking"}:  # TRACKING: link-tracking consent
        raise TopicError(
            "keyword_reserved", f"{key!r} is a command word and cannot be a keyword", 409
        )
    if not name.strip() or len(name) > 200:
        raise TopicError("invalid_name", "a topic needs a name of 1 to 200 characters")
    for lang, text in descriptions.items():
        if lang not in ("de", "en"):
            raise TopicError("invalid_description", "descriptions are given for 'de' and 'en'")
        if len(text) > MAX_DESCRIPTION:
            raise TopicError(
                "invalid_description", f"a description has at most {MAX_DESCRIPTION} characters"
            )
    return key


async def create_topic(
    session: AsyncSession,
    workspace_id: str,
    keyword: str,
    name: str,
    descriptions: dict[str, str] | None = None,
) -> Topic:
    """Add a topic; its keyword is unique in the workspace."""
    key = validate_topic(keyword, name, descriptions or {})
    if await find_topic(session, workspace_id, key) is not None:
        raise TopicError("topic_exists", f"a topic with the keyword {key!r} exists", 409)
    topic = Topic(
        id=new_id(),
        workspace_id=workspace_id,
        keyword=key,
        name=name.strip(),
        descriptions=dict(descriptions or {}),
        created_at=utcnow(),
    )
    session.add(topic)
    await session.flush()
    return topic


async def find_topic(session: AsyncSession, workspace_id: str, key: str) -> Topic | None:
    """A topic by keyword or id."""
    return await session.scalar(
        select(Topic).where(
            Topic.workspace_id == workspace_id,
            (Topic.keyword == key.strip().lower()) | (Topic.id == key),
        )
    )


async def is_subscribed(session: AsyncSession, topic_id: str, contact_id: str) -> bool:
    """Whether the contact has confirmed this topic and not withdrawn."""
    state = await session.scalar(
        select(Subscription.state).where(
            Subscription.topic_id == topic_id, Subscription.contact_id == contact_id
        )
    )
    return state == CONFIRMED


def _purpose(topic: Topic) -> str:
    return f"topic:{topic.keyword}"


def _event(
    contact: Contact,
    channel_id: str | None,
    purpose: str,
    action: str,
    source: str,
    language: str | None,
    version: str | None = None,
    text_hash: str | None = None,
) -> ConsentEvent:
    return ConsentEvent(
        workspace_id=contact.workspace_id,
        contact_id=contact.id,
        purpose=purpose,
        action=action,
        channel_id=channel_id,
        source=source,
        text_version=version,
        text_hash=text_hash,
        language=language,
        occurred_at=utcnow(),
    )


async def confirmations_sent_today(session: AsyncSession, contact_id: str, channel_id: str) -> int:
    """Confirmation messages sent to this address in the last 24 hours (counted from the proof)."""
    since = utcnow() - timedelta(days=1)
    return (
        await session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(
                ConsentEvent.contact_id == contact_id,
                ConsentEvent.channel_id == channel_id,
                ConsentEvent.action == "requested",
                ConsentEvent.purpose.like("topic:%"),
                ConsentEvent.occurred_at >= since,
            )
        )
        or 0
    )


async def _lock_contact(session: AsyncSession, contact_id: str) -> None:
    """Serialise opt-in requests for one contact, so the daily limit holds under concurrency."""
    stmt = select(Contact.id).where(Contact.id == contact_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    await session.execute(stmt)


async def request_subscription(
    session: AsyncSession,
    settings: Settings,
    *,
    workspace: Workspace,
    topic: Topic,
    contact: Contact,
    conversation: Conversation,
    channel: ChannelRow,
    source: str,
    language: str,
) -> tuple[Subscription, bool]:
    """Start the double opt-in; returns the subscription and whether a confirmation was sent."""
    if contact.consent_state in ("refused", "restricted") or contact.restricted_at is not None:
        raise TopicError("contact_refused", "this contact refused processing; nothing is sent")
    await _lock_contact(session, contact.id)
    sub = await session.scalar(
        select(Subscription).where(
            Subscription.topic_id == topic.id, Subscription.contact_id == contact.id
        )
    )
    if sub is not None and sub.state == CONFIRMED:
        return sub, False
    limit = settings.optin_confirmations_per_day
    if await confirmations_sent_today(session, contact.id, channel.id) >= limit:
        raise TopicError(
            "confirmation_limit",
            f"at most {limit} confirmation messages per address and day; try again tomorrow",
            429,
        )
    token = secrets.token_urlsafe(24)
    now = utcnow()
    values: dict[str, Any] = {
        "state": PENDING,
        "channel_id": channel.id,
        "source": source,
        "language": language,
        "token_hash": hash_token(token),
        "token_expires_at": now + timedelta(hours=settings.optin_token_hours),
        "token_used_at": None,
        "requested_at": now,
        "confirmed_at": None,
        "withdrawn_at": None,
    }
    if sub is None:
        sub = Subscription(
            id=new_id(),
            workspace_id=workspace.id,
            topic_id=topic.id,
            contact_id=contact.id,
            **values,
        )
        session.add(sub)
    else:
        for name, value in values.items():
            setattr(sub, name, value)
    outbox.record(session, SubscriptionChanged(workspace.id, contact.id, topic.id, PENDING))
    await session.flush()
    link = f"{settings.base_url.rstrip('/')}/s/confirm/{token}"
    text = confirmation_text(workspace, topic, language, link, settings.optin_token_hours)
    template = confirmation_text(workspace, topic, language, "{link}", settings.optin_token_hours)
    caps = channel_factory(channel.kind).capabilities
    if caps.interactive and caps.max_buttons >= 1:
        content = OutboundContent(
            ContentKind.INTERACTIVE,
            text,
            {"buttons": [{"id": CONFIRM_BUTTON + sub.id, "title": BUTTON_TITLE[language]}]},
        )
    else:
        content = OutboundContent(ContentKind.TEXT, text)
    await queue_message(session, conversation, channel, content, sender_kind=SenderKind.SYSTEM)
    session.add(
        _event(
            contact,
            channel.id,
            _purpose(topic),
            "requested",
            source,
            language,
            CONFIRM_VERSION,
            hashlib.sha256(template.encode()).hexdigest(),
        )
    )
    return sub, True


async def _requested_proof(session: AsyncSession, sub: Subscription, topic: Topic) -> ConsentEvent:
    """The latest `requested` event of this subscription (its text version and hash)."""
    found = await session.scalar(
        select(ConsentEvent)
        .where(
            ConsentEvent.contact_id == sub.contact_id,
            ConsentEvent.purpose == _purpose(topic),
            ConsentEvent.action == "requested",
        )
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return found or ConsentEvent()


async def confirm(
    session: AsyncSession,
    sub: Subscription,
    source: str,
    *,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Turn a pending subscription into a confirmed one (once); records the proof."""
    now = utcnow()
    done = await session.execute(
        update(Subscription)
        .where(Subscription.id == sub.id, Subscription.state == PENDING)
        .values(state=CONFIRMED, confirmed_at=now, token_used_at=now)
    )
    if not rowcount(done):
        return False
    outbox.record(
        session, SubscriptionChanged(sub.workspace_id, sub.contact_id, sub.topic_id, CONFIRMED)
    )
    topic = await session.get_one(Topic, sub.topic_id)
    contact = await session.get_one(Contact, sub.contact_id)
    asked = await _requested_proof(session, sub, topic)
    event = _event(
        contact,
        sub.channel_id,
        _purpose(topic),
        "granted",
        source,
        sub.language,
        asked.text_version,
        asked.text_hash,
    )
    event.ip_address, event.user_agent = ip_address, user_agent
    session.add(event)
    await session.refresh(sub)
    return True


TokenOutcome = Literal["confirmed", "used", "expired", "unknown"]


async def confirm_by_token(
    session: AsyncSession, token: str, *, apply: bool, user_agent: str | None = None
) -> tuple[TokenOutcome, Subscription | None, Topic | None]:
    """Check (and with `apply`, redeem) a single-use confirmation token from a link."""
    if not token or len(token) > 100:
        return "unknown", None, None
    sub = await session.scalar(
        select(Subscription).where(Subscription.token_hash == hash_token(token))
    )
    if sub is None:
        return "unknown", None, None
    topic = await session.get(Topic, sub.topic_id)
    if sub.token_used_at is not None or sub.state != PENDING:
        return "used", sub, topic
    if sub.token_expires_at is None or sub.token_expires_at <= utcnow():
        return "expired", sub, topic
    if not apply:
        return "confirmed", sub, topic
    if not await confirm(session, sub, "link", user_agent=user_agent):
        return "used", sub, topic
    await _reply_in_chat(session, sub, topic)
    return "confirmed", sub, topic


async def _reply_in_chat(session: AsyncSession, sub: Subscription, topic: Topic | None) -> None:
    """After a link confirmation, say so in the chat too (when the channel still allows it)."""
    if topic is None:
        return
    row = (
        await session.execute(
            select(Conversation, ChannelRow)
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .where(
                Conversation.contact_id == sub.contact_id,
                Conversation.channel_id == sub.channel_id,
            )
        )
    ).first()
    if row is None:
        return
    text = CONFIRMED_TEXT[_lang(sub.language)].format(
        topic=topic.name, keyword=topic.keyword.upper()
    )
    # queue_message refuses before it writes anything, so a refusal leaves the transaction clean.
    with contextlib.suppress(OutboundRefused):
        await queue_message(
            session,
            row[0],
            row[1],
            OutboundContent(ContentKind.TEXT, text),
            sender_kind=SenderKind.SYSTEM,
        )


async def withdraw(
    session: AsyncSession,
    contact: Contact,
    channel_id: str | None,
    topic: Topic | None,
    source: str,
    language: str | None,
) -> list[Topic]:
    """Opt out of one topic or all; records a withdrawal per topic (or one for all topics)."""
    stmt = select(Subscription, Topic).join(Topic, Topic.id == Subscription.topic_id)
    stmt = stmt.where(
        Subscription.contact_id == contact.id, Subscription.state.in_((PENDING, CONFIRMED))
    )
    if topic is not None:
        stmt = stmt.where(Subscription.topic_id == topic.id)
    rows = (await session.execute(stmt)).all()
    now = utcnow()
    if rows:
        await session.execute(
            update(Subscription)
            .where(Subscription.id.in_([s.id for s, _ in rows]))
            .values(state=WITHDRAWN, withdrawn_at=now)
        )
        outbox.record(
            session,
            *(
                SubscriptionChanged(s.workspace_id, s.contact_id, s.topic_id, WITHDRAWN)
                for s, _ in rows
            ),
        )
    purposes = [_purpose(t) for _, t in rows]
    if topic is not None and _purpose(topic) not in purposes:
        purposes.append(_purpose(topic))
    if topic is None:
        purposes.append(ALL_TOPICS)
    for purpose in purposes:
        session.add(_event(contact, channel_id, purpose, "withdrawn", source, language))
    return [t for _, t in rows]


async def contact_language(session: AsyncSession, contact_id: str) -> str | None:
    return await session.scalar(
        select(ConsentEvent.language)
        .where(ConsentEvent.contact_id == contact_id, ConsentEvent.language.is_not(None))
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )


def _lang(language: str | None) -> str:
    return language if language in ("de", "en") else "de"


@dataclass
class _Inbound:
    message: Message
    conversation: Conversation
    contact: Contact
    channel: ChannelRow
    workspace: Workspace


async def _load(session: AsyncSession, message_id: str) -> _Inbound | None:
    row = (
        await session.execute(
            select(Message, Conversation, Contact, ChannelRow, Workspace)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(ChannelRow, ChannelRow.id == Message.channel_id)
            .join(Workspace, Workspace.id == Message.workspace_id)
            .where(Message.id == message_id)
        )
    ).first()
    return None if row is None else _Inbound(*row)


async def _say(session: AsyncSession, found: _Inbound, text: str) -> None:
    """Answer in the conversation; a refusal (closed window) must not undo the opt-out itself."""
    with contextlib.suppress(OutboundRefused):  # refused before anything is written
        await queue_message(
            session,
            found.conversation,
            found.channel,
            OutboundContent(ContentKind.TEXT, text),
            sender_kind=SenderKind.SYSTEM,
        )


async def handle_before_consent(session: AsyncSession, message_id: str) -> bool:
    """Run an opt-out (all topics or one) or a confirm button; True if the message was one.

    This runs before the consent step: a STOP is honoured and never answered with a question,
    and a confirm button names its subscription, so it is not mistaken for a consent answer.
    """
    found = await _load(session, message_id)
    if found is None:
        return False
    command = parse_command(found.message.body, found.message.payload or {}, found.channel.kind)
    if command is not None and command.action == "confirm" and command.subscription_id:
        return await _confirm_reply(session, found, command) is not None
    if command is None or command.action != "unsubscribe":
        return False
    topic = None
    if command.keyword is not None:
        topic = await find_topic(session, found.workspace.id, command.keyword)
        if topic is None:
            return False  # "stop something" that names no topic is an ordinary message
    language = _lang(command.language or await contact_language(session, found.contact.id))
    source = f"{found.channel.kind} keyword"
    await withdraw(session, found.contact, found.channel.id, topic, source, language)
    if command.carrier_handled:
        return True  # the provider blocks further SMS and answers the STOP itself
    text = (
        STOPPED_ONE_TEXT[language].format(topic=topic.name)
        if topic is not None
        else STOPPED_ALL_TEXT[language]
    )
    await _say(session, found, text)
    return True


async def handle_inbound(
    session: AsyncSession, settings: Settings, message_id: str, *, consent_ok: bool
) -> str | None:
    """Subscribe or confirm from an inbound message (after the consent step); what happened."""
    found = await _load(session, message_id)
    if found is None:
        return None
    command = parse_command(found.message.body, found.message.payload or {}, found.channel.kind)
    if command is None or command.action == "unsubscribe":
        return None
    if command.action == "confirm":
        return await _confirm_reply(session, found, command)
    if not consent_ok or command.keyword is None:
        return None
    topic = await find_topic(session, found.workspace.id, command.keyword)
    if topic is None:
        return None
    language = _lang(command.language or await contact_language(session, found.contact.id))
    try:
        _sub, sent = await request_subscription(
            session,
            settings,
            workspace=found.workspace,
            topic=topic,
            contact=found.contact,
            conversation=found.conversation,
            channel=found.channel,
            source=f"{found.channel.kind} keyword",
            language=language,
        )
    except TopicError as error:
        log.info("subscription request of contact %s not sent: %s", found.contact.id, error.code)
        return error.code
    except OutboundRefused as refused:
        log.info("confirmation to contact %s refused: %s", found.contact.id, refused.code)
        return refused.code
    if not sent:
        await _say(
            session,
            found,
            ALREADY_TEXT[language].format(topic=topic.name, keyword=topic.keyword.upper()),
        )
        return "already"
    return "requested"


async def is_command(session: AsyncSession, message_id: str) -> bool:
    """Whether an inbound message is a subscribe, opt-out or confirm command."""
    found = await _load(session, message_id)
    return found is not None and (
        parse_command(found.message.body, found.message.payload or {}, found.channel.kind)
        is not None
    )


async def handle_deferred(session: AsyncSession, settings: Settings, message_id: str) -> str | None:
    """After a yes to the privacy notice: run the subscribe keyword sent just before it.

    A click-to-chat link makes `START ticker` a new contact's first message, which consent
    first answers with the notice; the keyword is not lost but follows the yes. Only the
    latest command of the last day counts, so a STOP sent in between wins.
    """
    found = await _load(session, message_id)
    if found is None:
        return None
    earlier = await session.scalars(
        select(Message)
        .where(
            Message.conversation_id == found.conversation.id,
            Message.direction == "inbound",
            Message.id != found.message.id,
            Message.created_at >= found.message.created_at - timedelta(days=1),
            Message.created_at <= found.message.created_at,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(10)
    )
    for message in earlier:
        command = parse_command(message.body, message.payload or {}, found.channel.kind)
        if command is None or command.action == "confirm":
            continue
        if command.action == "unsubscribe" or command.keyword is None:
            return None
        return await handle_inbound(session, settings, message.id, consent_ok=True)
    return None


async def _confirm_reply(session: AsyncSession, found: _Inbound, command: Command) -> str | None:
    stmt = (
        select(Subscription, Topic)
        .join(Topic, Topic.id == Subscription.topic_id)
        .where(
            Subscription.contact_id == found.contact.id,
            Subscription.channel_id == found.channel.id,
            Subscription.state == PENDING,
        )
        .order_by(Subscription.requested_at.desc())
        .limit(1)
    )
    if command.subscription_id:
        stmt = stmt.where(Subscription.id == command.subscription_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None  # a yes that answers no pending request is an ordinary message
    sub, topic = row
    language = _lang(sub.language)
    if sub.token_expires_at is None or sub.token_expires_at <= utcnow():
        await _say(session, found, EXPIRED_TEXT[language].format(keyword=topic.keyword.upper()))
        return "expired"
    source = f"{found.channel.kind} {'button' if command.subscription_id else 'reply'}"
    if not await confirm(session, sub, source):
        return None
    await _say(
        session,
        found,
        CONFIRMED_TEXT[language].format(topic=topic.name, keyword=topic.keyword.upper()),
    )
    return "confirmed"


async def purge_unconfirmed(session: AsyncSession, older_than: timedelta) -> int:
    """Delete subscription requests never confirmed within `older_than` (the proof stays)."""
    cutoff = utcnow() - older_than
    result = await session.execute(
        delete(Subscription)
        .where(Subscription.state == PENDING, Subscription.requested_at < cutoff)
        .returning(Subscription.workspace_id, Subscription.contact_id, Subscription.topic_id)
    )
    purged = result.all()
    outbox.record(
        session,
        *(
            SubscriptionChanged(ws, contact_id, topic_id, PURGED)
            for ws, contact_id, topic_id in purged
        ),
    )
    return len(purged)


async def purge_poller(runtime: Any, stopping: asyncio.Event) -> None:
    """Every hour while a worker runs, purge unconfirmed requests older than TRESEN_OPTIN_PURGE_DAYS."""
    days = runtime.settings.optin_purge_days
    if days <= 0:
        return
    while not stopping.is_set():
        try:
            async with runtime.sessions() as session, session.begin():
                purged = await purge_unconfirmed(session, timedelta(days=days))
            if purged:
                log.info("purged %d unconfirmed subscription requests", purged)
        except Exception:
            log.exception("purging unconfirmed subscriptions failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 3600)


async def queue_topic_message(
    session: AsyncSession,
    topic: Topic,
    conversation: Conversation,
    channel: ChannelRow,
    content: OutboundContent,
    *,
    max_attempts: int = 8,
) -> Message:
    """Queue a message of a topic to a subscriber; the send job checks the subscription again."""
    if not await is_subscribed(session, topic.id, conversation.contact_id):
        raise TopicError(OPTED_OUT, "the contact is not subscribed to this topic")
    if await contact_restricted(session, conversation.contact_id):
        raise TopicError("restricted", "processing of this contact's data is restricted")
    return await queue_message(
        session,
        conversation,
        channel,
        content,
        sender_kind=SenderKind.SYSTEM,
        max_attempts=max_attempts,
        topic_id=topic.id,
    )
