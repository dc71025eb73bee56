"""`tresen demo`: server, worker, WhatsApp simulator and a seeded demo business in one process."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tresen.app import create_app
from tresen.bot import store as bot_store
from tresen.bot.products import read_catalog
from tresen.channels.manage import add_channel, default_workspace, webhook_url
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import CannedReply, ChannelRow, User
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox.accounts import AccountError, add_user
from tresen.integrations.tokens import create_token
from tresen.runtime import Runtime
from tresen.settings import Settings
from tresen.sim import shop as shop_sim
from tresen.sim import whatsapp as whatsapp_sim
from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator

DEMO_BUSINESS = "Radhaus Demo"
DEMO_CHANNEL = "Radhaus WhatsApp (Simulator)"
DEMO_WEBCHAT = "Radhaus Web-Chat"
DEMO_FAQ = Path(__file__).parent / "bot" / "data" / "demo_faq.yaml"
DEMO_PRODUCTS = Path(__file__).parent / "bot" / "data" / "demo_products.json"
DEMO_PRIVACY_URL = "https://radhaus.example/datenschutz"
DEMO_CUSTOMER = (
    "4915112345678",
    "Jana Müller",
    "Hallo! Habt ihr das Trekkingrad noch in 56 cm? 🚲",
)


async def seed(runtime: Runtime, sim_base: str) -> tuple[ChannelRow, str]:
    """The demo workspace, its WhatsApp channel (pointed at the simulator) and a fresh API token."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, DEMO_BUSINESS)
        row = await session.scalar(
            select(ChannelRow).where(
                ChannelRow.workspace_id == ws.id, ChannelRow.name == DEMO_CHANNEL
            )
        )
        if row is None:
            row = await add_channel(
                session,
                ws.id,
                "whatsapp",
                DEMO_CHANNEL,
                {
                    "phone_number_id": "100000000000001",
                    "app_secret": secrets.token_urlsafe(24),
                    "verify_token": secrets.token_urlsafe(12),
                    "access_token": secrets.token_urlsafe(32),
                    "api_base": sim_base,
                },
            )
        elif row.config.get("api_base") != sim_base:
            row.config = {**row.config, "api_base": sim_base}
        token = await create_token(session, ws.id, "demo", ["all"])
        if not await session.scalar(
            select(ChannelRow.id).where(
                ChannelRow.workspace_id == ws.id, ChannelRow.name == DEMO_WEBCHAT
            )
        ):
            # Its demo page (/chat/ID/demo) shows the widget with its consent step.
            await add_channel(session, ws.id, "webchat", DEMO_WEBCHAT, {"title": DEMO_BUSINESS})
        profile = dict((ws.settings or {}).get("profile") or {})
        if not profile.get("privacy_url"):
            # The consent notice on every channel links it.
            profile["privacy_url"] = DEMO_PRIVACY_URL
            ws.settings = {**(ws.settings or {}), "profile": profile}
        if not await bot_store.entries(session, ws.id):
            await bot_store.import_file(session, ws.id, bot_store.read_import(DEMO_FAQ))
        if not await bot_store.products(session, ws.id):
            await bot_store.import_products(session, ws.id, read_catalog(DEMO_PRODUCTS))
    runtime.forget_channel(row.id)
    return row, token


DEMO_USERS = (
    ("chefin@radhaus.example", "admin", "Chefin", "de"),
    ("kim@radhaus.example", "agent", "Kim", "de"),
    ("lea@radhaus.example", "agent", "Lea", "en"),
)


async def seed_people(runtime: Runtime, data_dir: Path) -> list[tuple[str, str, str]]:
    """Demo logins (passwords made once, kept in the data dir) and a few canned replies."""
    logins_file = data_dir / "demo-logins.txt"
    known = (
        dict(line.split("\t", 1) for line in logins_file.read_text().splitlines())
        if logins_file.exists()
        else {}
    )
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, DEMO_BUSINESS)
        for email, role, name, language in DEMO_USERS:
            if email in known:
                continue
            password = secrets.token_urlsafe(10)
            try:
                await add_user(
                    session, ws.id, email, role, password, display_name=name, language=language
                )
            except AccountError:
                continue
            known[email] = password
        if not await session.scalar(
            select(CannedReply.id).where(CannedReply.workspace_id == ws.id).limit(1)
        ):
            session.add_all(
                [
                    CannedReply(
                        id=new_id(),
                        workspace_id=ws.id,
                        shortcut="gruss",
                        title="Begrüßung",
                        body="Hallo {first_name}, hier ist {agent_name} von {business}. Wie kann ich helfen?",
                        created_at=utcnow(),
                    ),
                    CannedReply(
                        id=new_id(),
                        workspace_id=ws.id,
                        shortcut="zeiten",
                        title="Öffnungszeiten",
                        body="Wir haben Mo–Fr 9:30–18:30 und Sa 9:30–15:00 geöffnet.",
                        created_at=utcnow(),
                    ),
                ]
            )
    logins_file.write_text("".join(f"{e}\t{p}\n" for e, p in known.items()))
    logins_file.chmod(0o600)
    return [(email, role, known.get(email, "?")) for email, role, _, _ in DEMO_USERS]


class NotADemoInstall(Exception):
    """The data directory holds a real business: the demo does not seed into it."""


async def _refuse_a_real_business(runtime: Runtime) -> None:
    demo_emails = [email for email, *_ in DEMO_USERS]
    async with runtime.sessions() as session:
        others = await session.scalar(
            select(func.count()).select_from(User).where(User.email.not_in(demo_emails))
        )
    if others:
        raise NotADemoInstall(
            f"{runtime.settings.data_dir.resolve()} holds a business with its own people; "
            "start the demo with --data-dir pointing to another directory"
        )


