"""Replies on the channel the customer last used, or one the agent picks (WhatsApp + Telegram)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.pipeline.stack import CUSTOMER, Stack, running_stack
from tresen.channels.manage import add_channel, webhook_url
from tresen.channels.telegram import set_webhook
from tresen.db.tables import ChannelRow, ContactIdentity, Conversation, Message, User
from tresen.db.types import utcnow
from tresen.inbox import accounts, contacts, service
from tresen.inbox.permissions import Actor, actor_for
from tresen.pipeline.outbound import OutboundRefused
from tresen.runtime import Runtime
from tresen.sim.telegram import TelegramSimConfig, TelegramSimulator, run_telegram_simulator

CHAT = 555000222


@asynccontextmanager
async def two_channels(runtime: Runtime) -> AsyncIterator[tuple[Stack, TelegramSimulator, str]]:
    """The WhatsApp stack plus a Telegram channel on its simulator; yields (stack, tg sim, tg id)."""
    async with (
        running_stack(runtime) as stack,
        run_telegram_simulator(TelegramSimConfig(webhook_retry_delays=(0.05,))) as tg,
    ):
        config = {
            "bot_token": tg.config.bot_token,
            "secret_token": "s3cret",
            "api_base": tg.base_url,
        }
        async with runtime.sessions() as session, session.begin():
            channel = await add_channel(
                session, stack.channel.workspace_id, "telegram", "Bot", config
            )
        await set_webhook(runtime.http, config, webhook_url(stack.base_url, channel))
        yield stack, tg, channel.id


async def _agent(runtime: Runtime, workspace_id: str) -> Actor:
    async with runtime.sessions() as session, session.begin():
        user = await accounts.add_user(
            session, workspace_id, "kim@laden.example", "admin", "richtig-langes-passwort"
        )
    async with runtime.sessions() as session:
        return await actor_for(session, await session.get_one(User, user.id))


async def _one_person(
    runtime: Runtime, stack: Stack, tg: TelegramSimulator, tg_id: str
) -> tuple[str, str, str]:
    """The same person writes on WhatsApp, then on Telegram; merged. Returns (wa conv, tg conv, tg identity)."""
    wa_conv = await stack.customer_writes("Hallo per WhatsApp")
    await tg.customer_sends(CHAT, first_name="Jana", body="Hallo per Telegram")
    async with runtime.sessions() as session:
        tg_conv = await session.scalar(select(Conversation).where(Conversation.channel_id == tg_id))
        wa = await session.get_one(Conversation, wa_conv)
    assert tg_conv is not None
    async with runtime.sessions() as session, session.begin():
        await contacts.merge(session, wa.workspace_id, wa.contact_id, tg_conv.contact_id)
    return wa_conv, tg_conv.id, tg_conv.identity_id


async def test_reply_goes_to_the_last_used_or_the_picked_channel(runtime: Runtime) -> None:
    async with two_channels(runtime) as (stack, tg, tg_id):
        agent = await _agent(runtime, stack.channel.workspace_id)
        wa_conv, tg_conv, tg_identity = await _one_person(runtime, stack, tg, tg_id)
        async with runtime.sessions() as session:
            wa_identity = (await session.get_one(Conversation, wa_conv)).identity_id
            view = await service.conversation_view(session, agent, wa_conv)
        assert {o.identity_id for o in view.reply_options} == {wa_identity, tg_identity}
        assert view.reply_default == tg_identity, "the customer wrote on Telegram last"
        async with runtime.sessions() as session, session.begin():
            by_default = await service.reply(session, agent, wa_conv, "Antwort ohne Wahl")
            picked = await service.reply(
                session, agent, wa_conv, "Antwort per WhatsApp", identity_id=wa_identity
            )
        assert by_default.conversation_id == tg_conv and by_default.channel_id == tg_id
        assert picked.conversation_id == wa_conv
        stack.runtime.jobs_ready.set()
        await stack.wait_states([by_default.id, picked.id], {"sent", "delivered", "read"})
        assert [e.payload["text"] for e in tg.ledger] == ["Antwort ohne Wahl"]
        assert [e.to for e in stack.sim.ledger] == [CUSTOMER]
        # from the Telegram conversation the agent picks WhatsApp explicitly
        async with runtime.sessions() as session, session.begin():
            back = await service.reply(
                session, agent, tg_conv, "Nochmal per WhatsApp", identity_id=wa_identity
            )
        assert back.conversation_id == wa_conv and back.channel_id == stack.channel.id


async def test_window_closed_on_the_picked_channel_is_refused_clearly(runtime: Runtime) -> None:
    async with two_channels(runtime) as (stack, tg, tg_id):
        agent = await _agent(runtime, stack.channel.workspace_id)
        wa_conv, tg_conv, _ = await _one_person(runtime, stack, tg, tg_id)
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == wa_conv)
                .values(last_inbound_at=utcnow() - timedelta(days=2))
            )
            wa_identity = (await session.get_one(Conversation, wa_conv)).identity_id
        async with runtime.sessions() as session:
            view = await service.conversation_view(session, agent, tg_conv)
            before = await session.scalar(select(func.count()).select_from(Message))
        [wa_option] = [o for o in view.reply_options if o.identity_id == wa_identity]
        assert not wa_option.can_send and "24 hours" in (wa_option.reason or "")
        with pytest.raises(OutboundRefused, match="within 24 hours") as refused:
            async with runtime.sessions() as session, session.begin():
                await service.reply(session, agent, tg_conv, "Hallo", identity_id=wa_identity)
        assert refused.value.code == "window_closed"
        async with runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == before
        with pytest.raises(contacts.ContactRefused, match="does not belong"):
            async with runtime.sessions() as session, session.begin():
                await service.reply(session, agent, tg_conv, "Hallo", identity_id="01NOPE")


async def test_a_new_conversation_opens_on_a_windowless_channel(runtime: Runtime) -> None:
    """A contact with a Telegram identity but no Telegram conversation yet: the reply opens one."""
    async with two_channels(runtime) as (stack, tg, tg_id):
        agent = await _agent(runtime, stack.channel.workspace_id)
        wa_conv = await stack.customer_writes("Hallo")
        async with runtime.sessions() as session, session.begin():
            wa = await session.get_one(Conversation, wa_conv)
            identity = ContactIdentity(
                workspace_id=wa.workspace_id,
                contact_id=wa.contact_id,
                channel_id=tg_id,
                address=str(CHAT),
            )
            session.add(identity)
            await session.flush()
            identity_id = identity.id
            await session.execute(
                update(Conversation)
                .where(Conversation.id == wa_conv)
                .values(last_inbound_at=utcnow() - timedelta(days=2))
            )
        async with runtime.sessions() as session:
            view = await service.conversation_view(session, agent, wa_conv)
        assert view.reply_open and view.reply_default == identity_id, (
            "WhatsApp's window is closed: the reply box offers Telegram first"
        )
        async with runtime.sessions() as session, session.begin():
            sent = await service.reply(
                session, agent, wa_conv, "Wir schreiben per Telegram", identity_id=identity_id
            )
        async with runtime.sessions() as session:
            opened = await session.get_one(Conversation, sent.conversation_id)
            channel = await session.get_one(ChannelRow, opened.channel_id)
        assert channel.kind == "telegram" and opened.identity_id == identity_id
        stack.runtime.jobs_ready.set()
        await stack.wait_states([sent.id], {"sent", "delivered", "read"})
        assert [e.payload["text"] for e in tg.ledger] == ["Wir schreiben per Telegram"]
