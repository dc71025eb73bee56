"""One person, many channels: merge and undo, one timeline, labels, attributes, pages and API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from tests import helpers
from tresen.db.tables import (
    AuditEntry,
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Message,
    Team,
    TeamMember,
    User,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox import accounts, contacts, labels, service
from tresen.inbox.permissions import Actor, actor_for
from tresen.inbox.search import search
from tresen.privacy import audit
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


class Shop:
    """A workspace with WhatsApp and Telegram, people, and contacts with conversations."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ws = ""
        self.wa = ""
        self.tg = ""
        self.t = utcnow() - timedelta(hours=3)

    async def create(self) -> Shop:
        ws, wa = await helpers.seed_whatsapp(self.runtime)
        async with self.runtime.sessions() as s, s.begin():
            tg = ChannelRow(workspace_id=ws, kind="telegram", name="TG", config={})
            s.add(tg)
            await s.flush()
            self.ws, self.wa, self.tg = ws, wa.id, tg.id
        return self

    async def user(self, email: str, role: str) -> str:
        async with self.runtime.sessions() as s, s.begin():
            return (await accounts.add_user(s, self.ws, email, role, PASSWORD)).id

    async def actor(self, user_id: str) -> Actor:
        async with self.runtime.sessions() as s:
            return await actor_for(s, await s.get_one(User, user_id))

    async def contact(
        self,
        name: str | None,
        channel: str,
        address: str,
        bodies: list[str],
        *,
        attributes: dict[str, Any] | None = None,
        consent: str = "unknown",
    ) -> tuple[str, str, str]:
        """A contact with one identity and a conversation of inbound messages: (contact, identity, conv)."""
        async with self.runtime.sessions() as s, s.begin():
            contact = Contact(
                workspace_id=self.ws,
                display_name=name,
                attributes=attributes or {},
                consent_state=consent,
            )
            s.add(contact)
            await s.flush()
            identity = ContactIdentity(
                workspace_id=self.ws, contact_id=contact.id, channel_id=channel, address=address
            )
            s.add(identity)
            await s.flush()
            conv = Conversation(
                workspace_id=self.ws,
                channel_id=channel,
                contact_id=contact.id,
                identity_id=identity.id,
                status="open",
            )
            s.add(conv)
            await s.flush()
            for body in bodies:
                self.t += timedelta(minutes=1)
                s.add(
                    Message(
                        id=new_id(),
                        workspace_id=self.ws,
                        conversation_id=conv.id,
                        channel_id=channel,
                        direction="inbound",
                        sender_kind="contact",
                        content_kind="text",
                        body=body,
                        payload={},
                        state="received",
                        created_at=self.t,
                    )
                )
            conv.last_inbound_at = conv.last_message_at = self.t
            return contact.id, identity.id, conv.id

    async def state(self) -> dict[str, Any]:
        """Every row a merge may touch, in a comparable form (updated_at left out)."""
        async with self.runtime.sessions() as s:
            return {
                "contacts": sorted(
                    (c.id, c.display_name, c.attributes, c.consent_state, c.merged_into_id)
                    for c in await s.scalars(select(Contact))
                ),
                "identities": sorted(
                    (i.id, i.contact_id, i.channel_id, i.address)
                    for i in await s.scalars(select(ContactIdentity))
                ),
                "conversations": sorted(
                    (c.id, c.contact_id, c.identity_id, c.status, c.assignee_id, c.team_id)
                    for c in await s.scalars(select(Conversation))
                ),
                "messages": sorted(
                    (m.id, m.conversation_id) for m in await s.scalars(select(Message))
                ),
            }


@pytest.fixture
async def shop(runtime: Runtime) -> Shop:
    """A fresh shop."""
    return await Shop(runtime).create()


