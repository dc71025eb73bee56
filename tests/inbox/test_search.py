"""Full-text search: FTS5 on SQLite, tsvector on PostgreSQL, same behaviour on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, text, update

import tresen.inbox.search as search_module
from tresen.db.migrate import alembic_config
from tresen.db.tables import ChannelRow, Contact, ContactIdentity, Conversation, Message, Workspace
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox.search import MAX_QUERY_CHARS, SearchPage, parse_query, search, snippet
from tresen.runtime import Runtime

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Shop:
    """A workspace with two channels and helpers to add conversations."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name
        self.ws = ""
        self.wa = ""
        self.tg = ""
        self.n = 0

    async def create(self) -> Shop:
        async with self.runtime.sessions() as s, s.begin():
            ws = Workspace(name=self.name)
            s.add(ws)
            await s.flush()
            wa = ChannelRow(workspace_id=ws.id, kind="whatsapp", name="WA", config={})
            tg = ChannelRow(workspace_id=ws.id, kind="telegram", name="TG", config={})
            s.add_all([wa, tg])
            await s.flush()
            self.ws, self.wa, self.tg = ws.id, wa.id, tg.id
        return self

    async def conversation(
        self,
        name: str,
        bodies: list[str],
        *,
        channel: str | None = None,
        status: str = "open",
        address: str | None = None,
    ) -> str:
        """A contact with one conversation holding `bodies`, oldest first; returns its id."""
        self.n += 1
        channel_id = channel or self.wa
        async with self.runtime.sessions() as s, s.begin():
            contact = Contact(workspace_id=self.ws, display_name=name)
            s.add(contact)
            await s.flush()
            identity = ContactIdentity(
                workspace_id=self.ws,
                contact_id=contact.id,
                channel_id=channel_id,
                address=address or f"4917000{self.n:05d}",
            )
            s.add(identity)
            await s.flush()
            last = T0 + timedelta(hours=self.n, minutes=len(bodies))
            conv = Conversation(
                workspace_id=self.ws,
                channel_id=channel_id,
                contact_id=contact.id,
                identity_id=identity.id,
                status=status,
                last_message_at=last,
            )
            s.add(conv)
            await s.flush()
            for i, body in enumerate(bodies):
                s.add(
                    Message(
                        workspace_id=self.ws,
                        conversation_id=conv.id,
                        channel_id=channel_id,
                        direction="in",
                        sender_kind="contact",
                        content_kind="text",
                        body=body,
                        state="received",
                        created_at=T0 + timedelta(hours=self.n, minutes=i + 1),
                    )
                )
            return conv.id

    async def search(self, query: str, **kw: Any) -> SearchPage:
        async with self.runtime.sessions() as s:
            return await search(s, self.ws, query, **kw)

    async def ids(self, query: str, **kw: Any) -> set[str]:
        return {h.id for h in (await self.search(query, **kw)).conversations}


@pytest.fixture
async def shop(runtime: Runtime) -> Shop:
    return await Shop(runtime, "Schuhladen").create()


async def test_umlauts_and_sharp_s(shop: Shop) -> None:
    a = await shop.conversation("Jürgen Größe", ["Haben Sie die Schuhe in Größe 42?"])
    b = await shop.conversation("Anna", ["Welche grosse hat der Stiefel?"])
    c = await shop.conversation("Bob", ["Do you ship to Österreich?"])
    for q in ("Größe", "grösse", "grosse", "GROSSE", "groß"):
        assert {a, b} <= await shop.ids(q), q
    assert await shop.ids("osterreich") == {c}
    assert await shop.ids("Österreich") == {c}
    page = await shop.search("größe 42")
    assert [h.id for h in page.conversations] == [a]
    hit = page.conversations[0]
    marked = [hit.snippet.text[s:e] for s, e in hit.snippet.matches]
    assert marked == ["Größe", "42"]
    # contacts match by name, with the same folding
    assert [c.name for c in page.contacts] == []
    names = {c.name for c in (await shop.search("jurgen")).contacts}
    assert names == {"Jürgen Größe"}


async def test_emoji_are_stored_and_ignored_by_search(shop: Shop) -> None:
    a = await shop.conversation("Emil", ["Danke 👍🏽 bis morgen 🚲"])
    assert await shop.ids("danke") == {a}
    assert await shop.ids("👍🏽 morgen") == {a}
    assert (await shop.search("🚲")).conversations == []
    hit = (await shop.search("morgen")).conversations[0]
    assert "👍🏽" in hit.snippet.text
    s, e = hit.snippet.matches[0]
    assert hit.snippet.text[s:e] == "morgen"


