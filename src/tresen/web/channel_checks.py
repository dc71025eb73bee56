"""The channels page's live check and test message: run through the channel's own code, told in
plain words."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import (
    AuthError,
    ChannelError,
    ConfigError,
    PermanentError,
    RateLimited,
)
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, ContactIdentity, Conversation, Message
from tresen.domain.errors import DomainError
from tresen.domain.message import ContentKind, SenderKind
from tresen.net.guard import UrlRefused
from tresen.pipeline import recipients
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.web import i18n

ADDRESS_HINTS = {
    "whatsapp": "your mobile number with country code, e.g. +49 151 12345678",
    "sms": "your mobile number with country code, e.g. +49 151 12345678",
    "email": "your e-mail address",
    "telegram": "your Telegram chat id: write to the bot once, then pick it below",
    "messenger": "write to the page once, then pick yourself below",
    "instagram": "write to the account once, then pick yourself below",
    "xmpp": "your XMPP address, e.g. name@server.example",
}
"""What to type as one's own address, per kind (English msgids); the web chat has none."""
CHECK_SECONDS = 40.0
"""The longest a live check may take (a mail check signs in at two servers)."""


@dataclass(frozen=True)
class Outcome:
    """What a check or a test send gave, in the current language."""

    ok: bool
    text: str


def failure_text(exc: BaseException) -> str:
    """Why a call to the provider failed, in plain words (never a traceback)."""
    if isinstance(exc, UrlRefused):
        return i18n.gettext(
            "The outbound guard refused the address: it is not a public address or cannot be "
            "resolved. An operator can allow it with TRESEN_OUTBOUND_ALLOW_HOSTS."
        )
    if isinstance(exc, AuthError):
        return i18n.gettext(
            "The provider refused the access data: check the token, the password or the user name."
        )
    if isinstance(exc, RateLimited):
        return i18n.gettext("The provider asks to wait a moment (too many requests); try again.")
    if isinstance(exc, PermanentError):
        code = exc.code or "?"
        return i18n.gettext("The provider refused the request (error code {code}).").format(
            code=code
        )
    if isinstance(exc, ChannelError | httpx.HTTPError | OSError | TimeoutError):
        return i18n.gettext(
            "The server cannot be reached: check the address and the port, or try again later."
        )
    if isinstance(exc, ConfigError):
        return i18n.gettext("The settings of this channel are incomplete: {detail}").format(
            detail=i18n.error_text(exc)
        )
    return i18n.gettext("The check failed unexpectedly; the server log has the details.")


async def run_check(row: ChannelRow, http: httpx.AsyncClient) -> Outcome:
    """Sign in at the provider with the stored settings, through the channel's adapter."""
    try:
        adapter = channel_factory(row.kind)(row.config, http)
        async with asyncio.timeout(CHECK_SECONDS):
            who = await adapter.check()
    except (ChannelError, ConfigError, httpx.HTTPError, OSError, TimeoutError) as exc:
        return Outcome(False, failure_text(exc))
    if who is None:
        return Outcome(
            True,
            i18n.gettext(
                "Nothing to check: this channel runs inside tresen and needs no provider."
            ),
        )
    return Outcome(True, i18n.gettext("Works: signed in as {who}.").format(who=who))


async def recent_identities(
    session: AsyncSession, channel_id: str, limit: int = 50
) -> list[ContactIdentity]:
    """The addresses that wrote to this channel most recently (to pick one for a test)."""
    return list(
        await session.scalars(
            select(ContactIdentity)
            .join(Conversation, Conversation.identity_id == ContactIdentity.id)
            .where(ContactIdentity.channel_id == channel_id)
            .order_by(Conversation.last_message_at.desc())
            .limit(limit)
        )
    )


async def queue_test(
    session: AsyncSession, row: ChannelRow, address: str, text: str, max_attempts: int
) -> Message:
    """Queue a test text to an address through the normal send path (a DomainError says why not)."""
    normalised = channel_factory(row.kind).normalise_address(address)
    found = await recipients.resolve(
        session,
        row.workspace_id,
        contact_id=None,
        channel_id=row.id,
        address=normalised,
        create=True,
    )
    return await queue_message(
        session,
        found.conversation,
        row,
        OutboundContent(ContentKind.TEXT, text, {}),
        sender_kind=SenderKind.SYSTEM,
        max_attempts=max_attempts,
    )


async def test_message(session: AsyncSession, row: ChannelRow, message_id: str) -> Message | None:
    """A test message of this channel by id (None when it is not one of the channel's)."""
    return await session.scalar(
        select(Message).where(Message.id == message_id[:40], Message.channel_id == row.id)
    )


def refusal_text(exc: DomainError) -> str:
    """Why a test message was not queued, in the current language."""
    if exc.code == "unknown_recipient":
        return i18n.gettext(
            "This address has never written to this channel. Write to the business from it "
            "once, then send the test again."
        )
    return i18n.error_text(exc)
