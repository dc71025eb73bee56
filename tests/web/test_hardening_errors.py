"""Client mistakes and probes get 4xx, never 500 or 503 (issue 14 points 6, 9, 11)."""

from __future__ import annotations

import httpx
import pytest

from tests import helpers
from tests.inbox.test_pages import _csrf, _login, _user
from tests.web.test_api import _inbound
from tresen.app import create_app
from tresen.db.tables import Workspace
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.runtime import Runtime

DEEP = b"[" * 5000 + b"]" * 5000


def _deep_object(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


async def test_deep_json_to_the_api_is_400(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    auth = {
        "Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}",
        "Content-Type": "application/json",
    }
    async with helpers.client_for(runtime) as client:
        for body in (DEEP, _deep_object(3000)):
            r = await client.post("/api/v1/messages", content=body, headers=auth)
            assert r.status_code == 400, r.text
            r = await client.post(
                "/api/v1/notifications", content=body, headers={**auth, "Idempotency-Key": "k1"}
            )
            assert r.status_code == 400, r.text


async def test_deep_json_to_a_signed_webhook_is_400(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    async with helpers.client_for(runtime) as client:
        for body in (DEEP, _deep_object(3000)):
            r = await client.post(
                f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
            )
            assert r.status_code == 400, r.text


async def test_reset_of_another_workspaces_user_is_404(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "chefin@laden.example", "admin")
    async with runtime.sessions() as session, session.begin():
        other = Workspace(id=new_id(), name="Anderer Laden", settings={})
        session.add(other)
        await session.flush()
        stranger = await accounts.add_user(
            session, other.id, "fremd@anders.example", "agent", "ganz-anderes-passwort"
        )
    async with helpers.client_for(runtime) as client:
        assert (await _login(client, "chefin@laden.example")).status_code == 303
        page = await client.get("/inbox/admin/users")
        r = await client.post(
            f"/inbox/admin/users/{stranger.id}/reset", data={"_csrf_token": _csrf(page.text)}
        )
        assert r.status_code == 404
        r = await client.post(
            f"/inbox/admin/users/{stranger.id}/totp-off", data={"_csrf_token": _csrf(page.text)}
        )
        assert r.status_code == 404


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_nul_bytes_are_400_on_postgres(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await _inbound(client, channel.id)
        r = await client.get("/api/v1/conversations/abc%00def", headers=auth)
        assert r.status_code in (400, 404), r.text
        r = await client.get("/api/v1/conversations?status=open%00", headers=auth)
        assert r.status_code == 400, r.text
        r = await client.post(
            "/api/v1/messages",
            json={
                "channel_id": channel.id,
                "to": "4915100000001",
                "kind": "text",
                "body": "a\x00b",
            },
            headers=auth,
        )
        assert r.status_code == 400, r.text
        r = await client.post(
            "/api/v1/messages",
            json={"channel_id": "x\x00y", "to": "4915100000001", "kind": "text", "body": "ab"},
            headers=auth,
        )
        assert r.status_code == 400, r.text
        page = await client.get("/inbox/login")
        r = await client.post(
            "/inbox/login",
            data={
                "email": "kim\x00@laden.example",
                "password": "x",
                "_csrf_token": _csrf(page.text),
            },
        )
        assert r.status_code in (400, 401), r.text
        r = await client.get("/inbox/search?q=a%00b")
        assert r.status_code in (303, 400), r.text


async def test_notifications_ask_for_a_token_before_the_idempotency_key(runtime: Runtime) -> None:
    async with helpers.client_for(runtime) as client:
        r = await client.post("/api/v1/notifications", json={})
        assert r.status_code == 401


async def test_options_lists_every_method_of_a_path(runtime: Runtime) -> None:
    async with helpers.client_for(runtime) as client:
        schema = (await client.get("/api/v1/openapi.json")).json()
        wrong = {}
        for path, ops in schema["paths"].items():
            methods = {m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")}
            concrete = path.replace("{", "").replace("}", "")
            r = await client.options(concrete)
            allowed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if not methods <= allowed:
                wrong[path] = (sorted(methods), sorted(allowed), r.status_code)
        assert not wrong


async def test_profile_form_redirects_only_to_own_pages(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await _login(client, "kim@laden.example")
        page = await client.get("/inbox")
        r = await client.post(
            "/inbox/me",
            data={"availability": "online", "_csrf_token": _csrf(page.text)},
            headers={"referer": "https://evil.example/phish"},
        )
        assert r.status_code == 303
        assert r.headers["location"].startswith("/"), r.headers["location"]
        assert not r.headers["location"].startswith("//")


async def test_signed_in_pages_are_not_stored_and_hsts_only_on_https(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        login = await client.get("/inbox/login")
        assert "strict-transport-security" not in login.headers
        await _login(client, "kim@laden.example")
        page = await client.get("/inbox")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
    secure = runtime.settings.with_overrides(base_url="https://laden.example")
    app = create_app(secure, runtime=runtime, embedded_worker=False, migrate=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://laden.example"
    ) as client:
        r = await client.get("/healthz")
        assert r.headers["strict-transport-security"].startswith("max-age=")
