"""Run scripted conversations through the live pipeline, the way a customer would.

tresen runs with its embedded worker behind a real HTTP server; each customer writes through the
WhatsApp simulator (signed webhooks, consent step included). After each message the runner
waits until the pipeline has nothing left to do and reads what reached the customer's phone.
Nothing here reaches into the bot: it only sees what a customer sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from tresen.app import create_app
from tresen.bot import store
from tresen.bot.products import read_catalog
from tresen.channels.manage import add_channel, default_workspace, webhook_url
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import BotConfig, BotFaq, BotProduct, ChannelRow, Job, Workspace
from tresen.db.types import utcnow
from tresen.dialogues.script import Dialogue, Script, Turn, check
from tresen.domain.ids import new_id
from tresen.handlers.events import undispatched
from tresen.runtime import Runtime
from tresen.settings import Settings
from tresen.sim import shop as shop_sim
from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import (
    LedgerEntry,
    WhatsAppSimConfig,
    WhatsAppSimulator,
    reply_options,
    run_whatsapp_simulator,
    summarize,
)

BUSINESS = "Dialogtest"
CONSENT_OPENER = "Hallo"
CONSENT_YES = "consent_yes"
IDLE_POLL_SECONDS = 0.02
IDLE_CHECKS = 3  # the pipeline counts as idle after this many empty polls in a row
TURN_TIMEOUT_SECONDS = 60.0
CONCURRENCY = 4  # customers writing at once
ACTIVE_JOBS = ("pending", "running")
_customers = itertools.count(1)


class RunnerError(RuntimeError):
    """The dialogues could not be run (not: a dialogue failed)."""


@dataclass(frozen=True)
class BotSource:
    """Which bot the dialogues talk to: the script's files, or a workspace of an install."""

    install: Settings | None = None
    workspace: str | None = None


@dataclass
class Report:
    """The outcome of a run: one line of JSON (`as_json`)."""

    dialogues: int = 0
    expectations: int = 0
    passed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The figures the spec names (measurements.md), plus the run time."""
        rate = round(self.passed / self.expectations, 4) if self.expectations else None
        return {
            "dialogues": self.dialogues,
            "expectations": self.expectations,
            "passed": self.passed,
            "pass_rate": rate,
            "failed": self.failed,
            "seconds": round(self.seconds, 1),
        }


async def _copy_install_bot(source: BotSource, target: Runtime, workspace_id: str) -> None:
    """The install's bot (settings, texts, FAQ, flows, catalog) copied into the scratch workspace;
    nothing of the install is changed."""
    assert source.install is not None
    url = source.install.effective_database_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).is_file():
        raise RunnerError(f"no bot to test: there is no database at {url.split('///', 1)[-1]}")
    engine = make_engine(url, pool_size=2)
    try:
        async with make_sessionmaker(engine)() as session:
            ws_id = source.workspace or await session.scalar(
                select(Workspace.id).order_by(Workspace.created_at).limit(1)
            )
            config = await session.get(BotConfig, ws_id) if ws_id else None
            if config is None:
                raise RunnerError("the install has no bot to test (import a FAQ first)")
            faqs = list(await session.scalars(select(BotFaq).where(BotFaq.workspace_id == ws_id)))
            products = list(
                await session.scalars(select(BotProduct).where(BotProduct.workspace_id == ws_id))
            )
            columns = {
                c: getattr(config, c)
                for c in ("enabled", "language", "business", "persona", "blacklist", "flows")
            }
            rows = [(f.key, f.content, f.position) for f in faqs]
            items = [
                {c.key: getattr(p, c.key) for c in BotProduct.__table__.columns} for p in products
            ]
    except SQLAlchemyError as exc:
        raise RunnerError(
            f"cannot read the install's bot ({type(exc).__name__}); is it migrated?"
        ) from exc
    finally:
        await engine.dispose()
    async with target.sessions() as session, session.begin():
        config = await store.config_for(session, workspace_id)
        for name, value in columns.items():
            setattr(config, name, value)
        config.enabled = True
        now = utcnow()
        for key, content, position in rows:
            session.add(
                BotFaq(
                    id=new_id(),
                    workspace_id=workspace_id,
                    key=key,
                    content=content,
                    position=position,
                    created_at=now,
                    updated_at=now,
                )
            )
        for item in items:
            session.add(BotProduct(**{**item, "id": new_id(), "workspace_id": workspace_id}))
        await session.flush()
        await store.bump(session, workspace_id)


async def seed_bot(runtime: Runtime, workspace_id: str, script: Script, source: BotSource) -> None:
    """Give the scratch workspace the bot under test."""
    if script.faq is None:
        if source.install is None:
            raise RunnerError("no bot to test: give 'faq' in the file or run inside an install")
        await _copy_install_bot(source, runtime, workspace_id)
    else:
        parsed = store.read_import(script.faq)
        catalog = read_catalog(script.products) if script.products else []
        async with runtime.sessions() as session, session.begin():
            await store.import_file(session, workspace_id, parsed)
            if catalog:
                await store.import_products(session, workspace_id, catalog)
    if script.form is not None:
        async with runtime.sessions() as session, session.begin():
            config = await store.config_for(session, workspace_id)
            config.persona = {**(config.persona or {}), "form": script.form}
            await store.bump(session, workspace_id)


async def _workspace(runtime: Runtime) -> str:
    """The scratch workspace."""
    async with runtime.sessions() as session, session.begin():
        return str((await default_workspace(session, BUSINESS)).id)


async def _seed_channel(runtime: Runtime, workspace_id: str, sim: WhatsAppSimulator) -> ChannelRow:
    """The scratch workspace's WhatsApp channel, talking to the simulator."""
    async with runtime.sessions() as session, session.begin():
        return await add_channel(
            session,
            workspace_id,
            "whatsapp",
            "Dialogtest WhatsApp",
            {
                "phone_number_id": sim.config.phone_number_id,
                "app_secret": sim.config.app_secret,
                "verify_token": secrets.token_urlsafe(12),
                "access_token": sim.config.access_token,
                "api_base": sim.base_url,
            },
        )


