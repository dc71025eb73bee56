"""Before consent agents see no content; a restricted contact (Art. 18) is kept, not processed."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from tests import helpers
from tests.pipeline.stack import running_stack
from tests.privacy.test_erasure import seed_contact
from tresen.db.tables import AuditEntry, ChannelRow, Contact, Conversation, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.privacy import audit, retention
from tresen.privacy.restriction import set_restricted
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"
SECRET = "Geheimwunsch7Kq"


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def _login(client: httpx.AsyncClient, email: str) -> None:
    page = await client.get("/inbox/login")
    answer = await client.post(
        "/inbox/login", data={"email": email, "password": PASSWORD, "_csrf_token": _csrf(page.text)}
    )
    assert answer.status_code in (200, 303)


async def _inbound(runtime: Runtime, client: httpx.AsyncClient, channel: ChannelRow) -> str:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(new_id(), "4915100000077", f"Ich wünsche mir {SECRET}")],
            contacts=[{"profile": {"name": "Jana"}, "wa_id": "4915100000077"}],
        )
    )
    answer = await client.post(
        f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
    )
    assert answer.status_code == 200
    async with runtime.sessions() as session:
        return str(await session.scalar(select(Conversation.id).limit(1)))


async def _contact_of(runtime: Runtime, conversation_id: str) -> str:
    async with runtime.sessions() as session:
        return str(
            await session.scalar(
                select(Conversation.contact_id).where(Conversation.id == conversation_id)
            )
        )


async def _set_state(runtime: Runtime, contact_id: str, state: str) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(consent_state=state)
        )


async def _pages(
    client: httpx.AsyncClient, api: httpx.AsyncClient, conversation_id: str
) -> dict[str, str]:
    """Every place an agent or API client could read the message text."""
    messages = await api.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert messages.status_code == 200
    return {
        "list": (await client.get("/inbox")).text,
        "conversation": (await client.get(f"/inbox/c/{conversation_id}")).text,
        "history": (await client.get(f"/inbox/c/{conversation_id}/all-channels")).text,
        "search": (await client.get("/inbox/search", params={"q": "wünsche"})).text,
        "api": messages.text,
    }


async def test_content_is_withheld_until_consent_everywhere(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "agent@laden.de", "agent", PASSWORD, language="en")
    token = await helpers.seed_token(runtime, ws)
    async with helpers.client_for(runtime) as client:
        api = httpx.AsyncClient(
            transport=client._transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token}"},
        )
        conv_id = await _inbound(runtime, client, channel)
        contact_id = await _contact_of(runtime, conv_id)
        await _login(client, "agent@laden.de")
        for state in ("unknown", "asked", "refused"):
            await _set_state(runtime, contact_id, state)
            pages = await _pages(client, api, conv_id)
            for where, text in pages.items():
                assert SECRET not in text, (state, where)
            # Said no: nothing waits any more, and the pages say so.
            label = "privacy notice declined" if state == "refused" else "waiting for consent"
            for where in ("list", "conversation", "history"):
                assert label in pages[where], (state, where)
            assert '"withheld":"consent"' in pages["api"]
        await _set_state(runtime, contact_id, "granted")
        pages = await _pages(client, api, conv_id)
        for where, text in pages.items():
            assert SECRET in text, where
            assert "waiting for consent" not in text, where

        # The setting shows content before consent; "unknown" counts only with consent first.
        await _set_state(runtime, contact_id, "asked")
        runtime.settings = runtime.settings.with_overrides(agents_see_before_consent=True)
        assert SECRET in (await client.get(f"/inbox/c/{conv_id}")).text
        runtime.settings = runtime.settings.with_overrides(
            agents_see_before_consent=False, consent_first=False
        )
        assert SECRET not in (await client.get(f"/inbox/c/{conv_id}")).text
        await _set_state(runtime, contact_id, "unknown")
        assert SECRET in (await client.get(f"/inbox/c/{conv_id}")).text
        await api.aclose()


async def test_restricted_contact_is_withheld_and_nothing_is_sent(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "chef@laden.de", "admin", PASSWORD, language="de")
    token = await helpers.seed_token(runtime, ws)
    async with helpers.client_for(runtime) as client:
        api = httpx.AsyncClient(
            transport=client._transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token}"},
        )
        conv_id = await _inbound(runtime, client, channel)
        contact_id = await _contact_of(runtime, conv_id)
        await _set_state(runtime, contact_id, "granted")
        await _login(client, "chef@laden.de")
        page = await client.get(f"/inbox/c/{conv_id}")
        assert SECRET in page.text and "Verarbeitung einschränken" in page.text
        answer = await client.post(
            f"/inbox/contacts/{contact_id}/restrict",
            data={"restricted": "1", "c": conv_id, "_csrf_token": _csrf(page.text)},
        )
        assert answer.status_code in (200, 303)
        pages = await _pages(client, api, conv_id)
        for where, text in pages.items():
            assert SECRET not in text, where
        assert "Einschränkung aufheben" in pages["conversation"]
        assert '"withheld":"restricted"' in pages["api"]

        refused = await api.post(
            f"/api/v1/conversations/{conv_id}/messages", json={"kind": "text", "body": "Hallo"}
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "restricted"
        reply = await client.post(
            f"/inbox/c/{conv_id}/reply",
            data={"body": "Hallo", "_csrf_token": _csrf(pages["conversation"])},
        )
        assert reply.status_code == 422
        contact = await api.get(f"/api/v1/contacts/{contact_id}")
        assert contact.json()["restricted_at"]

        lifted = await api.delete(f"/api/v1/contacts/{contact_id}/restriction")
        assert lifted.status_code == 200 and lifted.json()["restricted"] is False
        assert SECRET in (await client.get(f"/inbox/c/{conv_id}")).text
        again = await api.post(f"/api/v1/contacts/{contact_id}/restriction")
        assert again.json()["restricted"] is True
        assert (await api.post("/api/v1/contacts/nope/restriction")).status_code == 404
        await api.aclose()
    async with runtime.sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.subject_id == contact_id)
                .order_by(AuditEntry.id)
            )
        )
        assert [a for a in actions if "restrict" in a] == [
            "contact.restricted",
            "contact.unrestricted",
            "contact.restricted",
        ]
        assert (await audit.verify(session, ws)).ok


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_restricted_contact_gets_no_processing_and_queued_sends_stop(
    runtime: Runtime,
) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_stack(runtime) as stack:
        conv_id = await stack.customer_writes("Hallo")
        await _wait(lambda: _true(len(stack.sim.ledger) == 1))  # the consent question
        contact_id = await _contact_of(runtime, conv_id)
        async with runtime.sessions() as session, session.begin():
            await set_restricted(
                session, stack.channel.workspace_id, contact_id, True, actor_id=None, via="test"
            )
        await stack.customer_writes("JA")
        await stack.customer_writes("Wann habt ihr offen?")

        async def stored() -> bool:
            async with runtime.sessions() as session:
                n = await session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.conversation_id == conv_id, Message.direction == "inbound")
                )
                return n == 3

        await _wait(stored)
        await asyncio.sleep(0.5)  # the process jobs had time to answer, if they would
        async with runtime.sessions() as session:
            contact = await session.get_one(Contact, contact_id)
            conv = await session.get_one(Conversation, conv_id)
        assert contact.consent_state == "asked"  # the JA was stored, not processed
        assert conv.queued_at is None and conv.assignee_id is None
        assert len(stack.sim.ledger) == 1

    # A message queued before the restriction is not sent after it.
    async with runtime.sessions() as session, session.begin():
        await set_restricted(
            session, stack.channel.workspace_id, contact_id, False, actor_id=None, via="test"
        )
        await _set_state_in(session, contact_id, "granted")
    async with running_stack(runtime, worker=False) as stack2:
        sent = await stack2.reply(conv_id, {"kind": "text", "body": "Wir haben offen"})
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["id"]
        async with runtime.sessions() as session, session.begin():
            await set_restricted(
                session, stack2.channel.workspace_id, contact_id, True, actor_id=None, via="test"
            )
        async with helpers.worker_running(runtime):
            done = await stack2.wait_states([message_id], {"failed"})
        assert done[message_id].error_code == "restricted"
        assert stack2.sim.ledger == []


async def _set_state_in(session, contact_id: str, state: str) -> None:  # type: ignore[no-untyped-def]
    await session.execute(
        update(Contact).where(Contact.id == contact_id).values(consent_state=state)
    )


async def _true(value: bool) -> bool:
    return value


async def test_retention_keeps_a_restricted_contact(runtime: Runtime) -> None:

    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, "Keepme9Restricted")
    old = utcnow() - timedelta(days=2000)
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact_id)
            .values(last_message_at=old, created_at=old, status="resolved")
        )
        await session.execute(
            update(Message)
            .where(
                Message.conversation_id.in_(
                    select(Conversation.id).where(Conversation.contact_id == contact_id)
                )
            )
            .values(created_at=old)
        )
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(created_at=old)
        )
        await set_restricted(session, ws, contact_id, True, actor_id=None, via="test")

    result = await retention.run(runtime.sessions, runtime.settings.secret_key, runtime.files)
    assert result.workspaces[ws].counts() == {
        "conversations": 0,
        "media_files": 0,
        "contacts": 0,
        "link_clicks": 0,
    }
    async with runtime.sessions() as session, session.begin():
        assert await session.get(Contact, contact_id) is not None
        await set_restricted(session, ws, contact_id, False, actor_id=None, via="test")
    result = await retention.run(runtime.sessions, runtime.settings.secret_key, runtime.files)
    assert result.workspaces[ws].conversations == 1
    assert result.workspaces[ws].contacts == 1
