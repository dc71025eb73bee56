"""The subscriber import benchmark runs end to end on a tiny SQLite database."""

from __future__ import annotations

import json

from tresen.benchmarks.topic_import import run_topic_import_bench


async def test_bench_topic_import_tiny() -> None:
    result = await run_topic_import_bench(rows=50, database_url="")
    json.dumps(result)
    assert result["bench"] == "topic_import" and result["database"] == "sqlite"
    assert result["imported"] == 50 and result["refused"] == 0
    assert result["reimport_already"] == 50 and result["seconds"] > 0
