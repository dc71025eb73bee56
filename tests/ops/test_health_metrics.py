"""/healthz, /readyz with reasons, /metrics on web and worker processes, dead letters counted."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tests import helpers
from tests.ops.conftest import free_port, start, tresen_env
from tresen.app import make_worker
from tresen.db.tables import ProcessBeat
from tresen.db.types import utcnow
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.ops.processes import WORKER, ProcessIdentity, beat
from tresen.runtime import Runtime
from tresen.web.metrics import render_metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"

WA_CHANNEL = [
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
WEB_NAMES = (
    "tresen_webhooks_total",
    "tresen_ingest_seconds",
    "tresen_job_run_seconds",
    "tresen_job_failures_total",
    "tresen_dead_letters_total",
    "tresen_sends_total",
    "tresen_rate_limit_wait_seconds",
    "tresen_sse_connections",
    "tresen_bot_outcomes_total",
    "tresen_jobs_due",
    "tresen_jobs_oldest_due_seconds",
    "tresen_jobs_dead",
    "tresen_campaign_recipients",
    "tresen_processes_alive",
)


async def test_readyz_names_what_is_missing(runtime: Runtime) -> None:
    async with helpers.client_for(runtime) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        missing = await client.get("/readyz")
        assert missing.status_code == 503
        assert missing.json()["checks"] == {
            "database": "ok",
            "schema": "ok",
            "redis": "not configured",
            "workers": "no worker seen in the last 45 s: no worker has reported yet "
            "(start `tresen worker`)",
        }
        await beat(runtime.sessions, ProcessIdentity(WORKER), runtime.settings)
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_readyz_heartbeat_age_follows_the_setting(runtime: Runtime) -> None:
    await beat(runtime.sessions, ProcessIdentity(WORKER), runtime.settings)
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(ProcessBeat).values(seen_at=utcnow() - timedelta(seconds=30)))
    for seconds, status in ((20.0, 503), (45.0, 200)):
        runtime.settings = runtime.settings.with_overrides(worker_heartbeat_seconds=seconds)
        async with helpers.client_for(runtime) as client:
            response = await client.get("/readyz")
        assert response.status_code == status, response.json()
    runtime.settings = runtime.settings.with_overrides(worker_heartbeat_seconds=20.0)
    async with helpers.client_for(runtime) as client:
        reason = (await client.get("/readyz")).json()["checks"]["workers"]
    assert reason.startswith("no worker seen in the last 20 s: the last worker heartbeat is 3")
    assert "TRESEN_WORKER_HEARTBEAT_SECONDS" in reason


async def test_readyz_is_503_while_redis_is_down(runtime: Runtime) -> None:
    await beat(runtime.sessions, ProcessIdentity(WORKER), runtime.settings)
    down = runtime.settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    up = runtime.settings.with_overrides(redis_url="redis://127.0.0.1:6379/0")
    for settings, status in ((down, 503), (up, 200)):
        runtime.settings = settings
        async with helpers.client_for(runtime) as client:
            response = await client.get("/readyz")
        assert response.status_code == status, response.json()
    assert response.json()["checks"]["redis"] == "ok"


async def test_metrics_need_the_token_when_one_is_set(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(metrics_token="scrape-me")
    async with helpers.client_for(runtime) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "tresen_jobs_due" in ok.text


async def test_dead_letters_are_logged_and_counted(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(rt: Runtime, job: ClaimedJob, worker_id: str) -> None:
        raise RuntimeError("provider said no to +49151")

    async with runtime.sessions() as session, session.begin():
        job_id = queue.enqueue(session, "ops.test", {}, max_attempts=1)
    worker = make_worker(runtime, pollers=[])
    worker.handlers["ops.test"] = broken
    with caplog.at_level(logging.ERROR, logger="tresen.jobs"):
        task = asyncio.create_task(worker.run())
        for _ in range(100):
            if f"job {job_id} (ops.test) is a dead letter" in caplog.text:
                break
            await asyncio.sleep(0.05)
        worker.stop()
        await task
    dead_lines = [r.getMessage() for r in caplog.records if "dead letter" in r.getMessage()]
    assert dead_lines == [
        f"job {job_id} (ops.test) is a dead letter after 1 attempts; see GET /api/v1/jobs/dead"
    ]
    async with helpers.client_for(runtime) as client:
        text = (await client.get("/metrics")).text
    assert 'tresen_dead_letters_total{kind="ops.test"}' in text
    assert 'tresen_jobs_dead{kind="ops.test"} 1.0' in text


@pytest.mark.slow
def test_metric_names_on_web_and_worker_processes(tmp_path: Path) -> None:
    web_port, worker_port = free_port(), free_port()
    env = tresen_env(
        data_dir=str(tmp_path / "data"), secret_key="k", worker_metrics_port=str(worker_port)
    )
    start(["migrate"], env, tmp_path).wait(60)
    procs = [
        start(["serve", "--no-worker", "--workers", "2", "--port", str(web_port)], env, tmp_path),
        start(["worker"], env, tmp_path),
    ]
    try:
        texts = {}
        deadline = time.monotonic() + 90
        for name, port in (("web", web_port), ("worker", worker_port)):
            while name not in texts:
                assert time.monotonic() < deadline, f"{name} metrics did not come up"
                try:
                    texts[name] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                except httpx.TransportError:
                    time.sleep(0.2)
        missing = [m for m in WEB_NAMES if m not in texts["worker"]]
        assert not missing, missing
        # Two web processes: labelled series appear once written, summed over both children.
        added = start(["channel", "add", *WA_CHANNEL], env, tmp_path).communicate(timeout=60)[0]
        channel_id = added.decode().split()[2]
        for _ in range(4):
            forged = httpx.post(
                f"http://127.0.0.1:{web_port}/webhooks/whatsapp/{channel_id}", content=b"{}"
            )
            assert forged.status_code in (401, 403)
        text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=5).text
        assert 'tresen_webhooks_total{kind="whatsapp",outcome="forged"} 4.0' in text
        for name in ("tresen_sse_connections", "tresen_jobs_due", "tresen_processes_alive"):
            assert name in text
        ready = httpx.get(f"http://127.0.0.1:{worker_port}/readyz", timeout=5)
        assert ready.json()["checks"]["database"] == "ok"
    finally:
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=30)[0].decode() for proc in procs]
    assert "worker metrics listening on" in outputs[1]


async def test_the_dashboard_names_only_metrics_that_exist(runtime: Runtime) -> None:
    names = set(re.findall(r"tresen_[a-z_]+", (DOCS / "grafana-dashboard.json").read_text()))
    text = (await render_metrics(runtime)).decode()
    missing = [n for n in names if n.removesuffix("_bucket") not in text]
    assert not missing and len(names) >= 14, missing
