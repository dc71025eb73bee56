"""A trace of live updates for browser tests: what the server published and what the page did.

A live update that goes missing on a loaded machine is rare and hard to catch; a test that
waits for one attaches this trace to its failure, so the run that fails tells why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from tresen.db.tables import Conversation, DomainEventRow, User
from tresen.runtime import Runtime

PAGE_SCRIPT = """
window.__liveTrace = [];
(() => {
  const names = ["htmx:beforeRequest", "htmx:afterRequest", "htmx:afterSwap", "htmx:afterSettle",
    "htmx:sseOpen", "htmx:sseError", "htmx:sseMessage", "htmx:sendError", "htmx:responseError",
    "htmx:swapError", "htmx:sendAbort", "htmx:timeout"];
  const label = (el) => el instanceof Element ? (el.id ? "#" + el.id : el.tagName.toLowerCase()) : "-";
  for (const name of names) {
    document.addEventListener(name, (event) => {
      const d = event.detail || {};
      const parts = [Date.now(), name.slice(5), label(event.target)];
      if (d.target) parts.push("target=" + label(d.target));
      const path = (d.pathInfo && d.pathInfo.requestPath) || (d.requestConfig && d.requestConfig.path);
      if (path) parts.push(path);
      if (name === "htmx:sseMessage") parts.push("sse=" + d.type);
      if (d.successful !== undefined) parts.push("ok=" + d.successful);
      window.__liveTrace.push(parts.join(" "));
    }, true);
  }
})();
"""
"""Given to `page.add_init_script`: the page notes its live-update events in `window.__liveTrace`."""


@asynccontextmanager
async def server_hints(runtime: Runtime, workspace_id: str) -> AsyncIterator[list[str]]:
    """Note every live event the workspace publishes (wall-clock ms, kind, conversation)."""
    noted: list[str] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with runtime.events.subscribe(workspace_id) as received:
            ready.set()
            async for event in received:
                noted.append(f"{int(time.time() * 1000)} {event.kind} {event.conversation_id}")

    task = asyncio.create_task(listen())
    await ready.wait()
    try:
        yield noted
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def page_trace(page: Any) -> list[str]:
    """What the page noted (empty when the script did not run)."""
    try:
        return list(await page.evaluate("window.__liveTrace || []"))
    except Exception as error:
        return [f"(page trace unavailable: {type(error).__name__})"]


async def explain(page: Any, server: list[str], what: str) -> str:
    """A failure message: what was missing, then the server's hints and the page's events."""
    lines = [
        f"{what}",
        "server published:",
        *server[-80:],
        "page saw:",
        *(await page_trace(page))[-250:],
    ]
    return "\n".join(lines)


async def assignments(runtime: Runtime, workspace_id: str) -> str:
    """Who has which conversation now, the agents' availability, and the events that led there."""
    async with runtime.sessions() as session:
        conversations = (
            await session.execute(
                select(
                    Conversation.id,
                    Conversation.assignee_id,
                    Conversation.queued_at,
                    Conversation.status,
                ).where(Conversation.workspace_id == workspace_id)
            )
        ).all()
        users = (
            await session.execute(
                select(User.id, User.email, User.availability).where(
                    User.workspace_id == workspace_id
                )
            )
        ).all()
        events = (
            await session.execute(
                select(DomainEventRow.occurred_at, DomainEventRow.type, DomainEventRow.payload)
                .where(DomainEventRow.workspace_id == workspace_id)
                .order_by(DomainEventRow.seq)
            )
        ).all()
    return "\n".join(
        [
            "conversations (id, assignee, queued_at, status):",
            *(f"  {row}" for row in conversations),
            "people (id, e-mail, availability):",
            *(f"  {row}" for row in users),
            "domain events:",
            *(f"  {at:%H:%M:%S.%f} {kind} {payload}" for at, kind, payload in events),
        ]
    )
