"""REST API v1: auth and scopes, workspace scoping, validation, paging, OpenAPI."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import helpers
from tresen.channels.manage import add_channel
from tresen.db.tables import Conversation, Workspace
from tresen.db.types import utcnow
from tresen.runtime import Runtime


async def _inbound(client, channel_id: str, n: int = 1, sender: str = "4915100000001") -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        body = helpers.dumps(
            helpers.wa_envelope(
                messages=[helpers.wa_text(f"wamid.api{sender}{i}", sender, f"Frage {i}")]
            )
        )
        assert (
            await client.post(
                f"/webhooks/whatsapp/{channel_id}", content=body, headers=helpers.wa_sign(body)
            )
        ).status_code == 200


async def test_no_token_wrong_token_and_missing_scope(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    read_only = await helpers.seed_token(runtime, ws, ["conversations:read"])
    async with helpers.client_for(runtime) as client:
        assert (await client.get("/api/v1/conversations")).status_code == 401
        bad = await client.get(
            "/api/v1/conversations", headers={"Authorization": "Bearer tresen_nope"}
        )
        assert bad.status_code == 401 and "unknown" in bad.json()["error"]["message"]
        ok = await client.get(
            "/api/v1/conversations", headers={"Authorization": f"Bearer {read_only}"}
        )
        assert ok.status_code == 200
        denied = await client.post(
            "/api/v1/messages",
            json={"channel_id": channel.id, "to": "49151", "kind": "text", "body": "x"},
            headers={"Authorization": f"Bearer {read_only}"},
        )
        assert denied.status_code == 403 and "messages:send" in denied.json()["error"]["message"]


async def test_read_conversation_messages_and_contact(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    async with helpers.client_for(runtime) as client:
        await _inbound(client, channel.id, 3)
        [conv] = (await client.get("/api/v1/conversations", headers=auth)).json()["items"]
        assert conv["window_open"] is True and conv["status"] == "open"
        page1 = (
            await client.get(f"/api/v1/conversations/{conv['id']}/messages?limit=2", headers=auth)
        ).json()
        assert [m["body"] for m in page1["items"]] == ["Frage 2", "Frage 1"]
        page2 = (
            await client.get(
                f"/api/v1/conversations/{conv['id']}/messages?limit=2&before={page1['next_before']}",
                headers=auth,
            )
        ).json()
        assert [m["body"] for m in page2["items"]] == ["Frage 0"] and page2["next_before"] is None
        contact = (await client.get(f"/api/v1/contacts/{conv['contact_id']}", headers=auth)).json()
        assert contact["identities"] == [
            {
                "channel_id": channel.id,
                "address": "4915100000001",
                "display_name": None,
                "unreachable": False,
            }
        ]
        channels = (await client.get("/api/v1/channels", headers=auth)).json()
        assert channels[0]["webhook_url"].endswith(f"/webhooks/whatsapp/{channel.id}")
        assert "app_secret" not in str(channels) and helpers.WA_SECRET not in str(channels)


async def test_workspaces_see_nothing_of_each_other(runtime: Runtime) -> None:
    _ws_a, channel_a = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        other = Workspace(id="01otherworkspace0000000000", name="Andere GmbH", created_at=utcnow())
        session.add(other)
        await session.flush()
        await add_channel(
            session, other.id, "whatsapp", "B", {**helpers.WA_CONFIG, "phone_number_id": "999"}
        )
    token_b = await helpers.seed_token(runtime, "01otherworkspace0000000000")
    auth_b = {"Authorization": f"Bearer {token_b}"}
    async with helpers.client_for(runtime) as client:
        await _inbound(client, channel_a.id)
        async with runtime.sessions() as session:
            conv = (await session.scalars(select(Conversation))).one()
        assert (await client.get("/api/v1/conversations", headers=auth_b)).json()["items"] == []
        for path in (
            f"/api/v1/conversations/{conv.id}",
            f"/api/v1/conversations/{conv.id}/messages",
            f"/api/v1/contacts/{conv.contact_id}",
        ):
            assert (await client.get(path, headers=auth_b)).status_code == 404, path
        send = await client.post(
            f"/api/v1/conversations/{conv.id}/messages",
            json={"kind": "text", "body": "x"},
            headers=auth_b,
        )
        assert send.status_code == 404
        other_channels = (await client.get("/api/v1/channels", headers=auth_b)).json()
        assert [c["name"] for c in other_channels] == ["B"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "text", "body": ""}, 422, "empty_body"),
        ({"kind": "text", "body": "x" * 4097}, 422, "too_long"),
        ({"kind": "text"}, 422, "empty_body"),
        ({"kind": "fax", "body": "x"}, 400, "invalid_request"),
        ({"kind": "text", "body": "x", "surprise": 1}, 400, "invalid_request"),
        ({"kind": "template", "payload": {}}, 422, "template_name"),
        (
            {
                "kind": "interactive",
                "body": "Wähle",
                "payload": {"buttons": [{"id": str(i)} for i in range(4)]},
            },
            422,
            "buttons",
        ),
        (
            {
                "kind": "interactive",
                "body": "Wähle",
                "payload": {"buttons": [{"id": str(i), "title": str(i)} for i in range(21)]},
            },
            422,
            "buttons",
        ),
        ({"kind": "media", "payload": {"link": "javascript:alert(1)"}}, 422, "media_link"),
    ],
)
async def test_bad_send_requests_are_refused_clearly(
    runtime: Runtime, body: dict, status: int, code: str
) -> None:  # type: ignore[type-arg]
    ws, channel = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    async with helpers.client_for(runtime) as client:
        await _inbound(client, channel.id)
        [conv] = (await client.get("/api/v1/conversations", headers=auth)).json()["items"]
        before = await helpers.count_rows(runtime)
        response = await client.post(
            f"/api/v1/conversations/{conv['id']}/messages", json=body, headers=auth
        )
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]
        assert await helpers.count_rows(runtime) == before


async def test_send_to_unknown_address_needs_a_template(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    async with helpers.client_for(runtime) as client:
        response = await client.post(
            "/api/v1/messages",
            json={"channel_id": channel.id, "to": "4917000000", "kind": "text", "body": "Hi"},
            headers=auth,
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == "window_closed"
        await _inbound(client, channel.id, sender="4917000000")
        ok = await client.post(
            "/api/v1/messages",
            json={"channel_id": channel.id, "to": "4917000000", "kind": "text", "body": "Hi"},
            headers=auth,
        )
        assert ok.status_code == 202 and ok.json()["state"] == "queued"


async def test_not_found_and_malformed_json(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    async with helpers.client_for(runtime) as client:
        assert (await client.get("/api/v1/messages/nope", headers=auth)).status_code == 404
        assert (await client.get("/api/v1/conversations?limit=0", headers=auth)).status_code == 400
        broken = await client.post(
            "/api/v1/conversations/x/messages",
            content=b"{",
            headers={**auth, "Content-Type": "application/json"},
        )
        assert broken.status_code == 400 and broken.json()["error"]["message"]
        assert (await client.get("/api/v1/nothing-here", headers=auth)).status_code == 404


async def test_openapi_health_and_metrics(runtime: Runtime) -> None:
    async with helpers.client_for(runtime) as client:
        doc = (await client.get("/api/v1/openapi.json")).json()
        assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
        assert "/api/v1/conversations/{conversation_id}/messages" in doc["paths"]
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert "tresen_webhooks_total" in (await client.get("/metrics")).text
        assert (
            "tresen REST API"
            in (await client.get("/api/v1/docs", headers={"accept-language": "en"})).text
        )


async def test_conversations_list_newest_activity_first_and_pages(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    auth = {"Authorization": f"Bearer {await helpers.seed_token(runtime, ws)}"}
    async with helpers.client_for(runtime) as client:
        for sender in ("4915100000011", "4915100000012", "4915100000013"):
            await _inbound(client, channel.id, 1, sender=sender)
        # The oldest conversation gets the newest message: it moves to the top.
        body = helpers.dumps(
            helpers.wa_envelope(
                messages=[helpers.wa_text("wamid.api-late", "4915100000011", "Noch was")]
            )
        )
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        async with runtime.sessions() as session:
            by_created = list(
                await session.scalars(select(Conversation).order_by(Conversation.created_at))
            )
        expected = [by_created[0].id, by_created[2].id, by_created[1].id]
        page1 = (await client.get("/api/v1/conversations?limit=2", headers=auth)).json()
        assert [c["id"] for c in page1["items"]] == expected[:2]
        page2 = (
            await client.get(
                f"/api/v1/conversations?limit=2&before={page1['next_before']}", headers=auth
            )
        ).json()
        assert [c["id"] for c in page2["items"]] == expected[2:] and page2["next_before"] is None
        unknown = await client.get("/api/v1/conversations?before=nope", headers=auth)
        assert unknown.status_code == 404  # names no conversation (schema-valid input: not 400)
