"""The `tresen` command."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tresen.bot.cli import bot_app
from tresen.broadcast.cli import broadcast_app, notifications_app, topic_app
from tresen.clitools import cli_settings, fail, setup_logging, with_session
from tresen.inbox.cli import route_app, team_app, user_limit
from tresen.pipeline.cli import template_app
from tresen.privacy.cli import privacy_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="tresen: every messenger in one team inbox."
)
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
channel_app = typer.Typer(no_args_is_help=True, help="Channel accounts.")
sim_app = typer.Typer(
    no_args_is_help=True, help="Provider simulators (local, for tests and demos)."
)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON line.")
app.add_typer(token_app, name="token")
app.add_typer(channel_app, name="channel")
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")

for _sim_module in ("messenger", "telegram", "sms", "email", "shop"):
    importlib.import_module(f"tresen.sim.{_sim_module}").add_cli(sim_app)
app.add_typer(bot_app, name="bot")
app.add_typer(team_app, name="team")
app.add_typer(route_app, name="route")
app.add_typer(template_app, name="template")
app.add_typer(privacy_app, name="privacy")
app.add_typer(topic_app, name="topic")
app.add_typer(notifications_app, name="notifications")
app.add_typer(broadcast_app, name="broadcast")


_settings = cli_settings
_fail = fail
_logging = setup_logging
_with_session = with_session


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()

    async def run() -> None:
        from tresen.db.engine import make_engine
        from tresen.db.migrate import upgrade_to_head

        engine = make_engine(settings.effective_database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("schema is up to date")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run the embedded worker.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Web processes.")] = 1,
) -> None:
    """Run the web server (with the embedded worker unless --no-worker)."""
    import os

    import uvicorn

    _settings()
    _logging()
    os.environ["TRESEN_EMBEDDED_WORKER"] = "0" if no_worker else "1"
    uvicorn.run(
        "tresen.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=True,
    )


@app.command()
def worker(concurrency: Annotated[int, typer.Option(min=1, max=1000)] = 32) -> None:
    """Run a job worker (run as many as you like, on any machine sharing the database)."""
    settings = _settings()
    _logging()

    async def run() -> None:
        import signal

        from tresen.app import make_worker
        from tresen.db.migrate import upgrade_to_head
        from tresen.runtime import Runtime

        runtime = Runtime.create(settings)
        await upgrade_to_head(runtime.engine)
        w = make_worker(runtime, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        try:
            await w.run()
        finally:
            await runtime.close()

    asyncio.run(run())


user_app = typer.Typer(no_args_is_help=True, help="People who work in the inbox.")
app.add_typer(user_app, name="user")
user_app.command("limit")(user_limit)


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[str, typer.Option(help="admin, supervisor or agent.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Display name (default: the part before @).")
    ] = None,
    language: Annotated[str, typer.Option(help="de or en.")] = "de",
) -> None:
    """Add a person to the inbox; without --password-stdin a strong password is generated and printed once."""
    import secrets as _secrets

    from tresen.channels.manage import default_workspace
    from tresen.inbox.accounts import AccountError, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password = _secrets.token_urlsafe(15)
        generated = True
    settings = _settings()

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        user = await add_user(
            session, ws.id, email, role, password, display_name=name, language=language
        )
        return user.id

    try:
        user_id = asyncio.run(_with_session(settings, work))
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(f"user id:  {user_id}")
    if generated:
        typer.echo(f"password: {password}   (shown once; change it after the first login)")


@user_app.command("set-password")
def user_set_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Reset a person's password (ends their sessions); without --password-stdin one is generated and printed."""
    import secrets as _secrets

    from sqlalchemy import select

    from tresen.db.tables import User
    from tresen.inbox.accounts import AccountError, normalise_email, set_password

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else _secrets.token_urlsafe(15)
    settings = _settings()

    async def work(session: Any) -> None:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            raise AccountError(f"no user with the e-mail {email}")
        await set_password(session, user.id, password)

    try:
        asyncio.run(_with_session(settings, work))
    except AccountError as exc:
        _fail(str(exc))
    if not password_stdin:
        typer.echo(f"password: {password}   (shown once)")


@user_app.command("totp")
def user_totp(
    email: str,
    off: Annotated[
        bool, typer.Option("--off", help="Turn two-factor sign-in off instead.")
    ] = False,
) -> None:
    """Turn on two-factor sign-in (prints the otpauth:// URI for an authenticator app), or --off."""
    from sqlalchemy import select

    from tresen.db.tables import User
    from tresen.inbox.accounts import AccountError, disable_totp, enable_totp, normalise_email

    settings = _settings()

    async def work(session: Any) -> str:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            raise AccountError(f"no user with the e-mail {email}")
        if off:
            await disable_totp(session, user.id)
            return "two-factor sign-in is off"
        return await enable_totp(session, user.id)

    try:
        typer.echo(asyncio.run(_with_session(settings, work)))
    except AccountError as exc:
        _fail(str(exc))


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help="Repeat; 'all' for every scope.")],
) -> None:
    """Create an API token and print it (it is shown only once)."""
    from tresen.channels.manage import default_workspace
    from tresen.integrations.tokens import TokenError, create_token

    settings = _settings()

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        return await create_token(session, ws.id, name, scope)

    try:
        token = asyncio.run(_with_session(settings, work))
    except TokenError as exc:
        _fail(str(exc))
    typer.echo(token)


