"""Outbound: write a message and its send job together; the send job hands it to the channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import Capabilities, ChannelError, OutboundMessage
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import ChannelRow, Contact, ContactIdentity, Conversation, Message
from tresen.db.types import utcnow
from tresen.domain.conversation import window_closes_at, window_open
from tresen.domain.errors import DomainError
from tresen.domain.events import MessageQueued
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, DeliveryState, Direction, SenderKind
from tresen.jobs import queue
from tresen.pipeline.options import as_numbered_text, fits

log = logging.getLogger(__name__)

SEND_JOB = "message.send"
SENDABLE_KINDS = {
    ContentKind.TEXT,
    ContentKind.TEMPLATE,
    ContentKind.INTERACTIVE,
    ContentKind.MEDIA,
}


class OutboundRefused(DomainError):
    """A message that must not be sent, with a code naming the rule."""


@dataclass(frozen=True)
class OutboundContent:
    """What an agent, the bot, a broadcast or the API wants to send."""

    kind: ContentKind
    body: str | None = None
    payload: dict[str, Any] | None = None


def adapt_content(content: OutboundContent, caps: Capabilities) -> OutboundContent:
    """Buttons the channel cannot show become numbered options in the text (remembered)."""

    payload = content.payload or {}
    if content.kind != ContentKind.INTERACTIVE or fits(payload, caps):
        return content
    numbered = as_numbered_text(content.body or "", payload)
    if numbered is None:
        return content
    body, remembered = numbered
    return OutboundContent(ContentKind.TEXT, body, remembered)


def validate_content(content: OutboundContent, caps: Capabilities, channel_kind: str) -> None:
    """Refuse content the channel cannot carry, naming the limit."""
    p = content.payload or {}
    if content.kind not in SENDABLE_KINDS:
        raise OutboundRefused(
            "unsupported_kind", f"cannot send content kind {content.kind.value!r}"
        )
    if (
        content.kind in (ContentKind.TEXT, ContentKind.INTERACTIVE)
        and not (content.body or "").strip()
    ):
        raise OutboundRefused("empty_body", "body must not be empty")
    if content.body is not None and len(content.body) > caps.max_text_length:
        raise OutboundRefused(
            "too_long",
            "{kind} allows at most {max} characters; this has {length}",
            params={"kind": channel_kind, "max": caps.max_text_length, "length": len(content.body)},
        )
    if content.kind == ContentKind.TEMPLATE:
        if not caps.templates:
            raise OutboundRefused(
                "no_templates", "{kind} has no templates", params={"kind": channel_kind}
            )
        if not isinstance(p.get("name"), str) or not p["name"]:
            raise OutboundRefused("template_name", "a template message needs payload.name")
        params = p.get("parameters", [])
        if not isinstance(params, list) or not all(
            isinstance(v, str | int | float) for v in params
        ):
            raise OutboundRefused(
                "template_parameters", "payload.parameters must be a list of strings"
            )
    if content.kind == ContentKind.INTERACTIVE:
        _validate_interactive(p, caps, channel_kind)
    if content.kind == ContentKind.MEDIA:
        link = p.get("link")
        if not caps.media:
            raise OutboundRefused(
                "no_media", "{kind} cannot send media", params={"kind": channel_kind}
            )
        if not isinstance(link, str) or urlsplit(link).scheme not in ("http", "https"):
            raise OutboundRefused(
                "media_link", "a media message needs payload.link, an http(s) URL"
            )
        if p.get("media_type", "image") not in ("image", "audio", "video", "document", "sticker"):
            raise OutboundRefused(
                "media_type", "payload.media_type must be image, audio, video, document or sticker"
            )


def _validate_interactive(p: dict[str, Any], caps: Capabilities, channel_kind: str) -> None:
    if not caps.interactive:
        raise OutboundRefused(
            "no_interactive", "{kind} has no buttons or lists", params={"kind": channel_kind}
        )
    buttons = p.get("buttons")
    sections = p.get("sections")
    if buttons is not None:
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= caps.max_buttons:
            raise OutboundRefused(
                "buttons",
                "{kind} allows 1 to {max} buttons",
                params={"kind": channel_kind, "max": caps.max_buttons},
            )
        for b in buttons:
            if not isinstance(b, dict) or not b.get("id") or not isinstance(b.get("title"), str):
                raise OutboundRefused("buttons", "each button needs an id and a title")
            if len(b["title"]) > caps.max_button_title:
                raise OutboundRefused(
                    "button_title",
                    "button titles are at most {max} characters",
                    params={"max": caps.max_button_title},
                )
        return
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise OutboundRefused(
            "sections", "an interactive message needs buttons or 1 to 10 list sections"
        )
    for section in sections:
        rows = section.get("rows") if isinstance(section, dict) else None
        if not isinstance(rows, list) or not 1 <= len(rows) <= 10:
            raise OutboundRefused("sections", "each list section needs 1 to 10 rows")
        for row in rows:
            if (
                not isinstance(row, dict)
                or not row.get("id")
                or not isinstance(row.get("title"), str)
            ):
                raise OutboundRefused("sections", "each list row needs an id and a title")


def check_window(
    caps: Capabilities,
    channel_kind: str,
    conversation: Conversation,
    content: OutboundContent,
    sender_kind: SenderKind = SenderKind.AGENT,
) -> None:
    """Refuse free text outside the channel's customer-service window."""
    if content.kind == ContentKind.TEMPLATE or caps.window is None:
        return
    window = caps.window
    if sender_kind == SenderKind.AGENT and caps.human_agent_window is not None:
        window = caps.human_agent_window
    if not window_open(conversation.last_inbound_at, window, utcnow()):
        hours = int(window / timedelta(hours=1))
        closed = window_closes_at(conversation.last_inbound_at, window)
        if closed is None:
            raise OutboundRefused(
                "window_closed",
                "{kind} allows free messages only within {hours} hours of the customer's last "
                "message (the customer has not written yet); send an approved template instead",
                params={"kind": channel_kind, "hours": hours},
            )
        raise OutboundRefused(
            "window_closed",
            "{kind} allows free messages only within {hours} hours of the customer's last "
            "message (it closed at {closed}); send an approved template instead",
            params={"kind": channel_kind, "hours": hours, "closed": closed.isoformat()},
        )


