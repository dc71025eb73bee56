"""`tresen bench broadcast`: a campaign to N subscribers through a WhatsApp simulator with a cap.

Fills a fresh database (a SQLite file in a temp dir, or a new `tresen_bench_<random>` database
on the PostgreSQL server `database_url` names, dropped afterwards) through the real migrations
with N contacts that confirmed a topic on one WhatsApp channel, serves the WhatsApp simulator in
this process with its throughput cap set to `cap` messages/s (it answers 130429 above it),
starts the campaign and runs `workers` real `tresen worker` processes until it is done.
Figures: the rate the simulator accepted messages at (first to last accepted message), its
ratio to the cap, recipients never accepted (`lost`), messages accepted twice (`duplicated`,
from the simulator's ledger, keyed by our message id), the time to fix the audience, and the
workers' peak resident memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tresen.benchmarks.inbox import _insert
from tresen.benchmarks.scratch import create_scratch
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import (
    Campaign,
    CampaignRecipient,
    Contact,
    ContactIdentity,
    Conversation,
    MessageTemplate,
    Subscription,
)
from tresen.domain.ids import new_id

CHUNK = 50_000
FIRST = ["Anna", "Jürgen", "Özlem", "Björn", "Mia", "Lukas", "Grete", "Paul", "Ümit", "Ole"]
TEMPLATE_BODY = "Hallo {{1}}, neu im Laden: die Frühjahrskollektion. Abmelden mit STOP."


def _log(msg: str) -> None:
    print(f"[bench broadcast] {msg}", file=sys.stderr, flush=True)


def address(i: int) -> str:
    """The phone number (wa_id) of generated subscriber i."""
    return f"4915{i:09d}"


async def seed_audience(
    engine: AsyncEngine,
    *,
    workspace_id: str,
    channel_id: str,
    topic_id: str,
    n: int,
    start: int = 0,
    last_inbound_at: datetime | None = None,
) -> list[str]:
    """N contacts with an identity, a conversation and a confirmed subscription; their ids."""
    pg = engine.dialect.name == "postgresql"
    now = datetime.now(UTC)
    ids: list[str] = []
    for lo in range(start, start + n, CHUNK):
        hi = min(start + n, lo + CHUNK)
        contacts, identities, conversations, subs = [], [], [], []
        for i in range(lo, hi):
            contact_id, identity_id = new_id(), new_id()
            ids.append(contact_id)
            name = f"{FIRST[i % len(FIRST)]} Test{i}"
            contacts.append(
                {"id": contact_id, "workspace_id": workspace_id, "display_name": name,
                 "attributes": "{}" if pg else {}, "consent_state": "granted",
                 "created_at": now, "updated_at": now}
            )  # fmt: skip
            identities.append(
                {"id": identity_id, "workspace_id": workspace_id, "contact_id": contact_id,
                 "channel_id": channel_id, "address": address(i), "display_name": name,
                 "unreachable": False, "created_at": now}
            )  # fmt: skip
            conversations.append(
                {"id": new_id(), "workspace_id": workspace_id, "channel_id": channel_id,
                 "contact_id": contact_id, "identity_id": identity_id, "status": "resolved",
                 "created_at": now, "last_inbound_at": last_inbound_at,
                 "last_message_at": last_inbound_at, "legal_hold": False}
            )  # fmt: skip
            subs.append(
                {"id": new_id(), "workspace_id": workspace_id, "topic_id": topic_id,
                 "contact_id": contact_id, "channel_id": channel_id, "state": "confirmed",
                 "source": "bench", "language": "de", "requested_at": now,
                 "confirmed_at": now}
            )  # fmt: skip
        for table, rows in (
            (Contact.__table__, contacts),
            (ContactIdentity.__table__, identities),
            (Conversation.__table__, conversations),
            (Subscription.__table__, subs),
        ):
            await _insert(engine, table, rows)  # type: ignore[arg-type]
        if hi - start >= 100_000 and (hi - start) % 200_000 == 0:
            _log(f"seeded {hi - start} subscribers")
    return ids


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB; zeros once it is gone."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["VmRSS"], found["VmHWM"]


def start_worker(env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """A real `tresen worker` process with the given environment."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds its own copy
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tresen.cli import main; main()", "worker"],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def stop_worker(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def worker_env(url: str, data_dir: Path, redis_url: str, lease: float) -> dict[str, str]:
    """The environment of a bench worker (no TRESEN_* of the caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESEN_")}
    env.update(
        {
            "TRESEN_DATABASE_URL": url,
            "TRESEN_DATA_DIR": str(data_dir),
            "TRESEN_SECRET_KEY": "bench-secret-key-not-for-production",
            "TRESEN_JOB_LEASE_SECONDS": str(lease),
            "TRESEN_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",  # the simulator
        }
    )
    if redis_url:
        env["TRESEN_REDIS_URL"] = redis_url
    return env


async def _setup(url: str, sim_base: str, cap: float, n: int) -> tuple[str, str, float]:
    """Workspace, channel at the simulator, topic, template, N subscribers, started campaign."""
    from tresen.broadcast import campaigns, topics
    from tresen.channels.manage import add_channel, default_workspace
    from tresen.sim.whatsapp import WhatsAppSimConfig

    config = WhatsAppSimConfig()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        await upgrade_to_head(engine)
        async with sessions() as session, session.begin():
            ws = await default_workspace(session, "Benchladen")
            channel = await add_channel(
                session,
                ws.id,
                "whatsapp",
                "Bench WhatsApp",
                {
                    "api_base": sim_base,
                    "access_token": config.access_token,
                    "app_secret": config.app_secret,
                    "verify_token": "bench",
                    "phone_number_id": config.phone_number_id,
                    "waba_id": config.waba_id,
                    "messages_per_second": cap,
                },
            )
            topic = await topics.create_topic(session, ws.id, "neuigkeiten", "Neuigkeiten")
            await session.execute(
                insert(MessageTemplate).values(
                    id=new_id(), workspace_id=ws.id, channel_id=channel.id,
                    name="news_update", language="de", category="marketing",
                    body=TEMPLATE_BODY, status="approved", updated_at=datetime.now(UTC),
                )
            )  # fmt: skip
            ws_id, channel_id, topic_id = ws.id, channel.id, topic.id
        began = time.monotonic()
        await seed_audience(
            engine, workspace_id=ws_id, channel_id=channel_id, topic_id=topic_id, n=n,
            last_inbound_at=datetime.now(UTC) - timedelta(days=3),
        )  # fmt: skip
        seed_seconds = time.monotonic() - began
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE"))
        async with sessions() as session, session.begin():
            campaign = await campaigns.create_campaign(
                session,
                ws_id,
                name="Frühjahr",
                topic="neuigkeiten",
                content={
                    "text": "Hallo {first_name}, neu im Laden: die Frühjahrskollektion.",
                    "channels": {
                        "whatsapp": {
                            "template": {
                                "name": "news_update",
                                "language": "de",
                                "parameters": ["{first_name}"],
                            }
                        }
                    },
                },
                quiet_hours=None,
            )
            await campaigns.start(session, campaign)
            return campaign.id, channel_id, seed_seconds
    finally:
        await engine.dispose()


async def _campaign_state(url: str, campaign_id: str) -> tuple[str, int, float | None]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Campaign.state, Campaign.audience, Campaign.expand_seconds).where(
                        Campaign.id == campaign_id
                    )
                )
            ).one()
        return str(row[0]), int(row[1]), row[2]
    finally:
        await engine.dispose()


async def _counts(url: str, campaign_id: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            by_state = dict(
                (
                    await conn.execute(
                        select(CampaignRecipient.state, func.count())
                        .where(CampaignRecipient.campaign_id == campaign_id)
                        .group_by(CampaignRecipient.state)
                    )
                ).all()
            )
            rows = (
                await conn.execute(
                    select(CampaignRecipient.message_id, CampaignRecipient.state).where(
                        CampaignRecipient.campaign_id == campaign_id,
                        CampaignRecipient.message_id.is_not(None),
                    )
                )
            ).all()
        return {
            "by_state": {str(k): int(v) for k, v in by_state.items()},
            "ids": {message_id for message_id, _ in rows},
            "sent_ids": {message_id for message_id, state in rows if state == "sent"},
        }
    finally:
        await engine.dispose()


async def _pause(url: str, campaign_id: str) -> None:
    """Pause the campaign and wait until no recipient row is on the wire any more."""
    from tresen.broadcast import campaigns

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            await campaigns.pause(session, campaign)
        for _ in range(240):
            async with engine.connect() as conn:
                in_flight = await conn.scalar(
                    select(func.count()).where(
                        CampaignRecipient.campaign_id == campaign_id,
                        CampaignRecipient.state == "sending",
                    )
                )
            if not in_flight:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("recipients stayed in 'sending' for 120 s after the pause")
    finally:
        await engine.dispose()


def rate_deciles(accepted_at: list[float]) -> list[float]:
    """The accepted rate (messages/s) in each tenth of the ledger, first to last."""
    n = len(accepted_at)
    if n < 20:
        return []
    rates = []
    for k in range(10):
        lo, hi = k * (n - 1) // 10, (k + 1) * (n - 1) // 10
        span = accepted_at[hi] - accepted_at[lo]
        rates.append(round((hi - lo) / span, 1) if span > 0 else 0.0)
    return rates


async def _freeze_gc(stop: asyncio.Event) -> None:
    """Keep the simulator's growing ledger out of the collector's full passes."""
    while not stop.is_set():
        gc.freeze()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


async def run_broadcast_bench(
    *,
    recipients: int,
    cap: float,
    database_url: str = "",
    workers: int = 1,
    redis_url: str = "",
    timeout: float | None = None,
    lease_seconds: float = 30.0,
    expand_only: bool = False,
    window: float | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its figures (one JSON-able dict).

    With `window`, sending is measured for that many seconds from the first accepted message;
    then the campaign is paused, the rows on the wire are recorded, and the workers stop.
    """
    from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator

    if workers > 1 and not redis_url:
        raise ValueError("several workers share the rate limit through Redis: give --redis-url")
    run = secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix="tresen-bench-broadcast-"))
    scratch = await create_scratch(database_url, tmp, run)
    if scratch.name:
        _log(f"created PostgreSQL database {scratch.name}")
    url, kind = scratch.url, scratch.kind
    timeout = timeout if timeout is not None else 600 + 30 * recipients / cap
    procs: list[subprocess.Popen[bytes]] = []
    stop_gc = asyncio.Event()
    gc_task = asyncio.create_task(_freeze_gc(stop_gc))
    sim_config = WhatsAppSimConfig(mps=cap, webhook_url=None, status_delays=(0.05, 0.1, 0.2))
    try:
        async with run_whatsapp_simulator(sim_config) as sim:
            assert sim.base_url is not None
            sim.templates.submit(
                {"name": "news_update", "language": "de", "category": "MARKETING",
                 "components": [{"type": "BODY", "text": TEMPLATE_BODY}]}
            )  # fmt: skip
            _log(f"seeding {kind} database with {recipients} subscribers")
            campaign_id, _channel_id, seed_seconds = await _setup(
                url, sim.base_url, cap, recipients
            )
            _log(f"seeded in {seed_seconds:.1f} s; starting {workers} worker process(es)")
            if redis_url:
                import redis.asyncio as aioredis

                client = aioredis.from_url(redis_url)
                await client.ping()
                await client.aclose()
            env = worker_env(url, tmp, redis_url, lease_seconds)
            began = time.monotonic()
            procs = [start_worker(env, tmp, tmp / f"worker{i}.log") for i in range(workers)]
            peak = 0.0
            last_log = began
            state, audience, expand_seconds = "starting", 0, None
            while True:
                await asyncio.sleep(0.5)
                for proc in procs:
                    peak = max(peak, _rss_mb(proc.pid)[1])
                    if proc.poll() is not None:
                        log_text = (tmp / "worker0.log").read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"a worker exited with {proc.returncode}:\n{log_text}")
                state, audience, expand_seconds = await _campaign_state(url, campaign_id)
                if state in ("done", "cancelled") or (expand_only and expand_seconds is not None):
                    break
                if window and sim.ledger and time.time() - sim.ledger[0].accepted_at >= window:
                    await _pause(url, campaign_id)
                    state = "paused"
                    break
                if time.monotonic() - began > timeout:
                    tail = (tmp / "worker0.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(
                        f"the campaign did not finish within {timeout:.0f} s:\n{tail}"
                    )
                if time.monotonic() - last_log > 30:
                    last_log = time.monotonic()
                    _log(f"{len(sim.ledger)} of {audience} accepted, state {state}")
            wall = time.monotonic() - began
            for proc in procs:
                peak = max(peak, _rss_mb(proc.pid)[1])
            for proc in procs:
                stop_worker(proc)
            ledger = sim.ledger
            accepted = len(ledger)
            span = ledger[-1].accepted_at - ledger[0].accepted_at if accepted > 1 else 0.0
            rate = (accepted - 1) / span if span > 0 else 0.0
            counts = await _counts(url, campaign_id)
            seen = {e.biz_opaque_callback_data for e in ledger}
            lost = len(counts["ids"] - seen) + (audience - len(counts["ids"]))
            if window:
                # Only the rows marked sent are due: each must be in the provider's ledger.
                lost = len(counts["sent_ids"] - seen)
            deciles = rate_deciles([e.accepted_at for e in ledger])
            duplicated = sim.duplicates()
            rejected = dict(sim.stats()["rejected"])
            if expand_only:
                rate, lost = 0.0, 0
    finally:
        stop_gc.set()
        await gc_task
        for proc in procs:
            stop_worker(proc, grace=5)
        await scratch.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    if expand_only:
        return {
            "bench": "broadcast",
            "mode": "expand_only",
            "recipients": recipients,
            "audience": audience,
            "expand_seconds": expand_seconds,
            "peak_rss_mb": round(peak, 1),
            "seed_seconds": round(seed_seconds, 1),
            "config": {"database": kind, "cap": cap, "workers": workers, "cpus": os.cpu_count()},
        }
    return {
        "bench": "broadcast",
        "recipients": recipients,
        "audience": audience,
        "sent": counts["by_state"].get("sent", 0),
        "rate": round(rate, 1),
        "cap_ratio": round(rate / cap, 4),
        "rate_deciles": deciles,
        "window_seconds": window,
        "lost": lost,
        "duplicated": duplicated,
        "expand_seconds": expand_seconds,
        "peak_rss_mb": round(peak, 1),
        "campaign_seconds": round(wall, 1),
        "seed_seconds": round(seed_seconds, 1),
        "rejected": rejected,
        "recipient_states": counts["by_state"],
        "config": {
            "database": kind,
            "cap": cap,
            "workers": workers,
            "rate_limiter": "redis" if redis_url else "in-process",
            "channel": "whatsapp (simulator in the bench process)",
            "content": "approved template with one personal parameter",
            "status_webhooks": False,
            "cpus": os.cpu_count(),
        },
    }
