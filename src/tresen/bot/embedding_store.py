"""Sentence embeddings of a workspace's knowledge base in the database: computed once per text."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import BotEmbedding
from tresen.db.types import utcnow
from tresen.db.upsert import insert_ignore


async def load(session: AsyncSession, workspace_id: str, model_id: str) -> dict[str, np.ndarray]:
    """The workspace's cached embeddings under `model_id`, by key."""
    rows = await session.execute(
        select(BotEmbedding.key, BotEmbedding.vector).where(
            BotEmbedding.workspace_id == workspace_id, BotEmbedding.model == model_id
        )
    )
    return {key: np.frombuffer(vector, dtype="<f4").copy() for key, vector in rows.all()}


async def save(
    session: AsyncSession,
    workspace_id: str,
    model_id: str,
    added: Mapping[str, np.ndarray],
    keep: Collection[str],
) -> None:
    """Store newly computed embeddings and drop those no text of the KB uses any more."""
    now = utcnow()
    if added:
        await session.execute(
            insert_ignore(session, BotEmbedding),
            [
                {
                    "workspace_id": workspace_id,
                    "key": key,
                    "model": model_id,
                    "vector": np.asarray(row, dtype="<f4").tobytes(),
                    "created_at": now,
                }
                for key, row in added.items()
            ],
        )
    stale = sorted(set(await _keys(session, workspace_id)) - set(keep))
    for start in range(0, len(stale), 500):
        await session.execute(
            delete(BotEmbedding).where(
                BotEmbedding.workspace_id == workspace_id,
                BotEmbedding.key.in_(stale[start : start + 500]),
            )
        )


async def _keys(session: AsyncSession, workspace_id: str) -> list[str]:
    rows = await session.scalars(
        select(BotEmbedding.key).where(BotEmbedding.workspace_id == workspace_id)
    )
    return list(rows.all())
