"""Consent first: a new contact gets the privacy notice and is asked; nothing else happens before a yes."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.bot.language import detect_language
from tresen.channels.registry import channel_factory
from tresen.channels.webchat import WIDGET_CONSENT
from tresen.db.tables import (
    BotConfig,
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Note,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain import profile as profiles
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, Direction, SenderKind
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.privacy import retention
from tresen.privacy.suppression import Keys, is_suppressed

log = logging.getLogger(__name__)

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
    # After a yes, when the customer asked something before it: the answer follows.
    "thanks_held": {"de": "Danke!", "en": "Thank you!"},
    # Erased by retention ("unconfirmed_optins" days after the no), as promised here.
    "refused": {
        "de": "Schade – wir verarbeiten Ihre Nachricht nicht weiter und löschen Ihre Daten innerhalb "
        "von {days} Tagen. Sie können uns jederzeit auch telefonisch oder im Laden erreichen.",
        "en": "Understood – we will not process your message further and will delete your data "
        "within {days} days. You can always reach us by phone or in the shop.",
    },
    # The business keeps such data (retention of unconfirmed contacts switched off).
    "refused_kept": {
        "de": "Schade – wir verarbeiten Ihre Nachricht nicht weiter. Ihre Daten löschen wir, sobald "
        "Sie es verlangen. Sie können uns jederzeit auch telefonisch oder im Laden erreichen.",
        "en": "Understood – we will not process your message further. We delete your data as soon "
        "as you ask us to. You can always reach us by phone or in the shop.",
    },
    "buttons": {"de": ("Ja", "Nein"), "en": ("Yes", "No")},
}
UNSENT_NOTES = {
    "notice": {
        "de": "Der Datenschutzhinweis konnte nicht gesendet werden: {reason} Eine Einwilligung "
        "liegt noch nicht vor; die Nachrichten bleiben bis dahin verborgen.",
        "en": "The privacy notice could not be sent: {reason} The customer has not consented "
        "yet; their messages stay hidden until then.",
    },
    "answer": {
        "de": "Die Antwort auf die Entscheidung zum Datenschutzhinweis konnte nicht gesendet "
        "werden: {reason}",
        "en": "The reply to the customer's decision on the privacy notice could not be sent: "
        "{reason}",
    },
}
UNSENT_REASONS = {
    "window_closed": {
        "de": "Das Antwortfenster des Kanals ist geschlossen (die Nachricht kam zu spät an).",
        "en": "the channel's reply window is closed (the message arrived too late).",
    },
}
UNSENT_OTHER = {"de": "Der Kanal lehnt das Senden ab.", "en": "the channel refuses to send."}


# The web chat widget shows its own notice before the first message; accepting it there is
# the consent (no question in the chat). The channel's own text, where set, replaces it.
WIDGET_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "notice": "{business} verarbeitet Ihre Nachrichten in diesem Chat, um Ihnen zu antworten. "
        "Mit „Einverstanden“ stimmen Sie dem zu.",
        "accept": "Einverstanden",
        "policy": "Datenschutzerklärung",
    },
    "en": {
        "notice": "{business} processes your messages in this chat to answer you. "
        "Choose “I agree” to consent.",
        "accept": "I agree",
        "policy": "Privacy policy",
    },
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
    url = policy_url(workspace) or configured.get("policy_url")
    policy = f": {url}" if url else ""
    text = str(configured[lang]).format(business=workspace.name, policy=policy)
    return Notice(lang, str(configured["version"]), text, hashlib.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class WidgetNotice:
    """What the web chat widget shows as its consent step, and the proof of it."""

    notice: Notice
    policy_url: str
    accept: str
    policy_label: str

    def public(self) -> dict[str, str]:
        """The fields the widget reads from its session."""
        return {
            "language": self.notice.language,
            "privacy_notice": self.notice.text,
            "privacy_link": self.policy_url,
            "privacy_link_text": self.policy_label,
            "privacy_accept": self.accept,
        }


def widget_notice(
    workspace: Workspace, language: str, channel_text: str = "", channel_link: str = ""
) -> WidgetNotice:
    """The widget's notice in the workspace's language (the channel's own text where set)."""
    lang = language if language in WIDGET_TEXTS else "de"
    texts = WIDGET_TEXTS[lang]
    text = channel_text.strip() or texts["notice"].format(business=workspace.name)
    link = channel_link.strip() or policy_url(workspace)
    version = "channel" if channel_text.strip() else f"{DEFAULT_NOTICE['version']}-webchat"
    shown = f"{text}\n{texts['policy']}: {link}" if link else text
    notice = Notice(lang, version, text, hashlib.sha256(shown.encode()).hexdigest())
    return WidgetNotice(notice, link, texts["accept"], texts["policy"])


async def has_consented(session: AsyncSession, channel_id: str, address: str) -> bool:
    """Whether the person behind this address on this channel has consented."""
    state = await session.scalar(
        select(Contact.consent_state)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.channel_id == channel_id, ContactIdentity.address == address)
    )
    return state == "granted"


async def workspace_language(session: AsyncSession, workspace_id: str) -> str:
    """The language people of the workspace read (its bot's, else German)."""
    language = await session.scalar(
        select(BotConfig.language).where(BotConfig.workspace_id == workspace_id)
    )
    return language if language in ("de", "en") else "de"


def policy_url(workspace: Workspace) -> str:
    """The business's privacy policy address from its profile ('' when none is set)."""
    return profiles.from_settings(workspace.settings, workspace.name).privacy_url


