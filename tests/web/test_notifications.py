"""Transactional notifications: templates, idempotency, marketing refused, status, signed webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from tests import helpers
from tests.pipeline.stack import running_stack
from tresen.db.tables import Contact, Conversation, Job, Message, MessageTemplate, Notification
from tresen.domain.ids import new_id
from tresen.integrations import notifications as notify
from tresen.jobs import queue
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

ORDER = {
    "template": "order_confirmation",
    "variables": {"name": "Jana", "order_number": "A-1001", "total": "49,90 €"},
}


async def _seed(runtime: Runtime) -> tuple[str, dict[str, str], Any]:
    """A WhatsApp channel, a customer who wrote, a token; returns (contact id, headers, channel)."""
    ws, channel = await helpers.seed_whatsapp(runtime)
    token = await helpers.seed_token(runtime, ws)
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text("wamid.n1", "4915100000081", "Hallo")])
        )
        sent = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        assert sent.status_code == 200
    async with runtime.sessions() as session:
        contact_id = (await session.scalars(select(Contact.id))).one()
    return contact_id, {"Authorization": f"Bearer {token}"}, channel


async def _messages(runtime: Runtime) -> list[Message]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Message).where(Message.direction == "outbound")))


async def test_same_key_twice_is_one_message(runtime: Runtime) -> None:
    contact_id, auth, _ = await _seed(runtime)
    async with helpers.client_for(runtime) as client:
        body = {"contact_id": contact_id, **ORDER}
        first = await client.post(
            "/api/v1/notifications", json=body, headers={**auth, "Idempotency-Key": "order-1001"}
        )
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "queued" and first.json()["category"] == "transactional"
        again = await client.post(
            "/api/v1/notifications", json=body, headers={**auth, "Idempotency-Key": "order-1001"}
        )
        assert again.status_code == 202 and again.json() == first.json()
        other = await client.post(
            "/api/v1/notifications",
            json={**body, "variables": {**ORDER["variables"], "order_number": "A-1002"}},
            headers={**auth, "Idempotency-Key": "order-1001"},
        )
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_conflict"
        status = await client.get(f"/api/v1/notifications/{first.json()['id']}", headers=auth)
        assert status.status_code == 200 and status.json()["status"] == "queued"
        missing = await client.post("/api/v1/notifications", json=body, headers=auth)
        assert missing.status_code == 400 and "Idempotency-Key" in missing.text
        bad_key = await client.post(
            "/api/v1/notifications", json=body, headers={**auth, "Idempotency-Key": "a b"}
        )
        assert bad_key.status_code == 400 and "idempotency_key" in bad_key.text
    [message] = await _messages(runtime)
    assert message.body == (
        "Hallo Jana, vielen Dank für Ihre Bestellung A-1001 über 49,90 €. "
        "Wir melden uns, sobald sie unterwegs ist."
    )


async def test_concurrent_requests_with_one_key_send_one_message(runtime: Runtime) -> None:
    contact_id, auth, _ = await _seed(runtime)
    async with helpers.client_for(runtime) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/notifications",
                    json={"contact_id": contact_id, **ORDER},
                    headers={**auth, "Idempotency-Key": "same-key"},
                )
                for _ in range(8)
            )
        )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(await _messages(runtime)) == 1
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"text": "Nur heute 20% Rabatt auf alles!", "category": "transactional"},
            422,
            "marketing_refused",
        ),
        (
            {"text": "Our big SALE starts now", "category": "transactional"},
            422,
            "marketing_refused",
        ),
        ({"text": "Ihre Rechnung liegt bei.", "category": "marketing"}, 422, "marketing_refused"),
        ({"text": "Ihre Rechnung liegt bei."}, 422, "marketing_refused"),
        (
            {
                "template": "order_confirmation",
                "category": "promotional",
                "variables": ORDER["variables"],
            },
            422,
            "marketing_refused",
        ),
        ({"template": "newsletter", "variables": {}}, 422, "unknown_template"),
        (
            {"template": "order_confirmation", "variables": {"name": "Jana"}},
            422,
            "missing_variable",
        ),
        (
            {"template": "order_confirmation", "variables": {**ORDER["variables"], "coupon": "X"}},
            422,
            "unknown_variable",
        ),
        (
            {
                "template": "order_confirmation",
                "variables": {"name": "Jetzt www.shop.de", "order_number": "1"},
            },
            422,
            "invalid_variable",
        ),
        (
            {
                "template": "order_shipped",
                "variables": {"name": "J", "order_number": "1", "tracking_url": "javascript:x"},
            },
            422,
            "invalid_variable",
        ),
        (
            {
                "template": "appointment_reminder",
                "variables": {"name": "J", "date": "2026-02-30", "time": "10:00"},
            },
            422,
            "invalid_variable",
        ),
        (
            {"text": "x", "template": "order_confirmation", "category": "transactional"},
            400,
            "template_or_text",
        ),
        ({}, 400, "template_or_text"),
        ({"text": "Hi {first_name}", "category": "transactional"}, 422, "missing_variable"),
        ({"template": 5}, 400, "invalid_request"),
        ({"template": "order_confirmation", "extra": 1}, 400, "invalid_request"),
    ],
)
async def test_refusals_are_clear_and_send_nothing(
    runtime: Runtime, body: dict[str, Any], status: int, code: str
) -> None:
    contact_id, auth, _ = await _seed(runtime)
    async with helpers.client_for(runtime) as client:
        answer = await client.post(
            "/api/v1/notifications",
            json={"contact_id": contact_id, **body},
            headers={**auth, "Idempotency-Key": "k1"},
        )
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert await _messages(runtime) == []
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0


async def test_templates_texts_and_recipients(runtime: Runtime) -> None:
    contact_id, auth, channel = await _seed(runtime)
    async with helpers.client_for(runtime) as client:

        async def post(key: str, body: dict[str, Any]) -> Any:
            return await client.post(
                "/api/v1/notifications", json=body, headers={**auth, "Idempotency-Key": key}
            )

        shipped = await post(
            "s1",
            {
                "channel_id": channel.id,
                "to": "4915100000081",
                "template": "order_shipped",
                "language": "en",
                "variables": {
                    "name": "Jana",
                    "order_number": "A-1001",
                    "tracking_url": "https://track.example/A-1001",
                    "carrier": "DHL",
                },
            },
        )
        assert shipped.status_code == 202, shipped.text
        reminder = await post(
            "r1",
            {
                "contact_id": contact_id,
                "template": "appointment_reminder",
                "variables": {
                    "name": "Jana",
                    "date": "2026-12-05",
                    "time": "09:30",
                    "place": "Werkstatt",
                },
            },
        )
        assert reminder.status_code == 202, reminder.text
        text = await post(
            "t1",
            {
                "contact_id": contact_id,
                "text": "Hallo {name}, Ihr Rad ist fertig und kann abgeholt werden.",
                "category": "transactional",
                "variables": {"name": "Jana"},
            },
        )
        assert text.status_code == 202, text.text
        unknown = await post("u1", {"channel_id": channel.id, "to": "4915199999999", **ORDER})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_recipient"
        nobody = await post("n1", {"contact_id": "01nonexistent0000000000000", **ORDER})
        assert nobody.status_code == 404
        async with runtime.sessions() as session, session.begin():
            await session.execute(update(Contact).values(consent_state="refused"))
        blocked = await post("b1", {"contact_id": contact_id, **ORDER})
        assert blocked.status_code == 422 and blocked.json()["error"]["code"] == "recipient_blocked"
        scoped = await helpers.seed_token(runtime, channel.workspace_id, ["messages:send"])
        denied = await client.post(
            "/api/v1/notifications",
            json={"contact_id": contact_id, **ORDER},
            headers={"Authorization": f"Bearer {scoped}", "Idempotency-Key": "x"},
        )
        assert denied.status_code == 403
    bodies = [m.body for m in await _messages(runtime)]
    assert bodies == [
        "Hello Jana, your order A-1001 is on its way with DHL. Tracking: https://track.example/A-1001",
        "Hallo Jana, wir erinnern Sie an Ihren Termin am 05.12.2026 um 09:30 Uhr (Werkstatt). "
        "Falls Sie nicht kommen können, antworten Sie bitte auf diese Nachricht.",
        "Hallo Jana, Ihr Rad ist fertig und kann abgeholt werden.",
    ]


class _Shop:
    """A shop's webhook receiver: records bodies and headers; fails the first `fail` calls."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.calls: list[tuple[bytes, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.calls.append((body, headers))
        status = 500 if len(self.calls) <= self.fail else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def _shop(fail: int = 0) -> AsyncIterator[tuple[_Shop, str]]:
    shop = _Shop(fail)
    async with serve_asgi(shop, lifespan="off") as url:
        yield shop, url


