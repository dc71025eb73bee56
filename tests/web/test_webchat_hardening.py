"""Web chat abuse: forged tokens, new-conversation and stream caps, wake-ups, bad Origin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.channels.test_webchat import SHOP, Chat, running_chat
from tresen.channels.webchat import visitor_address
from tresen.db.tables import Conversation, Message, WebchatSession
from tresen.media.store import stored_filename
from tresen.runtime import Runtime
from tresen.web import webchat

FORGED = "A" * 43


async def test_a_made_up_token_is_refused_everywhere(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        cid = chat.channel.id
        head = {"origin": SHOP, "x-tresen-visitor": FORGED}
        said = await chat.web.post(
            f"/chat/{cid}/messages", json={"id": "abcdefgh", "text": "hi"}, headers=head
        )
        assert said.status_code == 401 and said.json()["error"]["code"] == "no_session"
        offline = await chat.web.post(
            f"/chat/{cid}/offline", json={"name": "A", "email": "a@b.de"}, headers=head
        )
        assert offline.status_code == 401
        upload = await chat.web.post(
            f"/chat/{cid}/upload", content=b"GIF89a", headers={**head, "content-type": "image/gif"}
        )
        assert upload.status_code == 401
        events = await chat.web.get(f"/chat/{cid}/events", headers=head)
        assert events.status_code == 401
        r = await chat.web.post(
            f"/chat/{cid}/session", json={"token": FORGED}, headers={"origin": SHOP}
        )
        assert r.json()["resumed"] is False and r.json()["token"] != FORGED
        async with runtime.sessions() as session:
            assert await session.scalar(select(Conversation.id)) is None


async def test_tokens_are_stored_only_as_hashes(runtime: Runtime, tmp_path: Path) -> None:
    async with running_chat(runtime) as chat:
        token = await chat.session()
        assert await chat.session(token) == token
        assert (await chat.say(token, "Hallo")).status_code == 201
        async with runtime.sessions() as session:
            rows = list(await session.scalars(select(WebchatSession)))
        assert [r.address for r in rows] == [visitor_address(token)]
        assert rows[0].started_at is not None
    url = runtime.settings.effective_database_url
    if url.startswith("sqlite"):
        await runtime.engine.dispose()
        db = Path(url.split("///", 1)[1])
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert token.encode() not in raw


async def test_new_conversations_are_limited_per_client(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        codes = []
        for i in range(12):
            token = await chat.session()
            codes.append((await chat.say(token, f"Frage {i}")).status_code)
        assert codes[:10] == [201] * 10 and codes[10:] == [429, 429]
        token = await chat.session()
        assert (await chat.say(token, "noch eine")).status_code == 429
        async with runtime.sessions() as session:
            count = len(list(await session.scalars(select(Conversation.id))))
        assert count == 10


async def _open_stream(chat: Chat, token: str) -> tuple[int, asyncio.Task[None] | None]:
    """Open one event stream; keep it open in a task until cancelled."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def hold() -> None:
        async with chat.web.stream(
            "GET",
            f"/chat/{chat.channel.id}/events",
            headers={"origin": SHOP, "x-tresen-visitor": token},
        ) as r:
            if r.status_code != 200:
                ready.set_result(r.status_code)
                return
            async for _ in r.aiter_bytes():
                if not ready.done():
                    ready.set_result(200)  # the first bytes: the stream runs (and counts)

    task = asyncio.create_task(hold())
    status = await asyncio.wait_for(ready, 10)
    return status, task


async def test_event_streams_are_capped_per_client(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webchat, "STREAMS_PER_CLIENT", 3)
    async with running_chat(runtime) as chat:
        token = await chat.session()
        tasks = []
        statuses = []
        for _ in range(4):
            status, task = await _open_stream(chat, token)
            statuses.append(status)
            tasks.append(task)
        assert statuses == [200, 200, 200, 429]
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        for _ in range(50):
            status, task = await _open_stream(chat, token)
            tasks.append(task)
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, "a closed stream frees its place"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_stream_wakes_only_for_its_own_visitor(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: dict[str, int] = {}
    original = webchat._visible

    async def counting(rt: Runtime, channel_id: str, address: str):  # type: ignore[no-untyped-def]
        loads[address] = loads.get(address, 0) + 1
        return await original(rt, channel_id, address)

    monkeypatch.setattr(webchat, "_visible", counting)
    async with running_chat(runtime) as chat:
        quiet = await chat.session()
        status, task = await _open_stream(chat, quiet)
        assert status == 200
        for i in range(3):
            other = await chat.session()
            assert (await chat.say(other, f"Frage {i}")).status_code == 201
        await asyncio.sleep(0.5)
        assert loads[visitor_address(quiet)] == 1, "other visitors' messages woke the stream"
        assert (await chat.say(quiet, "Jetzt ich")).status_code == 201
        for _ in range(100):
            if loads[visitor_address(quiet)] > 1:
                break
            await asyncio.sleep(0.05)
        assert loads[visitor_address(quiet)] >= 2, "the visitor's own first message wakes it"
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("origin", ["http://[::1", "http://shop.example:99999", "null", "https://"])
async def test_a_malformed_origin_is_403(runtime: Runtime, origin: str) -> None:
    async with running_chat(runtime) as chat:
        r = await chat.web.post(
            f"/chat/{chat.channel.id}/session", json={}, headers={"origin": origin}
        )
        assert r.status_code == 403


async def test_the_host_header_does_not_make_an_origin_allowed(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        r = await chat.web.post(
            f"/chat/{chat.channel.id}/session",
            json={},
            headers={"origin": "http://evil.example", "host": "evil.example"},
        )
        assert r.status_code == 403


GIF_POLYGLOT = b"GIF89a/*" + b"\0" * 8 + b"*/=1;<script>alert(document.domain)</script>"


async def test_a_polyglot_upload_is_stored_as_gif(runtime: Runtime) -> None:
    async with running_chat(runtime, allowed_upload_types=["image/gif"]) as chat:
        token = await chat.session()
        assert (await chat.say(token, "Foto kommt")).status_code == 201
        r = await chat.web.post(
            f"/chat/{chat.channel.id}/upload",
            content=GIF_POLYGLOT,
            headers={
                "origin": SHOP,
                "x-tresen-visitor": token,
                "content-type": "image/gif",
                "x-file-name": "rechnung.html",
            },
        )
        assert r.status_code == 201, r.text
        async with runtime.sessions() as session:
            bodies = list(await session.scalars(select(Message.body)))
            payloads = list(await session.scalars(select(Message.payload)))
        names = [p["media"]["filename"] for p in payloads if "media" in (p or {})]
        assert names == ["rechnung.gif"] and "rechnung.gif" in bodies


@pytest.mark.parametrize(
    ("name", "content_type", "stored"),
    [
        ("rechnung.html", "image/gif", "rechnung.gif"),
        ("foto.JPEG", "image/jpeg", "foto.JPEG"),
        ("foto", "image/png", "foto.png"),
        ("a.pdf.exe", "application/pdf", "a.pdf.pdf"),
        ("../../x.svg", "image/png", "x.png"),
        (".htaccess", "text/plain", "htaccess.txt"),
        (None, "image/png", None),
    ],
)
def test_stored_names_take_the_detected_types_extension(
    name: str | None, content_type: str, stored: str | None
) -> None:
    assert stored_filename(name, content_type) == stored
