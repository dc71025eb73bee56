"""`tresen bench ingest` runs end to end on a tiny size (the figures come from real runs)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from tresen.benchmarks.ingest import CHANNELS, run_ingest_bench
from tresen.cli import app

FIELDS = (
    "channel",
    "accepted_per_s",
    "p50_ms",
    "p99_ms",
    "stored_ratio",
    "duplicates",
    "hello_rps",
    "ratio_to_hello",
)
STATUS_LABELS = {
    "whatsapp": {"sent", "delivered", "read"},
    "telegram": set(),
    "messenger": {"delivery", "read"},
    "instagram": {"read"},
    "sms": {"queued", "sent", "delivered"},
}


def test_every_benchmarked_channel_is_covered_here() -> None:
    assert set(CHANNELS) == set(STATUS_LABELS)


@pytest.mark.parametrize("channel", sorted(STATUS_LABELS))
def test_ingest_bench_runs_and_stores_every_acked_webhook(channel: str) -> None:
    result = asyncio.run(
        run_ingest_bench(
            seconds=1.5,
            concurrency=4,
            database_url="",
            channel=channel,
            hello_seconds=0.5,
            warmup_seconds=0.5,
            redeliver_every=4,
        )
    )
    assert result["bench"] == "ingest"
    for field in FIELDS:
        assert field in result, field
    assert result["channel"] == channel
    assert result["config"]["channel"] == channel
    assert result["config"]["database"] == "sqlite"
    assert result["config"]["concurrency"] == 4
    assert result["accepted_per_s"] > 0 and result["hello_rps"] > 0
    assert result["acked"] > 0 and result["errors"] == 0
    assert result["stored_ratio"] == 1.0
    assert result["duplicates"] == 0
    assert result["stored_by_kind"]["missing"] == 0
    assert result["p50_ms"] <= result["p99_ms"]
    labels = result["config"]["mix"]["acked_by_label"]
    assert set(labels) == {"in", "redelivery"} | STATUS_LABELS[channel]
    # Each connection's own inbound ids are unique; a redelivery never adds a row.
    assert labels["in"] <= result["inbound_rows"] <= labels["in"] + labels["redelivery"]
    kinds = result["stored_by_kind"]
    if channel == "telegram":
        assert result["config"]["mix"]["outbound_preinserted"] == 0
    else:
        assert kinds["status_applied"] + kinds["watermark"] > 0
    if channel == "messenger":
        assert kinds["watermark"] > 0


def test_cli_refuses_a_channel_without_traffic() -> None:
    result = CliRunner().invoke(app, ["bench", "ingest", "--channel", "email", "--seconds", "1"])
    assert result.exit_code == 2
    assert "whatsapp, telegram, messenger, instagram, sms" in result.output
