"""Consent to per-person link tracking: the chat keywords, the confirmation page and the API."""

from __future__ import annotations

import asyncio
import re

import httpx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests.pipeline.stack import CUSTOMER, Stack, running_stack
from tresen.broadcast import links, tracking
from tresen.db.tables import ConsentEvent, Contact, Workspace
from tresen.db.types import utcnow
from tresen.runtime import Runtime


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _texts(stack: Stack, wa_id: str = CUSTOMER) -> list[str]:
    out = []
    for e in stack.sim.ledger:
        if e.to == wa_id:
            body = e.payload.get("interactive", {}).get("body", {}).get("text")
            out.append(body or e.payload.get("text", {}).get("body", ""))
    return out


async def _tracking_events(runtime: Runtime) -> list[ConsentEvent]:
    async with runtime.sessions() as session:
        return list(
            await session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.purpose == links.PURPOSE)
                .order_by(ConsentEvent.id)
            )
        )


def test_parse_reads_the_commands_and_nothing_else() -> None:
    assert tracking.parse("TRACKING") == tracking.Command("ask", None)
    assert tracking.parse("tracking?") == tracking.Command("ask", None)
    assert tracking.parse("TRACKING JA") == tracking.Command("grant", "de")
    assert tracking.parse("Tracking yes!") == tracking.Command("grant", "en")
    assert tracking.parse("tracking an") == tracking.Command("grant", "de")
    assert tracking.parse("TRACKING NEIN") == tracking.Command("withdraw", "de")
    assert tracking.parse("tracking off") == tracking.Command("withdraw", "en")
    assert tracking.parse("STOPP TRACKING") == tracking.Command("withdraw", "de")
    assert tracking.parse("stop tracking") == tracking.Command("withdraw", None)
    for other in ("", "ja", "Wo ist mein Tracking-Link?", "tracking nummer", "START tracking"):
        assert tracking.parse(other) is None, other
    assert tracking.parse("tracking ja " + "x" * 200) is None


@given(st.text(max_size=150))
def test_parse_never_fails(text: str) -> None:
    command = tracking.parse(text)
    assert command is None or command.action in ("ask", "grant", "withdraw")


