"""The web chat channel: config, visitor sessions, CORS, messages, live replies, uploads, limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests import helpers
from tresen.app import create_app
from tresen.channels.base import ConfigError, OutboundMessage, PermanentError
from tresen.channels.manage import add_channel, default_workspace
from tresen.channels.webchat import WebchatChannel, visitor_address
from tresen.db.tables import ChannelRow, Conversation, Message
from tresen.domain.message import ContentKind
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

SHOP = "http://shop.example:8080"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@dataclass
class Chat:
    """tresen over HTTP with one web chat channel and an API client for agents."""

    runtime: Runtime
    channel: ChannelRow
    base_url: str
    api: httpx.AsyncClient
    web: httpx.AsyncClient

    async def session(self, token: str | None = None, origin: str = SHOP) -> str:
        """A visitor token (new, or the given one resumed)."""
        r = await self.web.post(
            f"/chat/{self.channel.id}/session", json={"token": token}, headers={"origin": origin}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def say(self, token: str, text: str, msg_id: str = "") -> httpx.Response:
        """The visitor writes."""
        return await self.web.post(
            f"/chat/{self.channel.id}/messages",
            json={"id": msg_id or f"m{time.monotonic_ns()}", "text": text},
            headers={"origin": SHOP, "x-tresen-visitor": token},
        )

    async def conversation(self, token: str) -> str:
        """The visitor's conversation id."""
        for _ in range(100):
            async with self.runtime.sessions() as session:
                conv = await session.scalar(
                    select(Conversation.id).where(Conversation.channel_id == self.channel.id)
                )
            if conv:
                return str(conv)
            await asyncio.sleep(0.05)
        raise AssertionError("no conversation stored")


