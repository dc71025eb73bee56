"""Media end to end over real HTTP: fetched from the simulators, served to permitted agents, uploaded."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, update

from tests.channels.test_webchat import SHOP, read_events, running_chat
from tests.pipeline.stack import CUSTOMER, Stack, running_stack
from tests.pipeline.test_email_e2e import FIXTURES, mail_stack
from tests.pipeline.test_messenger_e2e import PSID, meta_stack
from tests.pipeline.test_sms_e2e import sms_stack
from tests.pipeline.test_telegram_e2e import CHAT, telegram_stack
from tresen.channels.base import OutboundMessage
from tresen.channels.webchat import visitor_address
from tresen.db.tables import ContactIdentity, Conversation, Job, Media, Message
from tresen.domain.errors import from_record
from tresen.domain.message import ContentKind
from tresen.handlers.media_attach import with_attachment
from tresen.handlers.media_fetch import fetch_job
from tresen.inbox import accounts, routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.media import store
from tresen.runtime import Runtime
from tresen.settings import ensure_secret_key

PASSWORD = "richtig-langes-passwort"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)


async def _media_rows(runtime: Runtime) -> list[Media]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Media).order_by(Media.id)))


async def _settled(runtime: Runtime, count: int = 1, timeout: float = 20.0) -> list[Media]:
    """Wait until `count` media rows left the pending state."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await _media_rows(runtime)
        if len(rows) >= count and all(r.state != store.PENDING for r in rows):
            return rows
        assert time.monotonic() < deadline, f"media still pending: {[r.state for r in rows]}"
        await asyncio.sleep(0.05)


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


async def _signed_in(
    base_url: str, runtime: Runtime, workspace_id: str, email: str, role: str
) -> httpx.AsyncClient:
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, workspace_id, email, role, PASSWORD, language="en")
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    page = await client.get("/inbox/login")
    answer = await client.post(
        "/inbox/login",
        data={"email": email, "password": PASSWORD, "_csrf_token": _csrf(page.text)},
    )
    assert answer.status_code == 303, answer.text
    return client


async def _customer_sends_image(stack: Stack, content: bytes, mime: str = "image/png") -> str:
    await stack.sim.customer_sends(
        CUSTOMER,
        name="Jana",
        type="image",
        body={"mime_type": mime, "caption": "Kratzer"},
        media=content,
    )
    async with stack.runtime.sessions() as session:
        conv = await session.scalar(select(Conversation.id))
    assert conv is not None
    return conv


