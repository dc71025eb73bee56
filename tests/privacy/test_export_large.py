"""An export of a contact with 100,000 messages streams: memory stays bounded, the ZIP is whole."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests import helpers
from tresen.db.tables import Contact, ContactIdentity, Conversation, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy.export import write_export
from tresen.runtime import Runtime

MESSAGES = 100_000
BODY = "Guten Tag, ich hätte gern eine Auskunft zu meiner Bestellung Nummer {i:06d}. " * 4
PEAK_LIMIT = 32 * 1024 * 1024
"""The bodies alone are about 30 MB; loading them as rows would need several times that."""


async def _seed(runtime: Runtime) -> tuple[str, str]:
    ws, channel = await helpers.seed_whatsapp(runtime)
    start = utcnow() - timedelta(days=400)
    async with runtime.sessions() as session, session.begin():
        contact = Contact(id=new_id(), workspace_id=ws, display_name="Vielschreiberin")
        identity = ContactIdentity(
            id=new_id(),
            workspace_id=ws,
            contact_id=contact.id,
            channel_id=channel.id,
            address="4915100099999",
        )
        conv = Conversation(
            id=new_id(),
            workspace_id=ws,
            channel_id=channel.id,
            contact_id=contact.id,
            identity_id=identity.id,
        )
        session.add(contact)
        await session.flush()
        session.add(identity)
        await session.flush()
        session.add(conv)
    for chunk in range(0, MESSAGES, 10_000):
        rows = [
            {
                "id": new_id(),
                "workspace_id": ws,
                "conversation_id": conv.id,
                "channel_id": channel.id,
                "direction": "inbound" if i % 2 else "outbound",
                "sender_kind": "contact" if i % 2 else "agent",
                "content_kind": "text",
                "body": BODY.format(i=i),
                "payload": {},
                "state": "received" if i % 2 else "read",
                "created_at": start + timedelta(seconds=i),
                "send_attempts": 0,
            }
            for i in range(chunk, min(chunk + 10_000, MESSAGES))
        ]
        async with runtime.sessions() as session, session.begin():
            await session.execute(insert(Message.__table__), rows)
    return ws, contact.id


@pytest.mark.slow
async def test_export_of_100k_messages_streams(runtime: Runtime, tmp_path: Path) -> None:
    ws, contact_id = await _seed(runtime)
    out = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        async with runtime.sessions() as session:
            summary = await write_export(session, ws, contact_id, runtime.files, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(json.dumps({"messages": MESSAGES, "export_peak_bytes": peak}))
    assert summary.messages == MESSAGES
    assert peak < PEAK_LIMIT, f"export peaked at {peak / 1e6:.1f} MB"

    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        count = 0
        first = last = None
        with archive.open("messages.jsonl") as lines:
            for line in lines:
                record = json.loads(line)
                first = first or record
                last = record
                count += 1
        assert count == MESSAGES
        assert first is not None and last is not None
        assert first["body"] == BODY.format(i=0) and last["body"] == BODY.format(i=MESSAGES - 1)
        data = json.loads(archive.read("data.json"))
        assert data["contact"]["id"] == contact_id
        with archive.open("index.html") as page:
            tail = page.read()[-200_000:].decode(errors="replace")
        assert f"Nummer {MESSAGES - 1:06d}" in tail and tail.rstrip().endswith("</html>")