async def set_policy_url(session: AsyncSession, workspace_id: str, url: str) -> str:
    """Store the privacy policy address in the business profile (ProfileError when not http(s))."""
    cleaned = profiles.check_privacy_url(url)
    workspace = await session.get_one(Workspace, workspace_id, with_for_update=True)
    profile = dict((workspace.settings or {}).get("profile") or {})
    profile["privacy_url"] = cleaned
    workspace.settings = {**(workspace.settings or {}), "profile": profile}
    return cleaned


def message_language(text: str | None) -> str:
    """German or English, as a message reads (German when unsure)."""

    guess = detect_language(text or "", default="de")
    return guess.language if guess.language in ("de", "en") else "de"


async def after_erasure(session: AsyncSession, secret_key: Keys, message_id: str) -> bool:
    """Whether this message comes from an erased address whose person has not consented again."""

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
    if contact.consent_state in ("unknown", "asked") and (message.payload or {}).get(
        WIDGET_CONSENT
    ):
        await _accept_in_widget(session, workspace, contact, channel)
        return "granted"
    language = message_language(message.body)
    if contact.consent_state == "unknown":
        asked = await _ask(session, workspace, conversation, channel, contact, language)
        return "asked" if asked else "unsent"
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
    if granted:
        key = "thanks_held" if await has_held(session, contact.id) else "thanks"
        text = DEFAULT_NOTICE[key][notice.language]
    else:
        text = refusal_text(workspace, notice.language)
        await release_held(session, message_id)  # after a no they are never handled
    # The answer is queued before the state changes: after a no, nothing else may be sent.
    await _send(session, conversation, channel, OutboundContent(ContentKind.TEXT, text), "answer")
    await session.execute(
        update(Contact)
        .where(Contact.id == contact.id)
        .values(consent_state="granted" if granted else "refused")
    )
    return "answered"


def refusal_text(workspace: Workspace, language: str) -> str:
    """The answer to a no, promising only what retention does with the data."""
    days = retention.periods(workspace)["unconfirmed_optins"]
    texts = DEFAULT_NOTICE["refused" if days else "refused_kept"]
    return str(texts[language if language in ("de", "en") else "de"]).format(days=days)


async def _accept_in_widget(
    session: AsyncSession, workspace: Workspace, contact: Contact, channel: ChannelRow
) -> None:
    """Record the yes the visitor gave in the web chat widget, to the notice it showed."""
    config = channel.config or {}
    shown = widget_notice(
        workspace,
        await workspace_language(session, workspace.id),
        str(config.get("privacy_notice") or ""),
        str(config.get("privacy_link") or ""),
    )
    await _event(session, contact, channel, "granted", shown.notice, source="webchat widget")
    await session.execute(
        update(Contact).where(Contact.id == contact.id).values(consent_state="granted")
    )


async def _ask(
    session: AsyncSession,
    workspace: Workspace,
    conversation: Conversation,
    channel: ChannelRow,
    contact: Contact,
    language: str,
) -> bool:
    """Send the notice and record the question; False when the channel refused it."""
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
    if not await _send(session, conversation, channel, content, "notice"):
        return False
    await _event(
        session, contact, channel, "requested", notice, source=f"{channel.kind} first contact"
    )
    await session.execute(
        update(Contact).where(Contact.id == contact.id).values(consent_state="asked")
    )
    return True


async def _send(
    session: AsyncSession,
    conversation: Conversation,
    channel: ChannelRow,
    content: OutboundContent,
    what: str,
) -> bool:
    """Queue a message of the consent step; when the channel refuses it (a closed reply window),
    a note in the conversation says why and False is returned: retrying would not help."""
    try:
        await queue_message(session, conversation, channel, content, sender_kind=SenderKind.SYSTEM)
    except OutboundRefused as refused:
        log.warning("consent message in %s refused: %s", conversation.id, refused.code)
        language = await workspace_language(session, conversation.workspace_id)
        reason = UNSENT_REASONS.get(refused.code, UNSENT_OTHER)[language]
        session.add(
            Note(
                id=new_id(),
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                author_id=None,
                body=UNSENT_NOTES[what][language].format(reason=reason),
                created_at=utcnow(),
            )
        )
        return False
    return True


async def hold(session: AsyncSession, message_id: str) -> None:
    """Keep a message that came before consent, to be handled once the customer agrees
    (not a bare yes or no: it says nothing the bot could answer)."""
    message = await session.get(Message, message_id)
    if message is None or message.direction != Direction.INBOUND.value:
        return
    if classify(message.body, message.payload or {}) is None:
        message.consent_held = True


def _held_of(contact_id: str) -> Any:
    return (
        select(Message.id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id, Message.consent_held.is_(True))
    )


async def has_held(session: AsyncSession, contact_id: str) -> bool:
    """Whether the contact wrote anything before consenting that still waits."""
    return bool(await session.scalar(select(exists(_held_of(contact_id)))))


async def release_held(session: AsyncSession, message_id: str) -> list[str]:
    """The held messages of this message's contact, oldest first, no longer held.

    Runs in the transaction that handles them, so a retried job finds them held again."""
    contact_id = await session.scalar(
        select(Conversation.contact_id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id)
    )
    if contact_id is None:
        return []
    ids = list(
        await session.scalars(
            _held_of(contact_id).order_by(Message.created_at, Message.id).with_for_update()
        )
    )
    if ids:
        await session.execute(update(Message).where(Message.id.in_(ids)).values(consent_held=False))
    return ids


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
