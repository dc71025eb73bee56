"""An erased visitor's web chat session stops working at once, in every web process."""

from __future__ import annotations

import asyncio
import secrets
import time

from sqlalchemy import select

from tests.channels.test_webchat import SHOP, running_chat
from tresen.db.tables import Contact
from tresen.events import (
    RESYNC,
    REVOCATIONS,
    WEBCHAT_REVOKED,
    Event,
    MemoryEventBus,
    event_bus_for,
)
from tresen.privacy import erasure
from tresen.runtime import Runtime

REDIS = "redis://127.0.0.1:6379/0"


async def _erase_all(runtime: Runtime, eraser: Runtime) -> int:
    """Erase every contact through `eraser` (its files and its event bus)."""
    async with runtime.sessions() as session:
        contacts = list(await session.execute(select(Contact.id, Contact.workspace_id)))
    for contact_id, ws in contacts:
        async with eraser.sessions() as session:
            await erasure.erase(
                eraser.engine,
                session,
                secret_key=eraser.settings.secret_key,
                files=eraser.files,
                events=eraser.events,
                workspace_id=ws,
                contact_id=contact_id,
                actor_id=None,
                via="test",
            )
    return len(contacts)


async def test_an_erased_session_is_refused_at_once(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        token = await chat.session()
        assert (await chat.say(token, "Hallo")).status_code == 201
        assert (await chat.say(token, "noch da?")).status_code == 201  # now from the cache
        assert await _erase_all(runtime, runtime) == 1
        refused = await chat.say(token, "nach dem Löschen")
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "no_session"


async def test_an_erasure_in_another_process_reaches_this_one_through_redis(
    runtime: Runtime,
) -> None:
    prefix = f"tresen-test-{secrets.token_hex(4)}:"
    runtime.settings = runtime.settings.with_overrides(redis_url=REDIS, redis_prefix=prefix)
    runtime.events = event_bus_for(REDIS, prefix=f"{prefix}events:")  # this web process's bus
    other = Runtime.create(runtime.settings)  # e.g. the worker running retention, or a CLI call
    try:
        await runtime.events.start()
        await other.events.start()
        async with running_chat(runtime) as chat:
            token = await chat.session()
            assert (await chat.say(token, "Hallo")).status_code == 201
            assert (await chat.say(token, "noch da?")).status_code == 201
            await _erase_all(runtime, other)
            deadline = time.monotonic() + 5
            status = 201
            while status != 401 and time.monotonic() < deadline:
                # Redis pub/sub takes a moment; the local cache (60 s) must not be what ends it.
                await asyncio.sleep(0.05)
                status = (
                    await chat.web.post(
                        f"/chat/{chat.channel.id}/offline",
                        json={"name": "A", "email": "a@b.de"},
                        headers={"origin": SHOP, "x-tresen-visitor": token},
                    )
                ).status_code
            assert status == 401
            assert time.monotonic() < deadline
    finally:
        await other.close()
        await runtime.events.close()


async def test_a_possible_loss_of_events_empties_the_cache_too() -> None:
    bus = MemoryEventBus(queue_size=2)
    async with bus.subscribe(REVOCATIONS) as sub:
        assert sub.drain() == []
        for _ in range(3):
            await bus.publish(Event(REVOCATIONS, WEBCHAT_REVOKED, ""))
        kinds = [e.kind for e in sub.drain()]
        assert kinds == [RESYNC, WEBCHAT_REVOKED, WEBCHAT_REVOKED]
        assert sub.drain() == []
