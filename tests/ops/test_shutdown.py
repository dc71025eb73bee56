"""Stopping: running jobs get a bounded time, then go back to the queue; live streams end."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.ops.conftest import free_port, start, tresen_env
from tresen.app import make_worker
from tresen.db.tables import Job
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.runtime import Runtime
from tresen.web.live import KEEPALIVE, until_stopped


async def test_a_job_that_does_not_finish_is_handed_back_within_the_bound(
    runtime: Runtime,
) -> None:
    started = asyncio.Event()

    async def stuck(rt: Runtime, job: ClaimedJob, worker_id: str) -> None:
        started.set()
        await asyncio.sleep(3600)

    async with runtime.sessions() as session, session.begin():
        job_id = queue.enqueue(session, "ops.stuck", {})
    worker = make_worker(runtime, pollers=[], poller_grace=0.5)
    worker.handlers["ops.stuck"] = stuck
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    began = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - began < 3
    async with runtime.sessions() as session:
        job = await session.scalar(select(Job).where(Job.id == job_id))
    assert job is not None
    assert (job.state, job.locked_by, job.attempts) == ("pending", None, 0)


async def _events(n: int, gap: float) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(gap)
        yield i


async def test_live_stream_sends_keepalives_and_ends_at_stop() -> None:
    stop = asyncio.Event()
    got: list[object] = []
    async for item in until_stopped(_events(2, 0.25), stop, keepalive=0.1):
        got.append(item)
    assert got.count(KEEPALIVE) >= 2 and [g for g in got if g is not KEEPALIVE] == [0, 1]
    endless = until_stopped(_events(10**6, 3600), stop, keepalive=0.05)
    assert await anext(endless) is KEEPALIVE
    stop.set()
    began = time.monotonic()
    assert [item async for item in endless] == []
    assert time.monotonic() - began < 1


@pytest.mark.slow
async def test_sigterm_ends_live_streams_and_the_web_process_promptly(tmp_path: Path) -> None:
    port = free_port()
    env = tresen_env(
        data_dir=str(tmp_path / "data"), secret_key="k", base_url=f"http://127.0.0.1:{port}"
    )
    add = subprocess.run(
        [sys.executable, "-m", "tresen", "user", "add", "chef@laden.example", "--role", "admin",
         "--password-stdin"],
        input=b"richtig-langes-passwort\n", env=env, cwd=tmp_path, capture_output=True, timeout=60,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    server = start(["serve", "--no-worker", "--port", str(port)], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=base, timeout=5) as agent:
            page = await agent.get("/inbox/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert token
            await agent.post(
                "/inbox/login",
                data={
                    "email": "chef@laden.example",
                    "password": "richtig-langes-passwort",
                    "_csrf_token": token.group(1),
                },
            )
            async with agent.stream("GET", "/inbox/events", timeout=httpx.Timeout(5, read=30)) as s:
                assert s.status_code == 200
                lines = s.aiter_lines()
                first = await anext(lines)
                if first.startswith("id: "):  # the replay id of Last-Event-ID comes first
                    first = await anext(lines)
                assert first == "event: ready"
                server.send_signal(signal.SIGTERM)
                began = time.monotonic()
                rest = [line async for line in lines]
                ended = time.monotonic() - began
        await asyncio.to_thread(server.wait, 30)
        exited = time.monotonic() - began
    finally:
        server.kill()
        output = server.communicate()[0].decode()
    assert ended < 3, (ended, rest)
    assert exited < 8, output
    assert "tresen serve on http://127.0.0.1" in output
