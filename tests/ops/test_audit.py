"""Admin actions land in the audit log with actor and target; admins read it on a page."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from tests import helpers
from tresen.broadcast import campaigns, topics
from tresen.cli import app
from tresen.db.tables import AuditEntry, Campaign
from tresen.inbox import accounts
from tresen.integrations.tokens import create_token, revoke_token
from tresen.privacy import audit
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


async def _entries(runtime: Runtime) -> list[tuple[str, str | None, str | None, str]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.action, e.actor_id, e.subject_id, str(e.details.get("via"))) for e in rows]


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/inbox/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    return await client.post(
        "/inbox/login", data={"email": email, "password": password, "_csrf_token": token.group(1)}
    )


async def test_tokens_users_and_sign_ins_are_audited_and_shown(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    audit.VIA.set("cli")
    async with runtime.sessions() as session, session.begin():
        chef = await accounts.add_user(session, ws, "chef@laden.example", "admin", PASSWORD)
        await accounts.add_user(session, ws, "kim@laden.example", "agent", PASSWORD)
        await create_token(session, ws, "shop", ["conversations:read"])
    async with runtime.sessions() as session, session.begin():
        token_id = (await _entries(runtime))[-1][2]
        assert token_id is not None and await revoke_token(session, ws, token_id)
    audit.VIA.set("system")
    async with helpers.client_for(runtime) as client:
        assert (await _login(client, "chef@laden.example", "falsch-falsch-falsch")).status_code
        assert (await _login(client, "chef@laden.example", PASSWORD)).status_code in (200, 303)
        page = await client.get("/inbox/admin/audit", headers={"Accept-Language": "de"})
    assert page.status_code == 200
    for label in (
        "Protokoll",
        "Fehlgeschlagene Anmeldung",
        "API-Token widerrufen",
        "Kommandozeile",
    ):
        assert label in page.text, label
    assert "Das Protokoll ist unversehrt: 4 Einträge" in page.text
    assert [e[:3] for e in await _entries(runtime)] == [
        ("token.create", None, token_id),
        ("token.revoke", None, token_id),
        ("user.login_failed", None, chef.id),
        ("user.login", chef.id, chef.id),
    ]
    async with helpers.client_for(runtime) as client:
        await _login(client, "kim@laden.example", PASSWORD)
        assert (await client.get("/inbox/admin/audit")).status_code == 403


async def test_a_campaign_started_by_a_person_names_them(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        chef = await accounts.add_user(session, ws, "chef@laden.example", "admin", PASSWORD)
        await topics.create_topic(session, ws, "neuigkeiten", "Neuigkeiten")
        campaign = await campaigns.create_campaign(
            session, ws, name="Herbst", topic="neuigkeiten", content={"text": "Hallo"},
            quiet_hours=None, channels=[channel.id],
        )  # fmt: skip
    audit.ACTOR.set(chef.id)
    audit.VIA.set("web")
    try:
        async with runtime.sessions() as session, session.begin():
            row = await session.get_one(Campaign, campaign.id)
            await campaigns.start(session, row)
            await campaigns.pause(session, row)
    finally:
        audit.ACTOR.set(None)
        audit.VIA.set("system")
    started = [e for e in await _entries(runtime) if e[0].startswith("campaign.")]
    assert started == [
        ("campaign.start", chef.id, campaign.id, "web"),
        ("campaign.pause", chef.id, campaign.id, "web"),
    ]


def test_cli_channel_add_is_audited(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    result = CliRunner().invoke(
        app,
        ["channel", "add", "whatsapp", "--name", "Laden", "--phone-number-id", "1234567890",
         "--app-secret", "s", "--verify-token", "v", "--access-token", "a", "--no-set-webhook"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verify = CliRunner().invoke(app, ["audit", "verify"])
    assert verify.exit_code == 0 and "1 entries" in verify.output, verify.output
    user = CliRunner().invoke(app, ["user", "add", "chef@laden.example", "--role", "admin"])
    assert user.exit_code == 0, user.output
    assert "2 entries" in CliRunner().invoke(app, ["audit", "verify"]).output