async def test_merge_moves_identities_and_conversations_and_undo_restores_exactly(
    shop: Shop,
) -> None:
    admin = await shop.actor(await shop.user("chefin@laden.example", "admin"))
    a, a_ident, a_conv = await shop.contact(
        "Jana Müller",
        shop.wa,
        "4915100000001",
        ["Hallo per WhatsApp"],
        attributes={"Kundennr": "A-1", "Größe": "42"},
        consent="granted",
    )
    b, b_ident, b_conv = await shop.contact(
        None,
        shop.tg,
        "777001",
        ["Hallo per Telegram"],
        attributes={"Kundennr": "B-9", "Stadt": "Köln"},
        consent="asked",
    )
    before = await shop.state()
    async with shop.runtime.sessions() as s, s.begin():
        record = await contacts.merge(s, shop.ws, a, b, actor=admin)
        merge_id = record.id
    async with shop.runtime.sessions() as s:
        merged = await s.get_one(Contact, a)
        gone = await s.get_one(Contact, b)
        assert (await s.get_one(ContactIdentity, b_ident)).contact_id == a
        assert (await s.get_one(Conversation, b_conv)).contact_id == a
        assert merged.attributes == {"Kundennr": "A-1", "Größe": "42", "Stadt": "Köln"}
        assert merged.consent_state == "asked", "granted only survives when both granted"
        assert gone.merged_into_id == a and gone.attributes == {"Kundennr": "B-9", "Stadt": "Köln"}
        record = await s.get_one(ContactMerge, merge_id)
        assert record.identity_ids == {"ids": [b_ident]}
        assert record.conversation_ids == {"ids": [b_conv]}
        assert record.filled_keys == {"Stadt": "Köln"}
        assert record.source_before["attributes"] == {"Kundennr": "B-9", "Stadt": "Köln"}
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["contact.merged"]
        assert (await audit.verify(s, shop.ws)).ok
    # the merged-away contact is no longer offered by search, the merged one has both addresses
    async with shop.runtime.sessions() as s:
        found = await contacts.merge_candidates(s, admin, "nobody", "777001")
    assert [c.id for c in found] == [a]
    async with shop.runtime.sessions() as s, s.begin():
        await contacts.undo_merge(s, shop.ws, merge_id, actor=admin)
    assert await shop.state() == before
    async with shop.runtime.sessions() as s, s.begin():
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["contact.merged", "contact.merge_undone"]
        with pytest.raises(contacts.ContactRefused, match="undone already"):
            await contacts.undo_merge(s, shop.ws, merge_id, actor=admin)
    assert a_ident and a_conv


async def test_consent_rule_is_the_stricter_state() -> None:
    rule = contacts.merged_consent
    assert rule("granted", "refused") == "refused" and rule("refused", "granted") == "refused"
    assert rule("granted", "granted") == "granted"
    assert rule("granted", "asked") == "asked" and rule("asked", "granted") == "asked"
    assert rule("asked", "unknown") == "unknown" and rule("granted", "unknown") == "unknown"


async def test_merge_refused_for_itself_for_merged_and_for_hidden_contacts(shop: Shop) -> None:
    agent_id = await shop.user("kim@laden.example", "agent")
    other_agent = await shop.user("lea@laden.example", "agent")
    agent = await shop.actor(agent_id)
    a, _, _ = await shop.contact("A", shop.wa, "4915100000001", ["a"])
    b, _, b_conv = await shop.contact("B", shop.tg, "777002", ["b"])
    c, _, _ = await shop.contact("C", shop.tg, "777003", ["c"])
    async with shop.runtime.sessions() as s, s.begin():
        await s.execute(
            update(Conversation).where(Conversation.id == b_conv).values(assignee_id=other_agent)
        )
    before = await shop.state()
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(contacts.ContactRefused, match="itself"):
            await contacts.merge(s, shop.ws, a, a, actor=agent)
        with pytest.raises(service.Forbidden):
            await contacts.merge(s, shop.ws, a, b, actor=agent)
        with pytest.raises(service.Forbidden):
            await contacts.merge(s, shop.ws, b, a, actor=agent)
        with pytest.raises(service.NotFound):
            await contacts.merge(s, shop.ws, a, "01NOSUCHCONTACT00000000000", actor=agent)
    assert await shop.state() == before
    async with shop.runtime.sessions() as s, s.begin():
        await contacts.merge(s, shop.ws, a, c, actor=agent)
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(contacts.ContactRefused, match="merged into"):
            await contacts.merge(s, shop.ws, c, a, actor=agent)


