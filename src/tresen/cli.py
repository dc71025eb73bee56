"""The `tresen` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from tresen.bot.cli import bot_app
from tresen.broadcast.cli import broadcast_app, notifications_app, topic_app
from tresen.channels.manage import default_workspace
from tresen.channels.registry import channel_factory, registry
from tresen.cligroup import CliGroup
from tresen.clitools import cli_settings, fail, setup_logging, with_session
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.dialogues.cli import dialogue_test_command
from tresen.inbox import accounts
from tresen.inbox.cli import route_app, team_app, user_limit
from tresen.integrations.tokens import list_tokens, revoke_token
from tresen.net.guard import UrlRefused, guarded_client
from tresen.ops.backup import BackupError, backup, restore
from tresen.ops.doctor import ERROR, WARN, run_doctor
from tresen.ops.keys_cli import keys_app
from tresen.ops.processes import WORKER, ProcessIdentity, beat_until
from tresen.ops.startup import StartupError, describe_database_error, prepare_database
from tresen.pipeline.cli import template_app
from tresen.privacy import audit
from tresen.privacy.cli import privacy_app
from tresen.settings import Settings, SettingsError, load_settings, secret_key_from_file
from tresen.sim import shop as shop_sim
from tresen.sim import whatsapp as whatsapp_sim
from tresen.sim.registry import add_commands as add_sim_commands
from tresen.web.clientip import proxy_options
from tresen.web.metrics import SideServer

log = logging.getLogger("tresen")
GRACEFUL_SECONDS = 10
"""How long `serve` waits for open requests at SIGTERM (live streams end at once)."""
app = typer.Typer(
    cls=CliGroup,
    no_args_is_help=True,
    add_completion=False,
    help="tresen: every messenger in one team inbox.",
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

# Each channel kind names the simulator of its provider; the simulator registry has its commands.
add_sim_commands(sim_app, (f.simulator for f in registry().values()))
bot_app.command("test")(dialogue_test_command)  # above the services: drives the pipeline
app.add_typer(bot_app, name="bot")
app.add_typer(team_app, name="team")
app.add_typer(route_app, name="route")
app.add_typer(template_app, name="template")
app.add_typer(privacy_app, name="privacy")
app.add_typer(keys_app, name="keys")
app.add_typer(topic_app, name="topic")
app.add_typer(notifications_app, name="notifications")
app.add_typer(broadcast_app, name="broadcast")


_settings = cli_settings
_fail = fail
_logging = setup_logging
_with_session = with_session


async def _prepare(settings: Settings) -> str:
    """Migrate under the lock and check the keys, or exit with one line saying why not."""
    try:
        engine = make_engine(settings.effective_database_url, pool_size=1)
    except OSError as exc:
        _fail(describe_database_error(exc, settings.effective_database_url))
    try:
        return await prepare_database(engine, make_sessionmaker(engine), settings)
    except StartupError as exc:
        _fail(str(exc))
    finally:
        await engine.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (one process at a time; others wait)."""
    settings = _settings()
    _logging()
    revision = asyncio.run(_prepare(settings))
    typer.echo(f"schema is up to date ({revision})")


@app.command("backup")
def backup_command(
    target: Annotated[Path, typer.Argument(help="A new directory to write the backup into.")],
) -> None:
    """Back up the database and the data dir's files (S3 objects and keys are listed, not copied)."""
    settings = _settings()
    try:
        report = backup(settings, target)
    except BackupError as exc:
        _fail(str(exc))
    typer.echo(f"backup:   {report.path.resolve()}")
    typer.echo(f"database: {report.database}, files: {report.files} ({report.bytes} bytes)")
    if settings.storage == "s3":
        typer.echo(
            f"objects:  {report.objects} listed in the manifest, not copied "
            "(back the bucket up with its own versioning or replication)"
        )
    typer.echo("store these keys apart from the backup (fingerprints; a restore needs them):")
    for name, print_ in report.keys.items():
        typer.echo(f"  {name}  {print_}")


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="A directory `tresen backup` wrote.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing database and files.")
    ] = False,
) -> None:
    """Restore a backup into this install (an empty database and data dir), then migrate."""
    settings = _settings()
    try:
        manifest = restore(settings, source, force=force)
    except BackupError as exc:
        _fail(str(exc))
    revision = asyncio.run(_prepare(settings))
    typer.echo(
        f"restored the backup of {manifest['created_at']} ({len(manifest['files'])} files); "
        f"schema at {revision}"
    )