async def test_prefix_on_last_word_and_and_semantics(shop: Shop) -> None:
    a = await shop.conversation("A", ["Wo bleibt meine Bestellung?"])
    b = await shop.conversation("B", ["Bestellnummer 4711 bitte"])
    c = await shop.conversation("C", ["Meine Lieferung ist da"])
    assert await shop.ids("bestel") == {a, b}
    assert await shop.ids("meine bestel") == {a}
    assert await shop.ids("bestel meine") == set()  # only the last word is a prefix
    assert await shop.ids("be") == {a, b}
    assert c not in await shop.ids("b")  # "bleibt", "Bestell...", "bitte"; not c
    assert await shop.ids("b") == {a, b}
    assert await shop.ids("4711") == {b}


async def test_phrase(shop: Shop) -> None:
    a = await shop.conversation("A", ["Das Paket ist nicht angekommen"])
    b = await shop.conversation("B", ["Angekommen ist es, aber nicht ganz"])
    assert await shop.ids('"nicht angekommen"') == {a}
    assert await shop.ids("nicht angekommen") == {a, b}
    assert await shop.ids('"angekommen ist"') == {b}
    assert await shop.ids('"nicht angek') == {a}  # unclosed quote: still a phrase


@pytest.mark.parametrize(
    ("query", "finds"),
    [
        ('"', False),
        ('""', False),
        ('"""', False),
        ("*", False),
        ("Schuh*", True),
        ("a NEAR b", False),
        ("NEAR(a b)", False),
        ("schuh OR stiefel", True),
        ("schuh AND", False),
        ("NOT schuh", False),
        ("-schuh", True),
        ("schuh -", True),
        ("body:schuh", False),
        ("messages_fts:schuh", False),
        ("(schuh", True),
        ("schuh)", True),
        ("^schuh", True),
        ("'; DROP TABLE messages; --", False),
        ("schuh' & !stiefel | ", True),
        ("a:* & b", False),
        ("\\", False),
        ("%_", False),
        ("{body}: schuh", True),
        ("schuh\x00", True),
        ("\x00", False),
        ("🚲 * ( ) : -", False),
    ],
)
async def test_syntax_characters_never_raise(shop: Shop, query: str, finds: bool) -> None:
    a = await shop.conversation("A", ["Der Schuh OR der Stiefel NEAR dem Regal (body: neu)"])
    page = await shop.search(query)
    assert {h.id for h in page.conversations} == ({a} if finds else set()), query


async def test_operators_are_words(shop: Shop) -> None:
    a = await shop.conversation("A", ["schuh OR stiefel"])
    b = await shop.conversation("B", ["nur ein schuh"])
    assert await shop.ids("schuh OR stiefel") == {a}  # OR is a word here, not an operator
    assert await shop.ids("schuh -stiefel") == {a}  # "-" is not negation
    assert await shop.ids("schuh") == {a, b}


async def test_empty_and_too_long(shop: Shop) -> None:
    await shop.conversation("A", ["Hallo"])
    for q in ("", "   ", "\t\n", "?!", "-- ::"):
        page = await shop.search(q)
        assert page.conversations == [] and page.contacts == [] and page.next_before is None
    with pytest.raises(ValueError, match=str(MAX_QUERY_CHARS)):
        await shop.search("x" * (MAX_QUERY_CHARS + 1))
    assert await shop.ids("hallo " + " " * (MAX_QUERY_CHARS - 7))


async def test_filters(shop: Shop) -> None:
    a = await shop.conversation("A", ["Rechnung bitte"], status="open")
    b = await shop.conversation("B", ["Rechnung kam an"], status="resolved")
    c = await shop.conversation("C", ["Rechnung per Telegram"], channel=shop.tg)
    assert await shop.ids("rechnung") == {a, b, c}
    assert await shop.ids("rechnung", status="open") == {a, c}
    assert await shop.ids("rechnung", status="resolved") == {b}
    assert await shop.ids("rechnung", channel_id=shop.tg) == {c}
    assert await shop.ids("rechnung", channel_id=shop.wa, status="open") == {a}
    # dates filter the matching messages: messages of a are in hour 1, of c in hour 3
    assert await shop.ids("rechnung", since=T0 + timedelta(hours=2)) == {b, c}
    assert await shop.ids("rechnung", until=T0 + timedelta(hours=2)) == {a}
    assert await shop.ids(
        "rechnung", since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=2, minutes=30)
    ) == {b}
    page = await shop.search("rechnung", label="vip", assignee_id="nobody", team_id="none")
    assert "label" not in page.ignored_filters, "labels are stored now"
    assert page.conversations == [], "no conversation carries a label with this id"
    cols = Conversation.__table__.c
    for name in ("assignee_id", "team_id"):
        assert (name in page.ignored_filters) == (name not in cols)
    if "assignee_id" in cols:
        assert page.conversations == []


