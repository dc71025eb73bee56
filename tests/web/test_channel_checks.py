"""The channels page's live check, test message and last webhook, over HTTP against the
simulators."""

from __future__ import annotations

import asyncio
import re
import time

from sqlalchemy import select

from tests import helpers
from tests.web.pagekit import csrf, person, sign_in
from tresen.db.tables import ChannelRow, Message
from tresen.runtime import Runtime
from tresen.sim.messenger import MessengerSimConfig, run_messenger_simulator
from tresen.sim.sms import SmsSimConfig, run_sms_simulator
from tresen.sim.telegram import TelegramSimConfig, run_telegram_simulator
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator
from tresen.web import webhook_seen


async def _settled(runtime: Runtime, message_id: str, timeout: float = 10.0) -> str:
    """The message's state once the worker handed it over (the provider's answer is awaited)."""
    deadline = time.monotonic() + timeout
    while True:
        async with runtime.sessions() as session:
            state = await session.scalar(select(Message.state).where(Message.id == message_id))
        if state not in ("queued", "sending") or time.monotonic() > deadline:
            return str(state)
        await asyncio.sleep(0.05)


def _result(html: str) -> str:
    found = re.search(r'id="check-result">([^<]*)<', html)
    assert found, "the page shows the check's result"
    return found.group(1)