@app.command()
def doctor() -> None:
    """Check this install's settings, database, Redis, data dir, keys and running processes."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    if not settings.uses_postgres:
        settings = secret_key_from_file(settings)
    findings = asyncio.run(run_doctor(settings))
    for finding in findings:
        typer.echo(finding.line())
    errors = sum(f.level == ERROR for f in findings)
    warnings = sum(f.level == WARN for f in findings)
    typer.echo(f"{errors} errors, {warnings} warnings")
    if errors:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run the embedded worker.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Web processes.")] = 1,
) -> None:
    """Run the web server (with the embedded worker unless --no-worker)."""
    import uvicorn

    settings = _settings()
    _logging()
    asyncio.run(_prepare(settings))
    os.environ["TRESEN_EMBEDDED_WORKER"] = "0" if no_worker else "1"
    role = "web only (run `tresen worker` for jobs)" if no_worker else "web and embedded worker"
    typer.echo(
        f"tresen serve on http://{host}:{port} ({role}; {workers} process"
        f"{'es' if workers > 1 else ''}; database {_database_label(settings)}; "
        f"public URL {settings.base_url})"
    )
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each child writes its metrics here; whichever answers a scrape reports them all.
        metrics_dir = tempfile.mkdtemp(prefix="tresen-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "tresen.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            **proxy_options(settings.trusted_proxies),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _database_label(settings: Any) -> str:
    """Which database a process uses, without credentials."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return "SQLite " + url.split("///", 1)[-1]
    return "PostgreSQL " + url.rsplit("@", 1)[-1]


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Jobs at once (default: TRESEN_WORKER_CONCURRENCY)."),
    ] = None,
) -> None:
    """Run a job worker (run as many as you like, on any machine sharing the database)."""
    settings = _settings()
    _logging()
    if concurrency is None:
        concurrency = settings.worker_concurrency

    async def run() -> None:
        import signal

        from tresen.app import make_worker
        from tresen.runtime import Runtime

        await _prepare(settings)
        typer.echo(
            f"tresen worker running {concurrency} jobs at once on {_database_label(settings)} "
            "(Ctrl+C stops it after the running jobs)"
        )
        runtime = Runtime.create(settings)
        w = make_worker(runtime, concurrency=concurrency)
        stop = asyncio.Event()
        beats = asyncio.create_task(
            beat_until(runtime.sessions, ProcessIdentity(WORKER), settings, stop)
        )
        side = None
        if settings.worker_metrics_port:
            side = SideServer(runtime, settings.worker_metrics_host, settings.worker_metrics_port)
            await side.start()
            log.info(
                "worker metrics listening on http://%s:%d/metrics",
                settings.worker_metrics_host,
                settings.worker_metrics_port,
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        log.info("worker %s running %d jobs at a time", w.worker_id, w.concurrency)
        try:
            await w.run()
        finally:
            stop.set()
            await beats
            if side is not None:
                await side.stop()
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
        await audit.admin_action(session, ws.id, "user.created", "user", user.id, role=user.role)
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
            raise AccountError(
                "no_such_user", "no user with the e-mail {email}", 404, params={"email": email}
            )
        await set_password(session, user.id, password)
        await audit.admin_action(session, user.workspace_id, "user.password_reset", "user", user.id)

    try:
        asyncio.run(_with_session(settings, work))
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(f"password of {email} changed; their sessions have ended")
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
            raise AccountError(
                "no_such_user", "no user with the e-mail {email}", 404, params={"email": email}
            )
        if off:
            await disable_totp(session, user.id)
            return "two-factor sign-in is off"
        return await enable_totp(session, user.id)

    try:
        typer.echo(asyncio.run(_with_session(settings, work)))
    except AccountError as exc:
        _fail(str(exc))


@user_app.command("disable")
def user_disable(email: str) -> None:
    """Stop a person from signing in; their open sessions end at once."""
    _user_change(email, accounts.disable_user, "disabled; every session of theirs has ended")


@user_app.command("enable")
def user_enable(email: str) -> None:
    """Let a disabled person sign in again."""
    _user_change(email, accounts.enable_user, "enabled")


@user_app.command("remove")
def user_remove(email: str) -> None:
    """Delete a person (sessions end at once; their conversations become unassigned)."""
    _user_change(email, accounts.remove_user, "removed")


def _user_change(email: str, change: Any, done: str) -> None:
    settings = _settings()

    async def work(session: Any) -> None:
        user = await accounts.user_by_email(session, email)
        await change(session, user.id)

    try:
        asyncio.run(_with_session(settings, work))
    except accounts.AccountError as exc:
        _fail(str(exc))
    typer.echo(f"{email}: {done}")


@token_app.command("list")
def token_list() -> None:
    """Print the API tokens: id, name, state, created, expires, scopes (never the token)."""
    settings = _settings()

    async def work(session: Any) -> list[Any]:
        ws = await default_workspace(session)
        return await list_tokens(session, ws.id)

    for t in asyncio.run(_with_session(settings, work)):
        expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never"
        created = t.created_at.isoformat(timespec="seconds")
        typer.echo(f"{t.id}\t{t.name}\t{t.state}\t{created}\t{expires}\t{' '.join(t.scopes)}")


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke an API token by id; requests with it are refused (401) from now on."""
    settings = _settings()

    async def work(session: Any) -> bool:
        ws = await default_workspace(session)
        return await revoke_token(session, ws.id, token_id)

    if not asyncio.run(_with_session(settings, work)):
        _fail(f"no active token with the id {token_id}")
    typer.echo(f"{token_id}: revoked")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. the shop's name.")],
    scope: Annotated[list[str], typer.Option("--scope", help="Repeat; 'all' for every scope.")],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Refused after this many days.")
    ] = None,
) -> None:
    """Create an API token and print it (it is shown only once)."""
    from tresen.channels.manage import default_workspace
    from tresen.integrations.tokens import TokenError, create_token

    settings = _settings()
    lifetime = timedelta(days=expires_in_days) if expires_in_days else None

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        return await create_token(session, ws.id, name, scope, lifetime)

    try:
        token = asyncio.run(_with_session(settings, work))
    except TokenError as exc:
        _fail(str(exc))
    typer.echo(token)


def _channel_options(kind: str) -> dict[str, tuple[str, bool]]:
    """The `--option` names of a channel kind: option → (config field, required)."""
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


def _kind_options_help() -> str:
    """One paragraph per channel kind with its options, from the kinds' config types."""
    lines = []
    for kind, factory in registry().items():
        info = msgspec.inspect.type_info(factory.config_type)
        options = [
            f"--{f.name.replace('_', '-')}" if f.required else f"[--{f.name.replace('_', '-')}]"
            for f in info.fields  # type: ignore[attr-defined]
        ]
        how = f" (inbound: {factory.poller} poller, no webhook)" if factory.poller else ""
        lines.append(f"{kind}: {' '.join(options)}{how}")
    return "\n\n".join(lines)


@channel_app.command(
    "add",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=_kind_options_help(),
)
def channel_add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="whatsapp, ...")],
    name: Annotated[str, typer.Option(help="A name people will recognise.")],
) -> None:
    """Connect a channel account; prints its id and webhook URL. Options depend on KIND.

    The options of a kind (listed below) are the fields of its channel class's config_type;
    --no-set-webhook keeps tresen from registering the webhook URL with the provider where it
    would (Telegram). A wrong option is named with the list of the kind's options.
    """
    from tresen.channels.manage import add_channel, default_workspace, webhook_url

    factory = channel_factory(kind)
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
        await audit.admin_action(session, ws.id, "channel.add", "channel", row.id, kind=kind)
        url = webhook_url(settings.base_url, row)
        async with guarded_client(settings.outbound_allow_hosts) as http:
            row.config = await factory.on_connect(
                dict(row.config), url, http, register=register_webhook
            )
        return row.id, url

    try:
        channel_id, url = asyncio.run(_with_session(settings, work))
    except UrlRefused as exc:
        _fail(f"the provider's API was not called: {exc}")
    typer.echo(f"channel id:  {channel_id}")
    typer.echo(f"webhook URL: {url}")