def _channel_options(kind: str) -> dict[str, tuple[str, bool]]:
    """The `--option` names of a channel kind: option → (config field, required)."""
    import msgspec

    from tresen.channels.base import channel_factory

    info = msgspec.inspect.type_info(channel_factory(kind).config_type)
    return {
        "--" + f.name.replace("_", "-"): (f.name, f.required)
        for f in info.fields  # type: ignore[attr-defined]
    }


def _parse_options(kind: str, args: list[str], *, require: bool = True) -> dict[str, str]:
    """Turn `--phone-number-id 123 --api-base=URL` into config fields, refusing unknown ones."""
    options = _channel_options(kind)
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name not in options:
            _fail(f"{kind} has no option {name!r}; its options: {', '.join(sorted(options))}")
        if eq:
            values[options[name][0]] = inline
            i += 1
        elif i + 1 < len(args):
            values[options[name][0]] = args[i + 1]
            i += 2
        else:
            _fail(f"option {name} needs a value")
    missing = [
        opt
        for opt, (field, required) in options.items()
        if require and required and field not in values
    ]
    if missing:
        _fail(f"{kind} needs {', '.join(missing)}")
    return values


@channel_app.command(
    "add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def channel_add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="whatsapp, ...")],
    name: Annotated[str, typer.Option(help="A name people will recognise.")],
) -> None:
    """Connect a channel account; prints its id and webhook URL. Options depend on KIND.

    whatsapp: --phone-number-id --app-secret --verify-token --access-token
    [--api-base URL] [--api-version v21.0] [--messages-per-second 80]

    telegram: --bot-token --secret-token [--api-base URL] [--no-set-webhook]

    messenger / instagram: --page-id --app-secret --verify-token --page-access-token [--api-base URL]

    sms: --account-sid --auth-token --from-number|--messaging-service-sid [--api-base URL]

    email: --address --smtp-host --smtp-username --smtp-password --imap-host --imap-username
    --imap-password [--smtp-port 587] [--imap-port 993] (polled, no webhook)

    xmpp: --jid --password [--host H --port 5222] [--direct-tls true] [--tls-ca-file PEM]
    (the worker stays connected, no webhook)

    A wrong option is named with the list of the kind's options.
    """
    import msgspec

    from tresen.channels.base import ConfigError, channel_factory
    from tresen.channels.manage import add_channel, default_workspace, webhook_url

    try:
        factory = channel_factory(kind)
    except ConfigError as exc:
        _fail(str(exc))
    args = list(ctx.args)
    register_webhook = "--no-set-webhook" not in args
    args = [a for a in args if a != "--no-set-webhook"]
    raw = _parse_options(kind, args)
    try:
        config = msgspec.to_builtins(msgspec.convert(raw, factory.config_type, strict=False))
    except msgspec.ValidationError as exc:
        _fail(f"{kind} channel configuration: {exc}")
    settings = _settings()

    async def work(session: Any) -> tuple[str, str]:
        ws = await default_workspace(session)
        row = await add_channel(session, ws.id, kind, name, config)
        url = webhook_url(settings.base_url, row)
        if kind == "sms" and not row.config.get("status_callback_url"):
            # Twilio posts delivery statuses to the URL given with each send: the channel's own webhook.
            row.config = {**row.config, "status_callback_url": url}
        if kind == "telegram" and register_webhook:
            await _register_telegram_webhook(config, url)
        return row.id, url

    try:
        channel_id, url = asyncio.run(_with_session(settings, work))
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"channel id:  {channel_id}")
    typer.echo(f"webhook URL: {url}")


async def _register_telegram_webhook(config: dict[str, Any], url: str) -> None:
    """Tell Telegram where to deliver updates (setWebhook with the secret token)."""
    import httpx

    from tresen.channels.base import AuthError, ChannelError, ConfigError
    from tresen.channels.telegram import set_webhook

    async with httpx.AsyncClient(timeout=15) as http:
        try:
            await set_webhook(http, config, url)
        except AuthError as exc:
            raise ConfigError(f"Telegram refused the bot token: {exc.reason}") from exc
        except ChannelError as exc:
            raise ConfigError(
                f"could not register the webhook with Telegram ({exc.reason}); "
                "check TRESEN_BASE_URL, or add the channel with --no-set-webhook and register it later"
            ) from exc


