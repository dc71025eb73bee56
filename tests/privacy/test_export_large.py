"""An export of a contact with 100,000 messages streams: memory stays bounded, the ZIP is whole.

The export runs as an owner runs it, `tresen privacy export` in a process of its own; its peak
resident memory (the kernel's count, C libraries and database drivers included) is compared
with the same command exporting a contact of a few messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests import helpers
from tresen.db.tables import ChannelRow, Contact, ContactIdentity, Conversation, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.runtime import Runtime

MESSAGES = 100_000
FEW = 10
BODY = "Guten Tag, ich hätte gern eine Auskunft zu meiner Bestellung Nummer {i:06d}. " * 4
GROWTH_LIMIT = 32 * 1024 * 1024
"""The bodies alone are about 30 MB; loading them as rows would need several times that."""


async def _seed(runtime: Runtime, ws: str, channel: ChannelRow, messages: int, address: str) -> str:
    """A contact with `messages` messages in one conversation; returns its id."""
    start = utcnow() - timedelta(days=400)
    async with runtime.sessions() as session, session.begin():
        contact = Contact(id=new_id(), workspace_id=ws, display_name="Vielschreiberin")
        identity = ContactIdentity(
            id=new_id(),
            workspace_id=ws,
            contact_id=contact.id,
            channel_id=channel.id,
            address=address,
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
    for chunk in range(0, messages, 10_000):
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
            for i in range(chunk, min(chunk + 10_000, messages))
        ]
        async with runtime.sessions() as session, session.begin():
            await session.execute(insert(Message.__table__), rows)
    return contact.id


PEAK_PROBE = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def note_peak():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(peak)
atexit.register(note_peak)
sys.argv[0] = "tresen"
runpy.run_module("tresen", run_name="__main__", alter_sys=True)
"""
"""Runs the `tresen` command and, as it exits, notes its peak resident memory (VmHWM, KiB).

The kernel's count starts afresh with the new program; a child's ru_maxrss would not, it
keeps the peak of the test process it was forked from."""


def _export_in_a_process(runtime: Runtime, contact_id: str, out: Path) -> int:
    """Run `tresen privacy export` in a process of its own; its peak resident memory in bytes."""
    env = {
        **os.environ,
        "TRESEN_DATABASE_URL": runtime.settings.database_url,
        "TRESEN_DATA_DIR": str(runtime.settings.data_dir),
        "TRESEN_SECRET_KEY": runtime.settings.secret_key,
    }
    peak_file = out.with_suffix(".peak")
    command = [sys.executable, "-c", PEAK_PROBE, str(peak_file)]
    command += ["privacy", "export", contact_id, "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {out}" in done.stdout
    return int(peak_file.read_text()) * 1024


@pytest.mark.slow
async def test_export_of_100k_messages_streams(runtime: Runtime, tmp_path: Path) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    few = await _seed(runtime, ws, channel, FEW, "4915100011111")
    contact_id = await _seed(runtime, ws, channel, MESSAGES, "4915100099999")
    small, out = tmp_path / "small.zip", tmp_path / "big.zip"
    baseline = await asyncio.to_thread(_export_in_a_process, runtime, few, small)
    peak = await asyncio.to_thread(_export_in_a_process, runtime, contact_id, out)
    growth = peak - baseline
    print(json.dumps({"messages": MESSAGES, "peak_rss": peak, "baseline_rss": baseline}))
    assert growth < GROWTH_LIMIT, (
        f"the export of {MESSAGES} messages peaked {growth / 1e6:.1f} MB above one of {FEW}"
    )

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
        assert count == MESSAGES, "every message is in the export"
        assert first is not None and last is not None
        assert first["body"] == BODY.format(i=0) and last["body"] == BODY.format(i=MESSAGES - 1)
        data = json.loads(archive.read("data.json"))
        assert data["contact"]["id"] == contact_id
        with archive.open("index.html") as page:
            tail = page.read()[-200_000:].decode(errors="replace")
        assert f"Nummer {MESSAGES - 1:06d}" in tail and tail.rstrip().endswith("</html>")