async def test_whatsapp_image_is_fetched_and_shown_only_to_permitted_agents(
    runtime: Runtime,
) -> None:
    async with running_stack(runtime) as stack:
        conv = await _customer_sends_image(stack, PNG)
        [media] = await _settled(runtime)
        assert media.state == store.STORED, media.reason
        assert media.content_type == "image/png" and media.size == len(PNG)
        assert media.sha256 == hashlib.sha256(PNG).hexdigest()
        assert media.path == f"media/{media.workspace_id}/{media.sha256[:2]}/{media.id}"
        assert (runtime.settings.data_dir / media.path).read_bytes() == PNG
        assert stack.sim.media_downloads == 1

        async with runtime.sessions() as session, session.begin():
            team_a = await routing.add_team(session, media.workspace_id, "Werkstatt")
            team_b = await routing.add_team(session, media.workspace_id, "Verkauf")
            await session.execute(
                update(Conversation).where(Conversation.id == conv).values(team_id=team_a.id)
            )
        agent = await _signed_in(
            stack.base_url, runtime, media.workspace_id, "a@laden.test", "agent"
        )
        other = await _signed_in(
            stack.base_url, runtime, media.workspace_id, "b@laden.test", "agent"
        )
        async with runtime.sessions() as session, session.begin():
            users = {
                u.email: u.id for u in await accounts.workspace_users(session, media.workspace_id)
            }
            await routing.add_member(session, team_a.id, users["a@laden.test"])
            await routing.add_member(session, team_b.id, users["b@laden.test"])
        async with (
            aclosing(agent),
            aclosing(other),
            httpx.AsyncClient(base_url=stack.base_url) as anonymous,
        ):
            page = await agent.get(f"/inbox/c/{conv}")
            assert page.status_code == 200
            assert f'<img src="/inbox/media/{media.id}"' in page.text

            shown = await agent.get(f"/inbox/media/{media.id}")
            assert shown.status_code == 200 and shown.content == PNG
            assert shown.headers["content-type"] == "image/png"
            assert shown.headers["x-content-type-options"] == "nosniff"
            assert shown.headers["content-security-policy"].startswith("default-src 'none'")
            assert shown.headers["content-disposition"].startswith("inline")

            assert (await other.get(f"/inbox/media/{media.id}")).status_code == 403
            assert (await anonymous.get(f"/inbox/media/{media.id}")).status_code == 303
            htmx = await anonymous.get(f"/inbox/media/{media.id}", headers={"HX-Request": "true"})
            assert htmx.status_code == 401
            assert (await agent.get("/inbox/media/01NOTAMEDIAID0000000000000")).status_code == 404
            # The public route serves outbound files only, and only with a valid signature.
            assert (await anonymous.get(f"/media/public/{media.id}")).status_code == 403
            link = store.public_link(stack.base_url, runtime.settings.secret_key, media.id)
            assert (await anonymous.get(link)).status_code == 404