async def seed_webchat(runtime: Runtime, **config: Any) -> ChannelRow:
    """A workspace with one web chat channel."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Testladen")
        return await add_channel(
            session,
            ws.id,
            "webchat",
            "Web chat",
            {
                "allowed_origins": [SHOP],
                "title": "Fahrradladen",
                "privacy_notice": "Wir speichern Ihre Nachrichten, um zu antworten.",
                "privacy_link": "https://shop.example/datenschutz",
                **config,
            },
        )


@asynccontextmanager
async def running_chat(runtime: Runtime, **config: Any) -> AsyncIterator[Chat]:
    """tresen served on loopback (with its worker), a web chat channel and clients."""
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
    async with serve_asgi(app) as base_url:
        channel = await seed_webchat(runtime, **config)
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with (
            httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
            ) as api,
            httpx.AsyncClient(base_url=base_url, timeout=10) as web,
        ):
            yield Chat(runtime, channel, base_url, api, web)


async def read_events(
    chat: Chat, token: str, want: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Read `want` message events from the visitor's SSE stream."""
    found: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(timeout),
        chat.web.stream(
            "GET",
            f"/chat/{chat.channel.id}/events",
            headers={"origin": SHOP, "x-tresen-visitor": token},
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == SHOP
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "message":
                found.append(json.loads(line[6:]))
                if len(found) >= want:
                    return found
    return found


def test_config_normalised_and_checked() -> None:
    config = WebchatChannel.check_config(
        {
            "allowed_origins": "https://Shop.Example, http://localhost:3000/",
            "max_upload_bytes": "1000",
        }
    )
    assert config["allowed_origins"] == ["http://localhost:3000", "https://shop.example"]
    assert config["max_upload_bytes"] == 1000
    assert "application/pdf" in config["allowed_upload_types"]
    with pytest.raises(ConfigError, match="not an origin"):
        WebchatChannel.check_config({"allowed_origins": ["https://shop.example/page"]})
    with pytest.raises(ConfigError, match="not supported"):
        WebchatChannel.check_config({"allowed_upload_types": ["text/html"]})
    with pytest.raises(ConfigError):
        WebchatChannel.check_config({"tracking": True})


async def test_send_makes_reply_visible_and_refuses_non_visitors() -> None:
    async with httpx.AsyncClient() as http:
        chat = WebchatChannel({"allowed_origins": [SHOP]}, http)
        to = visitor_address("t" * 43)
        out = OutboundMessage(to, ContentKind.TEXT, "Hallo", {}, "01ref")
        assert (await chat.send(out)).provider_message_id == "webchat-01ref"
        with pytest.raises(PermanentError):
            await chat.send(OutboundMessage("4915112345678", ContentKind.TEXT, "x", {}, "r"))
        with pytest.raises(PermanentError, match="file"):
            await chat.send(OutboundMessage(to, ContentKind.MEDIA, None, {}, "r"))
        assert chat.origin_allowed("http://shop.example:8080")
        assert not chat.origin_allowed("https://evil.example")


async def test_visitor_chats_agent_replies_live(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        token = await chat.session()
        assert await chat.session(token) == token, "a stored token resumes the session"
        r = await chat.say(token, "Ist das Rad da?", "retry-0001")
        assert r.status_code == 201, r.text
        assert (await chat.say(token, "Ist das Rad da?", "retry-0001")).status_code == 201
        conversation = await chat.conversation(token)
        async with runtime.sessions() as session:
            rows = list(await session.scalars(select(Message)))
        assert len(rows) == 1, "a retried message is stored once"
        assert rows[0].body == "Ist das Rad da?"

        reader = asyncio.create_task(read_events(chat, token, 2))
        await asyncio.sleep(0.3)
        sent = await chat.api.post(
            f"/api/v1/conversations/{conversation}/messages",
            json={"kind": "text", "body": "<b>Ja</b>, ist da!"},
        )
        assert sent.status_code in (200, 201, 202), sent.text
        events = await reader
        assert [e["from"] for e in events] == ["visitor", "agent"]
        assert events[1]["text"] == "<b>Ja</b>, ist da!"
        # Offline visitor: the reply is still there on the next connect (the row is the truth).
        again = await read_events(chat, token, 2)
        assert [e["id"] for e in again] == [e["id"] for e in events]
        for _ in range(100):
            async with runtime.sessions() as session:
                state = await session.scalar(
                    select(Message.state).where(Message.id == events[1]["id"])
                )
            if state == "delivered":
                break
            await asyncio.sleep(0.05)
        assert state == "delivered"


async def test_other_visitor_sees_nothing(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        token = await chat.session()
        await chat.say(token, "privat")
        await chat.conversation(token)
        stranger = await chat.session()
        with pytest.raises(TimeoutError):
            await read_events(chat, stranger, 1, timeout=1.0)
        mine = await read_events(chat, token, 1)
        assert mine[0]["text"] == "privat"


async def test_origins_tokens_and_limits(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        cid = chat.channel.id
        r = await chat.web.post(
            f"/chat/{cid}/session", json={}, headers={"origin": "https://evil.example"}
        )
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers
        pre = await chat.web.options(
            f"/chat/{cid}/messages",
            headers={"origin": SHOP, "access-control-request-method": "POST"},
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == SHOP
        assert "x-tresen-visitor" in pre.headers["access-control-allow-headers"]
        r = await chat.web.post(f"/chat/{cid}/messages", json={"id": "abcdefgh", "text": "x"})
        assert r.status_code == 401
        assert "set-cookie" not in r.headers, "no cookies for visitors"
        token = await chat.session()
        assert (await chat.say(token, "   ")).status_code == 400
        codes = [(await chat.say(token, f"n{i}")).status_code for i in range(12)]
        assert codes.count(201) == 9 and codes[-1] == 429, "the empty one counted too"
        assert (await chat.web.post("/chat/nope/session", json={})).status_code == 404


async def test_upload_limits(runtime: Runtime) -> None:
    async with running_chat(runtime, max_upload_bytes=1000) as chat:
        token = await chat.session()
        url = f"/chat/{chat.channel.id}/upload"
        head = {"origin": SHOP, "x-tresen-visitor": token}
        big = await chat.web.post(
            url, content=PNG * 20, headers={**head, "content-type": "image/png"}
        )
        assert big.status_code == 413
        assert "larger than" in big.json()["error"]["message"]
        assert big.headers["access-control-allow-origin"] == SHOP
        html = await chat.web.post(
            url, content=b"<html>", headers={**head, "content-type": "text/html"}
        )
        assert html.status_code == 415
        fake = await chat.web.post(
            url, content=b"<html>", headers={**head, "content-type": "image/png"}
        )
        assert fake.status_code == 415
        ok = await chat.web.post(
            url,
            content=PNG,
            headers={**head, "content-type": "image/png", "x-file-name": "rad.png"},
        )
        assert ok.status_code == 201, ok.text
        async with runtime.sessions() as session:
            msg = await session.scalar(select(Message))
        assert msg is not None and msg.content_kind == "media"
        stored = runtime.settings.data_dir / msg.payload["media"]["stored"]
        assert stored.read_bytes() == PNG
        assert "rad" not in stored.name, "stored under a random name"
        files = [f for f in (runtime.settings.data_dir / "media").rglob("*") if f.is_file()]
        assert files == [stored], "the upload is stored once"


async def test_offline_form_widget_and_demo(runtime: Runtime) -> None:
    async with running_chat(runtime, opening_hours_note="Mo–Fr 9–18 Uhr") as chat:
        token = await chat.session()
        head = {"origin": SHOP, "x-tresen-visitor": token}
        url = f"/chat/{chat.channel.id}/offline"
        bad = await chat.web.post(
            url, json={"name": "Jana", "email": "x", "message": "Hi"}, headers=head
        )
        assert bad.status_code == 400
        ok = await chat.web.post(
            url,
            json={"name": "Jana", "email": "jana@example.org", "message": "Rückruf?"},
            headers=head,
        )
        assert ok.status_code == 201
        async with runtime.sessions() as session:
            msg = await session.scalar(select(Message))
        assert msg is not None and "jana@example.org" in (msg.body or "")
        js = await chat.web.get("/widget.js", headers={"accept-encoding": "identity"})
        assert js.status_code == 200
        assert "max-age=86400" in js.headers["cache-control"]
        assert int(js.headers["content-length"]) < 15_000
        assert "set-cookie" not in js.headers
        gz = await chat.web.get("/widget.js", headers={"accept-encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        demo = await chat.web.get(f"/chat/{chat.channel.id}/demo")
        assert demo.status_code == 200
        assert f'data-channel="{chat.channel.id}"' in demo.text
        assert "script-src 'self'" in demo.headers["content-security-policy"]