async def test_status_webhooks_are_signed_and_retried(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(notification_poll_seconds=0.05)
    async with _shop(fail=1) as (shop, shop_url), running_stack(runtime) as stack:
        async with runtime.sessions() as session, session.begin():
            secret = await notify.set_webhook(
                session, stack.channel.workspace_id, shop_url + "/hook"
            )
        assert secret is not None
        conv_id = await stack.customer_writes("Wo ist mein Paket?")
        contact_id = (await stack.api.get(f"/api/v1/conversations/{conv_id}")).json()["contact_id"]
        created = await stack.api.post(
            "/api/v1/notifications",
            json={"contact_id": contact_id, **ORDER},
            headers={"Idempotency-Key": "hook-1"},
        )
        assert created.status_code == 202
        nid = created.json()["id"]
        for _ in range(300):
            statuses = [json.loads(b)["status"] for b, _h in shop.calls[1:]]
            retried = shop.calls and shop.calls[0][0] in [b for b, _h in shop.calls[1:]]
            if "read" in statuses and retried:
                break
            await asyncio.sleep(0.05)
        read = await stack.api.get(f"/api/v1/notifications/{nid}")
        assert read.json()["status"] == "read" and read.json()["read_at"]
    assert statuses.count("read") == 1, statuses
    assert shop.calls[0][0] in [b for b, _h in shop.calls[1:]]  # the failed delivery, retried
    for body, headers in shop.calls:
        assert notify.verify(secret, body, headers["x-tresen-signature"])
        assert not notify.verify(secret, body + b" ", headers["x-tresen-signature"])
        assert not notify.verify("whsec_other", body, headers["x-tresen-signature"])
        event = json.loads(body)
        assert event["id"] == nid and event["event"] == "notification.status"
        assert "Jana" not in body.decode()  # ids and states only, no personal data


@given(
    st.sampled_from([*notify.TEMPLATES, "other"]),
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "order_number",
                "total",
                "tracking_url",
                "date",
                "time",
                "place",
                "carrier",
                "x",
            ]
        ),
        st.text(max_size=120),
    ),
    st.sampled_from(["de", "en"]),
)
def test_templates_refuse_bad_variables_clearly(
    name: str, variables: dict[str, str], lang: str
) -> None:
    try:
        text = notify.render_template(name, variables, lang)
    except notify.NotificationError as error:
        assert error.code in {
            "unknown_template",
            "unknown_variable",
            "missing_variable",
            "invalid_variable",
        }
        return
    if not any("{" in v for v in variables.values()):
        assert "{" not in text  # every placeholder was filled


