"""The `tresen` command: channels, tokens, bad arguments, and `serve` bringing the schema up by itself."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from tresen.cli import app
from tresen.sim.telegram import TelegramSimConfig, run_telegram_simulator
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESEN_BASE_URL", "https://shop.example")
    monkeypatch.setenv("TRESEN_OUTBOUND_ALLOW_HOSTS", "127.0.0.1")  # the simulators
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return {"TRESEN_DATA_DIR": str(tmp_path / "data")}


WA_ARGS = [
    "channel",
    "add",
    "whatsapp",
    "--name",
    "Laden",
    "--phone-number-id",
    "1234567890",
    "--app-secret",
    "s3cr3t",
    "--verify-token",
    "v",
    "--access-token",
    "a",
]


def test_channel_add_prints_id_and_webhook_url_and_list_shows_it(env: dict[str, str]) -> None:
    result = runner.invoke(app, WA_ARGS)
    assert result.exit_code == 0, result.output
    channel_id = re.search(r"channel id:\s+(\S+)", result.output).group(1)  # type: ignore[union-attr]
    assert f"https://shop.example/webhooks/whatsapp/{channel_id}" in result.output
    listed = runner.invoke(app, ["channel", "list"])
    assert listed.exit_code == 0
    assert listed.output.strip().split("\t") == [
        channel_id,
        "whatsapp",
        "Laden",
        f"https://shop.example/webhooks/whatsapp/{channel_id}",
    ]
    assert "s3cr3t" not in listed.output


def test_channel_add_refuses_bad_config_clearly(env: dict[str, str]) -> None:
    bad = [*WA_ARGS]
    bad[bad.index("1234567890")] = "not-digits"
    result = runner.invoke(app, bad)
    assert result.exit_code == 2
    assert "phone_number_id must be digits" in result.output
    assert runner.invoke(app, ["channel", "list"]).output.strip() == ""


def test_token_create_and_bad_scope(env: dict[str, str]) -> None:
    ok = runner.invoke(
        app,
        ["token", "create", "shop", "--scope", "messages:send", "--scope", "conversations:read"],
    )
    assert ok.exit_code == 0 and ok.output.strip().startswith("tresen_")
    bad = runner.invoke(app, ["token", "create", "shop", "--scope", "everything"])
    assert bad.exit_code == 2 and "unknown scope 'everything'" in bad.output


def test_bad_database_url_is_named(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRESEN_DATABASE_URL", "mysql://x")
    result = runner.invoke(app, ["channel", "list"])
    assert result.exit_code == 2 and "TRESEN_DATABASE_URL" in result.output


@pytest.mark.slow
def test_serve_migrates_by_itself_and_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TRESEN_DATA_DIR": str(tmp_path / "fresh")}
    env.pop("TRESEN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tresen", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # imports and migrations, on a loaded machine
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["checks"]["database"] == "ok" and ready["checks"]["schema"] == "ok"
        assert (tmp_path / "fresh" / "tresen.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)
    said = proc.stdout.read().decode()  # type: ignore[union-attr]
    assert f"tresen serve on http://127.0.0.1:{port} (web and embedded worker" in said, said


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "option", "expected"), [("5", [], 5), ("5", ["--concurrency", "7"], 7)]
)
def test_worker_takes_its_concurrency_from_the_setting_unless_the_option_is_given(
    tmp_path: Path, variable: str, option: list[str], expected: int
) -> None:
    """TRESEN_WORKER_CONCURRENCY decides; --concurrency wins over it; the worker says so."""
    env = {**os.environ, "TRESEN_DATA_DIR": str(tmp_path), "TRESEN_WORKER_CONCURRENCY": variable}
    env.pop("TRESEN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tresen", "worker", *option],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = proc.stdout.readline().decode()  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(30)
    assert first.startswith(f"tresen worker running {expected} jobs at once on SQLite "), first


def test_channel_add_names_unknown_missing_and_malformed_options(env: dict[str, str]) -> None:
    unknown = runner.invoke(app, [*WA_ARGS, "--phone-numbr-id", "1"])
    assert unknown.exit_code == 2 and "no option '--phone-numbr-id'" in unknown.output
    assert "--phone-number-id" in unknown.output
    missing = runner.invoke(app, WA_ARGS[: WA_ARGS.index("--access-token")])
    assert missing.exit_code == 2 and "needs --access-token" in missing.output
    slow = runner.invoke(app, [*WA_ARGS, "--messages-per-second", "fast"])
    assert slow.exit_code == 2 and "messages_per_second" in slow.output
    kind = runner.invoke(app, ["channel", "add", "fax", "--name", "x"])
    assert kind.exit_code == 2 and "unknown channel kind 'fax'" in kind.output
    assert runner.invoke(app, ["channel", "list"]).output.strip() == ""


async def test_sim_whatsapp_send_makes_the_customer_write() -> None:

    async with run_whatsapp_simulator(WhatsAppSimConfig()) as sim:
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(
            None,
            lambda: runner.invoke(
                app,
                [
                    "sim",
                    "whatsapp-send",
                    "--sim-url",
                    sim.base_url,
                    "--from",
                    "4915100000007",
                    "--body",
                    "Hallo!",
                ],
            ),
        )
        loc = await loop.run_in_executor(
            None,
            lambda: runner.invoke(
                app,
                [
                    "sim",
                    "whatsapp-send",
                    "--sim-url",
                    sim.base_url,
                    "--from",
                    "4915100000007",
                    "--type",
                    "location",
                    "--body",
                    '{"latitude": 52.5, "longitude": 13.4}',
                ],
            ),
        )
        bad = await loop.run_in_executor(
            None,
            lambda: runner.invoke(
                app,
                [
                    "sim",
                    "whatsapp-send",
                    "--sim-url",
                    sim.base_url,
                    "--from",
                    "49",
                    "--body",
                    "{oops",
                ],
            ),
        )
        await asyncio.sleep(0.1)
    assert text.exit_code == 0 and text.output.startswith("wamid."), text.output
    assert loc.exit_code == 0, loc.output
    assert bad.exit_code == 2 and "not valid" in bad.output
    assert [m["type"] for m in sim.inbound] == ["text", "location"]


async def test_channel_add_telegram_registers_its_webhook(env: dict[str, str]) -> None:

    async with run_telegram_simulator(TelegramSimConfig()) as sim:
        config = sim.config
        args = [
            "channel",
            "add",
            "telegram",
            "--name",
            "Bot",
            "--bot-token",
            config.bot_token,
            "--secret-token",
            "geheim_123",
            "--api-base",
            sim.base_url,
        ]
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, lambda: runner.invoke(app, args))
        assert ok.exit_code == 0, ok.output
        assert (sim.config.webhook_url or "").startswith("https://shop.example/webhooks/telegram/")
        wrong = await loop.run_in_executor(
            None, lambda: runner.invoke(app, [*args[:6], "123:nope", *args[7:]])
        )
    assert wrong.exit_code == 2 and "Telegram refused the bot token" in wrong.output


def test_teams_routes_and_limits_from_the_command_line(env: dict[str, str]) -> None:
    channel_id = re.search(  # type: ignore[union-attr]
        r"channel id:\s+(\S+)", runner.invoke(app, WA_ARGS).output
    ).group(1)
    assert (
        runner.invoke(app, ["user", "add", "ana@laden.example", "--role", "agent"]).exit_code == 0
    )
    assert runner.invoke(app, ["team", "add", "Verkauf"]).exit_code == 0
    member = runner.invoke(app, ["team", "member", "Verkauf", "ana@laden.example"])
    assert member.exit_code == 0, member.output
    assert member.output == "ana@laden.example is in team Verkauf\n", "it says what it changed"
    assert runner.invoke(app, ["team", "list"]).output.split("\t")[1:] == [
        "Verkauf",
        "ana@laden.example\n",
    ]
    routed = runner.invoke(app, ["route", "set", channel_id, "Verkauf", "--mode", "least_busy"])
    assert routed.exit_code == 0, routed.output
    assert f"channel Laden ({channel_id}) goes to team Verkauf, mode least_busy" in routed.output
    assert runner.invoke(app, ["route", "list"]).output.strip().split("\t") == [
        channel_id,
        "Laden",
        "Verkauf",
        "least_busy",
    ]
    limited = runner.invoke(app, ["user", "limit", "ana@laden.example", "3"])
    assert limited.exit_code == 0
    assert limited.output == "ana@laden.example: at most 3 open conversations from routing\n"

    bad_mode = runner.invoke(app, ["route", "set", channel_id, "Verkauf", "--mode", "random"])
    assert bad_mode.exit_code == 2 and "unknown mode 'random'" in bad_mode.output
    no_team = runner.invoke(app, ["route", "set", channel_id, "Einkauf"])
    assert no_team.exit_code == 2 and "no team 'Einkauf'" in no_team.output
    no_channel = runner.invoke(app, ["route", "set", "nope", "Verkauf"])
    assert no_channel.exit_code == 2 and "no channel 'nope'" in no_channel.output
    bad_limit = runner.invoke(app, ["user", "limit", "ana@laden.example", "viele"])
    assert bad_limit.exit_code == 2 and "whole number" in bad_limit.output
    nobody = runner.invoke(app, ["team", "member", "Verkauf", "bob@laden.example"])
    assert nobody.exit_code == 2 and "no user" in nobody.output

    removed = runner.invoke(app, ["route", "remove", channel_id])
    assert removed.exit_code == 0 and f"channel {channel_id} is not routed" in removed.output
    assert runner.invoke(app, ["route", "list"]).output.strip() == ""


def test_an_unknown_contact_is_named_with_both_quotes(env: dict[str, str]) -> None:
    """`no contact with the id 'nope'`: the id is quoted whole (it lost its closing quote once)."""
    result = runner.invoke(app, ["privacy", "erase", "nope", "--yes"])
    assert result.exit_code == 2
    assert "error: no contact with the id 'nope'\n" in result.output


def test_every_simulator_has_its_own_default_port() -> None:
    """Two simulators started with their defaults never collide (telegram and sms once did)."""
    sims = typer.main.get_command(app).commands["sim"].commands  # type: ignore[attr-defined]
    ports = {
        name: next(p.default for p in command.params if p.name == "port")
        for name, command in sims.items()
        if any(p.name == "port" for p in command.params)
    }
    assert len(ports) >= 7, ports
    assert len(set(ports.values())) == len(ports), ports
