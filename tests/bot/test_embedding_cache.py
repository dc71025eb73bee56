"""The KB's sentence embeddings are stored: a restart encodes nothing, an edit only what changed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy import func, select

from tests import helpers
from tests.bot.kbdata import import_kb
from tresen.bot import live, store
from tresen.bot.semantic import shared_encoder
from tresen.db.tables import BotEmbedding
from tresen.runtime import Runtime


class CountingEncoder:
    """The real encoder, counting what it is asked to encode."""

    def __init__(self) -> None:
        self._real = shared_encoder()
        self.model_id = self._real.model_id
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self._real.encode(texts)


async def _stored(runtime: Runtime, workspace_id: str) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(BotEmbedding)
            .where(BotEmbedding.workspace_id == workspace_id)
        )
    return int(count or 0)


async def _restart_and_build(runtime: Runtime, workspace_id: str) -> None:
    live._cache.clear()  # a new process: no bot built yet
    assert await live.bot_for(runtime.sessions, workspace_id) is not None


async def test_embeddings_survive_a_restart_and_follow_kb_edits(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    workspace_id = channel.workspace_id
    await import_kb(runtime, workspace_id)
    encoder = CountingEncoder()
    monkeypatch.setattr(live, "shared_encoder", lambda: encoder)

    await _restart_and_build(runtime, workspace_id)
    first = [t for call in encoder.calls for t in call]
    assert len(first) == len(set(first)) > 20
    assert await _stored(runtime, workspace_id) == len(first)

    encoder.calls.clear()
    await _restart_and_build(runtime, workspace_id)
    assert encoder.calls == []  # every KB text came from the database

    async with runtime.sessions() as session, session.begin():
        rows = await store.entries(session, workspace_id)
        versand = next(r for r in rows if r.key == "versand")
        await store.add_phrasing(session, workspace_id, versand.id, "Liefert ihr auch nach Wien?")
    assert await live.bot_for(runtime.sessions, workspace_id) is not None
    assert encoder.calls == [["Liefert ihr auch nach Wien?"]]
    assert await _stored(runtime, workspace_id) == len(first) + 1

    async with runtime.sessions() as session, session.begin():
        rows = await store.entries(session, workspace_id)
        gone = next(r for r in rows if r.key == "zahlung")
        texts = {*gone.content["questions"], *gone.content["answers"].values()}
        await store.delete_entry(session, workspace_id, gone.id)
    encoder.calls.clear()
    await _restart_and_build(runtime, workspace_id)
    assert encoder.calls == []
    assert await _stored(runtime, workspace_id) == len(first) + 1 - len(texts)


async def test_a_customer_message_is_never_stored(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await import_kb(runtime, channel.workspace_id)
    live._cache.clear()
    bot = await live.bot_for(runtime.sessions, channel.workspace_id)
    assert bot is not None
    before = await _stored(runtime, channel.workspace_id)
    bot.respond("Meine Adresse ist Gartenstraße 5, wann kommt das Paket?", {}, 0.0)
    await _restart_and_build(runtime, channel.workspace_id)
    assert await _stored(runtime, channel.workspace_id) == before
