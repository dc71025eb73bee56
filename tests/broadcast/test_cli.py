"""`tresen broadcast ...` and a tiny `tresen bench broadcast`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import WA_CONFIG
from tresen.benchmarks.broadcast import rate_deciles, run_broadcast_bench, seed_audience
from tresen.broadcast import campaigns, topics
from tresen.channels.manage import add_channel, default_workspace
from tresen.cli import app
from tresen.clitools import cli_settings
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import Campaign
from tresen.runtime import Runtime

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRESEN_REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)


async def _seed() -> None:
    runtime = Runtime.create(cli_settings())
    try:
        await upgrade_to_head(runtime.engine)
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "CLI-Laden")
            channel = await add_channel(session, ws.id, "whatsapp", "WA", dict(WA_CONFIG))
            topic = await topics.create_topic(session, ws.id, "ticker", "Live-Ticker")
            ids = (ws.id, channel.id, topic.id)
        await seed_audience(
            runtime.engine, workspace_id=ids[0], channel_id=ids[1], topic_id=ids[2], n=3
        )
    finally:
        await runtime.close()


def test_broadcast_commands() -> None:
    asyncio.run(_seed())
    created = runner.invoke(
        app,
        ["broadcast", "create", "Spieltag", "--topic", "ticker", "--text", "Tor! {first_name}",
         "--quiet-hours", "none"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id, name, state, reach = created.output.strip().split("\t")
    assert (name, state, reach) == ("Spieltag", "draft", "reaches 3 now")
    refused = runner.invoke(
        app, ["broadcast", "create", "X", "--topic", "ticker", "--text", "x", "--template", "nope"]
    )
    assert refused.exit_code == 2 and "no template" in refused.output
    bad_filter = runner.invoke(
        app, ["broadcast", "create", "X", "--topic", "ticker", "--text", "x", "--filter", "[1]"]
    )
    assert bad_filter.exit_code == 2
    assert runner.invoke(app, ["broadcast", "list"]).output.count("Spieltag") == 1
    scheduled = runner.invoke(
        app, ["broadcast", "schedule", campaign_id, "--at", "2099-01-01 09:00"]
    )
    assert scheduled.exit_code == 0 and "2099-01-01T08:00:00+00:00" in scheduled.output
    assert "paused" in runner.invoke(app, ["broadcast", "pause", "Spieltag"]).output
    resumed = runner.invoke(app, ["broadcast", "resume", campaign_id]).output
    assert "scheduled" in resumed, "resumed before its time, it waits for it"
    again = runner.invoke(app, ["broadcast", "resume", campaign_id])
    assert again.exit_code == 2 and "cannot go to" in again.output
    assert "cancelled" in runner.invoke(app, ["broadcast", "cancel", campaign_id]).output
    watched = runner.invoke(app, ["broadcast", "watch", campaign_id, "--interval", "0.2"])
    assert watched.exit_code == 0 and "Spieltag: cancelled" in watched.output
    reported = runner.invoke(app, ["broadcast", "report", campaign_id])
    figures = json.loads(reported.output)
    assert figures["state"] == "cancelled" and figures["sent"] == 0
    unknown = runner.invoke(app, ["broadcast", "start", "nichtda"])
    assert unknown.exit_code == 2 and "no campaign" in unknown.output


def test_segments_are_saved_listed_and_used_by_name() -> None:
    asyncio.run(_seed())
    saved = runner.invoke(
        app,
        [
            "broadcast",
            "segment",
            "save",
            "Deutsch",
            "--filter",
            '{"topic": "ticker", "language": "de"}',
        ],
    )
    assert saved.exit_code == 0, saved.output
    assert saved.output.strip().endswith("Deutsch\tmatches 3 now")
    nobody = runner.invoke(
        app,
        [
            "broadcast",
            "segment",
            "save",
            "Englisch",
            "--filter",
            '{"topic": "ticker", "language": "en"}',
        ],
    )
    assert nobody.output.strip().endswith("matches 0 now")
    listed = runner.invoke(app, ["broadcast", "segment", "list"]).output.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["Deutsch", "Englisch"]
    bad = runner.invoke(app, ["broadcast", "segment", "save", "X", "--filter", '{"colour": 1}'])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    for segment, reach in (("Deutsch", "reaches 3 now"), ("Englisch", "reaches 0 now")):
        created = runner.invoke(
            app,
            ["broadcast", "create", f"An {segment}", "--topic", "ticker", "--text", "Hallo",
             "--segment", segment, "--quiet-hours", "none"],
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        assert created.output.strip().endswith(reach)


async def _content(name: str) -> dict[str, Any]:
    runtime = Runtime.create(cli_settings())
    try:
        async with runtime.sessions() as session:
            return dict(
                await session.scalar(select(Campaign.content).where(Campaign.name == name)) or {}
            )
    finally:
        await runtime.close()


def test_content_per_channel_from_the_command_line() -> None:
    asyncio.run(_seed())
    per_channel = (
        '{"channels": {"telegram": {"text": "Tor! Jetzt abstimmen:", '
        '"buttons": [{"id": "ja", "title": "Ja"}, {"id": "nein", "title": "Nein"}]}}}'
    )
    created = runner.invoke(
        app,
        ["broadcast", "create", "Mehrkanal", "--topic", "ticker", "--text", "Tor!",
         "--content", per_channel, "--quiet-hours", "none"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    content = asyncio.run(_content("Mehrkanal"))
    telegram = campaigns.content_for(content, "telegram")
    assert telegram.body == "Tor! Jetzt abstimmen:" and telegram.kind.value == "interactive"
    assert [b["title"] for b in telegram.payload["buttons"]] == ["Ja", "Nein"]
    whatsapp = campaigns.content_for(content, "whatsapp")
    assert whatsapp.body == "Tor!" and whatsapp.kind.value == "text", "other channels: --text"
    for bad in ("[1]", "{", '{"channels": {"telegram": "Tor"}}'):
        refused = runner.invoke(
            app,
            ["broadcast", "create", "Y", "--topic", "ticker", "--text", "x", "--content", bad],
        )
        assert refused.exit_code == 2 and "--content" in refused.output, refused.output


async def _caps() -> dict[str, int]:
    runtime = Runtime.create(cli_settings())
    try:
        async with runtime.sessions() as session:
            rows = await session.execute(select(Campaign.name, Campaign.frequency_cap))
            return {name: cap for name, cap in rows.all()}
    finally:
        await runtime.close()


def test_frequency_cap_defaults_to_the_setting_and_zero_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(_seed())
    monkeypatch.setenv("TRESEN_BROADCAST_WEEKLY_CAP", "3")
    base = ["broadcast", "create"]
    text = ["--topic", "ticker", "--text", "Neu!", "--quiet-hours", "none"]
    assert runner.invoke(app, [*base, "Standard", *text]).exit_code == 0
    assert runner.invoke(app, [*base, "Ohne", *text, "--frequency-cap", "0"]).exit_code == 0
    assert runner.invoke(app, [*base, "Eins", *text, "--frequency-cap", "1"]).exit_code == 0
    assert asyncio.run(_caps()) == {"Standard": 3, "Ohne": 0, "Eins": 1}


@pytest.mark.bench
async def test_bench_broadcast_tiny() -> None:
    result = await run_broadcast_bench(recipients=60, cap=200, database_url="")
    json.dumps(result)
    assert result["bench"] == "broadcast"
    assert result["audience"] == 60 and result["sent"] == 60
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["rate"] > 0
    assert result["cap_ratio"] == pytest.approx(result["rate"] / 200, abs=1e-3)
    assert result["expand_seconds"] is not None and result["peak_rss_mb"] > 0
    assert result["config"]["database"] == "sqlite"


@pytest.mark.bench
async def test_bench_broadcast_expand_only() -> None:
    result = await run_broadcast_bench(recipients=40, cap=200, database_url="", expand_only=True)
    assert result["mode"] == "expand_only"
    assert result["audience"] == 40
    assert result["expand_seconds"] is not None and result["expand_seconds"] >= 0
    assert "rate" not in result


@pytest.mark.bench
async def test_bench_broadcast_window_pauses_and_accounts_for_every_sent_row() -> None:
    result = await run_broadcast_bench(recipients=400, cap=50, database_url="", window=2.0)
    states = result["recipient_states"]
    assert states.get("pending", 0) > 0, "a 2 s window at 50/s cannot reach 400 recipients"
    assert "sending" not in states, "the pause waits until nothing is on the wire"
    assert 0 < result["sent"] < 400 and result["lost"] == 0 and result["duplicated"] == 0
    assert result["window_seconds"] == 2.0


def test_rate_deciles() -> None:
    assert rate_deciles([0.0, 1.0]) == []
    steady = [i / 100 for i in range(101)]
    assert rate_deciles(steady) == [100.0] * 10
    slowing = [i / 100 for i in range(51)] + [0.5 + i / 50 for i in range(1, 51)]
    deciles = rate_deciles(slowing)
    assert deciles[0] == 100.0 and deciles[-1] == 50.0
