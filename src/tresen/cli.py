"""The `tresen` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tresen.bot.cli import bot_app
from tresen.settings import Settings, SettingsError, ensure_secret_key, load_settings

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
app.add_typer(bot_app, name="bot")


def _settings(data_dir: Path | None = None) -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=data_dir)
    return ensure_secret_key(settings)


def _fail(message: str, code: int = 2) -> Any:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs full URLs at INFO; some providers put credentials in URLs (Telegram bot tokens).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


async def _with_session(settings: Settings, work: Any) -> Any:
    from tresen.db.migrate import upgrade_to_head
    from tresen.runtime import Runtime

    runtime = Runtime.create(settings)
    try:
        await upgrade_to_head(runtime.engine)
        async with runtime.sessions() as session, session.begin():
            return await work(session)
    finally:
        await runtime.close()


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


def _parse_options(kind: str, args: list[str]) -> dict[str, str]:
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
    missing = [opt for opt, (field, required) in options.items() if required and field not in values]
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
    """
    import msgspec

    from tresen.channels.base import ConfigError, channel_factory
    from tresen.channels.manage import add_channel, default_workspace, webhook_url

    try:
        factory = channel_factory(kind)
    except ConfigError as exc:
        _fail(str(exc))
    raw = _parse_options(kind, list(ctx.args))
    try:
        config = msgspec.to_builtins(msgspec.convert(raw, factory.config_type, strict=False))
    except msgspec.ValidationError as exc:
        _fail(f"{kind} channel configuration: {exc}")
    settings = _settings()

    async def work(session: Any) -> tuple[str, str]:
        ws = await default_workspace(session)
        row = await add_channel(session, ws.id, kind, name, config)
        return row.id, webhook_url(settings.base_url, row)

    try:
        channel_id, url = asyncio.run(_with_session(settings, work))
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"channel id:  {channel_id}")
    typer.echo(f"webhook URL: {url}")


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
        str, typer.Option("--type", help="text, image, location, reaction, interactive, ... or any other name.")
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
    channel: str = "whatsapp",
    web_processes: Annotated[int, typer.Option(min=1, max=16)] = 1,
) -> None:
    """Post signed webhooks at a fixed concurrency and print the figures as one JSON line."""
    from tresen.bench.ingest import run_ingest_bench

    if channel != "whatsapp":
        _fail("only --channel whatsapp exists so far")
    result = asyncio.run(
        run_ingest_bench(
            seconds=seconds,
            concurrency=concurrency,
            database_url=database_url,
            web_processes=web_processes,
        )
    )
    typer.echo(json.dumps(result))


def main() -> None:
    """Entry point of the `tresen` console script."""
    app()
