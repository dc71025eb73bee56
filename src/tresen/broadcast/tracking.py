"""Consent to per-person link tracking: given in the chat, on the confirmation page or via the API.

In the chat, `TRACKING` shows what is asked, `TRACKING JA` / `TRACKING YES` grants it and
`TRACKING NEIN` / `TRACKING NO` / `STOP TRACKING` withdraws it. Every answer is a consent event
(purpose "link_tracking") with the hash of the text the person saw.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import links
from tresen.broadcast.topics import command_words, contact_language
from tresen.db.tables import ChannelRow, Contact, Conversation, Message, Workspace
from tresen.domain.message import ContentKind, SenderKind
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message

WORD = "tracking"
VERSION = "link-tracking-1"
_GRANT = frozenset({"ja", "an", "ein", "yes", "on", "ok"})
_WITHDRAW = frozenset({"nein", "aus", "no", "off"})
_STOP = frozenset({"stop", "stopp", "abmelden", "abbestellen", "unsubscribe"})
_GERMAN = frozenset({"ja", "an", "ein", "nein", "aus", "stopp", "abmelden", "abbestellen"})
_ENGLISH = frozenset({"yes", "on", "no", "off", "unsubscribe"})

QUESTION = {
    "de": (
        "Dürfen wir zählen, welche Links aus unseren Nachrichten Sie öffnen? Dazu speichern wir, "
        "wann Sie welchen Link geöffnet haben; ohne Ihr Einverständnis zählen wir nur anonym. "
        "Freiwillig und jederzeit widerrufbar. Antworten Sie TRACKING JA oder TRACKING NEIN."
    ),
    "en": (
        "May we count which links in our messages you open? For this we store when you opened "
        "which link; without your consent we only count anonymously. Voluntary, and you can "
        "withdraw at any time. Reply TRACKING YES or TRACKING NO."
    ),
}
FORM_LABEL = {
    "de": (
        "Ich bin einverstanden, dass {business} zählt, welche Links aus den Nachrichten ich "
        "öffne (freiwillig, jederzeit widerrufbar mit TRACKING NEIN)."
    ),
    "en": (
        "I agree that {business} counts which links in its messages I open (voluntary, "
        "withdraw at any time with TRACKING NO)."
    ),
}
GRANTED_TEXT = {
    "de": "Danke! Wir zählen jetzt, welche Links Sie öffnen. Widerruf jederzeit mit TRACKING NEIN.",
    "en": "Thank you! We now count which links you open. Withdraw at any time with TRACKING NO.",
}
WITHDRAWN_TEXT = {
    "de": "Erledigt: Wir zählen Ihre Klicks nicht mehr persönlich, nur noch anonym.",
    "en": "Done: we no longer count your clicks personally, only anonymously.",
}

Action = Literal["ask", "grant", "withdraw"]


@dataclass(frozen=True)
class Command:
    """A link-tracking command read from one inbound message."""

    action: Action
    language: str | None


def text_hash(text: str) -> str:
    """The SHA-256 of the consent text a person saw, as proof."""
    return hashlib.sha256(text.encode()).hexdigest()


def parse(text: str | None) -> Command | None:
    """Read TRACKING / TRACKING JA / TRACKING NEIN / STOP TRACKING (None: not one of them)."""
    if not text or len(text) > 100:
        return None
    words = command_words(text)
    if words == [WORD]:
        return Command("ask", None)
    if len(words) != 2 or WORD not in words:
        return None
    other = words[1] if words[0] == WORD else words[0]
    language = "de" if other in _GERMAN else "en" if other in _ENGLISH else None
    if words[0] == WORD and other in _GRANT:
        return Command("grant", language)
    if (words[0] == WORD and other in _WITHDRAW) or (words[1] == WORD and other in _STOP):
        return Command("withdraw", language)
    return None


async def set_consent(
    session: AsyncSession,
    contact: Contact,
    granted: bool,
    *,
    source: str,
    text: str | None,
    language: str | None,
    channel_id: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Record a grant or withdrawal unless it is already the contact's state; whether it changed."""
    latest = await links.latest_action(session, contact.id)
    if (latest == "granted") == granted:
        return False
    await links.record_consent(
        session,
        contact,
        "granted" if granted else "withdrawn",
        source=source,
        channel_id=channel_id,
        text_version=VERSION if text is not None else None,
        text_hash=text_hash(text) if text is not None else None,
        language=language,
        user_agent=user_agent,
    )
    return True


async def handle_inbound(session: AsyncSession, message_id: str, *, consent_first: bool) -> bool:
    """Answer a TRACKING command in the chat; True if the message was one.

    A withdrawal always counts; asking and granting only once the person has agreed to the
    privacy notice when consent comes first (before that the consent step answers).
    """
    row = (
        await session.execute(
            select(Message, Conversation, Contact, ChannelRow)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(ChannelRow, ChannelRow.id == Message.channel_id)
            .where(Message.id == message_id, Message.direction == "inbound")
        )
    ).first()
    if row is None:
        return False
    message, conversation, contact, channel = row
    command = parse(message.body)
    if command is None:
        return False
    agreed = contact.consent_state == "granted" or (
        not consent_first and contact.consent_state not in ("refused", "restricted")
    )
    if command.action != "withdraw" and not agreed:
        return False
    language = command.language or await contact_language(session, contact.id) or "de"
    language = language if language in QUESTION else "de"
    if command.action == "ask":
        reply = QUESTION[language]
    else:
        granted = command.action == "grant"
        await set_consent(
            session,
            contact,
            granted,
            source=f"{channel.kind} keyword",
            text=QUESTION[language] if granted else None,
            language=language,
            channel_id=channel.id,
        )
        reply = (GRANTED_TEXT if granted else WITHDRAWN_TEXT)[language]
    with contextlib.suppress(OutboundRefused):  # a closed window must not undo the answer
        await queue_message(
            session,
            conversation,
            channel,
            OutboundContent(ContentKind.TEXT, reply),
            sender_kind=SenderKind.SYSTEM,
        )
    return True


def form_label(workspace: Workspace, language: str) -> str:
    """The checkbox text on the confirmation page, in the page's language."""
    return FORM_LABEL[language if language in FORM_LABEL else "de"].format(business=workspace.name)
