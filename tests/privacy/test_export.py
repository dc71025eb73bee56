"""Export (Art. 15/20) and erasure from the CLI, the REST API and the inbox; all audited."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import _csrf, _login, _user
from tests.privacy.test_erasure import MARKER, seed_contact
from tresen.cli import app
from tresen.db.tables import AuditEntry, Contact, Workspace
from tresen.privacy import audit
from tresen.privacy.export import export_contact
from tresen.runtime import Runtime


def _zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def _check_archive(archive: zipfile.ZipFile, contact_id: str) -> None:
    names = set(archive.namelist())
    assert {"README.txt", "data.json", "messages.jsonl", "index.html"} <= names
    data = json.loads(archive.read("data.json"))
    assert data["format"] == "tresen-export-v1"
    assert data["contact"]["id"] == contact_id
    assert data["contact"]["attributes"]["customer_no"] == f"K-{MARKER}"
    assert {i["address"] for i in data["identities"]} == {
        "4915199990001",
        f"{MARKER.lower()}@example.org",
    }
    assert [e["action"] for e in data["consent_events"]] == ["granted"]
    assert data["consent_events"][0]["user_agent"] == f"Mozilla/5.0 {MARKER}"
    assert [n["body"] for n in data["notes"]] == [f"Frau {MARKER} ruft morgen an"]
    assert any(a["action"] == "conversation.viewed" for a in data["audit_entries"])
    messages = [json.loads(line) for line in archive.read("messages.jsonl").splitlines()]
    assert len(messages) == 32
    assert sum(1 for m in messages if m["direction"] == "outbound") == 1
    files = [m["file"] for m in data["media"]]
    assert files[0] == f"media/{MARKER.lower()}-scan.png", "a file the message names"
    assert files[1].endswith(f"-rechnung-{MARKER}.pdf"), "a file of the media table"
    assert len(files) == 2
    assert archive.read(data["media"][0]["file"]).startswith(b"\x89PNG")
    page = archive.read("index.html").decode()
    assert f"Meine Kundennummer ist {MARKER}" in page and "<script" not in page
    readme = archive.read("README.txt").decode()
    for field in ("identities", "consent_events", "messages.jsonl", "audit_entries", "media/"):
        assert field in readme


async def test_export_holds_everything_and_is_audited(runtime: Runtime, tmp_path: Path) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")
    out = tmp_path / "export.zip"
    summary = await export_contact(
        runtime.sessions,
        workspace_id=ws,
        contact_id=contact_id,
        files=runtime.files,
        out=out,
        actor_id=None,
        via="test",
    )
    assert summary.messages == 32 and summary.files == 2
    with zipfile.ZipFile(out) as archive:
        _check_archive(archive, contact_id)
        assert b"Keepme4Other" not in b"".join(archive.read(n) for n in archive.namelist())
    async with runtime.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "contact.exported")
        )
        assert entry is not None and entry.subject_id == contact_id
        assert entry.details["messages"] == 32
        assert (await audit.verify(session, ws)).ok


async def test_api_export_and_erase_need_their_scopes(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    reader = await helpers.seed_token(runtime, ws, ["contacts:read"])
    exporter = await helpers.seed_token(runtime, ws, ["privacy:export"])
    eraser = await helpers.seed_token(runtime, ws, ["privacy:erase"])
    async with runtime.sessions() as session, session.begin():
        session.add(Workspace(id="01otherworkspace0000000000", name="Andere GmbH"))
    stranger = await helpers.seed_token(runtime, "01otherworkspace0000000000")
    async with helpers.client_for(runtime) as client:

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        url = f"/api/v1/contacts/{contact_id}"
        # Another workspace's token, with every scope, finds nothing of this one.
        assert (await client.get(f"{url}/export", headers=auth(stranger))).status_code == 404
        assert (await client.delete(url, headers=auth(stranger))).status_code == 404
        assert (await client.get(f"{url}/export", headers=auth(reader))).status_code == 403
        assert (await client.delete(url, headers=auth(exporter))).status_code == 403
        missing = await client.get("/api/v1/contacts/nobody/export", headers=auth(exporter))
        assert missing.status_code == 404
        got = await client.get(f"{url}/export", headers=auth(exporter))
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        _check_archive(_zip(got.content), contact_id)
        assert not list((runtime.settings.data_dir / "exports").iterdir())  # temp file gone

        erased = await client.delete(url, headers=auth(eraser))
        assert erased.status_code == 200, erased.text
        assert erased.json()["messages"] == 32 and erased.json()["files"] == 2
        assert (await client.delete(url, headers=auth(eraser))).status_code == 404
        assert (await client.get(url, headers=auth(reader))).status_code == 404
        spec = (await client.get("/api/v1/openapi.json")).json()
        assert "delete" in spec["paths"]["/api/v1/contacts/{contact_id}"]
    async with runtime.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions[-2:] == ["contact.exported", "contact.erased"]
        assert (await audit.verify(session, ws)).ok


async def test_inbox_admin_exports_and_erases_with_confirmation(
    runtime: Runtime,
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    await _user(runtime, channel, "chefin@laden.de", "admin")
    await _user(runtime, channel, "agent@laden.de", "agent")
    async with runtime.sessions() as session:
        conv_id = await session.scalar(
            select(func.min(AuditEntry.subject_id)).where(AuditEntry.subject_type == "conversation")
        )
    async with helpers.client_for(runtime) as agent:
        await _login(agent, "agent@laden.de")
        page = await agent.get(f"/inbox/c/{conv_id}")
        assert "/erase" not in page.text
        csrf = _csrf(page.text)
        refused = await agent.post(
            f"/inbox/contacts/{contact_id}/erase", data={"_csrf_token": csrf, "confirm": "yes"}
        )
        assert refused.status_code == 403
    async with helpers.client_for(runtime) as admin:
        await _login(admin, "chefin@laden.de")
        page = await admin.get(f"/inbox/c/{conv_id}")
        assert f"/inbox/contacts/{contact_id}/export" in page.text
        csrf = _csrf(page.text)
        got = await admin.post(f"/inbox/contacts/{contact_id}/export", data={"_csrf_token": csrf})
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        archive = _zip(got.content)
        _check_archive(archive, contact_id)
        readme = archive.read("README.txt").decode()
        index = archive.read("index.html").decode()
        assert readme.startswith("Export personenbezogener Daten"), "German UI, German export"
        assert "This archive" not in readme and "Personal data held by" not in index
        assert "<h2>Nachrichten</h2>" in index and "<th>Zeitpunkt</th>" in index
        unconfirmed = await admin.post(
            f"/inbox/contacts/{contact_id}/erase", data={"_csrf_token": csrf}
        )
        assert unconfirmed.status_code == 422
        async with runtime.sessions() as session:
            assert await session.get(Contact, contact_id) is not None
        done = await admin.post(
            f"/inbox/contacts/{contact_id}/erase", data={"_csrf_token": csrf, "confirm": "yes"}
        )
        assert done.status_code == 303
    async with runtime.sessions() as session:
        assert await session.get(Contact, contact_id) is None
        erased = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "contact.erased")
        )
        assert erased is not None and erased.actor_id is not None
        assert (await audit.verify(session, ws)).ok


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the `tresen` command at this test's database and data dir."""
    monkeypatch.setenv("TRESEN_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", runtime.settings.secret_key)


