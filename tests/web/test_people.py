"""People in the browser: invitations, one-time passwords, roles, deactivation, removal,
teams and routing, my password and two-factor sign-in with recovery codes."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
from sqlalchemy import select, update

from tests import helpers
from tests.web.pagekit import HTML, PASSWORD, csrf, person, sign_in
from tresen.db.tables import Conversation, Invitation, RoutingRule, Team, TeamMember, User
from tresen.db.types import utcnow
from tresen.runtime import Runtime

NEW_PASSWORD = "ein-ganz-neues-passwort"


async def _user(runtime: Runtime, email: str) -> User:
    async with runtime.sessions() as session:
        found = await session.scalar(select(User).where(User.email == email))
    assert found is not None
    return found


async def test_an_invitation_link_works_once_and_expires(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as agent:
        await sign_in(agent, "kim@laden.example")
        token = csrf((await agent.get("/inbox")).text)
        refused = await agent.post(
            "/inbox/admin/users/invite",
            data={"email": "x@laden.example", "role": "admin", "_csrf_token": token},
        )
        assert refused.status_code == 403
    async with helpers.client_for(runtime) as admin:
        await sign_in(admin, "chefin@laden.example")
        token = csrf((await admin.get("/inbox/admin/users")).text)
        bad = await admin.post(
            "/inbox/admin/users/invite",
            data={"email": "kein-mail", "role": "agent", "_csrf_token": token},
        )
        assert bad.status_code == 422 and "Keine E-Mail-Adresse" in bad.text
        made = await admin.post(
            "/inbox/admin/users/invite",
            data={"email": "Lea@Laden.example", "role": "supervisor", "_csrf_token": token},
        )
        link = re.search(r'<span id="once"><code>([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
        path = link.split("://", 1)[1].split("/", 1)[1]
        late = await admin.post(
            "/inbox/admin/users/invite",
            data={"email": "alt@laden.example", "role": "agent", "_csrf_token": token},
        )
        assert late.status_code == 200
    async with helpers.client_for(runtime) as lea:
        form = await lea.get(f"/{path}")
        assert form.status_code == 200 and "lea@laden.example" in form.text
        joined = await lea.post(
            f"/{path}",
            data={
                "name": "Lea",
                "password": PASSWORD,
                "password_again": PASSWORD,
                "language": "en",
                "_csrf_token": csrf(form.text),
            },
        )
        assert joined.status_code == 303 and joined.headers["location"] == "/inbox"
        assert (await lea.get("/inbox")).status_code == 200, "joining signs the person in"
        again = await lea.get(f"/{path}")
        assert again.status_code == 410
        reuse = await lea.post(
            f"/{path}",
            data={"password": PASSWORD, "password_again": PASSWORD, "_csrf_token": csrf(form.text)},
        )
        assert reuse.status_code == 422
    assert (await _user(runtime, "lea@laden.example")).role == "supervisor"
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Invitation)
            .where(Invitation.email == "alt@laden.example")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with helpers.client_for(runtime) as admin:
        await sign_in(admin, "chefin@laden.example")
        page = await admin.get("/inbox/admin/users")
        assert "alt@laden.example" not in page.text, "an expired invitation is not listed"


async def test_roles_deactivation_and_removal(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    boss = await person(runtime, ws, "chefin@laden.example", "admin")
    kim = await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as admin, helpers.client_for(runtime) as agent:
        await sign_in(agent, "kim@laden.example")
        assert (await agent.get("/inbox")).status_code == 200
        await sign_in(admin, "chefin@laden.example")
        token = csrf((await admin.get("/inbox/admin/users")).text)
        created = await admin.post(
            "/inbox/admin/users/create",
            data={
                "email": "ole@laden.example",
                "role": "agent",
                "name": "Ole",
                "_csrf_token": token,
            },
        )
        one_time = re.search(r'<span id="once"><code>([^<]+)</code>', created.text).group(1)  # type: ignore[union-attr]
        last = await admin.post(
            f"/inbox/admin/users/{boss}/role", data={"role": "agent", "_csrf_token": token}
        )
        assert last.status_code == 422 and "letzte Admin" in last.text
        promoted = await admin.post(
            f"/inbox/admin/users/{kim}/role",
            data={"role": "supervisor", "max_open": "3", "_csrf_token": token},
        )
        assert promoted.status_code == 303
        bad_limit = await admin.post(
            f"/inbox/admin/users/{kim}/role",
            data={"role": "supervisor", "max_open": "viele", "_csrf_token": token},
        )
        assert bad_limit.status_code == 422
        me = await admin.post(f"/inbox/admin/users/{boss}/deactivate", data={"_csrf_token": token})
        assert me.status_code == 422
        off = await admin.post(f"/inbox/admin/users/{kim}/deactivate", data={"_csrf_token": token})
        assert off.status_code == 303
        assert (await agent.get("/inbox")).status_code == 303, "sessions end at once"
        assert (await sign_in(agent, "kim@laden.example")).status_code == 401
        on = await admin.post(f"/inbox/admin/users/{kim}/reactivate", data={"_csrf_token": token})
        assert on.status_code == 303
        assert (await sign_in(agent, "kim@laden.example")).status_code == 303
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text("wamid.1", "4915100000001", "Hallo")])
        )
        await admin.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        async with runtime.sessions() as session, session.begin():
            await session.execute(update(Conversation).values(assignee_id=kim))
        gone = await admin.post(f"/inbox/admin/users/{kim}/remove", data={"_csrf_token": token})
        assert gone.status_code == 303
        assert (await agent.get("/inbox")).status_code == 303
    async with helpers.client_for(runtime) as ole:
        assert (await sign_in(ole, "ole@laden.example", one_time)).status_code == 303
    async with runtime.sessions() as session:
        assert await session.get(User, kim) is None
        assert await session.scalar(select(Conversation.assignee_id)) is None


async def test_teams_and_routing_rules(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    kim = await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as admin:
        await sign_in(admin, "chefin@laden.example")
        token = csrf((await admin.get("/inbox/admin/users")).text)
        assert (
            await admin.post("/inbox/admin/teams", data={"name": "Werkstatt", "_csrf_token": token})
        ).status_code == 303
        twice = await admin.post(
            "/inbox/admin/teams", data={"name": "Werkstatt", "_csrf_token": token}
        )
        assert twice.status_code == 422
        async with runtime.sessions() as session:
            team = await session.scalar(select(Team))
        assert team is not None
        await admin.post(
            f"/inbox/admin/teams/{team.id}/members", data={"user_id": kim, "_csrf_token": token}
        )
        rule = await admin.post(
            "/inbox/admin/routing",
            data={
                "channel_id": channel.id,
                "team_id": team.id,
                "mode": "least_busy",
                "_csrf_token": token,
            },
        )
        assert rule.status_code == 303
        wrong = await admin.post(
            "/inbox/admin/routing",
            data={
                "channel_id": channel.id,
                "team_id": team.id,
                "mode": "los",
                "_csrf_token": token,
            },
        )
        assert wrong.status_code == 422
        page = await admin.get("/inbox/admin/users")
        assert "wer am wenigsten zu tun hat" in page.text
    async with runtime.sessions() as session:
        assert await session.scalar(select(TeamMember.user_id)) == kim
        stored = await session.scalar(select(RoutingRule))
        assert stored is not None and stored.mode == "least_busy"


async def test_my_password_and_two_factor_with_recovery_codes(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "kim@laden.example")
        page = await client.get("/inbox/account")
        token = csrf(page.text)
        wrong = await client.post(
            "/inbox/account/password",
            data={
                "current": "falsch",
                "new": NEW_PASSWORD,
                "new_again": NEW_PASSWORD,
                "_csrf_token": token,
            },
        )
        assert wrong.status_code == 422 and "stimmt nicht" in wrong.text
        changed = await client.post(
            "/inbox/account/password",
            data={
                "current": PASSWORD,
                "new": NEW_PASSWORD,
                "new_again": NEW_PASSWORD,
                "_csrf_token": token,
            },
        )
        assert changed.status_code == 200
        assert (await client.get("/inbox", headers=HTML)).status_code == 200, "still signed in"
        start = await client.post("/inbox/account/totp", data={"_csrf_token": token})
        secret = re.search(r'name="secret" value="([A-Z2-7]+)"', start.text).group(1)  # type: ignore[union-attr]
        signature = re.search(r'name="signature" value="([0-9a-f]+)"', start.text).group(1)  # type: ignore[union-attr]
        assert 'src="data:image/svg+xml' in start.text
        forged = await client.post(
            "/inbox/account/totp/confirm",
            data={
                "secret": "A" * 32,
                "signature": signature,
                "code": "123456",
                "_csrf_token": token,
            },
        )
        assert forged.status_code == 422
        nope = await client.post(
            "/inbox/account/totp/confirm",
            data={"secret": secret, "signature": signature, "code": "000000", "_csrf_token": token},
        )
        assert (
            nope.status_code == 422
            and (await _user(runtime, "kim@laden.example")).totp_secret is None
        )
        on = await client.post(
            "/inbox/account/totp/confirm",
            data={
                "secret": secret,
                "signature": signature,
                "code": pyotp.TOTP(secret).now(),
                "_csrf_token": token,
            },
        )
        codes = re.findall(r"<li>([0-9a-f]{6}-[0-9a-f]{6})</li>", on.text)
        assert on.status_code == 200 and len(codes) == 10
    async with helpers.client_for(runtime) as client:
        assert (await sign_in(client, "kim@laden.example", NEW_PASSWORD)).status_code == 401
        assert (
            await sign_in(client, "kim@laden.example", NEW_PASSWORD, pyotp.TOTP(secret).now())
        ).status_code == 303
    async with helpers.client_for(runtime) as client:
        assert (
            await sign_in(client, "kim@laden.example", NEW_PASSWORD, codes[0])
        ).status_code == 303
    async with helpers.client_for(runtime) as client:
        assert (
            await sign_in(client, "kim@laden.example", NEW_PASSWORD, codes[0])
        ).status_code == 401, "a recovery code works once"
    async with helpers.client_for(runtime) as client:
        assert (await sign_in(client, "kim@laden.example", PASSWORD, codes[1])).status_code == 401
