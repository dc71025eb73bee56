"""The welcome message and the after-hours reply, sent by the business profile's settings."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import BotConfig, ChannelRow, Conversation, Message, Workspace
from tresen.db.types import utcnow
from tresen.domain import profile as profiles
from tresen.domain.message import ContentKind, Direction, SenderKind
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message

log = logging.getLogger(__name__)

WELCOME, AFTER_HOURS = "welcome", "after_hours"
AFTER_HOURS_QUIET = timedelta(hours=12)
"""After one after-hours reply, a conversation gets no other for this long."""

DEFAULT_AFTER_HOURS = {
    "de": {
        "sie": "Danke für Ihre Nachricht! Wir sind gerade nicht da und antworten ab {next_opening}.",
        "du": "Danke für deine Nachricht! Wir sind gerade nicht da und antworten ab {next_opening}.",
    },
    "en": {
        "sie": "Thanks for your message! We are closed right now and will answer from "
        "{next_opening}.",
    },
}
DEFAULT_AFTER_HOURS_NO_DATE = {
    "de": {
        "sie": "Danke für Ihre Nachricht! Wir sind gerade nicht da und antworten so bald wie "
        "möglich.",
        "du": "Danke für deine Nachricht! Wir sind gerade nicht da und antworten so bald wie "
        "möglich.",
    },
    "en": {
        "sie": "Thanks for your message! We are closed right now and will answer as soon as we can.",
    },
}
FORMS = ("du", "sie")


def after_hours_text(
    profile: profiles.Profile, language: str, now: datetime, form: str = "sie"
) -> str:
    """The after-hours reply in a language and form of address (du/Sie), with the next opening in
    the business's time zone."""
    lang = language if language in profiles.LANGUAGES else "de"
    opening = profiles.next_opening(profile, now)
    when = (
        format_datetime(
            opening, "EEEE, d. MMMM, HH:mm" if lang == "de" else "EEEE d MMMM, HH:mm", locale=lang
        )
        if opening is not None
        else ""
    )
    configured = profile.after_hours.get(lang, "").strip()
    if configured:
        return configured.replace("{next_opening}", when or "…")
    texts = (DEFAULT_AFTER_HOURS if when else DEFAULT_AFTER_HOURS_NO_DATE)[lang]
    return texts.get(form, texts["sie"]).format(next_opening=when)


async def form_of_address(session: AsyncSession, workspace_id: str) -> str:
    """The workspace's form of address, as set for its bot at setup: "du" or "sie" (default)."""
    persona = await session.scalar(
        select(BotConfig.persona).where(BotConfig.workspace_id == workspace_id)
    )
    form = (persona or {}).get("form")
    return str(form) if form in FORMS else "sie"


async def _sent_before(
    session: AsyncSession, conversation_id: str, kind: str, since: datetime | None = None
) -> bool:
    stmt = select(Message.payload, Message.created_at).where(
        Message.conversation_id == conversation_id,
        Message.direction == Direction.OUTBOUND.value,
        Message.sender_kind == SenderKind.SYSTEM.value,
    )
    if since is not None:
        stmt = stmt.where(Message.created_at >= since)
    return any((p or {}).get("auto_reply") == kind for p, _ in (await session.execute(stmt)).all())


async def run(
    session: AsyncSession,
    message_id: str,
    language: str,
    *,
    welcome: bool = True,
    now: datetime | None = None,
) -> str | None:
    """After consent: welcome a new conversation, or say when the business opens; what was sent."""
    now = now or utcnow()
    row = (
        await session.execute(
            select(Conversation, ChannelRow, Workspace)
            .join(Message, Message.conversation_id == Conversation.id)
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .join(Workspace, Workspace.id == Conversation.workspace_id)
            .where(Message.id == message_id)
        )
    ).first()
    if row is None:
        return None
    conversation, channel, workspace = row
    profile = profiles.from_settings(workspace.settings, workspace.name)
    lang = language if language in profiles.LANGUAGES else "de"
    if not profiles.is_open(profile, now):
        if await _sent_before(session, conversation.id, AFTER_HOURS, now - AFTER_HOURS_QUIET):
            return None
        form = await form_of_address(session, workspace.id)
        text = after_hours_text(profile, lang, now, form)
        return await _send(session, conversation, channel, AFTER_HOURS, text)
    text = profile.welcome.get(lang, "").strip() if welcome else ""
    if not text or await _sent_before(session, conversation.id, WELCOME):
        return None
    return await _send(session, conversation, channel, WELCOME, text)


async def _send(
    session: AsyncSession, conversation: Conversation, channel: ChannelRow, kind: str, text: str
) -> str | None:
    content = OutboundContent(ContentKind.TEXT, text, {"auto_reply": kind})
    try:
        await queue_message(session, conversation, channel, content, sender_kind=SenderKind.SYSTEM)
    except OutboundRefused as refused:
        log.info("no %s reply in conversation %s: %s", kind, conversation.id, refused.message)
        return None
    return kind
