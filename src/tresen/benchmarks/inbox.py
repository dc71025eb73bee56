"""`tresen bench inbox`: server-side time of the conversation list and of search on a big inbox.

Fills a fresh database (a SQLite file in a temp dir, or a new `tresen_bench_<random>` database
on the PostgreSQL server `database_url` names, dropped afterwards) through the real migrations
with N conversations and M messages of generated German/English shop chat, then times, in
process, the functions the inbox pages call: `inbox.service.conversation_list` and
`inbox.search.search`. A bare `SELECT 1` round trip is timed in the same run as the baseline.
"""

from __future__ import annotations

import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from tresen.benchmarks.scratch import admin_sql
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import (
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    User,
    Workspace,
)
from tresen.domain.ids import new_id

RARE_WORD = "zahnradbahn"  # in 1 of 20,000 messages
STATUSES = ("open",) * 5 + ("pending", "snoozed") + ("resolved",) * 3
FIRST = ["Anna", "Jürgen", "Özlem", "Björn", "Sören", "Mia", "Lukas", "Grete", "Paul", "Emma",
         "Jörg", "Käthe", "Max", "Sophie", "Ümit", "Ole"]  # fmt: skip
LAST = ["Müller", "Schmidt", "Weiß", "Groß", "Schäfer", "Köhler", "Bäcker", "Smith", "Jones",
        "Nguyen", "Yılmaz", "Öztürk"]  # fmt: skip
OPENERS = [
    "Hallo", "Guten Tag", "Moin", "Hi", "Hello", "Servus", "Liebe Grüße", "Danke", "Thanks",
    "Good morning", "Grüß Gott", "Hey",
]  # fmt: skip
SENTENCES = [
    "wo bleibt meine Bestellung {n}?",
    "ist meine Bestellung {n} schon unterwegs?",
    "das Paket ist leider nicht angekommen",
    "haben Sie die Schuhe auch in Größe {s}?",
    "kann ich die Rücksendung kostenlos machen?",
    "die Rechnung {n} stimmt nicht",
    "wann öffnet der Laden am Samstag?",
    "my order {n} has not arrived yet",
    "can I exchange the jacket for a bigger size?",
    "the delivery was damaged, what now?",
    "do you ship to Austria and Switzerland?",
    "Ihre Bestellung {n} wurde versandt, Sendungsnummer {t}",
    "vielen Dank für Ihren Einkauf 👍",
    "das Fahrrad hat einen Platten, geht die Reparatur bis Freitag?",
    "ist der Gutschein noch gültig?",
    "bitte rufen Sie mich zurück",
    "the refund for order {n} is still missing",
    "Lieferung kam heute, alles super 😊",
    "gibt es das Modell auch in Grün?",
    "Umtausch der Größe {s} bitte",
]
RARE_SENTENCE = "wir fahren mit der " + RARE_WORD.capitalize() + " zum Laden"


def _log(msg: str) -> None:
    print(f"[bench inbox] {msg}", file=sys.stderr, flush=True)


