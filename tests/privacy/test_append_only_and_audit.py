"""Consent proof and the audit log: the database refuses changes; tampering is detected."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from tests import helpers
from tresen.cli import app
from tresen.db.tables import AuditEntry, ConsentEvent
from tresen.db.types import utcnow
from tresen.privacy import audit
from tresen.runtime import Runtime


async def _consent(runtime: Runtime, ws: str) -> int:
    async with runtime.sessions() as session, session.begin():
        event = ConsentEvent(
            workspace_id=ws,
            contact_id="01contact",
            purpose="service",
            action="granted",
            source="keyword JA",
            text_version="v1",
            text_hash="ab" * 32,
            language="de",
            occurred_at=utcnow(),
        )
        session.add(event)
        await session.flush()
        return event.id


@pytest.mark.parametrize("change", ["update", "delete"])
async def test_consent_events_refuse_update_and_delete(runtime: Runtime, change: str) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    event_id = await _consent(runtime, ws)
    statement = (
        update(ConsentEvent).where(ConsentEvent.id == event_id).values(action="withdrawn")
        if change == "update"
        else delete(ConsentEvent).where(ConsentEvent.id == event_id)
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.sessions() as session, session.begin():
            await session.execute(statement)
    async with runtime.sessions() as session:
        stored = await session.get_one(ConsentEvent, event_id)
    assert stored.action == "granted"


async def test_audit_chain_verifies_and_detects_tampering(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        for i in range(5):
            await audit.record(
                session,
                ws,
                "conversation.viewed",
                actor_id="01user",
                subject_type="conversation",
                subject_id=f"c{i}",
            )
    async with runtime.sessions() as session:
        result = await audit.verify(session, ws)
    assert result.ok and result.entries == 5
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(AuditEntry).where(AuditEntry.subject_id == "c2").values(subject_id="cX")
            )
    # Someone with direct database access removes the protection and rewrites history:
    async with runtime.sessions() as session, session.begin():
        if runtime.engine.dialect.name == "postgresql":
            await session.execute(
                text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            )
        else:
            await session.execute(text("DROP TRIGGER audit_log_no_update"))
        await session.execute(
            update(AuditEntry).where(AuditEntry.subject_id == "c2").values(subject_id="cX")
        )
    async with runtime.sessions() as session:
        tampered = await audit.verify(session, ws)
    assert not tampered.ok and tampered.reason and "hash" in tampered.reason


async def test_audit_verify_command(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:

    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await audit.record(session, ws, "login", actor_id="01user")
    monkeypatch.setenv("TRESEN_DATABASE_URL", runtime.settings.effective_database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", runtime.settings.secret_key)

    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, ["audit", "verify"])
    )
    assert result.exit_code == 0, result.output
    assert "1 entries\tok" in result.output
