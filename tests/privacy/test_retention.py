"""Retention: what is past its period goes, legal holds keep, tested by moving the clock."""

from __future__ import annotations

import asyncio
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tests import helpers
from tresen.cli import app
from tresen.db.tables import AuditEntry, ChannelRow, Contact, ContactIdentity, Conversation, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy import audit, retention
from tresen.runtime import Runtime


async def _contact(
    runtime: Runtime,
    channel: ChannelRow,
    name: str,
    *,
    status: str = "open",
    consent: str = "granted",
    file: bool = False,
) -> tuple[str, str]:
    async with runtime.sessions() as session, session.begin():
        contact = Contact(
            id=new_id(), workspace_id=channel.workspace_id, display_name=name, consent_state=consent
        )
        session.add(contact)
        await session.flush()
        identity = ContactIdentity(
            id=new_id(),
            workspace_id=channel.workspace_id,
            contact_id=contact.id,
            channel_id=channel.id,
            address=f"49151{zlib.crc32(name.encode()) % 10**8:08d}",
        )
        session.add(identity)
        await session.flush()
        conv = Conversation(
            id=new_id(),
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            contact_id=contact.id,
            identity_id=identity.id,
            status=status,
            last_message_at=utcnow(),
        )
        session.add(conv)
        await session.flush()
        payload = {}
        if file:
            folder = runtime.settings.data_dir / "media"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.png").write_bytes(b"\x89PNG" + name.encode())
            payload = {
                "media": {"type": "image", "mime_type": "image/png", "path": f"media/{name}.png"}
            }
        session.add(
            Message(
                workspace_id=channel.workspace_id,
                conversation_id=conv.id,
                channel_id=channel.id,
                direction="inbound",
                sender_kind="contact",
                content_kind="media" if file else "text",
                body=f"Nachricht von {name}",
                payload=payload,
                state="received",
            )
        )
        return contact.id, conv.id


async def _exists(runtime: Runtime, model: type, row_id: str) -> bool:
    async with runtime.sessions() as session:
        return await session.get(model, row_id) is not None


async def test_periods_apply_as_the_clock_moves(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    media = runtime.settings.data_dir / "media"
    active, active_conv = await _contact(runtime, channel, "aktiv", file=True)
    resolved, resolved_conv = await _contact(runtime, channel, "erledigt", status="resolved")
    held, held_conv = await _contact(runtime, channel, "gesperrt", status="resolved")
    asked, _ = await _contact(runtime, channel, "gefragt", consent="asked")
    async with runtime.sessions() as session, session.begin():
        await retention.set_legal_hold(session, held_conv, True)
    media.mkdir(exist_ok=True)
    orphan = media / "orphan.png"
    orphan.write_bytes(b"left by a crash")
    t0 = utcnow()

    async def run_at(days: int) -> retention.RetentionResult:
        return await retention.run(
            runtime.sessions,
            runtime.settings.secret_key,
            runtime.files,
            now=t0 + timedelta(days=days),
        )

    first = await run_at(1)
    assert first.workspaces[ws].counts() == {
        "conversations": 0,
        "media_files": 0,
        "contacts": 0,
        "link_clicks": 0,
    }
    assert first.orphan_files == 1 and not orphan.exists()
    assert await _exists(runtime, Contact, asked)

    await run_at(31)  # unconfirmed opt-in: erased after 30 days
    assert not await _exists(runtime, Contact, asked)
    assert await _exists(runtime, Contact, active)

    assert (media / "aktiv.png").exists()
    await run_at(181)  # media: the file goes, the message stays and says so
    assert not (media / "aktiv.png").exists()
    async with runtime.sessions() as session:
        message = await session.scalar(
            select(Message).where(Message.conversation_id == active_conv)
        )
        assert message is not None and message.payload["media"]["removed"] == "retention"

    await run_at(731)  # resolved conversations: gone, unless on legal hold
    assert not await _exists(runtime, Conversation, resolved_conv)
    assert await _exists(runtime, Conversation, held_conv)
    assert await _exists(runtime, Conversation, active_conv)  # still open

    await run_at(1096)  # inactive contacts: erased, unless on legal hold
    assert not await _exists(runtime, Contact, active)
    assert not await _exists(runtime, Contact, resolved)
    assert await _exists(runtime, Contact, held)

    async with runtime.sessions() as session, session.begin():
        await retention.set_legal_hold(session, held_conv, False)
    await run_at(1096)
    assert not await _exists(runtime, Contact, held)
    async with runtime.sessions() as session:
        assert (await audit.verify(session, ws)).ok
        runs = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "retention.run")
        )
        assert runs == 5


async def test_workspace_periods_override_defaults_and_bad_ones_are_refused(
    runtime: Runtime,
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    _, conv = await _contact(runtime, channel, "kurz", status="resolved")
    async with runtime.sessions() as session, session.begin():
        await retention.set_period(session, ws, "conversations", 7)
        with pytest.raises(retention.RetentionError):
            await retention.set_period(session, ws, "conversations", -1)
        with pytest.raises(retention.RetentionError):
            await retention.set_period(session, ws, "tracking", 3)
    await retention.run(
        runtime.sessions,
        runtime.settings.secret_key,
        runtime.files,
        now=utcnow() + timedelta(days=8),
    )
    assert not await _exists(runtime, Conversation, conv)


async def test_worker_runs_retention(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(retention_hours=0.0003)  # about a second
    _, channel = await helpers.seed_whatsapp(runtime)
    asked, _ = await _contact(runtime, channel, "alt", consent="asked")
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Contact)
            .where(Contact.id == asked)
            .values(updated_at=utcnow() - timedelta(days=40))
        )
    async with helpers.client_for(runtime, worker=True):
        for _ in range(100):
            if not await _exists(runtime, Contact, asked):
                break
            await asyncio.sleep(0.1)
    assert not await _exists(runtime, Contact, asked)


async def test_cli_retention_and_legal_hold(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    monkeypatch.setenv("TRESEN_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", runtime.settings.secret_key)
    _, channel = await helpers.seed_whatsapp(runtime)
    _, conv = await _contact(runtime, channel, "cli", status="resolved")
    loop = asyncio.get_running_loop()

    async def tresen(*args: str) -> tuple[int, str]:
        result = await loop.run_in_executor(None, lambda: CliRunner().invoke(app, list(args)))
        return result.exit_code, result.output

    assert (await tresen("privacy", "hold", conv))[0] == 0
    later = (utcnow() + timedelta(days=800)).isoformat()
    code, out = await tresen("privacy", "retention", "run", "--now", later)
    assert code == 0 and "0 conversations" in out
    assert (await tresen("privacy", "hold", conv, "--release"))[0] == 0
    code, out = await tresen("privacy", "retention", "run", "--now", later)
    assert code == 0 and "1 conversations" in out
    assert (await tresen("privacy", "retention", "run", "--now", "gestern"))[0] == 2
    assert (await tresen("privacy", "retention", "set", "media", "90"))[0] == 0
    code, out = await tresen("privacy", "retention", "show")
    assert code == 0 and "media=90" in out
    assert (await tresen("privacy", "hold", "nope"))[0] == 2