def _body(rng: random.Random, rare: bool) -> str:
    parts = [rng.choice(OPENERS) + ","]
    for _ in range(rng.randint(1, 3)):
        parts.append(
            rng.choice(SENTENCES).format(
                n=rng.randint(10000, 99999),
                s=rng.randint(36, 46),
                t=f"{rng.randint(10**11, 10**12 - 1)}",
            )
        )
    if rare:
        parts.append(RARE_SENTENCE)
    return " ".join(parts)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))] * 1000

    return {
        "p50_ms": round(q(0.50), 3),
        "p95_ms": round(q(0.95), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def _insert(engine: AsyncEngine, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        columns = list(rows[0])
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
        return
    async with engine.begin() as conn:
        await conn.execute(insert(table), rows)


async def _fill(
    engine: AsyncEngine, conversations: int, messages: int, rng: random.Random
) -> dict[str, Any]:
    """Two workspaces (the measured one and a small other one) with channels, contacts, chats."""
    pg = engine.dialect.name == "postgresql"
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=365)

    ws_id, other_id = new_id(), new_id()
    await _insert(
        engine,
        Workspace.__table__,  # type: ignore[arg-type]
        [
            {"id": w, "name": n, "time_zone": "Europe/Berlin", "created_at": start}
            for w, n in ((ws_id, "Benchladen"), (other_id, "Anderer Laden"))
        ],
    )
    channels: dict[str, list[str]] = {ws_id: [], other_id: []}
    rows = []
    for w in (ws_id, other_id):
        for kind in ("whatsapp", "telegram", "email"):
            cid = new_id()
            channels[w].append(cid)
            rows.append(
                {"id": cid, "workspace_id": w, "kind": kind, "name": kind.title(),
                 "config": "{}" if pg else {}, "enabled": True, "created_at": start}
            )  # fmt: skip
    await _insert(engine, ChannelRow.__table__, rows)  # type: ignore[arg-type]
    admin_id = new_id()
    await _insert(
        engine,
        User.__table__,  # type: ignore[arg-type]
        [
            {"id": admin_id, "workspace_id": ws_id, "email": "admin@bench.invalid",
             "display_name": "Admin", "password_hash": "-", "role": "admin", "language": "de",
             "availability": "available", "failed_logins": 0, "disabled": False,
             "created_at": start}
        ],
    )  # fmt: skip

    other_share = max(1, conversations // 20)
    total = conversations + other_share
    conv_ws = [ws_id] * conversations + [other_id] * other_share
    conv_ids = [new_id() for _ in range(total)]
    conv_channel = [rng.choice(channels[w]) for w in conv_ws]
    contacts, identities, convs = [], [], []
    for i in range(total):
        contact_id, identity_id = new_id(), new_id()
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        contacts.append(
            {"id": contact_id, "workspace_id": conv_ws[i], "display_name": name,
             "attributes": "{}" if pg else {}, "created_at": start, "updated_at": start}
        )  # fmt: skip
        identities.append(
            {"id": identity_id, "workspace_id": conv_ws[i], "contact_id": contact_id,
             "channel_id": conv_channel[i], "address": f"49170{i:08d}", "display_name": name,
             "unreachable": False, "created_at": start}
        )  # fmt: skip
        convs.append(
            {"id": conv_ids[i], "workspace_id": conv_ws[i], "channel_id": conv_channel[i],
             "contact_id": contact_id, "identity_id": identity_id,
             "status": rng.choice(STATUSES), "created_at": start,
             "last_message_at": None, "last_inbound_at": None}
        )  # fmt: skip
    span = (now - start).total_seconds()
    chunk = 100_000
    per_conv_last: list[datetime | None] = [None] * total
    msg_total = messages + messages // 20
    # message k belongs to a random conversation; times increase with k
    owners = [rng.randrange(total) for _ in range(msg_total)]
    for i in range(total):  # every conversation has at least one message
        if i < msg_total:
            owners[i] = i
    rng.shuffle(owners)
    for i in range(msg_total):
        at = start + timedelta(seconds=span * i / msg_total)
        per_conv_last[owners[i]] = at
    for i, c in enumerate(convs):
        c["last_message_at"] = per_conv_last[i]
        c["last_inbound_at"] = c["last_message_at"]
    for table, data in (
        (Contact.__table__, contacts),
        (ContactIdentity.__table__, identities),
        (Conversation.__table__, convs),
    ):
        for j in range(0, len(data), chunk):
            await _insert(engine, table, data[j : j + chunk])  # type: ignore[arg-type]
    _log(f"{total} contacts and conversations stored")
    t0 = time.perf_counter()
    for j in range(0, msg_total, chunk):
        batch = []
        for i in range(j, min(msg_total, j + chunk)):
            owner = owners[i]
            inbound = rng.random() < 0.6
            batch.append(
                {"id": new_id(), "workspace_id": conv_ws[owner], "conversation_id": conv_ids[owner],
                 "channel_id": conv_channel[owner], "direction": "in" if inbound else "out",
                 "sender_kind": "contact" if inbound else "agent", "content_kind": "text",
                 "body": _body(rng, i % 20_000 == 7), "payload": "{}" if pg else {},
                 "state": "received" if inbound else "delivered",
                 "created_at": start + timedelta(seconds=span * i / msg_total),
                 "send_attempts": 0}
            )  # fmt: skip
        await _insert(engine, Message.__table__, batch)  # type: ignore[arg-type]
        done = min(msg_total, j + chunk)
        _log(f"{done}/{msg_total} messages ({done / (time.perf_counter() - t0):.0f}/s)")
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    return {
        "workspace_id": ws_id,
        "admin_id": admin_id,
        "channel_id": channels[ws_id][0],
        "other_workspace_conversations": other_share,
        "other_workspace_messages": msg_total - messages,
    }


async def _time(
    n: int, fn: Callable[[], Awaitable[int]], warmup: int = 3
) -> tuple[dict[str, float], int]:
    """Run fn `warmup` times, then n timed times; returns percentiles and the last result size."""
    size = 0
    for _ in range(warmup):
        size = await fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        size = await fn()
        times.append(time.perf_counter() - t0)
    return _percentiles(times), size


async def _measure(
    sessions: async_sessionmaker[Any], seed: dict[str, Any], queries: int
) -> dict[str, Any]:
    from tresen.inbox.permissions import actor_for
    from tresen.inbox.search import search
    from tresen.inbox.service import conversation_list

    ws = seed["workspace_id"]
    async with sessions() as s:
        admin = await s.get(User, seed["admin_id"])
        assert admin is not None
        actor = await actor_for(s, admin)

    async def ping() -> int:
        async with sessions() as s:
            await s.execute(text("SELECT 1"))
        return 1

    def listing(view: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            async with sessions() as s:
                return len(await conversation_list(s, actor, view, limit=50))

        return run

    def searching(q: str, **kw: Any) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            async with sessions() as s:
                page = await search(s, ws, q, limit=50, **kw)
            return len(page.conversations) + len(page.contacts)

        return run

    since = datetime.now(UTC) - timedelta(days=30)
    kinds: dict[str, Callable[[], Awaitable[int]]] = {
        "ping": ping,
        "list_all": listing("all"),
        "list_unassigned_open": listing("unassigned"),
        "search_common": searching("bestellung"),
        "search_common_two_words": searching("paket angekommen"),
        "search_common_status_open": searching("rechnung", status="open"),
        "search_common_channel": searching("bestellung", channel_id=seed["channel_id"]),
        "search_common_last_30_days": searching("lieferung", since=since),
        "search_prefix_typing": searching("rücks"),
        "search_phrase": searching('"nicht angekommen"'),
        "search_rare": searching(RARE_WORD),
        "search_rare_status_open": searching(RARE_WORD, status="open"),
        "search_none": searching("quetzalcoatl"),
        "search_contact_name": searching("özlem yılmaz"),
    }
    results: dict[str, Any] = {}
    for name, fn in kinds.items():
        stats, size = await _time(queries, fn)
        results[name] = {**stats, "results": size}
        _log(f"{name}: {results[name]}")
    base = results["ping"]["p50_ms"] or 1e-9
    for name, r in results.items():
        if name != "ping":
            r["p95_to_ping_p50"] = round(r["p95_ms"] / base, 1)
    return results


async def run_inbox_bench(
    *, conversations: int, messages: int, database_url: str, queries: int
) -> dict[str, Any]:
    """Fill a fresh database, time list and search queries, return the figures."""
    rng = random.Random(4)
    tmp = None
    admin_url = None
    if database_url.startswith("postgres"):
        if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
            database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
        admin_url = database_url
        name = f"tresen_bench_{secrets.token_hex(4)}"
        await admin_sql(admin_url, f'CREATE DATABASE "{name}"')
        url = admin_url.rsplit("/", 1)[0] + "/" + name
    else:
        tmp = tempfile.mkdtemp(prefix="tresen-bench-inbox-")
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    engine = make_engine(url, pool_size=4)
    try:
        t0 = time.perf_counter()
        await upgrade_to_head(engine)
        seed = await _fill(engine, conversations, messages, rng)
        fill_seconds = time.perf_counter() - t0
        _log(f"filled in {fill_seconds:.1f} s")
        figures = await _measure(make_sessionmaker(engine), seed, queries)
        fts_mode = "fts5 unicode61 remove_diacritics 2"
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                unaccent = await conn.scalar(
                    text("SELECT count(*) FROM pg_extension WHERE extname = 'unaccent'")
                )
                server = await conn.scalar(text("SHOW server_version"))
            fts_mode = f"tsvector simple{' + unaccent' if unaccent else ''} (PostgreSQL {server})"
        return {
            "bench": "inbox",
            "list": {k: v for k, v in figures.items() if k.startswith("list")},
            "search": {k: v for k, v in figures.items() if k.startswith("search")},
            "ping": figures["ping"],
            "fill_seconds": round(fill_seconds, 1),
            "config": {
                "conversations": conversations,
                "messages": messages,
                "other_workspace": {
                    "conversations": seed["other_workspace_conversations"],
                    "messages": seed["other_workspace_messages"],
                },
                "queries_per_kind": queries,
                "page_size": 50,
                "database": engine.dialect.name,
                "search": fts_mode,
                "timing": "in process, one query at a time, a fresh session per query, "
                "after 3 warm-up runs",
            },
        }
    finally:
        await engine.dispose()
        if admin_url is not None:
            await admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
