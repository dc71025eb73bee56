"""Revocable access: API tokens listed, revoked and expired (401 at once); users disabled or
removed with their sessions ended at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _login, _user
from tresen.cli import app as cli
from tresen.db.tables import ApiToken, Workspace
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.integrations.tokens import create_token, list_tokens
from tresen.runtime import Runtime


async def test_a_revoked_token_is_refused_at_once(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    admin = await helpers.seed_token(runtime, ws)
    other = await helpers.seed_token(runtime, ws, ["channels:read"])
    async with helpers.client_for(runtime) as client:
        as_admin = {"Authorization": f"Bearer {admin}"}
        as_other = {"Authorization": f"Bearer {other}"}
        assert (await client.get("/api/v1/channels", headers=as_other)).status_code == 200
        listed = (await client.get("/api/v1/tokens", headers=as_admin)).json()
        assert {t["state"] for t in listed} == {"active"} and len(listed) == 2
        assert all("token" not in t and "hash" not in str(t) for t in listed)
        target = next(t["id"] for t in listed if t["scopes"] == ["channels:read"])
        assert (await client.get("/api/v1/tokens", headers=as_other)).status_code == 403
        r = await client.delete(f"/api/v1/tokens/{target}", headers=as_admin)
        assert r.status_code == 204
        refused = await client.get("/api/v1/channels", headers=as_other)
        assert refused.status_code == 401
        again = await client.delete(f"/api/v1/tokens/{target}", headers=as_admin)
        assert again.status_code == 404


async def test_an_expired_token_is_refused(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        token = await create_token(session, ws, "kurz", ["all"], timedelta(days=1))
    auth = {"Authorization": f"Bearer {token}"}
    async with helpers.client_for(runtime) as client:
        assert (await client.get("/api/v1/channels", headers=auth)).status_code == 200
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert (await client.get("/api/v1/channels", headers=auth)).status_code == 401
    async with runtime.sessions() as session:
        assert [t.state for t in await list_tokens(session, ws)] == ["expired"]


async def test_tokens_of_another_workspace_cannot_be_revoked(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    mine = await helpers.seed_token(runtime, ws)
    other_ws = new_id()
    async with runtime.sessions() as session, session.begin():
        session.add(Workspace(id=other_ws, name="Anderer Laden", settings={}))
    await helpers.seed_token(runtime, other_ws)
    async with runtime.sessions() as session:
        foreign = await session.scalar(select(ApiToken.id).where(ApiToken.workspace_id == other_ws))
    async with helpers.client_for(runtime) as client:
        r = await client.delete(
            f"/api/v1/tokens/{foreign}", headers={"Authorization": f"Bearer {mine}"}
        )
        assert r.status_code == 404


async def test_disabling_a_user_ends_the_session_at_once(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    kim = await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        assert (await _login(client, "kim@laden.example")).status_code == 303
        assert (await client.get("/inbox")).status_code == 200
        async with runtime.sessions() as session, session.begin():
            await accounts.disable_user(session, kim)
        r = await client.get("/inbox")
        assert r.status_code == 303 and r.headers["location"] == "/inbox/login"
        assert (await _login(client, "kim@laden.example")).status_code == 401
        async with runtime.sessions() as session, session.begin():
            await accounts.enable_user(session, kim)
        assert (await _login(client, "kim@laden.example")).status_code == 303
        async with runtime.sessions() as session, session.begin():
            await accounts.remove_user(session, kim)
        assert (await client.get("/inbox")).status_code == 303
        assert (await _login(client, "kim@laden.example", PASSWORD)).status_code == 401


def test_cli_token_list_revoke_and_user_disable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    runner = CliRunner()
    made = runner.invoke(
        cli, ["token", "create", "shop", "--scope", "all", "--expires-in-days", "30"]
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["token", "list"])
    token_id, name, state, _created, expires, _scopes = listed.output.strip().split("\t")
    assert (name, state) == ("shop", "active") and expires != "never"
    assert made.output.strip() not in listed.output
    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 0
    assert "\trevoked\t" in runner.invoke(cli, ["token", "list"]).output
    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 2
    added = runner.invoke(cli, ["user", "add", "kim@laden.example", "--role", "agent"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(cli, ["user", "disable", "kim@laden.example"]).exit_code == 0
    assert runner.invoke(cli, ["user", "remove", "kim@laden.example"]).exit_code == 0
    gone = runner.invoke(cli, ["user", "disable", "kim@laden.example"])
    assert gone.exit_code == 2 and "no user" in gone.output