@given(st.text(max_size=300), st.dictionaries(st.text(max_size=10), st.text(max_size=20)))
def test_free_texts_fill_only_plain_placeholders(text: str, variables: dict[str, str]) -> None:
    try:
        notify.render_text(text, variables)
    except notify.NotificationError as error:
        assert error.code == "missing_variable"


async def test_closed_window_uses_the_approved_template_of_the_same_name(runtime: Runtime) -> None:

    contact_id, auth, channel = await _seed(runtime)
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Conversation).values(last_inbound_at=datetime.now(UTC) - timedelta(days=2))
        )
    shipped = {
        "contact_id": contact_id,
        "template": "order_shipped",
        "variables": {
            "name": "Jana",
            "order_number": "A-1001",
            "tracking_url": "https://track.example/A-1001",
        },
    }
    async with helpers.client_for(runtime) as client:
        refused = await client.post(
            "/api/v1/notifications", json=shipped, headers={**auth, "Idempotency-Key": "s-1"}
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "window_closed"
        assert "name, order_number, tracking_url, carrier" in error["message"]
        assert await _messages(runtime) == []
        async with runtime.sessions() as session, session.begin():
            session.add(
                MessageTemplate(
                    id=new_id(),
                    workspace_id=channel.workspace_id,
                    channel_id=channel.id,
                    name="order_shipped",
                    language="de",
                    category="utility",
                    body="Hallo {{1}}, Bestellung {{2}} ist unterwegs: {{3}} ({{4}})",
                    status="approved",
                    updated_at=datetime.now(UTC),
                )
            )
        sent = await client.post(
            "/api/v1/notifications", json=shipped, headers={**auth, "Idempotency-Key": "s-2"}
        )
        assert sent.status_code == 202, sent.text
    [message] = await _messages(runtime)
    assert message.content_kind == "template"
    assert message.payload is not None and message.payload["parameters"] == [
        "Jana",
        "A-1001",
        "https://track.example/A-1001",
        "-",
    ]
    assert message.body == (
        "Hallo Jana, Bestellung A-1001 ist unterwegs: https://track.example/A-1001 (-)"
    )


async def test_a_webhook_the_guard_refuses_is_a_dead_letter_at_once(runtime: Runtime) -> None:
    # The shop's receiver is on loopback, which this install does not allow.
    strict = Runtime.create(runtime.settings.with_overrides(outbound_allow_hosts=""))
    try:
        async with _shop() as (shop, shop_url):
            ws, _channel = await helpers.seed_whatsapp(strict)
            async with strict.sessions() as session, session.begin():
                await notify.set_webhook(session, ws, shop_url + "/hook")
                queue.enqueue(
                    session,
                    notify.WEBHOOK_JOB,
                    {"body": {"event": "notification.status", "id": "n1", "status": "sent"}},
                    workspace_id=ws,
                    max_attempts=10,
                )
            async with helpers.worker_running(strict):
                for _ in range(200):
                    async with strict.sessions() as session:
                        job = await session.scalar(
                            select(Job).where(Job.kind == notify.WEBHOOK_JOB)
                        )
                    if job is not None and job.state == queue.DEAD:
                        break
                    await asyncio.sleep(0.05)
        assert job is not None and job.state == queue.DEAD, job and job.state
        assert job.attempts == 1, "a refusal by the guard is not retried"
        assert job.last_error and "outbound guard refused" in job.last_error
        assert "non-public" in job.last_error
        assert shop.calls == []
    finally:
        await strict.close()
