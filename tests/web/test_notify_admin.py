"""The status webhook of notifications in the browser: URL, statuses, write-only secret, test."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select, update

from tests import helpers
from tests.web.pagekit import csrf, person, sign_in
from tresen.db.tables import Message, Workspace
from tresen.integrations import notifications as notify
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

PAGE = "/inbox/admin/notifications"


class _Shop:
    """Records what the shop's endpoint got; answers with `status`."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.calls: list[tuple[bytes, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        self.calls.append((body, {k.decode(): v.decode() for k, v in scope["headers"]}))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _hook(runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session:
        workspace = (await session.scalars(select(Workspace))).one()
        return dict((workspace.settings or {}).get("notifications_webhook") or {})


async def test_the_owner_sets_the_webhook_tests_it_and_removes_it(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin", language="en")
    shop = _Shop()
    async with (
        serve_asgi(shop, lifespan="off") as shop_url,
        helpers.client_for(runtime) as client,
    ):
        await sign_in(client, "chefin@laden.example")
        page = await client.get(PAGE)
        assert page.status_code == 200 and "Send test event" not in page.text
        token = csrf(page.text)
        bad = await client.post(
            PAGE, data={"url": "shop.example/hook", "event": "sent", "_csrf_token": token}
        )
        assert bad.status_code == 422 and "http(s) address" in bad.text
        none = await client.post(PAGE, data={"url": f"{shop_url}/hook", "_csrf_token": token})
        assert none.status_code == 422 and "Tick at least one status." in none.text
        assert await _hook(runtime) == {}, "a refused form stores nothing"
        saved = await client.post(
            PAGE,
            data={"url": f"{shop_url}/hook", "event": ["sent", "failed"], "_csrf_token": token},
        )
        assert saved.status_code == 200
        shown = re.search(r'<span id="once"><code>(whsec_[^<]+)</code>', saved.text)
        assert shown, "a generated secret is shown once"
        secret = shown.group(1)
        hook = await _hook(runtime)
        assert hook == {"url": f"{shop_url}/hook", "secret": secret, "events": ["sent", "failed"]}
        again = await client.get(PAGE)
        assert secret not in again.text and "leave empty to keep it" in again.text
        kept = await client.post(
            PAGE,
            data={"url": f"{shop_url}/other", "event": "read", "secret": "", "_csrf_token": token},
        )
        assert kept.status_code == 303 and secret not in (await client.get(PAGE)).text
        assert (await _hook(runtime))["secret"] == secret, "an empty secret field keeps it"
        short = await client.post(
            PAGE,
            data={
                "url": f"{shop_url}/hook",
                "event": "read",
                "secret": "kurz",
                "_csrf_token": token,
            },
        )
        assert short.status_code == 422 and "16 to 200 characters" in short.text
        own = "mein-eigenes-langes-geheimnis"
        typed = await client.post(
            PAGE,
            data={"url": f"{shop_url}/hook", "event": "read", "secret": own, "_csrf_token": token},
        )
        assert typed.status_code == 303 and (await _hook(runtime))["secret"] == own
        tested = await client.post(f"{PAGE}/test", data={"_csrf_token": token})
        assert "The shop answered HTTP 204: the test event arrived." in tested.text
        body, headers = shop.calls[-1]
        assert json.loads(body)["event"] == "notification.test"
        assert notify.verify(own, body, headers["x-tresen-signature"])
        shop.status = 500
        failed = await client.post(f"{PAGE}/test", data={"_csrf_token": token})
        assert "The shop answered HTTP 500: it did not take the event." in failed.text
        await client.post(
            PAGE,
            data={"url": "http://10.255.255.1/hook", "event": "read", "_csrf_token": token},
        )
        guarded = await client.post(f"{PAGE}/test", data={"_csrf_token": token})
        assert "The outbound guard refused the address" in guarded.text
        off = await client.post(f"{PAGE}/off", data={"_csrf_token": token})
        assert off.status_code == 303 and await _hook(runtime) == {}
        untested = await client.post(f"{PAGE}/test", data={"_csrf_token": token})
        assert untested.status_code == 422 and "Save a webhook address first." in untested.text


async def test_only_the_chosen_statuses_become_events(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    token = await helpers.seed_token(runtime, ws)
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text("wamid.e1", "4915100000081", "Hallo")])
        )
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        created = await client.post(
            "/api/v1/notifications",
            json={
                "channel_id": channel.id,
                "to": "4915100000081",
                "template": "order_confirmation",
                "variables": {"name": "Jana", "order_number": "A-1", "total": "9,90 €"},
            },
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "e-1"},
        )
        assert created.status_code == 202, created.text
    async with runtime.sessions() as session, session.begin():
        await notify.configure_webhook(session, ws, "https://shop.example/hook", ["failed"])
    queued = []
    for state in ("sent", "delivered", "failed"):
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Message).where(Message.direction == "outbound").values(state=state)
            )
            queued.append(await notify.scan_status_changes(session))
    assert queued == [0, 0, 1], "only the chosen status became an event"