async def test_snippet_is_the_latest_match_and_plain_text(shop: Shop) -> None:
    a = await shop.conversation(
        "A",
        [
            "Erste Frage zum Fahrrad",
            "<script>alert(1)</script> Fahrrad <b>kaputt</b>",
            "Danke, nichts mehr",
        ],
    )
    page = await shop.search("fahrrad")
    hit = page.conversations[0]
    assert hit.id == a
    assert hit.snippet.text.startswith("<script>")  # plain text; the page escapes it
    (s, e), *_ = hit.snippet.matches
    assert hit.snippet.text[s:e] == "Fahrrad"
    long = "wort " * 100 + "Fahrrad " + "ende " * 100
    snip = snippet(long, parse_query("fahrrad"))
    assert len(snip.text) <= 170 and snip.text.startswith("…") and snip.text.endswith("…")
    s, e = snip.matches[0]
    assert snip.text[s:e] == "Fahrrad"


async def test_workspace_isolation(runtime: Runtime, shop: Shop) -> None:
    other = await Shop(runtime, "Fremd").create()
    mine = await shop.conversation("Geheim Müller", ["Geheimnis Nummer eins"])
    theirs = await other.conversation("Geheim Müller", ["Geheimnis Nummer zwei"])
    page = await shop.search("geheim")
    assert {h.id for h in page.conversations} == {mine}
    assert len(page.contacts) == 1
    page = await other.search("geheim")
    assert {h.id for h in page.conversations} == {theirs}
    # the other workspace's channel id as a filter finds nothing here
    assert await shop.ids("geheim", channel_id=other.wa) == set()
    assert await shop.ids("zwei") == set()


async def test_updates_and_deletes_keep_the_index(runtime: Runtime, shop: Shop) -> None:
    a = await shop.conversation("Alt Name", ["Schraube locker"], address="max@example.com")
    assert await shop.ids("schraube") == {a}
    async with runtime.sessions() as s, s.begin():
        await s.execute(
            update(Message).where(Message.conversation_id == a).values(body="Mutter fest")
        )
        await s.execute(update(Message).where(Message.conversation_id == a).values(state="read"))
    assert await shop.ids("schraube") == set()
    assert await shop.ids("mutter") == {a}
    async with runtime.sessions() as s, s.begin():
        await s.execute(update(Message).where(Message.conversation_id == a).values(body=None))
    assert await shop.ids("mutter") == set()
    async with runtime.sessions() as s, s.begin():
        await s.execute(
            update(Message).where(Message.conversation_id == a).values(body="Kette rostig")
        )
    assert await shop.ids("kette") == {a}
    async with runtime.sessions() as s, s.begin():
        await s.execute(delete(Message).where(Message.conversation_id == a))
    assert await shop.ids("kette") == set()

    # contacts: name, address and identity changes
    assert {c.name for c in (await shop.search("max@example.com")).contacts} == {"Alt Name"}
    assert {c.name for c in (await shop.search("alt")).contacts} == {"Alt Name"}
    async with runtime.sessions() as s, s.begin():
        await s.execute(
            update(Contact)
            .where(Contact.display_name == "Alt Name")
            .values(display_name="Neu Name")
        )
        await s.execute(
            update(ContactIdentity)
            .where(ContactIdentity.address == "max@example.com")
            .values(address="moritz@example.org", display_name="Mo")
        )
    assert (await shop.search("alt")).contacts == []
    assert (await shop.search("max")).contacts == []
    hits = (await shop.search("moritz")).contacts
    assert [c.name for c in hits] == ["Neu Name"] and hits[0].addresses == ("moritz@example.org",)
    async with runtime.sessions() as s, s.begin():
        await s.execute(delete(Contact).where(Contact.display_name == "Neu Name"))
    assert (await shop.search("neu")).contacts == []
    assert (await shop.search("moritz")).contacts == []