@channel_app.command(
    "set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def channel_set(
    ctx: typer.Context,
    channel_id: Annotated[str, typer.Argument(help="The channel's id (tresen channel list).")],
) -> None:
    """Change options of a connected channel, e.g. --bot-username or --display-phone-number."""
    import msgspec
    from sqlalchemy import select

    from tresen.channels.base import ConfigError, channel_factory
    from tresen.db.tables import ChannelRow

    settings = _settings()

    async def work(session: Any) -> str:
        row = await session.scalar(select(ChannelRow).where(ChannelRow.id == channel_id))
        if row is None:
            raise ConfigError(f"no channel with the id {channel_id!r}; see `tresen channel list`")
        factory = channel_factory(row.kind)
        raw = _parse_options(row.kind, list(ctx.args), require=False)
        if not raw:
            options = ", ".join(sorted(_channel_options(row.kind)))
            raise ConfigError(f"give at least one option to change: {options}")
        try:
            typed = msgspec.to_builtins(
                msgspec.convert({**row.config, **raw}, factory.config_type, strict=False)
            )
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{row.kind} channel configuration: {exc}") from exc
        row.config = factory.check_config(typed)
        return ", ".join(sorted(raw))

    try:
        changed = asyncio.run(_with_session(settings, work))
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"channel {channel_id}: set {changed}")


@channel_app.command("capabilities")
def channel_capabilities() -> None:
    """Print the capability matrix of every channel kind (Markdown)."""
    from tresen.channels.matrix import markdown

    typer.echo(markdown())


@channel_app.command("list")
def channel_list() -> None:
    """Print id, kind, name and webhook URL of every channel."""
    from tresen.channels.manage import list_channels, webhook_url

    settings = _settings()

    async def work(session: Any) -> list[tuple[str, str, str, str]]:
        return [
            (r.id, r.kind, r.name, webhook_url(settings.base_url, r))
            for r in await list_channels(session)
        ]

    for row in asyncio.run(_with_session(settings, work)):
        typer.echo("\t".join(row))


@app.command()
def demo(
    port: Annotated[int, typer.Option(min=1, max=65534)] = 8000,
    host: str = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the demo keeps its SQLite file.")
    ] = None,
) -> None:
    """Run everything embedded: server, worker, WhatsApp simulator and a seeded demo business."""
    from tresen.demo import run_demo

    settings = _settings(data_dir or Path("./tresen-demo"))
    _logging("WARNING")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, host=host, port=port))


@sim_app.command("whatsapp")
def sim_whatsapp(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 9001,
    webhook: Annotated[str, typer.Option(help="tresen's webhook URL for the channel.")] = "",
    host: str = "127.0.0.1",
    access_token: str = "sim-access-token",
    app_secret: str = "sim-app-secret",
    phone_number_id: str = "100000000000001",
    mps: Annotated[float, typer.Option(help="Throughput cap, messages/s.")] = 80.0,
    fault_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    out_of_order: bool = False,
    duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    window_violation: Annotated[str, typer.Option(help="'response' or 'status'.")] = "response",
) -> None:
    """Run the WhatsApp Cloud API simulator on its own."""
    from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator

    if window_violation not in ("response", "status"):
        _fail("--window-violation must be 'response' or 'status'")
    if webhook and not webhook.startswith(("http://", "https://")):
        _fail("--webhook must be an http(s) URL")
    config = WhatsAppSimConfig(
        access_token=access_token,
        app_secret=app_secret,
        phone_number_id=phone_number_id,
        webhook_url=webhook or None,
        mps=mps,
        fault_rate=fault_rate,
        out_of_order=out_of_order,
        duplicate_rate=duplicate_rate,
        window_violation=window_violation,
    )

    async def run() -> None:
        async with run_whatsapp_simulator(config, host=host, port=port) as sim:
            typer.echo(f"WhatsApp simulator on {sim.base_url}  (customer phone: {sim.base_url}/)")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@sim_app.command("whatsapp-send")