async def contact_restricted(session: AsyncSession, contact_id: str) -> bool:
    """Whether processing of this contact's data is restricted (Art. 18)."""
    at = await session.scalar(select(Contact.restricted_at).where(Contact.id == contact_id))
    return at is not None


async def contact_refused(session: AsyncSession, contact_id: str) -> bool:
    """Whether the contact said no to the privacy notice (then nothing is sent to them)."""
    state = await session.scalar(select(Contact.consent_state).where(Contact.id == contact_id))
    return state == "refused"


async def queue_message(
    session: AsyncSession,
    conversation: Conversation,
    channel: ChannelRow,
    content: OutboundContent,
    *,
    sender_kind: SenderKind = SenderKind.AGENT,
    max_attempts: int = 8,
    topic_id: str | None = None,
) -> Message:
    """Validate, then add the message and its send job to the caller's transaction.

    A message with a `topic_id` is sent only if the contact is still subscribed at send time.
    """
    factory = channel_factory(channel.kind)
    caps = factory.capabilities
    context = await factory.reply_context(session, conversation.id)
    if context:
        content = OutboundContent(
            content.kind, content.body, {**context, **(content.payload or {})}
        )
    if await contact_restricted(session, conversation.contact_id):
        raise OutboundRefused(
            "restricted",
            "processing of this contact's data is restricted (Art. 18 GDPR); nothing is sent",
        )
    if conversation.thread_owner is not None:
        raise OutboundRefused(
            "thread_elsewhere",
            "another app owns this thread (Meta's handover protocol); only it can answer until "
            "it passes the thread back",
        )
    if await contact_refused(session, conversation.contact_id):
        raise OutboundRefused(
            "consent_refused",
            "the customer declined the privacy notice; nothing is sent to them",
        )
    content = adapt_content(content, caps)
    validate_content(content, caps, channel.kind)
    check_window(caps, channel.kind, conversation, content, sender_kind)
    now = utcnow()
    message = Message(
        id=new_id(),
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        channel_id=channel.id,
        direction=Direction.OUTBOUND.value,
        sender_kind=sender_kind.value,
        content_kind=content.kind.value,
        body=content.body,
        payload=content.payload or {},
        state=DeliveryState.QUEUED.value,
        created_at=now,
        send_attempts=0,
        topic_id=topic_id,
    )
    session.add(message)
    outbox.record(
        session,
        MessageQueued(
            conversation.workspace_id, message.id, conversation.id, channel.id, sender_kind.value
        ),
    )
    await session.execute(
        update(Conversation).where(Conversation.id == conversation.id).values(last_message_at=now)
    )
    queue.enqueue(
        session,
        SEND_JOB,
        {"message_id": message.id, "channel_id": channel.id, "conversation_id": conversation.id},
        workspace_id=conversation.workspace_id,
        max_attempts=max_attempts,
    )
    return message


async def outbound_for(
    session: AsyncSession, message_id: str
) -> tuple[Message, ChannelRow, str, Conversation] | None:
    """The message, its channel, the recipient's address and the conversation."""
    row = (
        await session.execute(
            select(Message, ChannelRow, ContactIdentity.address, Conversation)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(ChannelRow, ChannelRow.id == Message.channel_id)
            .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
            .where(Message.id == message_id)
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def to_outbound(message: Message, address: str, conversation: Conversation) -> OutboundMessage:
    """The channel-facing view of a stored message."""
    return OutboundMessage(
        to=address,
        content_kind=ContentKind(message.content_kind),
        body=message.body,
        payload=message.payload or {},
        client_reference=message.id,
        sender_kind=message.sender_kind,
        last_inbound_at=conversation.last_inbound_at,
    )


def failure_values(error: ChannelError | OutboundRefused, state: DeliveryState) -> dict[str, Any]:
    """Columns that record why a message failed."""
    if isinstance(error, OutboundRefused):
        code, reason = error.code, error.message
    else:
        code, reason = error.code or error.kind, error.reason
    return {"state": state.value, "error_code": code, "error_reason": reason, "failed_at": utcnow()}
