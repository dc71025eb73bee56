"""Adding, listing and looking up channel accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ConfigError, channel_factory
from tresen.db.tables import ChannelRow, Workspace
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