def sim_whatsapp_send(
    sender: Annotated[str, typer.Option("--from", help="The customer's WhatsApp number (wa_id).")],
    sim_url: Annotated[str, typer.Option(help="The running simulator.")] = "http://127.0.0.1:9001",
    kind: Annotated[
        str,
        typer.Option(
            "--type", help="text, image, location, reaction, interactive, ... or any other name."
        ),
    ] = "text",
    body: Annotated[str, typer.Option(help="Text, or a JSON object for the type's fields.")] = "",
    name: str = "Kunde",
) -> None:
    """Let the simulated customer send a message of any type to the business."""
    import httpx

    content: Any = body
    if body.strip().startswith("{"):
        try:
            content = json.loads(body)
        except json.JSONDecodeError as exc:
            _fail(f"--body looks like JSON but is not valid: {exc}")
    try:
        response = httpx.post(
            f"{sim_url.rstrip('/')}/_sim/inbound",
            json={"wa_id": sender, "name": name, "type": kind, "body": content or None},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the simulator at {sim_url}: {type(exc).__name__}")
    if response.status_code != 200:
        _fail(f"the simulator refused it ({response.status_code}): {response.text}")
    typer.echo(response.json()["id"])


@bench_app.command("ingest")
def bench_ingest(
    seconds: Annotated[float, typer.Option(min=1.0)] = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    database_url: Annotated[str, typer.Option(help="Default: a fresh SQLite file.")] = "",
    channel: Annotated[
        str,
        typer.Option(help="Channel kind: whatsapp, telegram, messenger, instagram or sms."),
    ] = "whatsapp",
    web_processes: Annotated[int, typer.Option(min=1, max=16)] = 1,
) -> None:
    """Post signed webhooks at a fixed concurrency and print the figures as one JSON line."""
    from tresen.bench.ingest import CHANNELS, run_ingest_bench

    if channel not in CHANNELS:
        _fail(f"no ingest benchmark for --channel {channel!r}; choose one of {', '.join(CHANNELS)}")
    result = asyncio.run(
        run_ingest_bench(
            seconds=seconds,
            concurrency=concurrency,
            database_url=database_url,
            channel=channel,
            web_processes=web_processes,
        )
    )
    typer.echo(json.dumps(result))


@bench_app.command("inbox")
def bench_inbox(
    conversations: Annotated[int, typer.Option(min=1)] = 100_000,
    messages: Annotated[int, typer.Option(min=1)] = 1_000_000,
    queries: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    database_url: Annotated[
        str, typer.Option(help="PostgreSQL server for a fresh database; default SQLite.")
    ] = "",
) -> None:
    """Time the conversation list and search on a generated inbox; print one JSON line."""
    from tresen.bench.inbox import run_inbox_bench

    result = asyncio.run(
        run_inbox_bench(
            conversations=conversations,
            messages=messages,
            database_url=database_url,
            queries=queries,
        )
    )
    typer.echo(json.dumps(result))


@bench_app.command("topic-import")
def bench_topic_import(
    rows: Annotated[int, typer.Option(min=1, max=100_000)] = 10_000,
    database_url: Annotated[
        str, typer.Option(help="PostgreSQL server for a fresh database; default SQLite.")
    ] = "",
) -> None:
    """Import a generated CSV of N subscribers into a fresh database; print one JSON line."""
    from tresen.bench.topic_import import run_topic_import_bench

    result = asyncio.run(run_topic_import_bench(rows=rows, database_url=database_url))
    typer.echo(json.dumps(result))


@bench_app.command("broadcast")
def bench_broadcast(
    recipients: Annotated[int, typer.Option(min=1)] = 10_000,
    cap: Annotated[
        float, typer.Option(min=1.0, help="The simulator's messages per second.")
    ] = 80.0,
    database_url: Annotated[
        str, typer.Option(help="PostgreSQL server for a fresh database; default SQLite.")
    ] = "",
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker processes.")] = 1,
    redis_url: Annotated[
        str, typer.Option(help="Shared rate limit for several workers (redis://...).")
    ] = "",
    timeout: Annotated[
        float, typer.Option(min=0, help="Give up after S seconds (0: 600 + 30 * N / cap).")
    ] = 0,
    expand_only: Annotated[
        bool, typer.Option(help="Stop once the audience is fixed (figures: expand_seconds).")
    ] = False,
    window: Annotated[
        float,
        typer.Option(min=0, help="Measure S seconds of sending, then pause (0: send to all)."),
    ] = 0,
) -> None:
    """Send a campaign to N subscribers through a capped simulator; print one JSON line."""
    from tresen.bench.broadcast import run_broadcast_bench

    try:
        result = asyncio.run(
            run_broadcast_bench(
                recipients=recipients,
                cap=cap,
                database_url=database_url,
                workers=workers,
                redis_url=redis_url,
                timeout=timeout or None,
                expand_only=expand_only,
                window=window or None,
            )
        )
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result))


audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every workspace's hash chain; exit 1 and name the first bad entry on tampering."""
    from sqlalchemy import select

    from tresen.db.tables import Workspace
    from tresen.privacy.audit import verify

    settings = _settings()

    async def work(session: Any) -> list[Any]:
        return [await verify(session, ws) for ws in await session.scalars(select(Workspace.id))]

    results = asyncio.run(_with_session(settings, work))
    bad = [r for r in results if not r.ok]
    for r in results:
        state = "ok" if r.ok else f"TAMPERED at entry {r.first_bad_id}: {r.reason}"
        typer.echo(f"{r.workspace_id}\t{r.entries} entries\t{state}")
    if bad:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the `tresen` console script."""
    app()