async def test_undo_refused_when_it_cannot_restore(shop: Shop) -> None:
    admin = await shop.actor(await shop.user("chefin@laden.example", "admin"))
    a, _, _ = await shop.contact("A", shop.wa, "4915100000001", ["a"], consent="asked")
    b, _, _ = await shop.contact("B", shop.tg, "777002", ["b"], consent="asked")
    c, _, _ = await shop.contact("C", shop.tg, "777003", ["c"])
    async with shop.runtime.sessions() as s, s.begin():
        first = (await contacts.merge(s, shop.ws, a, b, actor=admin)).id
        second = (await contacts.merge(s, shop.ws, c, a, actor=admin)).id
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(contacts.ContactRefused, match="undo that merge first"):
            await contacts.undo_merge(s, shop.ws, first, actor=admin)
    async with shop.runtime.sessions() as s, s.begin():
        await contacts.undo_merge(s, shop.ws, second, actor=admin)
    # the customer answers the consent question after the merge: the proof belongs to A now
    async with shop.runtime.sessions() as s, s.begin():
        s.add(
            ConsentEvent(
                workspace_id=shop.ws,
                contact_id=a,
                purpose="service_conversation",
                action="granted",
                source="test",
                occurred_at=utcnow(),
            )
        )
        await s.execute(update(Contact).where(Contact.id == a).values(consent_state="granted"))
    before = await shop.state()
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(contacts.ContactRefused, match="consent"):
            await contacts.undo_merge(s, shop.ws, first, actor=admin)
    assert await shop.state() == before


async def test_timeline_across_channels_in_time_order(shop: Shop) -> None:
    admin = await shop.actor(await shop.user("chefin@laden.example", "admin"))
    a, _, a_conv = await shop.contact("A", shop.wa, "4915100000001", ["eins", "zwei"])
    b, _, b_conv = await shop.contact("B", shop.tg, "777002", ["drei"])
    async with shop.runtime.sessions() as s, s.begin():
        # a later WhatsApp message after the Telegram one
        shop.t += timedelta(minutes=1)
        s.add(
            Message(
                id=new_id(),
                workspace_id=shop.ws,
                conversation_id=a_conv,
                channel_id=shop.wa,
                direction="inbound",
                sender_kind="contact",
                content_kind="text",
                body="vier",
                payload={},
                state="received",
                created_at=shop.t,
            )
        )
        await contacts.merge(s, shop.ws, a, b, actor=admin)
    async with shop.runtime.sessions() as s:
        timeline = await contacts.contact_timeline(s, admin, a)
        view = await service.conversation_view(s, admin, a_conv)
    assert [(i["message"].body, i["channel_kind"]) for i in timeline] == [
        ("eins", "whatsapp"),
        ("zwei", "whatsapp"),
        ("drei", "telegram"),
        ("vier", "whatsapp"),
    ]
    assert view.panel is not None
    assert [p.id for p in view.panel.past] == [b_conv]
    assert {i.channel_kind for i in view.panel.identities} == {"whatsapp", "telegram"}