async def test_chat_keywords_grant_and_withdraw_with_proof(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        await stack.customer_writes("Hallo")
        await stack.sim.customer_sends(CUSTOMER, body="TRACKING")
        await _wait(lambda: _has(stack, tracking.QUESTION["de"]))
        assert await _tracking_events(runtime) == [], "asking records nothing"

        await stack.sim.customer_sends(CUSTOMER, body="Tracking ja")
        await _wait(lambda: _has(stack, tracking.GRANTED_TEXT["de"]))
        [granted] = await _tracking_events(runtime)
        assert granted.action == "granted" and granted.source == "whatsapp keyword"
        assert granted.text_version == tracking.VERSION
        assert granted.text_hash == tracking.text_hash(tracking.QUESTION["de"])
        assert granted.channel_id == stack.channel.id and granted.language == "de"
        async with runtime.sessions() as session:
            assert await links.tracking_allowed(session, granted.contact_id)

        await stack.sim.customer_sends(CUSTOMER, body="TRACKING JA")  # again: nothing new
        await _wait(lambda: _count_has(stack, tracking.GRANTED_TEXT["de"], 2))
        assert len(await _tracking_events(runtime)) == 1

        await stack.sim.customer_sends(CUSTOMER, body="STOP TRACKING")
        await _wait(lambda: _has(stack, tracking.WITHDRAWN_TEXT["de"]))
        events = await _tracking_events(runtime)
        assert [e.action for e in events] == ["granted", "withdrawn"]
        async with runtime.sessions() as session:
            assert not await links.tracking_allowed(session, granted.contact_id)


async def test_no_grant_before_the_privacy_notice_is_accepted(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_stack(runtime) as stack:
        await stack.sim.customer_sends(CUSTOMER, body="TRACKING JA")
        await _wait(lambda: _any_text(stack))
        await asyncio.sleep(0.3)
        assert tracking.GRANTED_TEXT["de"] not in _texts(stack), "the notice comes first"
        assert await _tracking_events(runtime) == []
        # A withdrawal needs no consent: it is always answered (nothing was granted to record).
        await stack.sim.customer_sends(CUSTOMER, body="TRACKING NEIN")
        await _wait(lambda: _has(stack, tracking.WITHDRAWN_TEXT["de"]))
        assert await _tracking_events(runtime) == []


async def _has(stack: Stack, text: str) -> bool:
    return text in _texts(stack)


async def _count_has(stack: Stack, text: str, n: int) -> bool:
    return _texts(stack).count(text) >= n


async def _any_text(stack: Stack) -> bool:
    return bool(_texts(stack))


async def _contact_id(stack: Stack) -> str:
    conversation_id = await stack.customer_writes("Hallo")
    conversation = (await stack.api.get(f"/api/v1/conversations/{conversation_id}")).json()
    return str(conversation["contact_id"])


async def test_confirmation_page_checkbox_records_consent_only_when_ticked(
    runtime: Runtime,
) -> None:
    async with running_stack(runtime) as stack:
        for keyword, name in (("ticker", "Live-Ticker"), ("news", "Neuigkeiten")):
            created = await stack.api.post(
                "/api/v1/topics", json={"keyword": keyword, "name": name}
            )
            assert created.status_code == 201, created.text
        contact_id = await _contact_id(stack)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:
            for keyword, tick in (("news", False), ("ticker", True)):
                asked = await stack.api.post(
                    "/api/v1/subscriptions", json={"topic": keyword, "contact_id": contact_id}
                )
                assert asked.status_code == 202, asked.text
                await _wait(lambda k=keyword: _confirmation(stack, k))
                link = await _confirmation(stack, keyword)
                assert link
                page = await browser.get(link)
                assert 'name="link_tracking"' in page.text and "zählt, welche Links" in page.text
                csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
                assert csrf
                form = {"_csrf_token": csrf.group(1)} | ({"link_tracking": "yes"} if tick else {})
                done = await browser.post(link, data=form)
                assert done.status_code == 200 and "angemeldet" in done.text
                assert 'name="link_tracking"' not in done.text
                if not tick:
                    assert await _tracking_events(runtime) == [], "an unticked box is no consent"
        [event] = await _tracking_events(runtime)
        assert event.action == "granted" and event.source == "web form /s/confirm"
        assert event.user_agent and event.contact_id == contact_id
        async with runtime.sessions() as session:
            workspace = await session.get_one(Workspace, stack.channel.workspace_id)
            assert event.text_hash == tracking.text_hash(tracking.form_label(workspace, "de"))
            assert await links.tracking_allowed(session, contact_id)


async def _confirmation(stack: Stack, keyword: str) -> str | None:
    """The path of the confirmation link sent for a topic (None while not sent)."""
    for text in _texts(stack):
        found = re.search(r"http://testserver(/s/confirm/[\w-]+)", text)
        if found and f"STOP {keyword.upper()}" in text:
            return found.group(1)
    return None


async def test_api_records_grant_and_withdrawal_and_refuses_bad_input(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        contact_id = await _contact_id(stack)
        url = f"/api/v1/contacts/{contact_id}/link-tracking"
        assert (await stack.api.get(url)).json() == {
            "contact_id": contact_id,
            "granted": False,
            "changed": False,
        }
        for bad in (
            {},
            {"text": "  "},
            {"text": "\x1d"},
            {"text": "x", "source_url": "javascript:alert(1)"},
            {"text": "x", "granted": True},
            {"text": "x" * 2001},
            {"text": "x", "language": "fr"},
        ):
            refused = await stack.api.put(url, json=bad)
            assert refused.status_code == 400, (bad, refused.text)
        assert await _tracking_events(runtime) == []
        text = "Ich bin einverstanden, dass gezählt wird, welche Links ich öffne."
        body = {"text": text, "source_url": "https://shop.example/newsletter"}
        first = await stack.api.put(url, json=body)
        assert first.status_code == 200 and first.json()["changed"] is True, first.text
        again = await stack.api.put(url, json=body)
        assert again.json() == {"contact_id": contact_id, "granted": True, "changed": False}
        assert (await stack.api.get(url)).json()["granted"] is True
        off = await stack.api.delete(url)
        assert off.status_code == 200, off.text
        assert off.json()["changed"] is True and off.json()["granted"] is False
        assert (await stack.api.delete(url)).json()["changed"] is False
        events = await _tracking_events(runtime)
        assert [e.action for e in events] == ["granted", "withdrawn"]
        assert events[0].text_hash == tracking.text_hash(text)
        assert events[0].source.endswith("web form https://shop.example/newsletter")
        assert events[0].source.startswith("api token ")
        missing = "/api/v1/contacts/01HZZZZZZZZZZZZZZZZZZZZZZZ/link-tracking"
        assert (await stack.api.put(missing, json=body)).status_code == 404
        assert (await stack.api.delete(missing)).status_code == 404
        async with runtime.sessions() as session, session.begin():
            contact = await session.get_one(Contact, contact_id)
            contact.restricted_at = utcnow()
        restricted = await stack.api.put(url, json=body)
        assert restricted.status_code == 409 and "contact_restricted" in restricted.text
        assert len(await _tracking_events(runtime)) == 2


async def test_tracking_is_not_a_topic_keyword(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        refused = await stack.api.post("/api/v1/topics", json={"keyword": "tracking", "name": "T"})
        assert refused.status_code == 409 and "keyword_reserved" in refused.text