async def test_over_limit_download_is_refused_and_marked_unavailable(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(max_media_bytes=4096)
    async with running_stack(runtime) as stack:
        await _customer_sends_image(stack, PNG + bytes(10_000))
        [media] = await _settled(runtime)
        assert media.state == store.UNAVAILABLE and media.path is None
        assert media.reason and "4096" in media.reason
        assert not (runtime.settings.data_dir / "media").exists() or not any(
            p.is_file() for p in (runtime.settings.data_dir / "media").rglob("*")
        )
        agent = await _signed_in(
            stack.base_url, runtime, media.workspace_id, "a@laden.test", "admin"
        )
        async with aclosing(agent):
            async with runtime.sessions() as session:
                conv = await session.scalar(select(Conversation.id))
            page = await agent.get(f"/inbox/c/{conv}")
            assert "File unavailable" in page.text and "4096" in page.text
            assert (await agent.get(f"/inbox/media/{media.id}")).status_code == 404


async def test_html_served_as_png_is_refused(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        await _customer_sends_image(stack, b"<!doctype html><script>alert(1)</script>")
        [media] = await _settled(runtime)
        assert media.state == store.UNAVAILABLE
        assert media.reason and "image/png" in media.reason


async def test_telegram_document_is_fetched_with_get_file(runtime: Runtime) -> None:
    pdf = b"%PDF-1.7\n" + b"Rechnung 2026-0042\n" * 50
    async with telegram_stack(runtime) as stack:
        await stack.sim.customer_sends(
            CHAT,
            type="document",
            body={"file_name": "../Rechnung <42>.pdf", "mime_type": "application/pdf"},
            media=pdf,
        )
        [media] = await _settled(runtime)
        assert media.state == store.STORED, media.reason
        assert media.kind == "document" and media.content_type == "application/pdf"
        assert media.filename == "Rechnung _42_.pdf"
        assert Path(runtime.settings.data_dir / str(media.path)).read_bytes() == pdf
        assert stack.sim.file_downloads == 1
        async with runtime.sessions() as session:
            message = await session.get_one(Message, media.message_id)
        assert message.content_kind == "media"


async def test_telegram_unknown_file_is_unavailable_after_a_clear_refusal(runtime: Runtime) -> None:
    async with telegram_stack(runtime) as stack:
        await stack.sim.customer_sends(CHAT, type="photo")
        await _settled(runtime)
        update = stack.sim.build_inbound(CHAT, type="photo")
        stack.sim.files.clear()  # Telegram forgot the file (or the id is wrong)
        await stack.sim.deliver(update)
        rows = await _settled(runtime, 2)
        assert [r.state for r in rows] == [store.STORED, store.UNAVAILABLE]
        assert rows[1].reason and "file_id" in rows[1].reason


async def test_agent_uploads_a_file_that_reaches_the_simulator(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        runtime.settings = runtime.settings.with_overrides(base_url=stack.base_url)
        await stack.customer_writes("Haben Sie die Rechnung?")
        async with runtime.sessions() as session:
            conv = await session.scalar(select(Conversation))
        assert conv is not None
        agent = await _signed_in(
            stack.base_url, runtime, conv.workspace_id, "a@laden.test", "admin"
        )
        pdf = b"%PDF-1.7\nRechnung\n%%EOF\n"
        async with aclosing(agent):
            page = await agent.get(f"/inbox/c/{conv.id}")
            assert 'enctype="multipart/form-data"' in page.text
            token = _csrf(page.text)
            files = {"file": ("Rechnung März.pdf", pdf, "application/pdf")}

            refused = await agent.post(f"/inbox/c/{conv.id}/media", files=files)
            assert refused.status_code == 403, "multipart without the CSRF token is refused"

            lying = await agent.post(
                f"/inbox/c/{conv.id}/media",
                files={"file": ("bild.png", b"<html>hi</html>", "image/png")},
                data={"_csrf_token": token},
            )
            assert lying.status_code == 422 and "image/png" in lying.text

            sent = await agent.post(
                f"/inbox/c/{conv.id}/media",
                files=files,
                data={"_csrf_token": token, "caption": "Anbei die Rechnung"},
            )
            assert sent.status_code == 303, sent.text
            async with runtime.sessions() as session:
                message = await session.scalar(
                    select(Message).where(Message.direction == "outbound")
                )
            assert message is not None
            await stack.wait_states([message.id], {"sent", "delivered", "read"})
            [entry] = [e for e in stack.sim.ledger if e.type == "document"]
            document = entry.payload["document"]
            assert document["filename"] == "Rechnung März.pdf"
            assert document["caption"] == "Anbei die Rechnung"
            # Uploaded to /media first and sent by id: the simulator holds the very bytes.
            [upload] = stack.sim.uploads
            assert document["id"] == upload["id"] and "link" not in document
            assert (upload["content"], upload["type"]) == (pdf, "application/pdf")
            assert upload["filename"] == "Rechnung März.pdf"
            # The signed link in the stored payload works for the provider, and only as signed.
            async with runtime.sessions() as session:
                stored = await session.get_one(Message, message.id)
            link = stored.payload["link"]
            async with httpx.AsyncClient() as anonymous:
                fetched = await anonymous.get(link)
                assert fetched.content == pdf
                assert fetched.headers["content-disposition"].startswith("attachment")
                tampered = link.replace("sig=", "sig=0")
                assert (await anonymous.get(tampered)).status_code == 403
                expired = re.sub(r"exp=\d+", "exp=1000", link)
                assert (await anonymous.get(expired)).status_code == 403
            [media] = await _media_rows(runtime)
            assert media.message_id == message.id and media.state == store.STORED
            shown = await agent.get(f"/inbox/media/{media.id}")
            assert shown.content == pdf
            assert shown.headers["content-disposition"].startswith("attachment")
            page = await agent.get(f"/inbox/c/{conv.id}")
            assert f'href="/inbox/media/{media.id}" download' in page.text


async def test_upload_over_the_limit_is_refused_before_anything_is_sent(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(max_media_bytes=1024)
    async with running_stack(runtime) as stack:
        await stack.customer_writes("Hallo")
        async with runtime.sessions() as session:
            conv = await session.scalar(select(Conversation))
        assert conv is not None
        agent = await _signed_in(
            stack.base_url, runtime, conv.workspace_id, "a@laden.test", "admin"
        )
        async with aclosing(agent):
            token = _csrf((await agent.get(f"/inbox/c/{conv.id}")).text)
            answer = await agent.post(
                f"/inbox/c/{conv.id}/media",
                files={"file": ("gross.png", PNG + bytes(5000), "image/png")},
                data={"_csrf_token": token},
            )
            assert answer.status_code == 413 and "1024" in answer.text
        assert await _media_rows(runtime) == []
        async with runtime.sessions() as session:
            assert (
                await session.scalar(select(Message).where(Message.direction == "outbound")) is None
            )


async def test_sms_media_urls_are_fetched_with_the_account_credentials(runtime: Runtime) -> None:

    async with sms_stack(runtime) as stack:
        await stack.customer_writes(
            "Foto vom Schaden",
            media=[(PNG, "image/png"), (b"%PDF-1.4\n%%EOF\n", "application/pdf")],
        )
        rows = await _settled(runtime, 2)
        # Both rows are made in one transaction; their ids need not sort in payload order.
        assert sorted((r.state, r.kind, r.content_type) for r in rows) == sorted(
            [
                (store.STORED, "image", "image/png"),
                (store.STORED, "document", "application/pdf"),
            ]
        )
        assert stack.sim.media_downloads == 2


async def test_messenger_attachment_is_fetched_from_its_url(runtime: Runtime) -> None:

    async with meta_stack(runtime, "messenger") as stack:
        await stack.sim.customer_sends(PSID, type="image", media=(PNG, "image/png"))
        [media] = await _settled(runtime)
        assert media.state == store.STORED and media.content_type == "image/png"
        assert stack.sim.media_downloads == 1


async def test_email_attachments_are_kept_checked_and_stored(
    runtime: Runtime, tmp_path: Path
) -> None:

    html_attachment = (
        b"From: Jana <jana@example.org>\r\nTo: shop@example.com\r\nMessage-ID: <html.att@x>\r\n"
        b"Subject: Link\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSiehe Anhang\r\n--B\r\n"
        b'Content-Type: text/html\r\nContent-Disposition: attachment; filename="x.html"\r\n\r\n'
        b"<script>alert(1)</script>\r\n--B--\r\n"
    )
    async with mail_stack(runtime, tmp_path) as stack:
        stack.imap.deliver((FIXTURES / "attachment.eml").read_bytes())
        stack.imap.deliver(html_attachment)
        assert await stack.poll() == 2
        rows = await _settled(runtime, 3)
        by_name = {r.filename: r for r in rows}
        assert by_name["schaden.jpg"].state == store.STORED
        assert by_name["schaden.jpg"].content_type == "image/jpeg"
        assert by_name["rechnung.pdf"].content_type == "application/pdf"
        assert by_name["x.html"].state == store.UNAVAILABLE
        assert "text/html" in str(by_name["x.html"].reason)
        staging = runtime.settings.data_dir / store.STAGING
        assert not any(staging.iterdir()), "staged attachments are removed once handled"


async def test_a_failed_download_is_retried_by_the_job_queue(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        stack.sim.media_failures = 1
        await _customer_sends_image(stack, PNG)
        [media] = await _settled(runtime, timeout=30)
        assert media.state == store.STORED and stack.sim.media_failures == 0
        assert stack.sim.media_downloads == 1


async def test_a_download_failing_on_the_last_attempt_is_unavailable(runtime: Runtime) -> None:

    async with running_stack(runtime, worker=False) as stack:
        stack.sim.media_failures = 100
        await _customer_sends_image(stack, PNG)
        [media] = await _media_rows(runtime)
        [job] = await queue.claim(runtime.engine, "w1", 10, timedelta(seconds=30), ["media.fetch"])
        last = ClaimedJob(job.id, job.kind, job.payload, job.max_attempts, job.max_attempts, None)
        await fetch_job(runtime, last, "w1")
        [media] = await _media_rows(runtime)
        assert media.state == store.UNAVAILABLE
        stored = from_record(media.reason)
        assert stored is not None
        assert (
            stored.message
            == "could not be fetched: WhatsApp answered HTTP 503 to the file download"
        )


async def test_web_chat_upload_becomes_a_stored_media_row(runtime: Runtime) -> None:

    async with running_chat(runtime) as chat:
        token = await chat.session()
        ok = await chat.web.post(
            f"/chat/{chat.channel.id}/upload",
            content=PNG,
            headers={
                "origin": SHOP,
                "x-tresen-visitor": token,
                "content-type": "image/png",
                "x-file-name": "rad%20vorne.png",
            },
        )
        assert ok.status_code == 201, ok.text
        [media] = await _settled(runtime)
        assert media.state == store.STORED and media.filename == "rad vorne.png"
        assert (runtime.settings.data_dir / str(media.path)).read_bytes() == PNG
        files = [f for f in (runtime.settings.data_dir / "media").rglob("*") if f.is_file()]
        assert files == [runtime.settings.data_dir / str(media.path)], "stored once"
        async with runtime.sessions() as session:
            jobs = await session.scalar(
                select(func.count()).select_from(Job).where(Job.kind == "media.fetch")
            )
        assert jobs == 0, "nothing to fetch: the upload route stored it"


async def test_agent_upload_goes_to_telegram_as_multipart(runtime: Runtime) -> None:
    async with telegram_stack(runtime) as stack:
        conv_id = await stack.customer_writes("Haben Sie ein Foto?")
        async with runtime.sessions() as session:
            conv = await session.get_one(Conversation, conv_id)
        base_url = str(stack.api.base_url).rstrip("/")
        agent = await _signed_in(base_url, runtime, conv.workspace_id, "a@laden.test", "admin")
        async with aclosing(agent):
            token = _csrf((await agent.get(f"/inbox/c/{conv_id}")).text)
            sent = await agent.post(
                f"/inbox/c/{conv_id}/media",
                files={"file": ("rad.png", PNG, "image/png")},
                data={"_csrf_token": token, "caption": "So sieht es aus"},
            )
            assert sent.status_code == 303, sent.text
        [message] = [m for m in await stack.messages() if m.direction == "outbound"]
        await stack.wait_states([message.id], {"sent"})
        [upload] = stack.sim.uploads
        assert (upload["method"], upload["field"], upload["filename"]) == (
            "sendPhoto",
            "photo",
            "rad.png",
        )
        assert upload["content"] == PNG and upload["content_type"] == "image/png"
        [entry] = stack.sim.ledger
        assert entry.payload["caption"] == "So sieht es aus"
        assert entry.payload["photo"] == f"upload:rad.png:{len(PNG)}"


async def test_a_payload_cannot_borrow_another_messages_file(runtime: Runtime) -> None:

    async with running_stack(runtime) as stack:
        await _customer_sends_image(stack, PNG)
        [media] = await _settled(runtime)
        forged = OutboundMessage(
            to=CUSTOMER,
            content_kind=ContentKind.MEDIA,
            body=None,
            payload={"media_id": media.id, "link": "https://x.example/a"},
            client_reference="01SOMEOTHERMESSAGE00000000",
        )
        assert (await with_attachment(runtime, forged)).attachment is None
        own = OutboundMessage(
            to=CUSTOMER,
            content_kind=ContentKind.MEDIA,
            body=None,
            payload={"media_id": media.id},
            client_reference=media.message_id,
        )
        attached = await with_attachment(runtime, own)
        assert attached.attachment is not None and attached.attachment.read() == PNG


async def test_messenger_gets_a_signed_link(runtime: Runtime) -> None:

    async with meta_stack(runtime, "messenger") as stack:
        base_url = str(stack.api.base_url).rstrip("/")
        runtime.settings = runtime.settings.with_overrides(base_url=base_url)
        conv_id = await stack.customer_writes("Foto bitte")
        async with runtime.sessions() as session:
            conv = await session.get_one(Conversation, conv_id)
        agent = await _signed_in(base_url, runtime, conv.workspace_id, "a@laden.test", "admin")
        async with aclosing(agent):
            token = _csrf((await agent.get(f"/inbox/c/{conv_id}")).text)
            sent = await agent.post(
                f"/inbox/c/{conv_id}/media",
                files={"file": ("rad.png", PNG, "image/png")},
                data={"_csrf_token": token},
            )
            assert sent.status_code == 303, sent.text
            deadline = time.monotonic() + 20
            while not stack.sim.ledger:
                assert time.monotonic() < deadline, "nothing reached the simulator"
                await asyncio.sleep(0.05)
            attachment = stack.sim.ledger[0].payload["message"]["attachment"]
            assert attachment["type"] == "image"
            url = attachment["payload"]["url"]
            assert url.startswith(f"{base_url}/media/public/")
            async with httpx.AsyncClient() as provider:
                fetched = await provider.get(url)
            assert fetched.status_code == 200 and fetched.content == PNG


async def test_web_chat_agent_file_is_a_link_for_that_visitor_only(runtime: Runtime) -> None:

    async with running_chat(runtime) as chat:
        visitor = await chat.session()
        stranger = await chat.session()
        assert (await chat.say(visitor, "Haben Sie die Rechnung?")).status_code == 201
        assert (await chat.say(stranger, "Hallo")).status_code == 201
        conv_id = await _conversation_of(runtime, chat.channel.id, visitor)
        agent = await _signed_in(
            chat.base_url, runtime, chat.channel.workspace_id, "a@x.test", "admin"
        )
        pdf = b"%PDF-1.7\nRechnung\n%%EOF\n"
        async with aclosing(agent):
            token = _csrf((await agent.get(f"/inbox/c/{conv_id}")).text)
            sent = await agent.post(
                f"/inbox/c/{conv_id}/media",
                files={"file": ("Rechnung.pdf", pdf, "application/pdf")},
                data={"_csrf_token": token, "caption": "Bitte sehr"},
            )
        assert sent.status_code == 303, sent.text
        events = await read_events(chat, visitor, 2)
        reply = events[1]
        assert reply["from"] == "agent" and reply["text"] == "Bitte sehr"
        assert reply["file"]["name"] == "Rechnung.pdf"
        link = reply["file"]["url"]
        assert link.startswith("files/") and "sig=" in link
        url = f"/chat/{chat.channel.id}/{link}"
        got = await chat.web.get(url, headers={"origin": SHOP})
        assert got.status_code == 200 and got.content == pdf
        assert got.headers["content-disposition"].startswith("attachment")
        assert got.headers["x-content-type-options"] == "nosniff"
        [media] = [m for m in await _media_rows(runtime) if m.content_type == "application/pdf"]
        secret = ensure_secret_key(runtime.settings).secret_key
        # The stranger's session would get a link signed for its own address: it does not open
        # this file; nor does a tampered or expired link.
        strangers = store.visitor_link(secret, chat.channel.id, media.id, visitor_address(stranger))
        tampered = link.replace("sig=", "sig=0")
        expired = re.sub(r"exp=\d+", "exp=1000", link)
        for bad in (strangers, tampered, expired):
            answer = await chat.web.get(f"/chat/{chat.channel.id}/{bad}")
            assert answer.status_code == 404, bad
        assert not any(e.get("file") for e in await read_events(chat, stranger, 1))


async def _conversation_of(runtime: Runtime, channel_id: str, token: str) -> str:

    for _ in range(100):
        async with runtime.sessions() as session:
            conv = await session.scalar(
                select(Conversation.id)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(
                    ContactIdentity.channel_id == channel_id,
                    ContactIdentity.address == visitor_address(token),
                )
            )
        if conv:
            return str(conv)
        await asyncio.sleep(0.05)
    raise AssertionError("no conversation stored")
