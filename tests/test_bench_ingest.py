"""`tresen bench ingest` runs end to end on a tiny size (the figures come from real runs)."""

from __future__ import annotations

import asyncio

from tresen.bench.ingest import run_ingest_bench


def test_ingest_bench_runs_and_stores_every_acked_webhook() -> None:
    result = asyncio.run(
        run_ingest_bench(
            seconds=2.0, concurrency=4, database_url="", hello_seconds=1.0, warmup_seconds=0.5
        )
    )
    assert result["bench"] == "ingest"
    for field in (
        "accepted_per_s",
        "p50_ms",
        "p99_ms",
        "stored_ratio",
        "duplicates",
        "hello_rps",
        "ratio_to_hello",
    ):
        assert field in result, field
    assert result["config"]["database"] == "sqlite"
    assert result["config"]["concurrency"] == 4
    assert result["accepted_per_s"] > 0 and result["hello_rps"] > 0
    assert result["acked"] > 0 and result["errors"] == 0
    assert result["stored_ratio"] == 1.0
    assert result["duplicates"] == 0
    assert result["stored_by_kind"]["missing"] == 0
    assert result["p50_ms"] <= result["p99_ms"]