async def _check(client, channel_id: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    page = await client.get(f"/inbox/admin/channels/{channel_id}")
    answer = await client.post(
        f"/inbox/admin/channels/{channel_id}/check", data={"_csrf_token": csrf(page.text)}
    )
    return answer.status_code, _result(answer.text)


async def _set(runtime: Runtime, channel_id: str, **changes: str) -> None:
    async with runtime.sessions() as session, session.begin():
        row = await session.get_one(ChannelRow, channel_id)
        row.config = {**row.config, **changes}


async def test_the_whatsapp_check_signs_in_and_names_wrong_tokens_and_refused_hosts(
    runtime: Runtime,
) -> None:
    async with run_whatsapp_simulator(WhatsAppSimConfig()) as sim:
        ws, row = await helpers.seed_whatsapp(runtime, api_base=sim.base_url)
        await person(runtime, ws, "chefin@laden.example", "admin", language="en")
        async with helpers.client_for(runtime) as client:
            await sign_in(client, "chefin@laden.example")
            status, text = await _check(client, row.id)
            assert status == 200
            assert text == "Works: signed in as tresen Simulator · +49 30 1234567."
            await _set(runtime, row.id, access_token="falsches-token")
            _, text = await _check(client, row.id)
            assert text.startswith("The provider refused the access data")
            await _set(runtime, row.id, api_base="http://10.255.255.1:9")
            _, text = await _check(client, row.id)
            assert text.startswith("The outbound guard refused the address"), text
            await _set(runtime, row.id, api_base="http://127.0.0.1:1")
            _, text = await _check(client, row.id)
            assert text.startswith("The server cannot be reached"), text


async def test_checks_of_telegram_sms_messenger_and_web_chat_in_german(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with (
        run_telegram_simulator(TelegramSimConfig()) as tg,
        run_sms_simulator(SmsSimConfig()) as sms,
        run_messenger_simulator(MessengerSimConfig()) as fb,
        helpers.client_for(runtime) as client,
    ):
        await sign_in(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/channels/new/telegram")
        token = csrf(page.text)
        configs = {
            "telegram": {
                "bot_token": tg.config.bot_token,
                "secret_token": tg.config.secret_token,
                "api_base": tg.base_url,
            },
            "sms": {
                "account_sid": sms.config.account_sid,
                "auth_token": sms.config.auth_token,
                "from_number": sms.config.phone_number,
                "api_base": sms.base_url,
            },
            "messenger": {
                "page_id": fb.config.page_id,
                "page_access_token": fb.config.page_access_token,
                "app_secret": "geheim",
                "verify_token": "wort",
                "api_base": fb.base_url,
            },
            "webchat": {"allowed_origins": "https://laden.example"},
        }
        expected = {
            "telegram": f"Funktioniert: angemeldet als @{tg.config.bot_username}.",
            "sms": "Funktioniert: angemeldet als tresen Simulator.",
            "messenger": "Funktioniert: angemeldet als tresen Simulator.",
            "webchat": "Nichts zu prüfen: Dieser Kanal läuft in tresen selbst und braucht keinen Anbieter.",
        }
        for kind, config in configs.items():
            created = await client.post(
                f"/inbox/admin/channels/new/{kind}",
                data={"name": kind, **config, "_csrf_token": token},
            )
            assert created.status_code == 303, created.text
            channel_id = created.headers["location"].split("/")[-1].split("?")[0]
            _, text = await _check(client, channel_id)
            assert text == expected[kind]
            if kind == "webchat":
                continue
            secret = {
                "telegram": "bot_token",
                "sms": "auth_token",
                "messenger": "page_access_token",
            }
            await _set(runtime, channel_id, **{secret[kind]: "123:falsch"})
            _, text = await _check(client, channel_id)
            assert text.startswith("Der Anbieter hat die Zugangsdaten abgelehnt"), (kind, text)


async def test_a_test_message_goes_out_through_the_send_path(runtime: Runtime) -> None:
    async with run_whatsapp_simulator(WhatsAppSimConfig(status_delays=(0.01, 0.02, 0.03))) as sim:
        ws, row = await helpers.seed_whatsapp(runtime, api_base=sim.base_url)
        await person(runtime, ws, "chefin@laden.example", "admin", language="en")
        async with helpers.client_for(runtime, worker=True) as client:
            await sign_in(client, "chefin@laden.example")
            page = await client.get(f"/inbox/admin/channels/{row.id}")
            token = csrf(page.text)
            never = await client.post(
                f"/inbox/admin/channels/{row.id}/test",
                data={"address": "+49 151 0000 0001", "_csrf_token": token},
            )
            assert never.status_code == 422
            assert "has never written to this channel" in never.text
            bad = await client.post(
                f"/inbox/admin/channels/{row.id}/test",
                data={"address": "keine nummer", "_csrf_token": token},
            )
            assert bad.status_code == 422 and 'id="test-result"' in bad.text
            empty = await client.post(
                f"/inbox/admin/channels/{row.id}/test", data={"address": "", "_csrf_token": token}
            )
            assert empty.status_code == 422 and "Please enter your own address" in empty.text
            body = helpers.dumps(
                helpers.wa_envelope(messages=[helpers.wa_text("wamid.ich", "4915100000001", "Hi")])
            )
            await client.post(
                f"/webhooks/whatsapp/{row.id}", content=body, headers=helpers.wa_sign(body)
            )
            sim.open_window("4915100000001")  # the simulator saw the same message
            page = await client.get(f"/inbox/admin/channels/{row.id}")
            assert '<option value="4915100000001">' in page.text, "who wrote can be picked"
            sent = await client.post(
                f"/inbox/admin/channels/{row.id}/test",
                data={"address": "", "known": "4915100000001", "_csrf_token": token},
            )
            assert sent.status_code == 303
            message_id = sent.headers["location"].split("test=")[1].split("#")[0]
            async with runtime.sessions() as session:
                message = await session.get_one(Message, message_id)
                assert message.body == "Test message from tresen: this channel works."
            state = await _settled(runtime, message_id)
            assert state in ("sent", "delivered", "read"), state
            shown = await client.get(sent.headers["location"])
            assert f'<span class="test-state">{state}</span>' in shown.text
            assert sim.messages_for("4915100000001"), "the simulator got the test message"


async def test_the_last_webhook_is_shown_with_its_result(runtime: Runtime) -> None:
    ws, row = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin", language="en")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        page = await client.get(f"/inbox/admin/channels/{row.id}")
        assert "The provider has not called the webhook yet." in page.text
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text("wamid.1", "4915100000001", "Hallo")])
        )
        forged = await client.post(
            f"/webhooks/whatsapp/{row.id}", content=body, headers=helpers.wa_sign(body, "falsch")
        )
        assert forged.status_code in (401, 403)
        page = await client.get(f"/inbox/admin/channels/{row.id}")
        assert "signature refused" in page.text
        garbage = b'{"object": "whatsapp_business_account", "entry": 5}'
        bad = await client.post(
            f"/webhooks/whatsapp/{row.id}", content=garbage, headers=helpers.wa_sign(garbage)
        )
        assert bad.status_code == 400
        assert "bad payload" in (await client.get(f"/inbox/admin/channels/{row.id}")).text
        ok = await client.post(
            f"/webhooks/whatsapp/{row.id}", content=body, headers=helpers.wa_sign(body)
        )
        assert ok.status_code == 200
        listing = await client.get("/inbox/admin/channels")
        cell = re.search(r'<td class="last-webhook">(.*?)</td>', listing.text, re.S)
        assert cell and "accepted" in cell.group(1)
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(ChannelRow.last_webhook_result).where(ChannelRow.id == row.id)
        )
    assert stored == webhook_seen.ACCEPTED


async def test_the_same_result_is_written_at_most_once_a_minute(runtime: Runtime) -> None:
    _, row = await helpers.seed_whatsapp(runtime)
    await webhook_seen.note(runtime, row.id, webhook_seen.ACCEPTED)
    async with runtime.sessions() as session, session.begin():
        first = await session.get_one(ChannelRow, row.id)
        first.last_webhook_result = "marker"
    await webhook_seen.note(runtime, row.id, webhook_seen.ACCEPTED)
    async with runtime.sessions() as session:
        again = await session.get_one(ChannelRow, row.id)
        assert again.last_webhook_result == "marker", "a repeat within a minute writes nothing"
    await webhook_seen.note(runtime, row.id, webhook_seen.REFUSED)
    async with runtime.sessions() as session:
        changed = await session.get_one(ChannelRow, row.id)
        assert changed.last_webhook_result == webhook_seen.REFUSED, "a new result is written"
