"""Consent first: a new contact gets the privacy notice and is asked; nothing else happens before a yes."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import channel_factory
from tresen.db.tables import (
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain.message import ContentKind, SenderKind
from tresen.pipeline.outbound import OutboundContent, queue_message

PURPOSE = "service_conversation"
YES_BUTTON, NO_BUTTON = "consent_yes", "consent_no"
_YES = {
    "ja",
    "yes",
    "ok",
    "okay",
    "einverstanden",
    "zustimmen",
    "ich stimme zu",
    "j",
    "y",
    "jo",
    "jep",
    "gerne",
    "ja gerne",
    "ja bitte",
    "agree",
    "i agree",
    "klar",
}
_NO = {
    "nein",
    "no",
    "nope",
    "ne",
    "nee",
    "nö",
    "noe",
    "n",
    "ablehnen",
    "nicht einverstanden",
    "lieber nicht",
}

_YES |= {"yeah", "yep", "yup", "jup", "sure", "jawohl", "natürlich", "na klar", "einverstanden ja"}
_NO |= {"kein interesse", "no thank you", "not interested", "nein danke", "no thanks"}
_YES_WORDS = {"ja", "yes", "ok", "okay", "einverstanden", "agree", "gerne", "klar", "jo", "jep"}
_YES_WORDS |= {"yeah", "yep", "yup", "sure", "jawohl", "zustimmen"}
_NO_WORDS = {"nein", "no", "nope", "nee", "nö", "noe", "ablehnen"}
_NEGATIONS = {"nicht", "not", "dont", "doesnt", "kein", "keine", "nie", "never", "niemals"}
_AGREE_PHRASES = ("stimme", "agree", "einverstanden", "zustimm")

DEFAULT_NOTICE: dict[str, Any] = {
    "version": "2026-11",
    "policy_url": "",
    "de": (
        "Hallo! Damit wir Ihnen hier antworten können, verarbeitet {business} Ihre Nachrichten und Ihre "
        "Telefonnummer bzw. Kennung auf diesem Kanal. Mehr dazu in unserer Datenschutzerklärung{policy}. "
        "Sind Sie einverstanden?"
    ),
    "en": (
        "Hello! To answer you here, {business} processes your messages and your number or id on this "
        "channel. More in our privacy policy{policy}. Do you agree?"
    ),
    "keywords": {"de": "Bitte antworten Sie mit JA oder NEIN.", "en": "Please reply YES or NO."},
    "thanks": {"de": "Danke! Wie können wir helfen?", "en": "Thank you! How can we help?"},
    "refused": {
        "de": "Schade – wir verarbeiten Ihre Nachricht nicht weiter und löschen Ihre Daten. Sie können uns "
        "jederzeit auch telefonisch oder im Laden erreichen.",
        "en": "Understood – we will not process your message further and will delete your data. You can "
        "always reach us by phone or in the shop.",
    },
    "buttons": {"de": ("Ja", "Nein"), "en": ("Yes", "No")},
}


@dataclass(frozen=True)
class Notice:
    """The privacy notice in one language, with its version and hash as proof."""

    language: str
    version: str
    text: str
    text_hash: str


def _fold(text: str) -> str:
    cleaned = unicodedata.normalize("NFKC", text).casefold().strip()
    return " ".join("".join(ch for ch in cleaned if ch.isalnum() or ch.isspace()).split())


def classify(text: str | None, payload: dict[str, Any]) -> str | None:
    """'yes', 'no', or None for a reply to the consent question (buttons, keywords, small typos)."""
    reply = (
        payload.get("interactive", {}).get("button_reply", {}) if isinstance(payload, dict) else {}
    )
    button = reply.get("id") if isinstance(reply, dict) else None
    if button in (YES_BUTTON, NO_BUTTON):
        return "yes" if button == YES_BUTTON else "no"
    word = re.sub(r"(.)\1{2,}", r"\1", _fold(text or ""))  # "jaaa" -> "ja"
    word = re.sub(r"^(ja|ne|no)a+$", r"\1", word)
    if not word:
        return None
    tokens = set(word.split())
    agrees = bool(tokens & _YES_WORDS) or any(p in word for p in _AGREE_PHRASES)
    if tokens & _NEGATIONS and agrees:
        return "no"  # "ich stimme nicht zu", "I don't agree", "nicht einverstanden"
    if agrees and tokens & _NO_WORDS:
        return None  # "ja nein", "ok nein": not a clear answer, so the question stays open
    first = word.split()[0]
    if word in _YES or (first in _YES and first not in ("j", "y")):
        return "yes"
    if word in _NO or (first in _NO and first not in ("n", "ne")):
        return "no"
    if len(word) > 40:
        return None
    best_yes = max(fuzz.ratio(word, w) for w in _YES if len(w) > 3)
    best_no = max(fuzz.ratio(word, w) for w in _NO if len(w) > 3)
    if max(best_yes, best_no) >= 80 and best_yes != best_no:
        return "yes" if best_yes > best_no else "no"
    return None


def notice_for(workspace: Workspace, language: str) -> Notice:
    """The workspace's notice (its own text where configured) in the customer's language."""
    configured = dict(DEFAULT_NOTICE, **(workspace.settings or {}).get("privacy_notice", {}))
    lang = language if language in ("de", "en") else "de"
    policy = f": {configured['policy_url']}" if configured.get("policy_url") else ""
    text = str(configured[lang]).format(business=workspace.name, policy=policy)
    return Notice(lang, str(configured["version"]), text, hashlib.sha256(text.encode()).hexdigest())


def message_language(text: str | None) -> str:
    """German or English, as a message reads (German when unsure)."""
    from tresen.bot.language import detect_language

    guess = detect_language(text or "", default="de")
    return guess.language if guess.language in ("de", "en") else "de"


async def after_erasure(session: AsyncSession, secret_key: str, message_id: str) -> bool:
    """Whether this message comes from an erased address whose person has not consented again."""
    from tresen.privacy.suppression import is_suppressed

    row = (
        await session.execute(
            select(Contact.workspace_id, Contact.consent_state, ContactIdentity.address)
            .join(Conversation, Conversation.contact_id == Contact.id)
            .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.id == message_id)
        )
    ).first()
    if row is None or row.consent_state not in ("unknown", "asked"):
        return False
    return await is_suppressed(session, secret_key, row.workspace_id, row.address)


async def process(session: AsyncSession, message_id: str) -> str:
    """Run the consent step for one new inbound message; returns what happened.

    "asked" (question sent or still open), "answered" (this message was the answer), "gone",
    or the contact's settled state ("granted", "refused", ...).
    """
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
    if row is None:
        return "gone"
    message, conversation, contact, channel, workspace = row
    language = message_language(message.body)
    if contact.consent_state == "unknown":
        await _ask(session, workspace, conversation, channel, contact, language)
        return "asked"
    if contact.consent_state != "asked":
        return contact.consent_state
    answer = classify(message.body, message.payload or {})
    if answer is None:
        return "asked"
    notice = notice_for(workspace, language)
    granted = answer == "yes"
    await _event(
        session,
        contact,
        channel,
        "granted" if granted else "refused",
        notice,
        source=f"{channel.kind} reply",
    )
    await session.execute(
        update(Contact)
        .where(Contact.id == contact.id)
        .values(consent_state="granted" if granted else "refused")
    )
    texts = DEFAULT_NOTICE["thanks" if granted else "refused"]
    await _send(
        session, conversation, channel, OutboundContent(ContentKind.TEXT, texts[notice.language])
    )
    return "answered"


async def _ask(
    session: AsyncSession,
    workspace: Workspace,
    conversation: Conversation,
    channel: ChannelRow,
    contact: Contact,
    language: str,
) -> None:
    notice = notice_for(workspace, language)
    caps = channel_factory(channel.kind).capabilities
    if caps.interactive and caps.max_buttons >= 2:
        yes, no = DEFAULT_NOTICE["buttons"][notice.language]
        content = OutboundContent(
            ContentKind.INTERACTIVE,
            notice.text,
            {"buttons": [{"id": YES_BUTTON, "title": yes}, {"id": NO_BUTTON, "title": no}]},
        )
    else:
        content = OutboundContent(
            ContentKind.TEXT, f"{notice.text} {DEFAULT_NOTICE['keywords'][notice.language]}"
        )
    await _send(session, conversation, channel, content)
    await _event(
        session, contact, channel, "requested", notice, source=f"{channel.kind} first contact"
    )
    await session.execute(
        update(Contact).where(Contact.id == contact.id).values(consent_state="asked")
    )


async def _send(
    session: AsyncSession, conversation: Conversation, channel: ChannelRow, content: OutboundContent
) -> None:
    await queue_message(session, conversation, channel, content, sender_kind=SenderKind.SYSTEM)


async def _event(
    session: AsyncSession,
    contact: Contact,
    channel: ChannelRow,
    action: str,
    notice: Notice,
    *,
    source: str,
) -> None:
    session.add(
        ConsentEvent(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            purpose=PURPOSE,
            action=action,
            channel_id=channel.id,
            source=source,
            text_version=notice.version,
            text_hash=notice.text_hash,
            language=notice.language,
            occurred_at=utcnow(),
        )
    )