@channel_app.command(
    "set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def channel_set(
    ctx: typer.Context,
    channel_id: Annotated[str, typer.Argument(help="The channel's id (tresen channel list).")],
) -> None:
    """Change options of a connected channel, e.g. --bot-username or --display-phone-number."""
    from sqlalchemy import select

    from tresen.channels.base import ConfigError
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
        await audit.admin_action(
            session, row.workspace_id, "channel.change", "channel", row.id, options=sorted(raw)
        )
        return ", ".join(sorted(raw))

    changed = asyncio.run(_with_session(settings, work))
    typer.echo(f"channel {channel_id}: set {changed}")


@channel_app.command("capabilities")
def channel_capabilities() -> None:
    """Print the capability matrix of every channel kind (Markdown)."""
    from tresen.channels.capability_table import markdown

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
    port: Annotated[int, typer.Option(min=1, max=65535, help="The web server's port.")] = 8000,
    host: Annotated[str, typer.Option(help="Where every part listens.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo keeps its SQLite file; default: TRESEN_DATA_DIR or "
            "./tresen-data, the same as every other tresen command."
        ),
    ] = None,
    sim_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, help="The WhatsApp simulator's port (as `tresen sim whatsapp`)."
        ),
    ] = whatsapp_sim.DEFAULT_PORT,
    shop_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The fake shop's port (as `tresen sim shop`).")
    ] = shop_sim.DEFAULT_PORT,
) -> None:
    """Run everything embedded: server, worker, WhatsApp simulator and a seeded demo business."""
    from tresen.demo import NotADemoInstall, run_demo

    settings = _settings(data_dir, sqlite_only=True)
    _logging("WARNING")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_demo(settings, host=host, port=port, sim_port=sim_port, shop_port=shop_port)
            )
    except NotADemoInstall as exc:
        _fail(str(exc))


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
    from tresen.benchmarks.ingest import CHANNELS, run_ingest_bench

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
    from tresen.benchmarks.inbox import run_inbox_bench

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
    from tresen.benchmarks.topic_import import run_topic_import_bench

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
    from tresen.benchmarks.broadcast import run_broadcast_bench

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
    os.umask(0o077)  # the data dir, database, media and exports are for this user only
    app()