async def test_labels_add_remove_and_filter(shop: Shop) -> None:
    admin = await shop.actor(await shop.user("chefin@laden.example", "admin"))
    agent = await shop.actor(await shop.user("kim@laden.example", "agent"))
    _, _, one = await shop.contact("A", shop.wa, "4915100000001", ["Rechnung fehlt"])
    _, _, two = await shop.contact("B", shop.wa, "4915100000002", ["Rechnung bezahlt"])
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(service.Forbidden):
            await labels.create_label(s, agent, "VIP", "red")
        vip = await labels.create_label(s, admin, "  VIP  ", "red")
        with pytest.raises(labels.LabelError, match="already"):
            await labels.create_label(s, admin, "vip", "blue")
        with pytest.raises(labels.LabelError, match="colour"):
            await labels.create_label(s, admin, "Neu", "beige")
        with pytest.raises(labels.LabelError, match="at most 40"):
            await labels.create_label(s, admin, "x" * 41, "blue")
    async with shop.runtime.sessions() as s, s.begin():
        assert await labels.add_label(s, agent, one, vip.id) is True
        assert await labels.add_label(s, agent, one, vip.id) is False
        with pytest.raises(service.NotFound):
            await labels.add_label(s, agent, one, "01NOSUCHLABEL0000000000000")
    async with shop.runtime.sessions() as s:
        rows = await service.conversation_list(s, agent, "all")
        page = await search(s, shop.ws, "rechnung", label=vip.id)
        only_label = await search(s, shop.ws, "", label=vip.id)
        everything = await search(s, shop.ws, "rechnung")
    assert {r.id: [lab.name for lab in r.labels] for r in rows} == {one: ["VIP"], two: []}
    assert [h.id for h in page.conversations] == [one] and page.ignored_filters == ()
    assert [h.id for h in only_label.conversations] == [one]
    assert {h.id for h in everything.conversations} == {one, two}
    async with shop.runtime.sessions() as s, s.begin():
        assert await labels.remove_label(s, agent, one, vip.id) is True
    async with shop.runtime.sessions() as s:
        assert (await search(s, shop.ws, "rechnung", label=vip.id)).conversations == []


async def test_attributes_have_limits(shop: Shop) -> None:
    agent = await shop.actor(await shop.user("kim@laden.example", "agent"))
    a, _, conv = await shop.contact("A", shop.wa, "4915100000001", ["a"])
    async with shop.runtime.sessions() as s, s.begin():
        assert await contacts.set_attribute(s, agent, conv, " Kundennr ", "K-1") == {
            "Kundennr": "K-1"
        }
        with pytest.raises(contacts.ContactRefused, match="at most 40"):
            await contacts.set_attribute(s, agent, conv, "k" * 41, "x")
        with pytest.raises(contacts.ContactRefused, match="at most 500"):
            await contacts.set_attribute(s, agent, conv, "k", "x" * 501)
        with pytest.raises(contacts.ContactRefused, match="control"):
            await contacts.set_attribute(s, agent, conv, "k\x00", "x")
        for i in range(contacts.MAX_ATTRIBUTES - 1):
            await contacts.set_attribute(s, agent, conv, f"k{i}", "v")
        with pytest.raises(contacts.ContactRefused, match="at most 50 attributes"):
            await contacts.set_attribute(s, agent, conv, "one-more", "v")
        assert "Kundennr" not in await contacts.set_attribute(s, agent, conv, "Kundennr", "")
    async with shop.runtime.sessions() as s:
        assert len((await s.get_one(Contact, a)).attributes) == contacts.MAX_ATTRIBUTES - 1


# ---------------------------------------------------------------- over HTTP


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


async def _login(client: httpx.AsyncClient, email: str) -> str:
    page = await client.get("/inbox/login")
    answer = await client.post(
        "/inbox/login", data={"email": email, "password": PASSWORD, "_csrf_token": _csrf(page.text)}
    )
    assert answer.status_code == 303
    return _csrf((await client.get("/inbox")).text)


