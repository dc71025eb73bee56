"""Buttons a channel cannot show become numbered options; a numbered answer becomes a button press."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import Capabilities
from tresen.db.tables import Message
from tresen.domain.message import Direction

MAX_OPTIONS = 20
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")


def _choices(payload: dict[str, Any]) -> list[dict[str, str]]:
    """(id, title) of the buttons or list rows; empty when any is malformed (left to validation)."""
    raw: list[Any] = []
    if isinstance(payload.get("buttons"), list):
        raw = payload["buttons"]
    elif isinstance(payload.get("sections"), list):
        raw = [
            row
            for section in payload["sections"]
            if isinstance(section, dict) and isinstance(section.get("rows"), list)
            for row in section["rows"]
        ]
    valid = [
        {"id": str(item["id"]), "title": str(item["title"]).strip()}
        for item in raw
        if isinstance(item, dict)
        and item.get("id")
        and isinstance(item.get("title"), str)
        and item["title"].strip()
    ]
    return valid if len(valid) == len(raw) else []


def fits(payload: dict[str, Any], caps: Capabilities) -> bool:
    """Whether the channel can show these buttons as buttons."""
    if not caps.interactive:
        return False
    buttons = payload.get("buttons")
    if not isinstance(buttons, list):
        return True  # a list message: validated as it is
    return len(buttons) <= caps.max_buttons and all(
        len(str(b.get("title", ""))) <= caps.max_button_title
        for b in buttons
        if isinstance(b, dict)
    )


def as_numbered_text(body: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The text with '1) …' lines and the options to remember; None when there are no choices."""
    choices = _choices(payload)
    if not choices or len(choices) > MAX_OPTIONS:
        return None
    lines = "\n".join(f"{n}) {c['title']}" for n, c in enumerate(choices, start=1))
    return f"{body.rstrip()}\n\n{lines}", {"options": choices}


async def resolve_numbered_reply(session: AsyncSession, message_id: str) -> str | None:
    """If an inbound '2' answers numbered options we sent, record it as that button; its id."""
    message = await session.get(Message, message_id)
    if message is None or message.direction != Direction.INBOUND.value:
        return None
    found = _NUMBER.match(message.body or "")
    if not found:
        return None
    last = await session.scalar(
        select(Message.payload)
        .where(
            Message.conversation_id == message.conversation_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.created_at <= message.created_at,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    options = (last or {}).get("options")
    number = int(found.group(1))
    if not isinstance(options, list) or not 1 <= number <= len(options):
        return None
    chosen = options[number - 1]
    payload = {
        **(message.payload or {}),
        "interactive": {"button_reply": {"id": chosen["id"], "title": chosen["title"]}},
    }
    await session.execute(update(Message).where(Message.id == message.id).values(payload=payload))
    return str(chosen["id"])
