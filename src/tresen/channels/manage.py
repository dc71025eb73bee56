"""Adding, listing and looking up channel accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ConfigError
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, Conversation, Message, Workspace
from tresen.db.types import utcnow
from tresen.domain.ids import new_id

DEFAULT_WORKSPACE_NAME = "Mein Geschäft"


async def default_workspace(session: AsyncSession, name: str = DEFAULT_WORKSPACE_NAME) -> Workspace:
    """The install's first workspace, created on first use."""
    ws = await session.scalar(select(Workspace).order_by(Workspace.created_at).limit(1))
    if ws is None:
        ws = Workspace(id=new_id(), name=name, time_zone="Europe/Berlin", created_at=utcnow())
        session.add(ws)
        await session.flush()
    return ws


async def add_channel(
    session: AsyncSession, workspace_id: str, kind: str, name: str, config: dict[str, Any]
) -> ChannelRow:
    """Validate a channel's configuration and store it."""
    if not name.strip():
        raise ConfigError("a channel needs a name")
    checked = channel_factory(kind).check_config(config)
    row = ChannelRow(
        id=new_id(),
        workspace_id=workspace_id,
        kind=kind,
        name=name.strip(),
        config=checked,
        enabled=True,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def list_channels(session: AsyncSession, workspace_id: str | None = None) -> list[ChannelRow]:
    """Channels, oldest first, optionally of one workspace."""
    stmt = select(ChannelRow).order_by(ChannelRow.created_at)
    if workspace_id:
        stmt = stmt.where(ChannelRow.workspace_id == workspace_id)
    return list(await session.scalars(stmt))


def webhook_url(base_url: str, row: ChannelRow) -> str:
    """The URL a provider must call for this channel."""
    return f"{base_url.rstrip('/')}/webhooks/{row.kind}/{row.id}"


async def workspace_channel(
    session: AsyncSession, workspace_id: str, channel_id: str
) -> ChannelRow:
    """One channel of the workspace, or a ConfigError (never another workspace's)."""
    row = await session.scalar(
        select(ChannelRow).where(
            ChannelRow.id == channel_id, ChannelRow.workspace_id == workspace_id
        )
    )
    if row is None:
        raise ConfigError(f"no channel with the id {channel_id!r}")
    return row


async def update_channel(
    session: AsyncSession, row: ChannelRow, name: str, changes: dict[str, Any]
) -> None:
    """Merge changed fields into the stored configuration, checked like a new channel."""
    if not name.strip():
        raise ConfigError("a channel needs a name")
    row.config = channel_factory(row.kind).check_config({**(row.config or {}), **changes})
    row.name = name.strip()[:200]
    await session.flush()


async def last_inbound(session: AsyncSession, workspace_id: str) -> dict[str, Any]:
    """When each channel of the workspace last received a customer's message."""
    rows = await session.execute(
        select(Conversation.channel_id, func.max(Message.created_at))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Conversation.workspace_id == workspace_id, Message.direction == "inbound")
        .group_by(Conversation.channel_id)
    )
    return {channel_id: at for channel_id, at in rows.all()}


async def delete_channel(session: AsyncSession, row: ChannelRow) -> None:
    """Delete a channel nobody wrote through yet; one with conversations can only be disabled."""
    used = await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.channel_id == row.id)
    )
    if used:
        raise ConfigError(
            "this channel has conversations; disable it instead, so their history stays"
        )
    await session.delete(row)
    await session.flush()