async def test_merge_and_undo_in_the_inbox(shop: Shop) -> None:
    await shop.user("kim@laden.example", "agent")
    a, _, a_conv = await shop.contact("Jana Müller", shop.wa, "4915100000001", ["Hallo WA"])
    b, _, b_conv = await shop.contact("Jana M.", shop.tg, "777002", ["Hallo TG"])
    async with helpers.client_for(shop.runtime) as client:
        token = await _login(client, "kim@laden.example")
        found = await client.get(f"/inbox/c/{a_conv}/merge", params={"q": "777002"})
        assert found.status_code == 200 and f"other={b}" in found.text
        confirm = await client.get(f"/inbox/c/{a_conv}/merge", params={"other": b})
        assert confirm.status_code == 200 and 'name="other"' in confirm.text
        itself = await client.post(
            f"/inbox/c/{a_conv}/merge", data={"other": a, "_csrf_token": token}
        )
        assert itself.status_code == 422 and "nicht mit sich selbst" in itself.text
        done = await client.post(
            f"/inbox/c/{a_conv}/merge", data={"other": b, "_csrf_token": token}
        )
        assert done.status_code == 303
        page = await client.get(f"/inbox/c/{a_conv}")
        assert "Zusammenführung rückgängig machen" in page.text and "777002" in page.text
        history = await client.get(f"/inbox/c/{a_conv}/all-channels")
        assert history.status_code == 200
        timeline = history.text[history.text.index('<ol class="timeline">') :]
        assert timeline.index("Hallo WA") < timeline.index("Hallo TG")
        assert 'class="channel-badge">telegram' in history.text
        async with shop.runtime.sessions() as s:
            merge_id = await s.scalar(select(ContactMerge.id))
        undo = await client.post(
            f"/inbox/contact-merges/{merge_id}/undo", data={"c": a_conv, "_csrf_token": token}
        )
        assert undo.status_code == 303
    async with shop.runtime.sessions() as s:
        assert (await s.get_one(Conversation, b_conv)).contact_id == b


async def test_merge_page_and_post_refused_for_a_contact_the_agent_may_not_see(
    shop: Shop,
) -> None:
    await shop.user("kim@laden.example", "agent")
    lea = await shop.user("lea@laden.example", "agent")
    a, _, a_conv = await shop.contact("A", shop.wa, "4915100000001", ["a"])
    b, _, b_conv = await shop.contact("B", shop.tg, "777002", ["b"])
    async with shop.runtime.sessions() as s, s.begin():
        await s.execute(
            update(Conversation).where(Conversation.id == b_conv).values(assignee_id=lea)
        )
    before = await shop.state()
    async with helpers.client_for(shop.runtime) as client:
        token = await _login(client, "kim@laden.example")
        assert (
            await client.get(f"/inbox/c/{a_conv}/merge", params={"other": b})
        ).status_code == 403
        found = await client.get(f"/inbox/c/{a_conv}/merge", params={"q": "777002"})
        assert f"other={b}" not in found.text
        refused = await client.post(
            f"/inbox/c/{a_conv}/merge", data={"other": b, "_csrf_token": token}
        )
        assert refused.status_code == 403
    assert await shop.state() == before
    assert a


async def test_api_merge_and_undo(shop: Shop) -> None:
    a, _, _ = await shop.contact("A", shop.wa, "4915100000001", ["a"])
    b, b_ident, b_conv = await shop.contact("B", shop.tg, "777002", ["b"])
    read_only = await helpers.seed_token(shop.runtime, shop.ws, ["contacts:read"])
    token = await helpers.seed_token(shop.runtime, shop.ws, ["contacts:read", "contacts:write"])
    auth = {"Authorization": f"Bearer {token}"}
    async with helpers.client_for(shop.runtime) as client:
        denied = await client.post(
            f"/api/v1/contacts/{a}/merge",
            json={"other": b},
            headers={"Authorization": f"Bearer {read_only}"},
        )
        assert denied.status_code == 403 and "contacts:write" in denied.text
        ghost = await client.post("/api/v1/contacts/0/merge", json={"other": "0"}, headers=auth)
        assert ghost.status_code == 404, "an unknown contact is not found, even merged with itself"
        itself = await client.post(f"/api/v1/contacts/{a}/merge", json={"other": a}, headers=auth)
        assert itself.status_code == 422 and itself.json()["error"]["code"] == "merge_refused"
        missing = await client.post(
            f"/api/v1/contacts/{a}/merge", json={"other": "nope"}, headers=auth
        )
        assert missing.status_code == 404
        bad = await client.post(f"/api/v1/contacts/{a}/merge", json={"other": 5}, headers=auth)
        assert bad.status_code == 400
        merged = await client.post(f"/api/v1/contacts/{a}/merge", json={"other": b}, headers=auth)
        assert merged.status_code == 200, merged.text
        body = merged.json()
        assert (body["identity_ids"], body["conversation_ids"]) == ([b_ident], [b_conv])
        contact = (await client.get(f"/api/v1/contacts/{a}", headers=auth)).json()
        assert {i["address"] for i in contact["identities"]} == {"4915100000001", "777002"}
        away = (await client.get(f"/api/v1/contacts/{b}", headers=auth)).json()
        assert away["merged_into_id"] == a and away["identities"] == []
        undone = await client.post(f"/api/v1/contact-merges/{body['id']}/undo", headers=auth)
        assert undone.status_code == 200 and undone.json()["undone_at"] is not None
        again = await client.post(f"/api/v1/contact-merges/{body['id']}/undo", headers=auth)
        assert again.status_code == 422
        unknown = await client.post("/api/v1/contact-merges/nope/undo", headers=auth)
        assert unknown.status_code == 404


