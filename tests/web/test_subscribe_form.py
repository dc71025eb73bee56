"""The public subscribe form: an SMS number in, a double opt-in message out, nothing leaked."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import func, select

from tests.pipeline.test_sms_e2e import SmsStack, sms_stack
from tresen.broadcast import topics
from tresen.db.tables import ConsentEvent, Contact, Subscription, Topic
from tresen.runtime import Runtime

NUMBER = "+4915198765432"


async def _topic(runtime: Runtime, workspace_id: str) -> Topic:
    async with runtime.sessions() as session, session.begin():
        return await topics.create_topic(
            session, workspace_id, "ticker", "Live-Ticker", {"de": "Spielstände live"}
        )


async def _form(client: httpx.AsyncClient, url: str) -> tuple[str, str]:
    """The page's CSRF token and text."""
    page = await client.get(url)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    return csrf.group(1), page.text


async def _sent_to(stack: SmsStack, number: str, n: int) -> list[str]:
    for _ in range(200):
        bodies = [e.body for e in stack.sim.ledger if e.to == number]
        if len(bodies) >= n:
            return bodies
        await asyncio.sleep(0.05)
    raise AssertionError(f"{n} messages to {number} not sent: {stack.sim.ledger}")


async def _counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        subs = await session.scalar(select(func.count()).select_from(Subscription))
    return contacts or 0, subs or 0


async def test_form_sends_the_confirmation_and_the_link_confirms(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        topic = await _topic(runtime, stack.channel.workspace_id)
        url = f"/s/subscribe/{topic.id}"
        async with httpx.AsyncClient(base_url=runtime.settings.base_url) as browser:
            csrf, page = await _form(browser, url)
            assert "„Live-Ticker“ abonnieren" in page and "Spielstände live" in page
            assert "Handynummer" in page and "Datenschutz" in page
            assert (await browser.post(url, data={"address": NUMBER})).status_code == 403
            done = await browser.post(
                url,
                data={
                    "_csrf_token": csrf,
                    "channel": stack.channel.id,
                    "address": "0049 151 987-654 32",
                    "language": "de",
                },
            )
            assert done.status_code == 200 and "Fast geschafft" in done.text, done.text
            [confirmation] = await _sent_to(stack, NUMBER, 1)
            assert "Live-Ticker" in confirmation and "STOP TICKER" in confirmation
            link = re.search(r"https?://[^/\s]+(/s/confirm/[\w-]+)", confirmation)
            assert link, confirmation
            async with runtime.sessions() as session:
                sub = await session.scalar(select(Subscription))
                requested = await session.scalar(
                    select(ConsentEvent).where(ConsentEvent.action == "requested")
                )
            assert (
                sub is not None and sub.state == "pending" and sub.source == "web form /s/subscribe"
            )
            assert requested is not None and requested.source == "web form /s/subscribe"
            csrf_confirm, _page = await _form(browser, link.group(1))
            confirmed = await browser.post(link.group(1), data={"_csrf_token": csrf_confirm})
            assert confirmed.status_code == 200 and "angemeldet" in confirmed.text
        async with runtime.sessions() as session:
            assert (await session.scalar(select(Subscription.state))) == "confirmed"


async def test_form_refuses_bad_input_and_tells_nobody_what_is_known(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        topic = await _topic(runtime, stack.channel.workspace_id)
        url = f"/s/subscribe/{topic.id}"
        async with httpx.AsyncClient(
            base_url=runtime.settings.base_url, headers={"accept-language": "en-GB,en"}
        ) as browser:
            csrf, page = await _form(browser, url)
            assert "Subscribe to “Live-Ticker”" in page and "mobile number" in page
            base = {"_csrf_token": csrf, "channel": stack.channel.id, "language": "en"}
            for bad in ("", "hello", "+49", "1" * 400, "<script>alert(1)</script>"):
                refused = await browser.post(url, data=base | {"address": bad})
                assert refused.status_code in (400, 422), (bad, refused.status_code)
                assert "<script>alert" not in refused.text
            wrong_channel = await browser.post(url, data=base | {"channel": "x", "address": NUMBER})
            assert wrong_channel.status_code == 422 and "pick a way" in wrong_channel.text
            assert (await browser.get("/s/subscribe/01HZZZZZZZZZZZZZZZZZZZZZZZ")).status_code == 404
            assert await _counts(runtime) == (0, 0), "refused input stores nothing"

            answers = []
            for _ in range(4):  # the 4th is over the daily limit of confirmations (3)
                answer = await browser.post(url, data=base | {"address": NUMBER})
                answers.append((answer.status_code, "Almost done" in answer.text))
            assert answers == [(200, True)] * 4, "the limit is not revealed to the form"
            assert len(await _sent_to(stack, NUMBER, 3)) == 3
            await asyncio.sleep(0.3)
            assert len([e for e in stack.sim.ledger if e.to == NUMBER]) == 3
            assert await _counts(runtime) == (1, 1)

            for i in range(10):  # per client, at most 10 requests an hour
                answer = await browser.post(url, data=base | {"address": f"+4915100000{i:03d}"})
            assert answer.status_code == 429 and "Too many" in answer.text