async def test_contact_by_phone_prefix(shop: Shop) -> None:
    await shop.conversation("Telefonkunde", ["hi"], address="4915112345678")
    assert [c.name for c in (await shop.search("49151")).contacts] == ["Telefonkunde"]


async def test_paging(shop: Shop) -> None:
    ids = [await shop.conversation(f"K{i}", [f"Termin {i}", "Termin bestätigt"]) for i in range(7)]
    newest_first = list(reversed(ids))
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = await shop.search("termin", limit=3, before=before)
        pages += 1
        seen += [h.id for h in page.conversations]
        if pages == 1:
            assert len(page.contacts) == 0  # no contact is called "termin"
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == newest_first
    assert pages == 3
    with pytest.raises(ValueError, match="cursor"):
        await shop.search("termin", before="garbage")


async def _conversation_at_0002(runtime: Runtime, shop: Shop, name: str, body: str) -> str:
    """Rows written with the columns of revision 0002 (the ORM knows later columns)."""

    now = utcnow().replace(tzinfo=None) if runtime.engine.dialect.name == "sqlite" else utcnow()
    contact, identity, conv, msg = new_id(), new_id(), new_id(), new_id()
    statements = [
        (
            "INSERT INTO contacts (id, workspace_id, display_name, attributes, created_at, updated_at) "
            "VALUES (:c, :ws, :name, '{}', :now, :now)"
        ),
        (
            "INSERT INTO contact_identities (id, workspace_id, contact_id, channel_id, address, unreachable, created_at) "
            "VALUES (:i, :ws, :c, :ch, '4917099999999', false, :now)"
        ),
        (
            "INSERT INTO conversations (id, workspace_id, channel_id, contact_id, identity_id, status, last_message_at, created_at) "
            "VALUES (:conv, :ws, :ch, :c, :i, 'open', :now, :now)"
        ),
        (
            "INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, sender_kind, content_kind, body, "
            "payload, state, created_at, send_attempts) VALUES (:m, :ws, :conv, :ch, 'inbound', 'customer', 'text', :body, "
            "'{}', 'received', :now, 0)"
        ),
    ]
    params = {
        "c": contact,
        "i": identity,
        "conv": conv,
        "m": msg,
        "ws": shop.ws,
        "ch": shop.wa,
        "name": name,
        "body": body,
        "now": now,
    }
    async with runtime.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement), params)
    return conv


async def test_migration_backfills_and_downgrades(runtime: Runtime, shop: Shop) -> None:

    a = await shop.conversation("Bärbel Groß", ["Altbestand Größe 40"])
    cfg = alembic_config(runtime.engine.url.render_as_string(hide_password=False))

    async def run(target: str) -> None:
        def go(connection: object) -> None:
            cfg.attributes["connection"] = connection
            if target == "down":
                command.downgrade(cfg, "0002")
            else:
                command.upgrade(cfg, "head")

        async with runtime.engine.begin() as connection:
            await connection.run_sync(go)

    await run("down")
    await runtime.engine.dispose()
    b = await _conversation_at_0002(
        runtime, shop, "Neu", "Neubestand Größe 41"
    )  # written while no index exists
    await run("up")
    await runtime.engine.dispose()
    assert await shop.ids("grosse") == {a, b}
    assert {c.name for c in (await shop.search("barbel")).contacts} == {"Bärbel Groß"}
    c = await shop.conversation("Danach", ["Größe 43 nach dem Upgrade"])
    assert await shop.ids("größe") == {a, b, c}


async def test_dense_strategy_gives_the_same_results(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [await shop.conversation(f"K{i}", [f"Termin {i}"], status="open" if i % 2 else "pending")
           for i in range(5)]  # fmt: skip
    sparse = [await shop.ids("termin"), await shop.ids("termin", status="open")]
    monkeypatch.setattr(search_module, "SPARSE_MATCHES", 1)
    assert [await shop.ids("termin"), await shop.ids("termin", status="open")] == sparse
    page = await shop.search("termin", limit=2)
    assert [h.id for h in page.conversations] == ids[::-1][:2]
    page = await shop.search("termin", limit=2, before=page.next_before)
    assert [h.id for h in page.conversations] == ids[::-1][2:4]
