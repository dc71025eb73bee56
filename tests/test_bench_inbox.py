"""The inbox benchmark runs end to end on a tiny SQLite inbox."""

from __future__ import annotations

import json

from tresen.benchmarks.inbox import run_inbox_bench


async def test_bench_inbox_tiny() -> None:
    result = await run_inbox_bench(conversations=200, messages=2000, database_url="", queries=3)
    json.dumps(result)
    assert result["bench"] == "inbox"
    assert result["config"]["database"] == "sqlite"
    assert result["list"]["list_all"]["results"] == 50
    search = result["search"]
    assert search["search_common"]["results"] >= 50
    assert search["search_rare"]["results"] >= 1
    assert search["search_none"]["results"] == 0
    for figures in [*result["list"].values(), *search.values()]:
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
