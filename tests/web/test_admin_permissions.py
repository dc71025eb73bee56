"""The permission matrix of the admin pages and actions of issue 16: who may open and do what,
and a refused action changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests import helpers
from tests.web.pagekit import HTML, PASSWORD, csrf, person, sign_in
from tresen.db.tables import (
    ApiToken,
    CannedReply,
    ChannelRow,
    Invitation,
    Message,
    MessageTemplate,
    RoutingRule,
    Team,
    TeamMember,
    Topic,
    User,
    Workspace,
)
from tresen.runtime import Runtime

ADMIN = {"admin"}
SUPERVISORS = {"admin", "supervisor"}
EVERYONE = {"admin", "supervisor", "agent"}
WA = {
    "name": "Zweitnummer",
    "phone_number_id": "3000",
    "app_secret": "a-secret",
    "verify_token": "ein-wort",
    "access_token": "EAAG",
}


def _matrix(ids: dict[str, str]) -> list[tuple[str, str, dict[str, str], set[str]]]:
    """(method, path, form, roles allowed)."""
    channel, colleague, team, invitation = (
        ids["channel"],
        ids["colleague"],
        ids["team"],
        ids["invitation"],
    )
    return [
        ("GET", "/inbox/admin/channels", {}, ADMIN),
        ("GET", "/inbox/admin/channels/new/whatsapp", {}, ADMIN),
        ("GET", f"/inbox/admin/channels/{channel}", {}, ADMIN),
        ("POST", "/inbox/admin/channels/new/whatsapp", WA, ADMIN),
        (
            "POST",
            f"/inbox/admin/channels/{channel}",
            {"name": "Umbenannt", "phone_number_id": "1"},
            ADMIN,
        ),
        ("POST", f"/inbox/admin/channels/{channel}/enabled", {"enabled": "0"}, ADMIN),
        ("GET", "/inbox/admin/users", {}, ADMIN),
        (
            "POST",
            "/inbox/admin/users/invite",
            {"email": "neu@laden.example", "role": "admin"},
            ADMIN,
        ),
        (
            "POST",
            "/inbox/admin/users/create",
            {"email": "neu2@laden.example", "role": "admin"},
            ADMIN,
        ),
        ("POST", f"/inbox/admin/users/{colleague}/role", {"role": "admin"}, ADMIN),
        ("POST", f"/inbox/admin/users/{colleague}/reset", {}, ADMIN),
        ("POST", f"/inbox/admin/users/{colleague}/deactivate", {}, ADMIN),
        ("POST", f"/inbox/admin/users/{colleague}/reactivate", {}, ADMIN),
        ("POST", f"/inbox/admin/invitations/{invitation}/withdraw", {}, ADMIN),
        ("POST", "/inbox/admin/teams", {"name": "Verkauf"}, ADMIN),
        ("POST", f"/inbox/admin/teams/{team}/members", {"user_id": colleague}, ADMIN),
        (
            "POST",
            "/inbox/admin/routing",
            {"channel_id": channel, "team_id": team, "mode": "manual"},
            ADMIN,
        ),
        ("GET", "/setup/business", {}, ADMIN),
        (
            "POST",
            "/setup/business",
            {"name": "Anders", "timezone": "UTC", "language": "en", "form": "du"},
            ADMIN,
        ),
        ("GET", "/setup/channel", {}, ADMIN),
        ("POST", "/setup/done", {}, ADMIN),
        ("POST", f"/inbox/admin/users/{colleague}/remove", {}, ADMIN),
        ("POST", f"/inbox/admin/channels/{channel}/delete", {}, ADMIN),
        ("GET", "/inbox/admin/canned", {}, EVERYONE),
        (
            "POST",
            "/inbox/admin/canned",
            {"shortcut": "hi", "title": "Hi", "body": "Hallo"},
            SUPERVISORS,
        ),
        (
            "POST",
            "/inbox/admin/canned",
            {
                "shortcut": "lager",
                "title": "L",
                "body": "Im Lager",
                "scope": "team",
                "team_id": team,
            },
            SUPERVISORS,
        ),
        (
            "POST",
            "/inbox/admin/canned",
            {"shortcut": "meins", "title": "M", "body": "Nur ich", "scope": "personal"},
            EVERYONE,
        ),
        (
            "POST",
            f"/inbox/admin/canned/{ids['canned']}",
            {"shortcut": "gruss", "title": "G", "body": "Servus"},
            SUPERVISORS,
        ),
        ("POST", f"/inbox/admin/canned/{ids['canned']}/file/delete", {}, SUPERVISORS),
        ("POST", f"/inbox/admin/canned/{ids['canned']}/delete", {}, SUPERVISORS),
        ("GET", "/inbox/admin/topics", {}, ADMIN),
        ("POST", "/inbox/admin/topics", {"keyword": "ticker", "name": "Ticker"}, ADMIN),
        ("GET", "/inbox/admin/tokens", {}, ADMIN),
        ("POST", "/inbox/admin/tokens", {"name": "x", "scope": "all", "expires_in": ""}, ADMIN),
        ("GET", "/inbox/admin/campaigns/wizard", {}, ADMIN),
        ("GET", "/inbox/admin/campaigns/wizard/reach", {}, ADMIN),
        ("GET", "/inbox/admin/campaigns/wizard/preview", {}, ADMIN),
        ("GET", "/inbox/admin/campaigns/wizard/template-fields", {}, ADMIN),
        ("POST", "/inbox/admin/campaigns/wizard", {"name": "x", "go": "audience"}, ADMIN),
        ("GET", "/inbox/account", {}, EVERYONE),
        ("POST", "/inbox/account/totp", {}, EVERYONE),
    ]


async def _state(runtime: Runtime) -> Any:
    async with runtime.sessions() as session:
        users = tuple(
            (u.email, u.role, u.disabled, u.password_hash)
            for u in await session.scalars(select(User).order_by(User.id))
        )
        channels = tuple(
            (c.id, c.name, c.enabled, str(c.config))
            for c in await session.scalars(select(ChannelRow).order_by(ChannelRow.id))
        )
        invitations = tuple(
            (i.email, i.expires_at) for i in await session.scalars(select(Invitation))
        )
        teams = tuple(await session.scalars(select(Team.name)))
        members = tuple(
            (await session.execute(select(TeamMember.team_id, TeamMember.user_id))).all()
        )
        rules = tuple(await session.scalars(select(RoutingRule.mode)))
        settings = tuple(str(w.settings) for w in await session.scalars(select(Workspace)))
        api_tokens = tuple(await session.scalars(select(ApiToken.id)))
        canned = tuple(
            (await session.execute(select(CannedReply.shortcut, CannedReply.body))).all()
        )
        topics = tuple(await session.scalars(select(Topic.keyword)))
    return users, channels, invitations, teams, members, rules, settings, api_tokens, canned, topics


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
async def test_admin_pages_and_actions_per_role(runtime: Runtime, role: str) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    if role != "admin":
        await person(runtime, ws, f"{role}@laden.example", role)
    colleague = await person(runtime, ws, "kollege@laden.example", "agent")
    async with helpers.client_for(runtime) as boss:
        await sign_in(boss, "chefin@laden.example")
        token = csrf((await boss.get("/inbox/admin/users")).text)
        await boss.post("/inbox/admin/teams", data={"name": "Werkstatt", "_csrf_token": token})
        await boss.post(
            "/inbox/admin/users/invite",
            data={"email": "offen@laden.example", "role": "agent", "_csrf_token": token},
        )
        await boss.post(
            "/inbox/admin/canned",
            data={"shortcut": "gruss", "title": "G", "body": "Moin", "_csrf_token": token},
        )
    async with runtime.sessions() as session:
        team = await session.scalar(select(Team.id))
        invitation = await session.scalar(select(Invitation.id))
        canned = await session.scalar(select(CannedReply.id))
    ids = {
        "channel": channel.id,
        "colleague": colleague,
        "team": str(team),
        "invitation": str(invitation),
        "canned": str(canned),
    }
    email = "chefin@laden.example" if role == "admin" else f"{role}@laden.example"
    async with helpers.client_for(runtime) as client:
        assert (await sign_in(client, email, PASSWORD)).status_code == 303
        token = csrf((await client.get("/inbox")).text)
        for method, path, form, allowed in _matrix(ids):
            before = await _state(runtime)
            if method == "GET":
                response = await client.get(path, headers=HTML)
            else:
                response = await client.post(
                    path, data={**form, "_csrf_token": token}, headers=HTML
                )
            expected = role in allowed
            assert (response.status_code < 400) == expected, (
                role,
                method,
                path,
                response.status_code,
            )
            if not expected:
                assert response.status_code == 403 and "<html" in response.text
                assert await _state(runtime) == before, (
                    f"a refused {method} {path} changed something"
                )


async def _tool_state(runtime: Runtime) -> Any:
    async with runtime.sessions() as session:
        messages = tuple(await session.scalars(select(Message.id).order_by(Message.id)))
        templates = tuple(await session.scalars(select(MessageTemplate.name)))
        settings = tuple(str(w.settings) for w in await session.scalars(select(Workspace)))
        channels = tuple(
            (c.id, str(c.config), c.last_webhook_result)
            for c in await session.scalars(select(ChannelRow).order_by(ChannelRow.id))
        )
    return messages, templates, settings, channels


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
async def test_channel_tools_templates_and_status_webhook_per_role(
    runtime: Runtime, role: str
) -> None:
    """Live check, test message, templates and the status webhook: admins only; a refused call
    changes nothing, an allowed one is never refused (its own validation may still say no)."""
    ws, channel = await helpers.seed_whatsapp(runtime, api_base="http://127.0.0.1:1")
    await person(runtime, ws, "chefin@laden.example", "admin")
    if role != "admin":
        await person(runtime, ws, f"{role}@laden.example", role)
    body = helpers.dumps(
        helpers.wa_envelope(messages=[helpers.wa_text("wamid.p1", "4915100000001", "Hallo")])
    )
    async with helpers.client_for(runtime) as client:
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    base = f"/inbox/admin/channels/{channel.id}"
    matrix: list[tuple[str, str, dict[str, str]]] = [
        ("POST", f"{base}/check", {}),
        ("POST", f"{base}/test", {"known": "4915100000001"}),
        ("GET", f"{base}/templates", {}),
        ("POST", f"{base}/templates/sync", {}),
        (
            "POST",
            f"{base}/templates",
            {"name": "hallo", "language": "de", "category": "utility", "body": "Hallo"},
        ),
        ("GET", "/inbox/admin/notifications", {}),
        (
            "POST",
            "/inbox/admin/notifications",
            {"url": "https://shop.example/status", "event": "sent"},
        ),
        ("POST", "/inbox/admin/notifications/test", {}),
        ("POST", "/inbox/admin/notifications/off", {}),
    ]
    email = "chefin@laden.example" if role == "admin" else f"{role}@laden.example"
    async with helpers.client_for(runtime) as client:
        assert (await sign_in(client, email, PASSWORD)).status_code == 303
        token = csrf((await client.get("/inbox")).text)
        for method, path, form in matrix:
            before = await _tool_state(runtime)
            if method == "GET":
                response = await client.get(path, headers=HTML)
            else:
                response = await client.post(
                    path, data={**form, "_csrf_token": token}, headers=HTML
                )
            if role == "admin":
                assert response.status_code not in (403, 404), (path, response.status_code)
                assert response.status_code < 500
                assert response.status_code == 303 or "<html" in response.text
            else:
                assert response.status_code == 403 and "<html" in response.text, (role, path)
                assert await _tool_state(runtime) == before, f"a refused {path} changed something"
    if role == "admin":
        messages, _, settings, _ = await _tool_state(runtime)
        assert len(messages) == 2, "the admin's test message was queued"
        assert "notifications_webhook" not in settings[0], "the webhook was removed at the end"
