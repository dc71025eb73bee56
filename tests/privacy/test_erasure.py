"""Erasure (Art. 17): a canary contact is erased and its marker is found nowhere afterwards."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from tests import helpers
from tests.conftest import IN_CI
from tresen.db.tables import (
    AuditEntry,
    BotConversation,
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Job,
    Media,
    Message,
    Note,
    PendingStatus,
    Suppression,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.privacy import audit, erasure, retention, suppression
from tresen.runtime import Runtime

MARKER = "Qzcanary7Xv"  # unlikely anywhere else; searched for as bytes after the erasure


async def seed_contact(
    runtime: Runtime, channel: ChannelRow, marker: str, *, phone: str = "4915199990001"
) -> str:
    """A contact with `marker` in every field, message, note, identity, file and queued send."""
    data_dir = runtime.settings.data_dir
    media = data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    stored = f"{marker.lower()}-scan.png"
    (media / stored).write_bytes(b"\x89PNG\r\n\x1a\n" + f"image of {marker}".encode() * 20)
    ws = channel.workspace_id
    async with runtime.sessions() as session, session.begin():
        contact = Contact(
            id=new_id(),
            workspace_id=ws,
            display_name=f"Erika {marker}",
            attributes={"customer_no": f"K-{marker}", "city": f"{marker}hausen"},
            consent_state="granted",
        )
        session.add(contact)
        await session.flush()
        identities = [
            ContactIdentity(
                id=new_id(),
                workspace_id=ws,
                contact_id=contact.id,
                channel_id=channel.id,
                address=phone,
                display_name=f"Erika WA {marker}",
            ),
            ContactIdentity(
                id=new_id(),
                workspace_id=ws,
                contact_id=contact.id,
                channel_id=channel.id,
                address=f"{marker.lower()}@example.org",
                display_name=f"Erika Mail {marker}",
            ),
        ]
        session.add_all(identities)
        await session.flush()
        conv = Conversation(
            id=new_id(),
            workspace_id=ws,
            channel_id=channel.id,
            contact_id=contact.id,
            identity_id=identities[0].id,
            status="open",
            last_inbound_at=utcnow(),
            last_message_at=utcnow(),
        )
        session.add(conv)
        await session.flush()
        for i in range(30):
            session.add(
                Message(
                    id=new_id(),
                    workspace_id=ws,
                    conversation_id=conv.id,
                    channel_id=channel.id,
                    direction="inbound",
                    sender_kind="contact",
                    content_kind="text",
                    body=f"Meine Kundennummer ist {marker} und ich wohne in {marker}hausen {i}",
                    payload={"text": {"body": f"raw {marker} {i}"}, "from": phone},
                    provider_message_id=f"wamid.{marker}.{i}",
                    state="received",
                )
            )
        session.add(
            Message(
                id=new_id(),
                workspace_id=ws,
                conversation_id=conv.id,
                channel_id=channel.id,
                direction="inbound",
                sender_kind="contact",
                content_kind="media",
                body=f"{marker}-scan.png",
                payload={
                    "media": {
                        "type": "image",
                        "mime_type": "image/png",
                        "size": 10,
                        "filename": f"{marker}-scan.png",
                        "path": f"media/{stored}",
                    }
                },
                provider_message_id=f"upload.{marker}",
                state="received",
            )
        )
        session.add(
            Note(
                workspace_id=ws,
                conversation_id=conv.id,
                body=f"Frau {marker} ruft morgen an",
            )
        )
        session.add(
            PendingStatus(
                channel_id=channel.id,
                provider_message_id=f"wamid.out.{marker}",
                state="failed",
                error_reason=f"recipient {marker} blocked",
            )
        )
        session.add(
            ConsentEvent(
                workspace_id=ws,
                contact_id=contact.id,
                purpose="service_conversation",
                action="granted",
                channel_id=channel.id,
                source="whatsapp reply",
                text_version="2026-11",
                text_hash="ab" * 32,
                language="de",
                ip_address=f"10.0.0.1 {marker}",
                user_agent=f"Mozilla/5.0 {marker}",
                occurred_at=utcnow(),
            )
        )
        # A file fetched from the provider (media table), what the bot remembered, and an
        # older contact of the same person merged into this one (with the merge record).
        fetched = media / ws / "ab"
        fetched.mkdir(parents=True, exist_ok=True)
        media_id = new_id()
        (fetched / media_id).write_bytes(f"%PDF-1.4 invoice of {marker}".encode() * 10)
        await session.flush()
        session.add(
            Media(
                id=media_id,
                workspace_id=ws,
                message_id=(
                    await session.scalars(
                        select(Message.id).where(Message.conversation_id == conv.id).limit(1)
                    )
                ).one(),
                kind="inbound",
                state="stored",
                content_type="application/pdf",
                size=10,
                sha256="ab" * 32,
                filename=f"rechnung-{marker}.pdf",
                path=f"media/{ws}/ab/{media_id}",
                ref={"id": f"ref-{marker}"},
            )
        )
        session.add(
            BotConversation(
                conversation_id=conv.id,
                workspace_id=ws,
                state={"slots": {"order_number": f"A-{marker}"}},
                handover_summary=f"order A-{marker}",
            )
        )
        older = Contact(
            workspace_id=ws,
            display_name=f"E. {marker}",
            attributes={"old_no": f"O-{marker}"},
            merged_into_id=contact.id,
        )
        session.add(older)
        await session.flush()
        session.add(
            ContactMerge(
                workspace_id=ws,
                target_id=contact.id,
                source_id=older.id,
                target_before={"attributes": {"city": f"{marker}hausen"}},
                source_before={"attributes": {"old_no": f"O-{marker}"}},
                consent_state="granted",
            )
        )
        queued = await queue_message(
            session,
            conv,
            channel,
            OutboundContent(ContentKind.TEXT, f"Hallo {marker}, Ihre Bestellung ist da"),
            sender_kind=SenderKind.AGENT,
        )
        queued.provider_message_id = f"wamid.out.{marker}"
        await audit.record(
            session, ws, "conversation.viewed", subject_type="conversation", subject_id=conv.id
        )
        return contact.id


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _pg_dump(database_url: str) -> bytes:
    if shutil.which("pg_dump") is None:
        if IN_CI:
            pytest.fail("CI=true but pg_dump is not installed")
        pytest.skip("pg_dump is not installed")
    url = database_url.replace("postgresql+asyncpg://", "postgresql://")
    return subprocess.run(
        ["pg_dump", "--data-only", url], check=True, capture_output=True, timeout=120
    ).stdout


async def assert_gone_from_storage(runtime: Runtime, needle: bytes, kept: bytes) -> None:
    """`needle` is in no byte of the database files, a pg_dump or the data dir; `kept` is."""
    data_dir = runtime.settings.data_dir
    if runtime.engine.dialect.name == "sqlite":
        db_file = Path(runtime.settings.effective_database_url.split("///", 1)[1])
        assert db_file.exists()
        for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
            if path.exists():
                assert needle not in path.read_bytes(), path.name
        assert kept in db_file.read_bytes()  # the search really looks in the right file
    else:
        dump = await asyncio.to_thread(_pg_dump, runtime.settings.database_url)
        assert kept in dump
        assert needle not in dump
    assert _files_containing(data_dir, needle) == []
    assert _files_containing(data_dir, kept)


async def test_canary_is_gone_everywhere_after_erasure(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    other_id = await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")
    needle = MARKER.encode()

    # Sanity: the marker is really there (in rows, the search index, the files) before.
    async with runtime.sessions() as session:
        if runtime.engine.dialect.name == "sqlite":
            hits = await session.scalar(
                text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :q"),
                {"q": MARKER},
            )
            assert hits and hits >= 30
        assert await session.scalar(select(func.count()).select_from(Job)) == 2
    assert _files_containing(runtime.settings.data_dir, needle)
    caplog.clear()  # seeding wrote the marker on purpose; from here on nothing may log it

    async with runtime.sessions() as session:
        report = await erasure.erase(
            runtime.engine,
            session,
            secret_key=runtime.settings.secret_key,
            files=runtime.files,
            workspace_id=ws,
            contact_id=contact_id,
            actor_id=None,
            via="test",
        )
    logged = list(caplog.records)  # what the erasure logged (the checks below query the marker)
    assert report.messages == 32 and report.jobs == 1 and report.files_removed == 2
    assert report.pending_statuses == 1 and report.notes == 1 and report.identities == 2

    # The database rows: nothing of the contact, the other contact untouched.
    async with runtime.sessions() as session:
        assert await session.get(Contact, contact_id) is None
        assert await session.get(Contact, other_id) is not None
        remaining = await session.scalar(
            select(func.count()).select_from(Message).where(Message.body.contains("Keepme4Other"))
        )
        assert remaining == 32
        jobs = list(await session.scalars(select(Job)))
        assert len(jobs) == 1  # the other contact's queued send
        events = list(
            await session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.contact_id == contact_id)
                .order_by(ConsentEvent.id)
            )
        )
        assert [e.action for e in events] == ["granted", "withdrawn"]
        assert events[0].ip_address is None and events[0].user_agent is None
        assert events[0].text_hash == "ab" * 32
        assert await suppression.is_suppressed(
            session, runtime.settings.secret_key, ws, "+49 151 99990001"
        )
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 2
        assert await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "contact.erased", AuditEntry.subject_id == contact_id)
        )
        assert (await audit.verify(session, ws)).ok
        if runtime.engine.dialect.name == "sqlite":
            for table in ("messages_fts", "contacts_fts"):
                hits = await session.scalar(
                    text(f"SELECT count(*) FROM {table} WHERE {table} MATCH :q"), {"q": MARKER}
                )
                assert hits == 0, table

    # The bytes: data dir (SQLite file, its WAL, media), a pg_dump, the logs.
    await assert_gone_from_storage(runtime, needle, b"Keepme4Other")
    assert any("erased" in r.getMessage() for r in logged)
    for record in logged:
        assert MARKER not in f"{record.getMessage()} {record.exc_text or ''}", record.name


async def test_erasure_of_unknown_contact_changes_nothing(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    before = await helpers.count_rows(runtime)
    async with runtime.sessions() as session:
        with pytest.raises(erasure.ContactNotFound):
            await erasure.erase(
                runtime.engine,
                session,
                secret_key="k",
                files=runtime.files,
                workspace_id=ws,
                contact_id="nope",
                actor_id=None,
                via="test",
            )
    assert await helpers.count_rows(runtime) == before


async def test_canary_is_gone_after_retention_erases_an_inactive_contact(runtime: Runtime) -> None:

    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    async with runtime.sessions() as session, session.begin():
        old = utcnow() - timedelta(days=1200)
        await session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact_id)
            .values(last_message_at=old, created_at=old)
        )
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(created_at=old)
        )
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")
    result = await retention.run(
        runtime.sessions,
        runtime.settings.secret_key,
        runtime.files,
        engine=runtime.engine,
    )
    assert result.workspaces[ws].contacts == 1
    await assert_gone_from_storage(runtime, MARKER.encode(), b"Keepme4Other")


async def test_consent_proof_lets_only_ip_and_user_agent_be_cleared(runtime: Runtime) -> None:

    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        event = ConsentEvent(
            workspace_id=ws,
            contact_id="01contact",
            purpose="service_conversation",
            action="granted",
            source="web form",
            ip_address="192.0.2.7",
            user_agent="Mozilla/5.0",
            occurred_at=utcnow(),
        )
        session.add(event)
        await session.flush()
        event_id = event.id
    refused = [
        {"ip_address": None, "user_agent": None, "action": "refused"},
        {"ip_address": "192.0.2.8"},
        {"ip_address": None, "user_agent": None, "contact_id": "01other"},
    ]
    for values in refused:
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.sessions() as session, session.begin():
                await session.execute(
                    update(ConsentEvent).where(ConsentEvent.id == event_id).values(**values)
                )
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ConsentEvent)
            .where(ConsentEvent.id == event_id)
            .values(ip_address=None, user_agent=None)
        )
    async with runtime.sessions() as session:
        kept = await session.get_one(ConsentEvent, event_id)
    assert (kept.action, kept.ip_address, kept.user_agent) == ("granted", None, None)


def test_jobs_are_matched_by_whole_values_only() -> None:
    ids, addresses = {"01msg"}, {"12345"}
    assert erasure._mentions({"message_id": "01msg"}, ids, addresses)
    assert erasure._mentions({"channel_id": "c", "data": {"chat": {"id": 12345}}}, ids, addresses)
    assert not erasure._mentions({"data": {"chat": {"id": 123456}}}, ids, addresses)
    assert not erasure._mentions({"message_id": "01msg2", "to": "x12345"}, ids, addresses)