async def test_cli_export_and_erase(runtime: Runtime, cli_env: None, tmp_path: Path) -> None:

    _, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    runner = CliRunner()
    loop = asyncio.get_running_loop()

    async def tresen(*args: str, stdin: str | None = None) -> Result:
        return await loop.run_in_executor(None, lambda: runner.invoke(app, list(args), input=stdin))

    out = tmp_path / "out" / "c.zip"
    done = await tresen("privacy", "export", contact_id, "--out", str(out))
    assert done.exit_code == 0, done.output
    with zipfile.ZipFile(out) as archive:
        _check_archive(archive, contact_id)
    unknown = await tresen("privacy", "export", "nobody", "--out", str(out))
    assert unknown.exit_code == 2 and "no contact" in unknown.output
    declined = await tresen("privacy", "erase", contact_id, stdin="n\n")
    assert declined.exit_code != 0
    assert (await tresen("privacy", "export", contact_id, "--out", str(out))).exit_code == 0
    confirmed = await tresen("privacy", "erase", contact_id, stdin="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "32 messages" in confirmed.output
    again = await tresen("privacy", "erase", contact_id, "--yes")
    assert again.exit_code == 2
    verified = await tresen("audit", "verify")
    assert verified.exit_code == 0 and "ok" in verified.output
