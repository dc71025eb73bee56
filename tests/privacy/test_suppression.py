"""Suppression hashes: an erased person starts fresh with consent first and is not re-imported."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests import helpers
from tests.pipeline.stack import running_stack
from tresen.db.tables import Contact, ContactIdentity, Suppression
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy import erasure, suppression
from tresen.runtime import Runtime

PHONE = "4915100000077"


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_normalised_forms_of_one_address_share_a_hash() -> None:
    key = "k" * 32
    same = ["+49 151 000-00077", "004915100000077", "4915100000077", "+49 (151) 00000077"]
    assert len({suppression.address_hash(key, a) for a in same}) == 1
    assert suppression.address_hash(key, "Erika@Example.org") == suppression.address_hash(
        key, "erika@example.org"
    )
    assert suppression.address_hash(key, PHONE) != suppression.address_hash("other-key", PHONE)
    assert PHONE not in suppression.address_hash(key, PHONE)


@given(st.text(max_size=80))
def test_normalise_is_idempotent(address: str) -> None:
    once = suppression.normalise(address)
    assert suppression.normalise(once) == once


async def test_erased_person_writing_again_gets_consent_first(runtime: Runtime) -> None:
    # Consent first is off for this install, yet an erased person is asked again.
    assert not runtime.settings.consent_first
    async with running_stack(runtime) as stack:
        await stack.sim.customer_sends(PHONE, name="Erika", body="Hallo")
        await _wait(lambda: _contact_state(runtime, "unknown"))
        await asyncio.sleep(0.3)
        assert not [e for e in stack.sim.ledger if e.to == PHONE]  # no notice: setting is off
        async with runtime.sessions() as session:
            contact = await session.scalar(select(Contact))
            assert contact is not None
        async with runtime.sessions() as session:
            await erasure.erase(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                files=runtime.files,
                workspace_id=contact.workspace_id,
                contact_id=contact.id,
                actor_id=None,
                via="test",
            )
            with pytest.raises(suppression.Suppressed):
                await suppression.check_import(
                    session, runtime.settings.secret_key, contact.workspace_id, "+" + PHONE
                )
        await stack.sim.customer_sends(PHONE, name="Erika", body="Hallo nochmal")
        await _wait(lambda: _has_notice(stack))
        await _wait(lambda: _contact_state(runtime, "asked"))
        await stack.sim.customer_sends(PHONE, name="Erika", body="ja")
        await _wait(lambda: _contact_state(runtime, "granted"))
        async with runtime.sessions() as session:
            # Consented again: importing the address is allowed; the suppression row stays.
            await suppression.check_import(
                session, runtime.settings.secret_key, contact.workspace_id, PHONE
            )
            assert await session.scalar(select(Suppression.erased_contact_id)) == contact.id


async def _has_notice(stack) -> bool:  # type: ignore[no-untyped-def]
    return any(e.to == PHONE and e.type == "interactive" for e in stack.sim.ledger)


async def _contact_state(runtime: Runtime, state: str) -> bool:
    async with runtime.sessions() as session:
        found = await session.scalar(
            select(Contact.consent_state)
            .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.address == PHONE)
        )
    return found == state


async def test_many_addresses_are_checked_at_once_like_one(runtime: Runtime) -> None:

    key = runtime.settings.secret_key
    ws, channel = await helpers.seed_whatsapp(runtime)
    erased, again, fresh = "4915100000001", "4915100000002", "4915100000003"
    async with runtime.sessions() as session, session.begin():
        for address in (erased, again):
            await suppression.suppress(session, key, ws, address, new_id())
        contact = Contact(id=new_id(), workspace_id=ws, consent_state="granted", attributes={})
        session.add(contact)
        session.add(
            ContactIdentity(
                id=new_id(),
                workspace_id=ws,
                contact_id=contact.id,
                channel_id=channel.id,
                address="+" + again,
                created_at=utcnow(),
            )
        )
    wanted = [erased, "+" + erased, again, fresh, "0049 151 00000001", fresh]
    async with runtime.sessions() as session:
        refused = await suppression.refused_imports(session, key, ws, wanted)
        assert refused == {erased, "+" + erased, "0049 151 00000001"}
        for address in wanted:
            try:
                await suppression.check_import(session, key, ws, address)
            except suppression.Suppressed:
                assert address in refused
            else:
                assert address not in refused
        assert await suppression.refused_imports(session, key, "other-workspace", wanted) == set()
        assert await suppression.refused_imports(session, "", ws, []) == set()