class _Settling:
    """One poll loop for every waiting customer: has the workspace's pipeline settled?

    A customer waits for `IDLE_CHECKS` quiet polls in a row that began after it asked; the
    customers share the polls instead of each querying the database on its own.
    """

    def __init__(self, runtime: Runtime, workspace_id: str) -> None:
        self.runtime = runtime
        self.workspace_id = workspace_id
        self._busy: list[bool] = []  # the answer of each finished poll, in the order begun
        self._begun = 0
        self._polled = asyncio.Condition()
        self._waiting = 0
        self._loop: asyncio.Task[None] | None = None
        self._failed: SQLAlchemyError | None = None

    async def _is_busy(self) -> bool:
        async with self.runtime.sessions() as session:
            due = utcnow() + timedelta(seconds=1)
            jobs = await session.scalar(
                select(func.count(Job.id)).where(
                    Job.workspace_id == self.workspace_id,
                    Job.state.in_(ACTIVE_JOBS),
                    Job.run_at <= due,
                )
            )
            return bool(jobs or await undispatched(session, self.workspace_id))

    async def _poll(self) -> None:
        try:
            while self._waiting:
                self._begun += 1
                try:
                    busy = await self._is_busy()
                except SQLAlchemyError as error:
                    self._failed, busy = error, True
                async with self._polled:
                    self._busy.append(busy)
                    self._polled.notify_all()
                if self._failed is not None:
                    return
                await asyncio.sleep(IDLE_POLL_SECONDS)
        finally:
            self._loop = None

    async def wait(self, timeout: float = TURN_TIMEOUT_SECONDS) -> None:
        """Return once the pipeline has nothing left to do; RunnerError after `timeout`."""
        deadline = time.monotonic() + timeout
        read = self._begun  # a poll already on its way may have looked too early
        quiet = 0
        self._waiting += 1
        if self._loop is None:
            self._loop = asyncio.create_task(self._poll())
        try:
            async with self._polled:
                while quiet < IDLE_CHECKS:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RunnerError(f"the pipeline did not settle within {timeout:.0f} s")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._polled.wait(), left)
                    if self._failed is not None:
                        raise RunnerError(
                            f"cannot read the job queue ({type(self._failed).__name__})"
                        ) from self._failed
                    for busy in self._busy[read:]:
                        quiet = 0 if busy else quiet + 1
                    read = max(read, len(self._busy))
        finally:
            self._waiting -= 1


@dataclass
class _Stack:
    runtime: Runtime
    sim: WhatsAppSimulator
    workspace_id: str
    settling: _Settling = field(init=False)

    def __post_init__(self) -> None:
        self.settling = _Settling(self.runtime, self.workspace_id)


@asynccontextmanager
async def _stack(runtime: Runtime, script: Script, source: BotSource) -> AsyncIterator[_Stack]:
    """The WhatsApp simulator, tresen (server and worker) and, when asked, the fake shop."""
    config = WhatsAppSimConfig(
        access_token=secrets.token_urlsafe(24),
        app_secret=secrets.token_urlsafe(24),
        status_delays=(0.3, 0.6, 0.9),
        auto_read=False,
        mps=1000.0,
    )
    # Customers meet the privacy notice first, as on a live channel.
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    workspace_id = await _workspace(runtime)
    await seed_bot(runtime, workspace_id, script, source)  # no bot: nothing is started
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(run_whatsapp_simulator(config))
        channel = await _seed_channel(runtime, workspace_id, sim)
        if script.shop == "simulator":
            shop = await stack.enter_async_context(
                shop_sim.run_shop_simulator(shop_sim.ShopSimulator())
            )
            runtime.settings = runtime.settings.with_overrides(
                shop_url=shop.base_url, shop_token=shop_sim.DEMO_TOKEN
            )
        app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
        base_url = await stack.enter_async_context(serve_asgi(app))
        sim.config.webhook_url = webhook_url(base_url, channel)
        yield _Stack(runtime, sim, channel.workspace_id)


