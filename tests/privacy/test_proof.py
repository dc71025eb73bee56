"""A printable proof of consent per contact: every event, escaped, audited; also after erasure."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import _login, _user
from tresen.cli import app
from tresen.db.tables import AuditEntry, ChannelRow, ConsentEvent, Contact, Workspace
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy import audit, erasure
from tresen.privacy.consent import notice_for
from tresen.runtime import Runtime

XSS = "<script>alert(1)</script>"


async def _seed(runtime: Runtime) -> tuple[str, str, str]:
    """A contact who was asked, agreed, subscribed to a topic and withdrew it."""
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        workspace = await session.get_one(Workspace, ws)
        notice = notice_for(workspace, "de")
        contact = Contact(
            id=new_id(), workspace_id=ws, display_name="Jana Probe", consent_state="granted"
        )
        session.add(contact)
        start = utcnow() - timedelta(days=3)
        rows = [
            ("service_conversation", "requested", "whatsapp first contact", None, None),
            ("service_conversation", "granted", "whatsapp reply", None, None),
            ("topic:ticker", "requested", f"web form {XSS}", "192.0.2.44", "Mozilla/5.0 Probe"),
            ("topic:ticker", "granted", "link", None, "Mozilla/5.0 Probe"),
            ("topic:ticker", "withdrawn", "whatsapp keyword", None, None),
        ]
        for i, (purpose, action, source, ip, agent) in enumerate(rows):
            session.add(
                ConsentEvent(
                    workspace_id=ws,
                    contact_id=contact.id,
                    purpose=purpose,
                    action=action,
                    channel_id=channel.id,
                    source=source,
                    text_version=notice.version,
                    text_hash=notice.text_hash if purpose == "service_conversation" else "cd" * 32,
                    language="de",
                    ip_address=ip,
                    user_agent=agent,
                    occurred_at=start + timedelta(hours=i),
                )
            )
    return ws, contact.id, notice.text_hash


def _check(page: str, notice_hash: str) -> None:
    assert page.count('<tr class="requested">') == 2
    assert page.count('<tr class="withdrawn">') == 2  # the event and the topic's summary row
    for expected in (notice_hash, "cd" * 32, "192.0.2.44", "Mozilla/5.0 Probe", "topic:ticker"):
        assert expected in page
    assert XSS not in page and "&lt;script&gt;" in page
    assert "Datenschutz" in page  # the notice text whose hash matches is shown


async def test_proof_lists_every_event_and_is_audited(runtime: Runtime) -> None:
    ws, contact_id, notice_hash = await _seed(runtime)
    async with helpers.client_for(runtime) as client:
        await _user(runtime, await _channel(runtime), "chef@laden.de", "admin", language="de")
        await _user(runtime, await _channel(runtime), "hilfe@laden.de", "agent")
        await _login(client, "chef@laden.de")
        page = await client.get(f"/inbox/contacts/{contact_id}/consent-proof")
        assert page.status_code == 200
        assert "Nachweis der Einwilligung" in page.text and "widerrufen" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        _check(page.text, notice_hash)
        assert (await client.get("/inbox/contacts/nope/consent-proof")).status_code == 404
        client.cookies.clear()
        await _login(client, "hilfe@laden.de")
        assert (await client.get(f"/inbox/contacts/{contact_id}/consent-proof")).status_code == 403
    async with runtime.sessions() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "contact.consent_proof")
            )
        )
        assert [(e.subject_id, e.details["events"]) for e in entries] == [(contact_id, 5)]
        assert (await audit.verify(session, ws)).ok


async def _channel(runtime: Runtime):  # type: ignore[no-untyped-def]

    async with runtime.sessions() as session:
        return (await session.scalars(select(ChannelRow).limit(1))).one()


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI talks to the test's database."""
    monkeypatch.setenv("TRESEN_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", runtime.settings.secret_key)


async def test_cli_proof_also_after_erasure(
    runtime: Runtime, cli_env: None, tmp_path: Path
) -> None:
    ws, contact_id, notice_hash = await _seed(runtime)
    loop = asyncio.get_running_loop()

    async def tresen(*args: str) -> tuple[int, str]:
        result = await loop.run_in_executor(None, lambda: CliRunner().invoke(app, list(args)))
        return result.exit_code, result.output

    out = tmp_path / "proof.html"
    code, text = await tresen("privacy", "proof", contact_id, "--out", str(out), "--lang", "en")
    assert code == 0, text
    page = out.read_text(encoding="utf-8")
    assert "Proof of consent" in page and "Jana Probe" in page
    _check(page, notice_hash)

    async with runtime.sessions() as session:
        await erasure.erase(
            runtime.engine,
            session,
            secret_key=runtime.settings.secret_key,
            files=runtime.files,
            workspace_id=ws,
            contact_id=contact_id,
            actor_id=None,
            via="test",
        )
    code, text = await tresen("privacy", "proof", contact_id, "--out", str(out))
    assert code == 0, text
    page = out.read_text(encoding="utf-8")
    assert "Jana Probe" not in page and "192.0.2.44" not in page  # cleared by the erasure
    assert "gelöscht" in page and "erasure request" in page
    assert (await tresen("privacy", "proof", "nope", "--out", str(out)))[0] == 2
    assert (await tresen("privacy", "proof", contact_id, "--out", str(out), "--lang", "fr"))[0] == 2
