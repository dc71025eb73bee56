"""Double opt-in and one-word opt-out over the WhatsApp simulator, the API and the link."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from tests.pipeline.stack import CUSTOMER as WRITER
from tests.pipeline.stack import Stack, running_stack
from tresen.broadcast import topics
from tresen.db.tables import ConsentEvent, Contact, Subscription
from tresen.db.types import utcnow
from tresen.runtime import Runtime

CUSTOMER = "4915100000071"


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _sent_to(stack: Stack, wa_id: str) -> list[str]:
    """Texts (body of text or interactive messages) the simulator accepted for one customer."""
    out = []
    for e in stack.sim.ledger:
        if e.to != wa_id:
            continue
        if e.type == "interactive":
            out.append(e.payload["interactive"]["body"]["text"])
        else:
            out.append(e.payload.get("text", {}).get("body", ""))
    return out


async def _count(stack: Stack, wa_id: str, n: int) -> None:
    async def enough() -> bool:
        return len(_sent_to(stack, wa_id)) >= n

    await _wait(enough)


async def _subs(runtime: Runtime) -> dict[str, str]:
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(topics.Topic.keyword, Subscription.state).join(
                    topics.Topic, topics.Topic.id == Subscription.topic_id
                )
            )
        ).all()
    return {k: s for k, s in rows}


async def _events(runtime: Runtime) -> list[ConsentEvent]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))


async def _topic(stack: Stack, keyword: str, name: str) -> None:
    created = await stack.api.post(
        "/api/v1/topics",
        json={"keyword": keyword, "name": name, "descriptions": {"de": "Spielstände live"}},
    )
    assert created.status_code == 201, created.text


async def test_keyword_then_yes_then_stop_one_topic(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        await _topic(stack, "ticker", "Live-Ticker")
        await _topic(stack, "news", "Neuigkeiten")
        await stack.sim.customer_sends(CUSTOMER, body="START ticker")
        await _count(stack, CUSTOMER, 1)
        entry = stack.sim.ledger[-1]
        assert entry.type == "interactive"
        text = entry.payload["interactive"]["body"]["text"]
        assert "Live-Ticker" in text and "/s/confirm/" in text and "STOP TICKER" in text
        [button] = entry.payload["interactive"]["action"]["buttons"]
        assert button["reply"]["id"].startswith(topics.CONFIRM_BUTTON)
        assert await _subs(runtime) == {"ticker": "pending"}

        await stack.sim.customer_sends(CUSTOMER, body="Ja")
        await _wait(lambda: _is(runtime, {"ticker": "confirmed"}))
        await _count(stack, CUSTOMER, 2)
        assert "angemeldet" in _sent_to(stack, CUSTOMER)[1]

        await stack.sim.customer_sends(CUSTOMER, body="ANMELDEN news")
        await _count(stack, CUSTOMER, 3)
        pressed = stack.sim.ledger[-1].payload["interactive"]["action"]["buttons"][0]["reply"]
        await stack.sim.customer_sends(CUSTOMER, type="interactive", body={"button_reply": pressed})
        await _wait(lambda: _is(runtime, {"ticker": "confirmed", "news": "confirmed"}))

        await stack.sim.customer_sends(CUSTOMER, body="STOP news")
        await _wait(lambda: _is(runtime, {"ticker": "confirmed", "news": "withdrawn"}))
        await _count(stack, CUSTOMER, 5)
        assert "abgemeldet" in _sent_to(stack, CUSTOMER)[-1]
    events = [(e.purpose, e.action, e.source) for e in await _events(runtime)]
    assert events == [
        ("topic:ticker", "requested", "whatsapp keyword"),
        ("topic:ticker", "granted", "whatsapp reply"),
        ("topic:news", "requested", "whatsapp keyword"),
        ("topic:news", "granted", "whatsapp button"),
        ("topic:news", "withdrawn", "whatsapp keyword"),
    ]
    proof = await _events(runtime)
    assert proof[0].text_hash == proof[1].text_hash and len(proof[0].text_hash or "") == 64
    assert proof[0].text_version == topics.CONFIRM_VERSION


async def _is(runtime: Runtime, expected: dict[str, str]) -> bool:
    return await _subs(runtime) == expected


@pytest.mark.parametrize("word", ["STOP", "stopp", "Abmelden", "ABBESTELLEN", "unsubscribe!"])
def test_every_opt_out_word_means_all_topics(word: str) -> None:
    command = topics.parse_command(word, {}, "telegram")
    assert command is not None and command.action == "unsubscribe" and command.keyword is None


def test_sms_stop_is_recorded_but_the_carrier_answers() -> None:
    command = topics.parse_command("END", {"keyword": "opt_out"}, "sms")
    assert command is not None and command.carrier_handled and command.keyword is None
    assert topics.parse_command("STOP news", {}, "sms") == topics.Command(
        "unsubscribe", keyword="news"
    )


@given(st.text(max_size=300), st.dictionaries(st.text(max_size=10), st.text(max_size=10)))
def test_parse_command_never_fails(text: str, payload: dict[str, str]) -> None:
    command = topics.parse_command(text, payload, "whatsapp")
    assert command is None or command.action in ("subscribe", "unsubscribe", "confirm")


async def test_stop_all_topics_and_no_notice_before_consent(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_stack(runtime) as stack:
        await _topic(stack, "ticker", "Live-Ticker")
        await _topic(stack, "news", "Neuigkeiten")
        # A first message that is a STOP is honoured and not answered with the consent question.
        await stack.sim.customer_sends("4915100000072", body="STOP")
        await _count(stack, "4915100000072", 1)
        assert "abgemeldet" in _sent_to(stack, "4915100000072")[0]
        async with runtime.sessions() as session:
            assert (await session.scalars(select(Contact.consent_state))).one() == "unknown"

        await stack.sim.customer_sends(CUSTOMER, body="Hallo")
        await _count(stack, CUSTOMER, 1)  # the privacy notice
        await stack.sim.customer_sends(CUSTOMER, body="Ja")  # consent, not a subscription
        await _count(stack, CUSTOMER, 2)
        for keyword in ("ticker", "news"):
            sent = len(_sent_to(stack, CUSTOMER))
            await stack.sim.customer_sends(CUSTOMER, body=f"START {keyword}")
            await _count(stack, CUSTOMER, sent + 1)
            await stack.sim.customer_sends(CUSTOMER, body="JA")
            await _count(stack, CUSTOMER, sent + 2)
        assert await _subs(runtime) == {"ticker": "confirmed", "news": "confirmed"}
        await stack.sim.customer_sends(CUSTOMER, body="Stopp")
        await _wait(lambda: _is(runtime, {"ticker": "withdrawn", "news": "withdrawn"}))
    withdrawn = [e.purpose for e in await _events(runtime) if e.action == "withdrawn"]
    assert sorted(withdrawn) == ["topic:news", "topic:ticker", "topics:all", "topics:all"]


async def _api_subscribe(stack: Stack, topic: str, contact_id: str) -> httpx.Response:
    return await stack.api.post(
        "/api/v1/subscriptions", json={"topic": topic, "contact_id": contact_id}
    )


def _link(text: str) -> str:
    """The path of the confirmation link in a message (the host is the configured base URL)."""
    found = re.search(r"http://testserver(/s/confirm/[A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1)


async def _form_post(client: httpx.AsyncClient, url: str) -> httpx.Response:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    return await client.post(url, data={"_csrf_token": csrf.group(1)})


async def test_link_confirms_once_and_expires(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        await _topic(stack, "ticker", "Live-Ticker")
        await _topic(stack, "news", "Neuigkeiten")
        conv_id = await stack.customer_writes("Hallo")
        contact_id = (await stack.api.get(f"/api/v1/conversations/{conv_id}")).json()["contact_id"]
        created = await _api_subscribe(stack, "ticker", contact_id)
        assert created.status_code == 202 and created.json()["state"] == "pending"
        await _count(stack, WRITER, 1)
        link = _link(_sent_to(stack, WRITER)[0])
        async with httpx.AsyncClient(base_url=stack.base_url) as browser:
            # A link preview (GET) confirms nothing.
            assert (await browser.get(link)).status_code == 200
            assert await _subs(runtime) == {"ticker": "pending"}
            confirmed = await browser.post(link)  # no CSRF token: refused, nothing changes
            assert confirmed.status_code == 403
            done = await _form_post(browser, link)
            assert done.status_code == 200 and "angemeldet" in done.text
            assert await _subs(runtime) == {"ticker": "confirmed"}
            reused = await browser.get(link)
            assert reused.status_code == 410 and "bereits verwendet" in reused.text
            forged = await browser.get(link[:-4] + "AAAA")
            assert forged.status_code == 404

            await _api_subscribe(stack, "news", contact_id)
            await _wait(lambda: _has_text(stack, 3, "Neuigkeiten"))
            news_link = _link(next(t for t in _sent_to(stack, WRITER) if "Neuigkeiten" in t))
            async with runtime.sessions() as session, session.begin():
                await session.execute(
                    update(Subscription)
                    .where(Subscription.state == "pending")
                    .values(token_expires_at=utcnow() - timedelta(seconds=1))
                )
            expired = await browser.get(news_link)
            assert expired.status_code == 410 and "abgelaufen" in expired.text
            assert (await browser.get(news_link)).status_code == 410
        assert await _subs(runtime) == {"ticker": "confirmed", "news": "pending"}
        sub = created.json()
        read = await stack.api.get(f"/api/v1/subscriptions/{sub['id']}")
        assert read.json()["state"] == "confirmed"
        gone = await stack.api.delete(f"/api/v1/subscriptions/{sub['id']}")
        assert gone.status_code == 200 and gone.json()["state"] == "withdrawn"
    sources = [(e.purpose, e.action, e.source) for e in await _events(runtime)]
    assert sources == [
        ("topic:ticker", "requested", "api"),
        ("topic:ticker", "granted", "link"),
        ("topic:news", "requested", "api"),
        ("topic:ticker", "withdrawn", "api"),
    ]


async def _has_text(stack: Stack, n: int, needle: str) -> bool:
    texts = _sent_to(stack, WRITER)
    return len(texts) >= n and any(needle in t for t in texts)


async def test_confirmation_messages_are_limited_per_address(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        for kw in ("a1", "a2", "a3", "a4"):
            await _topic(stack, kw, kw.upper())
        conv_id = await stack.customer_writes("Hallo")
        contact_id = (await stack.api.get(f"/api/v1/conversations/{conv_id}")).json()["contact_id"]
        for kw in ("a1", "a2", "a1"):  # asking again for the same topic sends again and counts
            assert (await _api_subscribe(stack, kw, contact_id)).status_code == 202
        refused = await _api_subscribe(stack, "a3", contact_id)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "confirmation_limit"
        assert "per address" in refused.json()["error"]["message"]
        await _count(stack, WRITER, 3)
        await stack.sim.customer_sends(WRITER, body="START a4")  # the keyword path too
        await asyncio.sleep(1.0)
        assert len(_sent_to(stack, WRITER)) == 3
        unknown = await _api_subscribe(stack, "nope", contact_id)
        assert unknown.status_code == 404
    assert await _subs(runtime) == {"a1": "pending", "a2": "pending"}


async def test_unconfirmed_requests_are_purged(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        await _topic(stack, "ticker", "Live-Ticker")
        await _topic(stack, "news", "Neuigkeiten")
        conv_id = await stack.customer_writes("Hallo")
        contact_id = (await stack.api.get(f"/api/v1/conversations/{conv_id}")).json()["contact_id"]
        await _api_subscribe(stack, "ticker", contact_id)
        await _api_subscribe(stack, "news", contact_id)
    # The stack's worker has stopped: its own purge poller cannot take the old request first.
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Subscription)
            .where(
                Subscription.topic_id.in_(
                    select(topics.Topic.id).where(topics.Topic.keyword == "news")
                )
            )
            .values(state="confirmed")
        )
        await session.execute(
            update(Subscription).values(requested_at=utcnow() - timedelta(days=8))
        )
    async with runtime.sessions() as session, session.begin():
        assert await topics.purge_unconfirmed(session, timedelta(days=7)) == 1
    assert await _subs(runtime) == {"news": "confirmed"}
    # The proof that a confirmation was requested stays (append-only).
    assert [e.action for e in await _events(runtime)] == ["requested", "requested"]
