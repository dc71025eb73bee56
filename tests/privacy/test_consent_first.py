"""Consent first: a new contact gets the privacy notice and a question; yes and no are recorded as proof."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.pipeline.stack import running_stack
from tresen.db.tables import ConsentEvent, Contact, ContactIdentity
from tresen.privacy.consent import classify
from tresen.runtime import Runtime


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _state(runtime: Runtime, address_suffix: str) -> str | None:

    async with runtime.sessions() as session:
        return await session.scalar(
            select(Contact.consent_state)
            .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.address.endswith(address_suffix))
        )


async def test_notice_then_yes_by_button_then_no_by_keyword(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_stack(runtime) as stack:
        await stack.sim.customer_sends("4915100000031", name="Jana", body="Hallo, habt ihr offen?")
        await _wait(lambda: _has_ledger(stack, "4915100000031", 1))
        notice = stack.sim.ledger[0]
        assert (
            notice.type == "interactive"
            and "Datenschutz" in notice.payload["interactive"]["body"]["text"]
        )
        ids = [b["reply"]["id"] for b in notice.payload["interactive"]["action"]["buttons"]]
        assert ids == ["consent_yes", "consent_no"]
        await stack.sim.customer_sends(
            "4915100000031",
            name="Jana",
            type="interactive",
            body={"button_reply": {"id": "consent_yes", "title": "Ja"}},
            context_id=notice.wamid,
        )
        await _wait(lambda: _state_is(runtime, "031", "granted"))
        await _wait(lambda: _has_ledger(stack, "4915100000031", 2))
        assert "Danke" in stack.sim.ledger[1].payload["text"]["body"]

        await stack.sim.customer_sends(
            "4915100000032", name="Max", body="Hi, do you repair e-bikes?"
        )
        await _wait(lambda: _has_ledger(stack, "4915100000032", 1))
        english = next(e for e in stack.sim.ledger if e.to.endswith("032"))
        assert "privacy policy" in english.payload["interactive"]["body"]["text"]
        await stack.sim.customer_sends("4915100000032", name="Max", body="no")
        await _wait(lambda: _state_is(runtime, "032", "refused"))
        await _wait(lambda: _has_ledger(stack, "4915100000032", 2))
    async with runtime.sessions() as session:
        events = list(await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [e.action for e in events] == ["requested", "granted", "requested", "refused"]
    assert all(e.text_hash and len(e.text_hash) == 64 and e.text_version for e in events)
    assert [e.language for e in events] == ["de", "de", "en", "en"]


async def _has_ledger(stack, suffix: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len([e for e in stack.sim.ledger if e.to.endswith(suffix)]) >= n


async def _state_is(runtime: Runtime, suffix: str, state: str) -> bool:
    return await _state(runtime, suffix) == state


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ja", "yes"),
        ("JAAA", "yes"),
        ("einverstandn", "yes"),
        ("yes please", "yes"),
        ("Okay 👍", "yes"),
        ("Nein danke", "no"),
        ("Nö", "no"),
        ("no", "no"),
        ("vielleicht", None),
        ("", None),
        ("Jacke in 42?", None),
        ("x" * 10_000, None),
        ("\x00\x07", None),
        # typos, and answers in the other language than the question
        ("einverstnaden", "yes"),
        ("jaa gerne", "yes"),
        ("yeah", "yes"),
        ("sure", "yes"),
        ("nee danke", "no"),
        ("no thanks", "no"),
        ("kein interesse", "no"),
        # a negated agreement is a no, never a yes
        ("ich stimme nicht zu", "no"),
        ("bin nicht einverstanden", "no"),
        ("I don't agree", "no"),
        ("I do not agree", "no"),
        # yes and no at once, or another language we do not know: the question stays open
        ("Ja nein", None),
        ("ok nein", None),
        ("ja aber nein", None),
        ("Jein", None),
        ("oui", None),
    ],
)
def test_replies_with_typos_and_languages(text: str, expected: str | None) -> None:
    assert classify(text, {}) == expected