async def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    sim_port: int = whatsapp_sim.DEFAULT_PORT,
    shop_port: int = shop_sim.DEFAULT_PORT,
    ready: Any = None,
) -> None:
    """Run the demo until interrupted; `ready` (an asyncio.Event) is set once everything is up.

    The WhatsApp simulator and the fake shop run on the ports their own `tresen sim` commands
    use by default, so `tresen sim whatsapp-send` reaches the demo's simulator as it is.
    """
    base = f"http://{host}:{port}"
    settings = settings.with_overrides(base_url=base)
    fake_shop = not settings.shop_url
    if fake_shop:
        settings = settings.with_overrides(
            shop_url=f"http://{host}:{shop_port}", shop_token=shop_sim.DEMO_TOKEN
        )
    settings = settings.with_overrides(outbound_allow_hosts=_allow_sims(settings, host, sim_port))
    if fake_shop:
        settings = settings.with_overrides(
            outbound_allow_hosts=f"{settings.outbound_allow_hosts},{host}:{shop_port}"
        )
    runtime = Runtime.create(settings)
    await upgrade_to_head(runtime.engine)
    try:
        await _refuse_a_real_business(runtime)
    except NotADemoInstall:
        await runtime.close()
        raise
    sim_base = f"http://{host}:{sim_port}"
    channel, token = await seed(runtime, sim_base)
    logins = await seed_people(runtime, settings.data_dir)
    sim_config = WhatsAppSimConfig(
        access_token=channel.config["access_token"],
        app_secret=channel.config["app_secret"],
        phone_number_id=channel.config["phone_number_id"],
        webhook_url=webhook_url(base, channel),
        status_delays=(0.3, 1.0, 3.0),
    )
    app = create_app(settings, runtime=runtime, embedded_worker=True, migrate=False)
    try:
        async with (
            serve_asgi(app, host, port),
            run_whatsapp_simulator(sim_config, host, sim_port) as sim,
            _maybe_shop(fake_shop, host, shop_port),
        ):
            customer, name, text = DEMO_CUSTOMER
            await sim.customer_sends(customer, name=name, body=text)
            webchat_id = await _webchat_id(runtime)
            _banner(settings, base, sim.base_url or sim_base, channel, token, logins, webchat_id)
            if ready is not None:
                ready.set()
            await asyncio.Event().wait()
    finally:
        await runtime.close()


async def _webchat_id(runtime: Runtime) -> str:
    """The id of the demo's web chat channel."""
    async with runtime.sessions() as session:
        return str(
            await session.scalar(select(ChannelRow.id).where(ChannelRow.name == DEMO_WEBCHAT))
        )


def _allow_sims(settings: Settings, host: str, sim_port: int) -> str:
    """The operator's allowed hosts plus the demo's simulator (it runs on loopback)."""
    own = f"{host}:{sim_port}"
    return f"{settings.outbound_allow_hosts},{own}" if settings.outbound_allow_hosts else own


@asynccontextmanager
async def _maybe_shop(run: bool, host: str, port: int) -> AsyncIterator[None]:
    """The fake shop's order API, unless TRESEN_SHOP_URL names a real one."""
    if not run:
        yield
        return
    async with shop_sim.run_shop_simulator(shop_sim.ShopSimulator(), host, port):
        yield


def write_command(sim_base: str) -> str:
    """The exact `tresen sim whatsapp-send` line that writes to the demo as its customer."""
    customer, name, _ = DEMO_CUSTOMER
    url = (
        ""
        if sim_base == f"http://127.0.0.1:{whatsapp_sim.DEFAULT_PORT}"
        else f" --sim-url {sim_base}"
    )
    return (
        f"tresen sim whatsapp-send --from {customer} --name '{name}' --body 'Habt ihr Helme?'{url}"
    )


def _banner(
    settings: Settings,
    base: str,
    sim_base: str,
    channel: ChannelRow,
    token: str,
    logins: list[tuple[str, str, str]],
    webchat_id: str,
) -> None:
    lines = [
        "",
        "tresen demo is running (everything embedded; Ctrl+C stops it)",
        f"  data:                 {settings.data_dir.resolve()} (SQLite)",
        f"  CLI on this data:     export TRESEN_DATA_DIR={settings.data_dir.resolve()}",
        f"  team inbox:           {base}/inbox",
        *[
            f"    login ({role}):{' ' * (10 - len(role))}{email} / {password}"
            for email, role, password in logins
        ],
        f"  health:               {base}/healthz",
        f"  API reference:        {base}/api/v1/docs   (OpenAPI: {base}/api/v1/openapi.json)",
        f"  customer's phone:     {sim_base}/   (simulated WhatsApp; write as a customer here)",
        f"  or from a shell:      {write_command(sim_base)}",
        f"  WhatsApp channel:     {channel.id}  webhook {webhook_url(base, channel)}",
        f"  web chat page:        {base}/chat/{webchat_id}/demo   (the widget as on a shop's site)",
        f'  shop order API:       {settings.shop_url}   (ask the bot: "Wo ist meine Bestellung'
        ' RH-100234?", postcode 70173)',
        f"  API token (all scopes, shown once): {token}",
        "",
        "Try it:",
        f"  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/conversations",
        f"  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        '       -d \'{"kind":"text","body":"Ja, in 56 cm ist es da!"}\' \\',
        f"       {base}/api/v1/conversations/CONVERSATION_ID/messages",
        "  ...then watch the message's state go queued → sent → delivered → read:",
        f"  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/messages/MESSAGE_ID",
        "",
    ]
    print("\n".join(lines), file=sys.stdout, flush=True)
