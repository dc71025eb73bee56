"""E-mail end to end: dovecot (IMAP) in, tresen's pipeline and worker, a real SMTP server out."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests import helpers
from tresen.channels.email import thread_payload
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import ChannelRow, Conversation, Job, Message
from tresen.handlers.mailboxes import poll_mailbox
from tresen.runtime import Runtime
from tresen.sim.email import DOVECOT, Dovecot, SmtpServer, make_tls, run_dovecot, run_smtp_server

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass
class MailStack:
    """tresen with its worker, dovecot, the SMTP server and one email channel."""

    runtime: Runtime
    imap: Dovecot
    smtp: SmtpServer
    channel: ChannelRow
    api: httpx.AsyncClient

    async def poll(self) -> int:
        """One run of the poller job."""
        return await poll_mailbox(self.runtime, self.channel.id)

    async def count(self, model: type, *where: Any) -> int:
        """Rows of a table matching `where`."""
        async with self.runtime.sessions() as session:
            return int(
                await session.scalar(select(func.count()).select_from(model).where(*where)) or 0
            )

    async def wait_state(self, message_id: str, done: set[str], timeout: float = 20.0) -> Message:
        """Wait until a message reaches one of the `done` states."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.runtime.sessions() as session:
                row = await session.get(Message, message_id)
            if row is not None and row.state in done:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"message not in {done}: {row.state if row else None}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def mail_stack(runtime: Runtime, tmp: Path) -> AsyncIterator[MailStack]:
    """Start the mail servers and tresen's API with the embedded worker."""
    if DOVECOT is None:
        if IN_CI:
            pytest.fail("CI=true but dovecot is missing: apt-get install -y dovecot-imapd")
        pytest.skip("dovecot not installed (apt-get install -y dovecot-imapd)")
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (test dependency) is not installed")
    pytest.importorskip("trustme", reason="trustme (test dependency) is not installed")
    tls = make_tls(tmp)
    async with run_dovecot(tls) as imap, run_smtp_server(tls) as smtp:
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "Radladen")
            channel = await add_channel(
                session,
                ws.id,
                "email",
                "Mail",
                {
                    "address": "shop@example.com",
                    "display_name": "Radladen",
                    "smtp_host": smtp.host,
                    "smtp_port": smtp.port,
                    "smtp_password": smtp.password,
                    "imap_host": imap.host,
                    "imap_port": imap.port,
                    "imap_password": imap.password,
                    "tls_ca_file": str(tls.ca_file),
                    "messages_per_second": 50,
                },
            )
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with helpers.client_for(runtime, worker=True) as api:
            api.headers["Authorization"] = f"Bearer {token}"
            yield MailStack(runtime, imap, smtp, channel, api)


async def test_customer_mail_reply_threaded_bounce_fails_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    async with mail_stack(runtime, tmp_path) as stack:
        stack.imap.deliver((FIXTURES / "plain_reply.eml").read_bytes())
        assert await stack.poll() == 1
        assert await stack.poll() == 0  # marked seen after the commit
        assert stack.imap.seen_count() == 1
        async with runtime.sessions() as session:
            conv = await session.scalar(select(Conversation))
            assert conv is not None
            inbound = await session.scalar(select(Message).where(Message.direction == "inbound"))
            assert inbound is not None
            assert (
                inbound.body == "Danke! Kann ich das Rad auch am Samstag abholen? 🚲\n\nGrüße\nJana"
            )
            assert "ist fertig" in inbound.payload["text"]
            # Until the pipeline fills it in (see the report), the reply carries its thread.
            thread = await thread_payload(session, conv.id)
        response = await stack.api.post(
            f"/api/v1/conversations/{conv.id}/messages",
            json={"kind": "text", "body": "Ja, Samstag ab 10 Uhr.", "payload": thread},
        )
        assert response.status_code == 202, response.text
        reply_id = response.json()["id"]
        sent = await stack.wait_state(reply_id, {"sent"})
        [mail] = stack.smtp.ledger
        assert sent.provider_message_id == f"<tresen.{reply_id}@example.com>"
        assert mail.message["Message-ID"] == sent.provider_message_id
        assert mail.message["In-Reply-To"] == "<CAF=jana.4711@mail.example.org>"
        assert mail.message["References"].split() == [
            "<first.4711@mail.example.org>",
            "<tresen.01JOUT000000000000000000@example.com>",
            "<CAF=jana.4711@mail.example.org>",
        ]
        assert mail.message["Subject"] == "Re: Ihre Bestellung 4711"
        assert mail.recipients == ["jana.mueller@example.org"] and stack.smtp.duplicates() == 0

        # The customer's server bounces it: a FAILED status, no new conversation.
        bounce = (FIXTURES / "bounce.eml").read_bytes()
        bounce = bounce.replace(
            b"<tresen.01JBOUNCED0000000000000000@example.com>", sent.provider_message_id.encode()
        )
        stack.imap.deliver(bounce)
        assert await stack.poll() == 0
        failed = await stack.wait_state(reply_id, {"failed"})
        assert failed.error_code == "5.1.1"
        assert await stack.count(Conversation) == 1


async def test_auto_replies_and_bounces_open_nothing(runtime: Runtime, tmp_path: Path) -> None:
    async with mail_stack(runtime, tmp_path) as stack:
        for name in ("auto_reply.eml", "bounce.eml"):
            stack.imap.deliver((FIXTURES / name).read_bytes())
        assert await stack.poll() == 0
        assert await stack.count(Conversation) == 0 and await stack.count(Message) == 0
        assert await stack.count(Job, Job.kind == "inbound.process") == 0  # no bot, no routing
        assert stack.imap.seen_count() == 2  # read and done with, not fetched again
        assert await stack.poll() == 0


async def test_html_attachments_malformed_and_duplicates(runtime: Runtime, tmp_path: Path) -> None:
    async with mail_stack(runtime, tmp_path) as stack:
        for name in ("html_only.eml", "attachment.eml", "no_message_id.eml", "broken_mime.eml"):
            stack.imap.deliver((FIXTURES / name).read_bytes())
        stack.imap.deliver((FIXTURES / "html_only.eml").read_bytes())  # delivered twice
        assert await stack.poll() == 4
        async with runtime.sessions() as session:
            rows = {
                m.provider_message_id: m
                for m in await session.scalars(
                    select(Message).where(Message.direction == "inbound")
                )
            }
        assert len(rows) == 4
        html = rows["<html.only.1@example.net>"]
        assert html.body == "Hallo & guten Tag,\n\nwann kommt mein Paket?"
        assert [a["name"] for a in rows["<att.1@mail.example.org>"].payload["attachments"]] == [
            "schaden.jpg",
            "rechnung.pdf",
        ]
        assert rows["<broken.1@example.org>"].content_kind == "unsupported"
        assert any((k or "").endswith("@no-message-id.tresen>") for k in rows)


async def test_no_webhook_for_email(runtime: Runtime, tmp_path: Path) -> None:
    async with mail_stack(runtime, tmp_path) as stack:
        url = f"/webhooks/email/{stack.channel.id}"
        assert (await stack.api.get(url)).status_code == 404
        assert (await stack.api.post(url, content=b"From: a@b.c\r\n\r\nx")).status_code == 405
        assert await stack.count(Message) == 0
