"""Click-to-chat links, QR codes and snippets; deep links arrive as the same START keyword."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tests.pipeline.stack import running_stack
from tests.pipeline.test_messenger_e2e import PSID, meta_stack
from tests.pipeline.test_telegram_e2e import CHAT, telegram_stack
from tests.privacy.test_double_optin import _count, _sent_to, _subs, _wait
from tests.privacy.test_double_optin import _topic as _optin_topic
from tresen.broadcast import clicktochat, topics
from tresen.channels.base import ConfigError
from tresen.channels.manage import add_channel
from tresen.channels.telegram import TelegramChannel
from tresen.channels.whatsapp import WhatsAppChannel
from tresen.db.tables import ChannelRow, Subscription, Topic
from tresen.domain.deeplink import MAX_PAYLOAD, PayloadTooLong, decode_payload, encode_payload
from tresen.inbox import accounts
from tresen.runtime import Runtime

BASE = "https://tresen.shop.example"


def _channel(kind: str, **config: object) -> ChannelRow:
    return ChannelRow(
        id="01channel", workspace_id="w", kind=kind, name=f"Mein {kind}", config=config
    )


def _topic(name: str = "Live-Ticker") -> Topic:
    return Topic(id="01topic", workspace_id="w", keyword="ticker", name=name, descriptions={})


@given(st.text(max_size=80))
def test_payload_round_trips_or_says_it_is_too_long(text: str) -> None:
    try:
        payload = encode_payload(text)
    except PayloadTooLong:
        assert len(text.encode()) > 44  # 64 - "b64_" leaves 60 base64 characters = 45 bytes
        return
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload) and len(payload) <= MAX_PAYLOAD
    if text.strip():
        assert decode_payload(payload) == text


@given(st.text(max_size=100))
def test_decode_never_fails(payload: str) -> None:
    decoded = decode_payload(payload)
    assert decoded is None or isinstance(decoded, str)


def test_links_per_channel_and_what_is_missing() -> None:
    text = clicktochat.prefill(_topic())
    assert text == "START ticker"
    wa = clicktochat.link_for(_channel("whatsapp", display_phone_number="4930123456"), text, BASE)
    assert wa.url == "https://wa.me/4930123456?text=START%20ticker"
    tg = clicktochat.link_for(_channel("telegram", bot_username="laden_bot"), text, BASE)
    assert tg.url == "https://t.me/laden_bot?start=START-ticker"
    fb = clicktochat.link_for(_channel("messenger", page_id="1234567"), text, BASE)
    assert fb.url == "https://m.me/1234567?ref=START-ticker"
    named = clicktochat.link_for(
        _channel("messenger", page_id="1234567", page_username="radladen.berlin"), text, BASE
    )
    assert named.url == "https://m.me/radladen.berlin?ref=START-ticker"
    web = clicktochat.link_for(
        _channel("webchat", page_url="https://shop.example/kontakt?x=1"), text, BASE
    )
    assert web.url is not None and web.hint is None
    assert parse_qs(urlsplit(web.url).query) == {"x": ["1"], "tresen_text": ["START ticker"]}
    own = clicktochat.link_for(_channel("webchat"), text, BASE)
    assert own.url == f"{BASE}/chat/01channel/demo?tresen_text=START%20ticker"
    assert own.hint and "page_url" in own.hint
    sms = clicktochat.link_for(_channel("sms", from_number="+4930123456"), text, BASE)
    assert sms.url == "sms:+4930123456?body=START%20ticker"
    for kind, field in [
        ("whatsapp", "display_phone_number"),
        ("telegram", "bot_username"),
        ("sms", "from_number"),
    ]:
        missing = clicktochat.link_for(_channel(kind), text, BASE)
        assert missing.url is None and missing.missing and missing.missing.startswith(field)
    assert clicktochat.link_for(_channel("email"), text, BASE).url is None


def test_channel_configs_take_and_check_the_new_facts() -> None:

    wa = WhatsAppChannel.check_config(
        {**helpers.WA_CONFIG, "display_phone_number": "+49 (30) 123-456"}
    )
    assert wa["display_phone_number"] == "4930123456"
    with pytest.raises(ConfigError, match="country code"):
        WhatsAppChannel.check_config({**helpers.WA_CONFIG, "display_phone_number": "030 123456"})
    base = {"bot_token": "123456:ABC-def", "secret_token": "s"}
    assert (
        TelegramChannel.check_config({**base, "bot_username": "@laden_bot"})["bot_username"]
        == "laden_bot"
    )
    with pytest.raises(ConfigError, match="bot_username"):
        TelegramChannel.check_config({**base, "bot_username": "no spaces"})
    assert "bot_username" in TelegramChannel.check_config(base)  # optional


def test_qr_codes_and_snippet() -> None:
    url = "https://wa.me/4930123456?text=START%20ticker"
    svg = clicktochat.qr_svg(url)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    png = clicktochat.qr_png(url)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    link = clicktochat.link_for(
        _channel("whatsapp", display_phone_number="4930123456"), "START ticker", BASE
    )
    snippet = clicktochat.share_snippet(link, _topic('Ticker "<b>live</b>"'), "en")
    assert f'href="{url}"' in snippet and "data:image/svg+xml" in snippet
    assert "<b>" not in snippet and "&lt;b&gt;" in snippet
    assert "on WhatsApp" in snippet
    assert "über WhatsApp" in clicktochat.share_snippet(link, _topic(), "de")
    with pytest.raises(ValueError, match="display_phone_number"):
        clicktochat.share_snippet(clicktochat.link_for(_channel("whatsapp"), "x", BASE), _topic())


def test_qr_code_decodes_to_the_link() -> None:
    cv2 = pytest.importorskip("cv2")
    numpy = pytest.importorskip("numpy")
    url = "https://t.me/laden_bot?start=START-ticker"
    image = cv2.imdecode(
        numpy.frombuffer(clicktochat.qr_png(url), numpy.uint8), cv2.IMREAD_GRAYSCALE
    )
    decoded, _points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert decoded == url


def test_deep_link_payloads_become_the_keyword() -> None:
    tg = topics.parse_command("/start START-ticker", {}, "telegram")
    assert tg == topics.Command("subscribe", keyword="ticker")
    assert topics.parse_command("/start@laden_bot START-ticker", {}, "telegram") == tg
    assert topics.parse_command("/start", {}, "telegram") is None
    assert topics.parse_command("/start START-ticker", {}, "whatsapp") is None
    encoded = encode_payload("ANMELDEN news")
    assert topics.parse_command(f"/start {encoded}", {}, "telegram") == topics.Command(
        "subscribe", keyword="news", language="de"
    )
    postback = {
        "postback": {
            "title": "Get Started",
            "referral": {"ref": "START-ticker", "source": "SHORTLINK"},
        }
    }
    assert topics.parse_command("Get Started", postback, "messenger") == tg
    referral = {"referral": {"ref": "START-ticker", "source": "SHORTLINK", "type": "OPEN_THREAD"}}
    assert topics.parse_command(None, referral, "messenger") == tg
    assert topics.parse_command(None, {"referral": {"ref": "!!"}}, "messenger") is None


async def _until(check: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _states(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Subscription.state)))


async def test_telegram_start_link_starts_the_double_opt_in(runtime: Runtime) -> None:
    async with telegram_stack(runtime) as stack:
        made = await stack.api.post(
            "/api/v1/topics", json={"keyword": "ticker", "name": "Live-Ticker"}
        )
        assert made.status_code == 201, made.text
        await stack.customer_writes("/start START-ticker")

        async def asked() -> bool:
            return await _states(runtime) == ["pending"] and bool(stack.sim.messages_for(CHAT))

        await _until(asked)
        [entry] = [e for e in stack.sim.ledger if e.chat_id == CHAT]
        assert "Live-Ticker" in entry.payload["text"] and "/s/confirm/" in entry.payload["text"]


async def test_messenger_referral_starts_the_double_opt_in(runtime: Runtime) -> None:
    async with meta_stack(runtime, "messenger") as stack:
        made = await stack.api.post(
            "/api/v1/topics", json={"keyword": "ticker", "name": "Live-Ticker"}
        )
        assert made.status_code == 201, made.text
        stack.sim.customer_wrote(PSID)
        now = int(time.time() * 1000)
        event = {
            "sender": {"id": PSID},
            "recipient": {"id": stack.sim.config.page_id},
            "timestamp": now,
            "referral": {"ref": "START-ticker", "source": "SHORTLINK", "type": "OPEN_THREAD"},
        }
        assert await stack.sim.deliver([event])
        assert await stack.sim.deliver([event])  # a repeated delivery is stored once

        async def asked() -> bool:
            return await _states(runtime) == ["pending"] and bool(stack.sim.messages_for(PSID))

        await _until(asked)
        sent = stack.sim.messages_for(PSID)
        assert len(sent) == 1 and "Live-Ticker" in str(sent[0])
        messages = await stack.runtime.sessions().__aenter__()
        try:
            bodies = [
                m.body
                for m in await messages.scalars(
                    select(topics.Message).where(topics.Message.direction == "inbound")
                )
            ]
        finally:
            await messages.close()
        assert bodies == ["START ticker"]


async def test_admin_page_lists_links_qr_and_snippets(runtime: Runtime) -> None:
    ws, wa = await helpers.seed_whatsapp(runtime, display_phone_number="+49 30 123456")
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "chefin@laden.example", "admin", PASSWORD)
        await accounts.add_user(session, ws, "agent@laden.example", "agent", PASSWORD)
        await topics.create_topic(session, ws, "ticker", "Live <Ticker>")

        tg = await add_channel(
            session, ws, "telegram", "Bot", {"bot_token": "123456:ABC-def", "secret_token": "s"}
        )
    async with helpers.client_for(runtime) as client:
        await _login(client, "agent@laden.example")
        assert (await client.get("/inbox/admin/topics")).status_code == 403
    async with helpers.client_for(runtime) as client:
        await _login(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/topics", headers={"accept-language": "en"})
        assert page.status_code == 200
        html = page.text
        assert "https://wa.me/4930123456?text=START%20ticker" in html
        assert "Live &lt;Ticker&gt;" in html and "<Ticker>" not in html
        assert "data:image/svg+xml" in html and "&lt;a href=" in html  # the snippet, escaped
        assert f'href="/inbox/admin/channels/{tg.id}"' in html, (
            "the missing setting is one click away"
        )
        topic_id = re.search(r"/inbox/admin/topics/([0-9a-z]+)/qr/", html)
        assert topic_id
        assert f"/s/subscribe/{topic_id.group(1)}</a>" in html, "the public form is linked"
        svg = await client.get(f"/inbox/admin/topics/{topic_id.group(1)}/qr/{wa.id}/svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        png = await client.get(f"/inbox/admin/topics/{topic_id.group(1)}/qr/{wa.id}/png")
        assert png.content.startswith(b"\x89PNG")
        assert (
            await client.get(f"/inbox/admin/topics/{topic_id.group(1)}/qr/{tg.id}/png")
        ).status_code == 404
        assert (
            await client.get(f"/inbox/admin/topics/{topic_id.group(1)}/qr/{wa.id}/gif")
        ).status_code == 404
        csv_bad = b"channel,address,consent_source,consent_at,consent_proof\nwhatsapp,+4915112345678,,2025-01-01,x\n"
        answer = await client.post(
            "/inbox/admin/topics/import",
            data={"_csrf_token": _csrf(html), "topic": "ticker", "apply": "1"},
            files={"file": ("s.csv", csv_bad, "text/csv")},
        )
        # The admin's language is German (the default of a new account).
        assert answer.status_code == 200
        assert "Zeile 2: Kein Nachweis der Einwilligung: consent_source leer" in answer.text
        assert "Es wurde nichts importiert." in answer.text
        good = csv_bad.replace(b",,2025", b",Laden,2025")
        answer = await client.post(
            "/inbox/admin/topics/import",
            data={"_csrf_token": _csrf(html), "topic": "ticker", "apply": "1"},
            files={"file": ("s.csv", good, "text/csv")},
        )
        assert "Importiert: 1" in answer.text and "<h1>Themen</h1>" in answer.text
    assert await _states(runtime) == ["confirmed"]


async def test_keyword_from_a_link_survives_the_consent_question(runtime: Runtime) -> None:

    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    first, second = "4915100000081", "4915100000082"
    async with running_stack(runtime) as stack:
        await _optin_topic(stack, "ticker", "Live-Ticker")
        # The wa.me link's prefilled text is the new contact's first message.
        await stack.sim.customer_sends(first, body="START ticker")
        await _count(stack, first, 1)
        assert "Datenschutz" in _sent_to(stack, first)[0]  # the privacy notice, not the opt-in
        assert await _subs(runtime) == {}
        await stack.sim.customer_sends(first, body="Ja")
        await _count(stack, first, 3)  # thanks, then the confirmation request
        assert "Live-Ticker" in _sent_to(stack, first)[2]
        assert await _subs(runtime) == {"ticker": "pending"}
        await stack.sim.customer_sends(first, body="JA")
        await _wait(lambda: _is_confirmed(runtime))

        # A STOP between the keyword and the yes wins: nothing is requested.
        await stack.sim.customer_sends(second, body="START ticker")
        await _count(stack, second, 1)
        await stack.sim.customer_sends(second, body="STOP")
        await _count(stack, second, 2)
        await stack.sim.customer_sends(second, body="Ja")
        await _count(stack, second, 3)
        await asyncio.sleep(0.5)
        assert len(_sent_to(stack, second)) == 3
        assert "Live-Ticker" not in _sent_to(stack, second)[2]


async def _is_confirmed(runtime: Runtime) -> bool:
    return await _states(runtime) == ["confirmed"]
