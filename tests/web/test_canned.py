"""Canned replies of issue 16: workspace, team and personal scope; a text per language; a file
sent with the reply; the usage counted when an agent uses one in the inbox."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update

from tests import helpers
from tests.web.pagekit import HTML, csrf, person, sign_in
from tresen.db.tables import CannedReply, Contact, Conversation, Media, Message, TeamMember
from tresen.inbox import routing
from tresen.media import store
from tresen.runtime import Runtime

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 200


async def _post(client: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    token = csrf((await client.get("/inbox/admin/canned", headers=HTML)).text)
    return await client.post(path, data={**form, "_csrf_token": token}, headers=HTML)


def _reply(shortcut: str, body: str, **more: str) -> dict[str, str]:
    return {"shortcut": shortcut, "title": shortcut.title(), "body": body, **more}


async def _shortcuts(client: httpx.AsyncClient) -> set[str]:
    page = (await client.get("/inbox/admin/canned", headers=HTML)).text
    return {s for s in ("hallo", "lager", "meins") if f"<code>/{s}</code>" in page}


async def _rows(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(CannedReply).order_by(CannedReply.shortcut))
        return [(r.shortcut, r.body, r.owner_id) for r in rows]


async def test_who_sees_and_manages_which_canned_reply(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    kim = await person(runtime, ws, "kim@laden.example", "agent")
    await person(runtime, ws, "lea@laden.example", "agent")
    async with runtime.sessions() as session, session.begin():
        team = await routing.add_team(session, ws, "Lager")
        session.add(TeamMember(team_id=team.id, user_id=kim))
    async with (
        helpers.client_for(runtime) as boss,
        helpers.client_for(runtime) as kim_browser,
        helpers.client_for(runtime) as lea_browser,
    ):
        await sign_in(boss, "chefin@laden.example")
        await sign_in(kim_browser, "kim@laden.example")
        await sign_in(lea_browser, "lea@laden.example")
        made = await _post(boss, "/inbox/admin/canned", _reply("hallo", "Hallo {first_name}!"))
        assert made.status_code == 303
        no_team = await _post(
            boss, "/inbox/admin/canned", _reply("lager", "Im Lager", scope="team")
        )
        assert no_team.status_code == 422 and "Team" in no_team.text
        made = await _post(
            boss, "/inbox/admin/canned", _reply("lager", "Im Lager", scope="team", team_id=team.id)
        )
        assert made.status_code == 303
        shared = await _post(kim_browser, "/inbox/admin/canned", _reply("meins", "Nur ich"))
        assert shared.status_code == 403, "an agent may not make a reply for everyone"
        mine = await _post(
            kim_browser, "/inbox/admin/canned", _reply("meins", "Nur ich", scope="personal")
        )
        assert mine.status_code == 303
        assert await _shortcuts(kim_browser) == {"hallo", "lager", "meins"}
        assert await _shortcuts(lea_browser) == {"hallo"}
        assert await _shortcuts(boss) == {"hallo", "lager"}
        before = await _rows(runtime)
        async with runtime.sessions() as session:
            ids = {r.shortcut: r.id for r in await session.scalars(select(CannedReply))}
        changed = await _post(
            kim_browser, f"/inbox/admin/canned/{ids['hallo']}", _reply("hallo", "Geändert")
        )
        assert changed.status_code == 403
        gone = await _post(lea_browser, f"/inbox/admin/canned/{ids['meins']}/delete", {})
        assert gone.status_code == 404, "someone else's personal reply is not there for lea"
        gone = await _post(boss, f"/inbox/admin/canned/{ids['meins']}/delete", {})
        assert gone.status_code == 404, "not even for an admin"
        assert await _rows(runtime) == before
        gone = await _post(kim_browser, f"/inbox/admin/canned/{ids['meins']}/delete", {})
        assert gone.status_code == 303
    assert [s for s, _, _ in await _rows(runtime)] == ["hallo", "lager"]


async def _conversation(runtime: Runtime, client: httpx.AsyncClient, channel_id: str) -> str:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text("wamid.kunde", "4915100000009", "Wann habt ihr offen?")],
            contacts=[{"wa_id": "4915100000009", "profile": {"name": "Jana Müller"}}],
        )
    )
    answer = await client.post(
        f"/webhooks/whatsapp/{channel_id}", content=body, headers=helpers.wa_sign(body)
    )
    assert answer.status_code == 200
    async with runtime.sessions() as session:
        found = await session.scalar(select(Conversation.id))
    assert found is not None
    return found


async def test_a_canned_reply_goes_out_in_the_customers_language_with_its_file(
    runtime: Runtime,
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        made = await _post(
            client,
            "/inbox/admin/canned",
            _reply(
                "zeiten",
                "Hallo {first_name}, wir haben Mo–Fr 9–18 Uhr offen.",
                text_en="Hi {first_name}, we are open Mon–Fri 9–6.",
            ),
        )
        assert made.status_code == 303
        async with runtime.sessions() as session:
            reply_id = await session.scalar(select(CannedReply.id))
        token = csrf((await client.get("/inbox/admin/canned")).text)
        not_a_picture = await client.post(
            f"/inbox/admin/canned/{reply_id}/file",
            data={"_csrf_token": token},
            files={"file": ("plan.png", b"MZ\x90\x00 kein Bild", "image/png")},
            headers=HTML,
        )
        assert not_a_picture.status_code == 422
        attached = await client.post(
            f"/inbox/admin/canned/{reply_id}/file",
            data={"_csrf_token": token},
            files={"file": ("Öffnungszeiten.png", PNG, "image/png")},
        )
        assert attached.status_code == 303
        conversation_id = await _conversation(runtime, client, channel.id)
        async with runtime.sessions() as session, session.begin():
            await session.execute(update(Contact).values(attributes={"language": "en"}))
        token = csrf((await client.get(f"/inbox/c/{conversation_id}")).text)
        await client.post(f"/inbox/c/{conversation_id}/take", data={"_csrf_token": token})
        sent = await client.post(
            f"/inbox/c/{conversation_id}/reply", data={"body": "/zeiten", "_csrf_token": token}
        )
        assert sent.status_code == 303, sent.text
        page = (await client.get("/inbox/admin/canned")).text
    async with runtime.sessions() as session:
        out: list[Any] = list(
            await session.scalars(
                select(Message).where(Message.direction == "outbound").order_by(Message.id)
            )
        )
        files = list(await session.scalars(select(Media)))
        stored = await session.get_one(CannedReply, reply_id)
    assert [m.content_kind for m in out] == ["text", "media"]
    assert out[0].body == "Hi Jana, we are open Mon–Fri 9–6."
    assert [(f.message_id, f.filename) for f in files] == [(out[1].id, "Öffnungszeiten.png")]
    assert store.load(runtime.files, str(files[0].path)) == PNG
    assert files[0].path != stored.attachment["path"], "the conversation has its own copy"
    assert stored.use_count == 1
    assert "1-mal verwendet" in page


async def test_a_canned_reply_sent_through_the_api_carries_its_file(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    token = await helpers.seed_token(runtime, ws, ["messages:send"])
    auth = {"Authorization": f"Bearer {token}"}
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        made = await _post(
            client, "/inbox/admin/canned", _reply("zeiten", "Hallo {first_name}, Mo–Fr 9–18 Uhr.")
        )
        assert made.status_code == 303
        async with runtime.sessions() as session:
            reply_id = await session.scalar(select(CannedReply.id))
        attached = await client.post(
            f"/inbox/admin/canned/{reply_id}/file",
            data={"_csrf_token": csrf((await client.get("/inbox/admin/canned")).text)},
            files={"file": ("Zeiten.png", PNG, "image/png")},
        )
        assert attached.status_code == 303
        conversation_id = await _conversation(runtime, client, channel.id)
        path = f"/api/v1/conversations/{conversation_id}/messages"
        both = await client.post(path, json={"canned": "zeiten", "body": "x"}, headers=auth)
        assert both.status_code == 422, "either a canned reply or a body"
        unknown = await client.post(path, json={"canned": "gibtsnicht"}, headers=auth)
        assert unknown.status_code == 404 and "canned" in unknown.json()["error"]["message"]
        sent = await client.post(path, json={"canned": "/zeiten"}, headers=auth)
        assert sent.status_code == 202, sent.text
        assert sent.json()["body"] == "Hallo Jana, Mo–Fr 9–18 Uhr."
    async with runtime.sessions() as session:
        out: list[Any] = list(
            await session.scalars(
                select(Message).where(Message.direction == "outbound").order_by(Message.id)
            )
        )
        files = list(await session.scalars(select(Media)))
        stored = await session.get_one(CannedReply, reply_id)
    assert [m.content_kind for m in out] == ["text", "media"]
    assert [(f.message_id, f.filename) for f in files] == [(out[1].id, "Zeiten.png")]
    assert store.load(runtime.files, str(files[0].path)) == PNG
    assert stored.use_count == 1