def _text(entry: LedgerEntry) -> str:
    """A message as the customer sees it: its text, then its buttons one per line."""
    body = summarize(entry.type, entry.payload)
    options = [o["title"] for o in reply_options(entry.type, entry.payload)]
    return "\n".join([body, *options])


class _Customer:
    """One simulated customer writing to the business."""

    def __init__(self, stack: _Stack) -> None:
        self.stack = stack
        self.wa_id = f"49170{next(_customers):08d}"
        self.seen = 0

    def _mine(self) -> list[LedgerEntry]:
        return [e for e in self.stack.sim.ledger if e.to.endswith(self.wa_id[-8:])]

    async def act(self, turn: Turn) -> list[str]:
        """Do what the turn says, wait for the pipeline, return the new replies."""
        sim = self.stack.sim
        if turn.send is not None:
            await sim.customer_sends(self.wa_id, type=turn.send, body=turn.say or None)
        elif turn.tap is not None and (button := self._button(turn.tap)) is not None:
            await sim.customer_sends(self.wa_id, type="interactive", body=button)
        elif turn.tap is not None:
            await sim.customer_sends(self.wa_id, body=turn.tap)  # options shown as numbered text
        else:
            # WhatsApp has no empty texts; a blank stands for "nothing written".
            await sim.customer_sends(self.wa_id, body=turn.say or " ")
        # The webhook stored the message and its event; wake the worker instead of waiting for
        # its next poll (only the timing changes).
        self.stack.runtime.jobs_ready.set()
        await self.stack.settling.wait()
        mine = self._mine()
        new, self.seen = mine[self.seen :], len(mine)
        return [_text(e) for e in new]

    def _button(self, title: str) -> dict[str, Any] | None:
        """The button of the last reply with this title (as a reply would carry it)."""
        mine = self._mine()
        options = reply_options(mine[-1].type, mine[-1].payload) if mine else []
        for option in options:
            if option["title"].casefold() == title.casefold():
                return {option["kind"]: {"id": option["id"], "title": option["title"]}}
        return None

    async def consent(self) -> None:
        """Say hello and agree to the privacy notice."""
        await self.act(Turn(say=CONSENT_OPENER))
        await self.act(Turn(tap="Ja"))


async def _run_dialogue(stack: _Stack, dialogue: Dialogue) -> tuple[int, list[dict[str, Any]]]:
    """Passed expectations and failures of one dialogue."""
    customer = _Customer(stack)
    if dialogue.consent == "auto":
        await customer.consent()
    passed = 0
    failed: list[dict[str, Any]] = []
    for n, turn in enumerate(dialogue.turns, start=1):
        replies = await customer.act(turn)
        why = check(turn, replies)
        passed += turn.checks - len(why)
        failed.extend({"dialogue": dialogue.name, "turn": n, "why": w} for w in why)
    return passed, failed


async def run_script(
    runtime: Runtime,
    script: Script,
    source: BotSource | None = None,
    progress: Callable[[str], None] | None = None,
    concurrency: int = CONCURRENCY,
) -> Report:
    """Run every dialogue of the script against a fresh workspace of `runtime`'s database;
    up to `concurrency` customers write at the same time (each in a conversation of their own)."""
    started = time.monotonic()
    report = Report(dialogues=len(script.dialogues), expectations=script.expectations)
    gate = asyncio.Semaphore(max(1, concurrency))
    async with _stack(runtime, script, source or BotSource()) as stack:

        async def one(dialogue: Dialogue) -> tuple[int, list[dict[str, Any]]]:
            async with gate:
                result = await _run_dialogue(stack, dialogue)
            if progress is not None:
                progress(f"{'ok' if not result[1] else 'FAILED':6} {dialogue.name}")
            return result

        results = await asyncio.gather(*(one(d) for d in script.dialogues))
    for passed, failed in results:
        report.passed += passed
        report.failed.extend(failed)
    report.seconds = time.monotonic() - started
    return report


def run_scratch(
    script: Script,
    source: BotSource,
    scratch: Settings,
    *,
    verbose: bool,
    concurrency: int = CONCURRENCY,
) -> Report:
    """Run the script on a fresh database the scratch settings name (for the command line)."""

    async def run() -> Report:
        runtime = Runtime.create(scratch)
        try:
            await upgrade_to_head(runtime.engine)
            progress = (lambda line: print(line, file=sys.stderr, flush=True)) if verbose else None
            return await run_script(runtime, script, source, progress, concurrency)
        finally:
            await runtime.close()

    return asyncio.run(run())
