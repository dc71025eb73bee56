"""Web-chat visitor sessions: tokens are issued by the server and only their hash is stored."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ChannelRef
from tresen.channels.webchat import TOKEN_RE, new_visitor_token, visitor_address
from tresen.db.tables import WebchatSession
from tresen.db.types import utcnow


async def find(session: AsyncSession, channel_id: str, token: str) -> WebchatSession | None:
    """The session of a token the server issued for this channel; None for any other string."""
    if not TOKEN_RE.match(token):
        return None
    return await session.get(WebchatSession, (channel_id, visitor_address(token)))


async def open_session(
    session: AsyncSession, channel: ChannelRef, token: str | None
) -> tuple[str, bool]:
    """Resume the session of a known token, or issue a new one: (token, resumed)."""
    if token is not None and await find(session, channel.id, token) is not None:
        return token, True
    fresh = new_visitor_token()
    session.add(
        WebchatSession(
            channel_id=channel.id,
            address=visitor_address(fresh),
            workspace_id=channel.workspace_id,
            created_at=utcnow(),
        )
    )
    return fresh, False


async def mark_started(session: AsyncSession, channel_id: str, address: str) -> bool:
    """Note the visitor's first message; True when this call was the first."""
    result = await session.execute(
        update(WebchatSession)
        .where(
            WebchatSession.channel_id == channel_id,
            WebchatSession.address == address,
            WebchatSession.started_at.is_(None),
        )
        .values(started_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def started(session: AsyncSession, channel_id: str, address: str) -> bool:
    """Whether the visitor has written before."""
    at = await session.scalar(
        select(WebchatSession.started_at).where(
            WebchatSession.channel_id == channel_id, WebchatSession.address == address
        )
    )
    return at is not None
