"""Shared test helpers: seeding, signing, app clients."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar
from litestar.datastructures import State
from sqlalchemy import func, select, text

from tresen.app import create_app, make_worker
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import Base, ChannelRow
from tresen.handlers import events as event_dispatch
from tresen.integrations.tokens import create_token
from tresen.jobs import queue
from tresen.runtime import Runtime
from tresen.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
WA_SECRET = "sim-app-secret"
WA_CONFIG: dict[str, Any] = {
    "phone_number_id": "100000000000001",
    "app_secret": WA_SECRET,
    "verify_token": "verify-me",
    "access_token": "sim-access-token",
}


def wa_sign(body: bytes, secret: str = WA_SECRET) -> dict[str, str]:
    """Headers of a correctly signed WhatsApp webhook."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def fixture_bytes(name: str) -> bytes:
    """A recorded payload."""
    return (FIXTURES / name).read_bytes()


def wa_envelope(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Cloud API webhook envelope."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "4930123456",
            "phone_number_id": WA_CONFIG["phone_number_id"],
        },
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "200", "changes": [{"field": "messages", "value": value}]}],
    }


def wa_text(
    wamid: str, sender: str = "4915112345678", body: str = "Hallo", ts: int | None = None
) -> dict[str, Any]:
    """One inbound text message object (sent now unless `ts` says otherwise)."""
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts or int(time.time())),
        "type": "text",
        "text": {"body": body},
    }


def wa_status(wamid: str, status: str, ts: int = 1763800100, **extra: Any) -> dict[str, Any]:
    """One status object."""
    return {
        "id": wamid,
        "status": status,
        "timestamp": str(ts),
        "recipient_id": "4915112345678",
        **extra,
    }


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, ensure_ascii=False).encode()


async def seed_whatsapp(runtime: Runtime, **overrides: Any) -> tuple[str, ChannelRow]:
    """A workspace with one WhatsApp channel; returns (workspace id, channel row)."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Testladen")
        row = await add_channel(
            session, ws.id, "whatsapp", "Test WhatsApp", {**WA_CONFIG, **overrides}
        )
    return ws.id, row


async def seed_token(runtime: Runtime, workspace_id: str, scopes: list[str] | None = None) -> str:
    """An API token with the given scopes (all by default)."""
    async with runtime.sessions() as session, session.begin():
        return await create_token(session, workspace_id, "test", scopes or ["all"])


_IDLE_APPS: dict[Settings, list[Litestar]] = {}
"""Built apps not in use, by the settings they were built from (data dir and database aside).

Building the app costs about a second of CPU (Litestar parses every handler's signature and
the OpenAPI document), and almost every web test asks for one. The app reads nothing of its
runtime at build time: requests find it in `app.state`. So in-process clients take an app
built for equal settings and give it a fresh `State` holding only their runtime.
"""


def _app_key(settings: Settings) -> Settings:
    return settings.with_overrides(data_dir=Path("."), database_url="")


@asynccontextmanager
async def _app_for(runtime: Runtime) -> AsyncIterator[Litestar]:
    """An app for this runtime with empty state, built or reused (never shared while in use)."""
    idle = _IDLE_APPS.setdefault(_app_key(runtime.settings), [])
    app = idle.pop() if idle else None
    if app is None:
        app = create_app(runtime.settings, runtime=runtime, embedded_worker=False, migrate=False)
    app.state = State({"runtime": runtime})
    try:
        yield app
    finally:
        app.state = State()
        idle.append(app)


@asynccontextmanager
async def client_for(runtime: Runtime, *, worker: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client for the app on this runtime."""
    async with _app_for(runtime) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            if not worker:
                yield client
                return
            w = make_worker(runtime, poll_seconds=0.05)
            task = asyncio.create_task(w.run())
            try:
                yield client
            finally:
                w.stop()
                await asyncio.wait_for(task, 10)


@asynccontextmanager
async def worker_running(runtime: Runtime) -> AsyncIterator[None]:
    """Run a worker with every handler while the context is open."""
    w = make_worker(runtime, poll_seconds=0.05)
    task = asyncio.create_task(w.run())
    try:
        yield
    finally:
        w.stop()
        await asyncio.wait_for(task, 10)


async def hand_on_events(runtime: Runtime) -> None:
    """Do what a worker's dispatcher does with the events committed so far, and their deliveries.

    Tests that run a job handler by hand call this first: a new message's processing job is
    queued by the `process` consumer of its `message.received` event.
    """
    while await event_dispatch.dispatch_once(runtime):
        pass
    deliver = event_dispatch.HANDLERS[event_dispatch.DELIVER_JOB]
    kinds = [event_dispatch.DELIVER_JOB]
    while claimed := await queue.claim(runtime.engine, "events", 50, timedelta(seconds=30), kinds):
        for job in claimed:
            await deliver(runtime, job, "events")


async def count_rows(runtime: Runtime) -> dict[str, int]:
    """Row counts of every table."""
    counts = {}
    async with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = await session.scalar(select(func.count()).select_from(table)) or 0
    return counts


async def waits_for_a_lock(runtime: Runtime) -> bool:
    """Whether a transaction of this PostgreSQL test database waits for a row or table lock."""
    async with runtime.engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)