async def test_labels_in_the_inbox_and_search_page(shop: Shop) -> None:
    await shop.user("chefin@laden.example", "admin")
    _, _, conv = await shop.contact("A", shop.wa, "4915100000001", ["Rechnung fehlt"])
    async with helpers.client_for(shop.runtime) as client:
        token = await _login(client, "chefin@laden.example")
        bad = await client.post(
            "/inbox/labels", data={"name": "VIP", "colour": "beige", "_csrf_token": token}
        )
        assert bad.status_code == 422
        made = await client.post(
            "/inbox/labels", data={"name": "VIP", "colour": "red", "_csrf_token": token}
        )
        assert made.status_code == 303
        async with shop.runtime.sessions() as s:
            [vip] = await labels.workspace_labels(s, shop.ws)
        added = await client.post(
            f"/inbox/c/{conv}/label", data={"label_id": vip.id, "_csrf_token": token}
        )
        assert added.status_code == 303
        listing = await client.get("/inbox")
        assert f'href="/inbox/search?label={vip.id}"' in listing.text
        found = await client.get("/inbox/search", params={"label": vip.id})
        assert f"/inbox/c/{conv}" in found.text
        removed = await client.post(
            f"/inbox/c/{conv}/unlabel", data={"label_id": vip.id, "_csrf_token": token}
        )
        assert removed.status_code == 303
        found = await client.get("/inbox/search", params={"label": vip.id})
        assert f"/inbox/c/{conv}" not in found.text


async def test_supervisor_team_scope_for_merge(shop: Shop) -> None:
    """A supervisor may merge within their teams only."""
    boss = await shop.user("boss@laden.example", "supervisor")
    async with shop.runtime.sessions() as s, s.begin():
        mine, other = Team(workspace_id=shop.ws, name="W"), Team(workspace_id=shop.ws, name="V")
        s.add_all([mine, other])
        await s.flush()
        s.add(TeamMember(team_id=mine.id, user_id=boss))
        mine_id, other_id = mine.id, other.id
    a, _, a_conv = await shop.contact("A", shop.wa, "4915100000001", ["a"])
    b, _, b_conv = await shop.contact("B", shop.tg, "777002", ["b"])
    async with shop.runtime.sessions() as s, s.begin():
        await s.execute(
            update(Conversation).where(Conversation.id == a_conv).values(team_id=mine_id)
        )
        await s.execute(
            update(Conversation).where(Conversation.id == b_conv).values(team_id=other_id)
        )
    actor = await shop.actor(boss)
    async with shop.runtime.sessions() as s, s.begin():
        with pytest.raises(service.Forbidden):
            await contacts.merge(s, shop.ws, a, b, actor=actor)


# ---------------------------------------------------------------- input cleaning, fuzzed


@given(st.text(max_size=80))
def test_label_names_are_clean_or_refused(name: str) -> None:
    try:
        cleaned = labels.clean_name(name)
    except labels.LabelError:
        return
    assert 0 < len(cleaned) <= labels.MAX_NAME and cleaned == cleaned.strip()
    assert "  " not in cleaned


@given(st.text(max_size=60), st.text(max_size=600))
def test_attributes_are_clean_or_refused(key: str, value: str) -> None:
    try:
        k, v = contacts._clean_attribute(key, value)
    except contacts.ContactRefused:
        return
    assert 0 < len(k) <= contacts.MAX_KEY and len(v) <= contacts.MAX_VALUE
