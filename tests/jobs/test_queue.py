"""The job table: leases, expiry, retries, dead letters, and no double processing."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select, update

from tresen.db.tables import Job
from tresen.db.types import utcnow
from tresen.handlers.worker import Worker
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.runtime import Runtime

LEASE = timedelta(seconds=5)


async def _enqueue(runtime: Runtime, n: int, kind: str = "test.job") -> list[str]:
    async with runtime.sessions() as session, session.begin():
        return [queue.enqueue(session, kind, {"n": i}) for i in range(n)]


async def test_claim_takes_each_job_once_until_the_lease_expires(runtime: Runtime) -> None:
    [job_id] = await _enqueue(runtime, 1)
    first = await queue.claim(runtime.engine, "w1", 10, LEASE)
    assert [j.id for j in first] == [job_id] and first[0].attempts == 1
    assert await queue.claim(runtime.engine, "w2", 10, LEASE) == []
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Job).values(lease_until=utcnow() - timedelta(seconds=1)))
    again = await queue.claim(runtime.engine, "w2", 10, LEASE)
    assert [j.id for j in again] == [job_id] and again[0].attempts == 2
    async with runtime.sessions() as session, session.begin():
        assert not await queue.finish(session, job_id, "w1"), "the old holder lost its lease"
        assert await queue.finish(session, job_id, "w2")


async def test_heartbeat_keeps_the_lease(runtime: Runtime) -> None:
    await _enqueue(runtime, 1)
    [job] = await queue.claim(runtime.engine, "w1", 1, timedelta(seconds=1))
    assert await queue.heartbeat(runtime.engine, "w1", [job.id], timedelta(seconds=60)) == 1
    await asyncio.sleep(1.2)
    assert await queue.claim(runtime.engine, "w2", 1, LEASE) == []


async def test_a_worker_never_starts_a_job_it_still_runs_after_its_lease_ran_out(
    runtime: Runtime,
) -> None:
    """A late heartbeat (a busy machine) lets the lease lapse; the same worker must not claim
    the job again and run it a second time beside the first run."""
    [job_id] = await _enqueue(runtime, 1)
    started: list[str] = []
    lapsed, release = asyncio.Event(), asyncio.Event()

    async def slow(rt: Runtime, job: ClaimedJob, worker_id: str) -> None:
        started.append(job.id)
        async with rt.sessions() as session, session.begin():
            await session.execute(update(Job).values(lease_until=utcnow() - timedelta(seconds=1)))
        lapsed.set()
        await release.wait()
        async with rt.sessions() as session, session.begin():
            await queue.finish(session, job.id, worker_id)

    worker = Worker(runtime, {"test.job": slow}, concurrency=4, poll_seconds=0.05)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(lapsed.wait(), 10)
    for _ in range(5):  # several claim rounds while the first run still holds the job
        runtime.jobs_ready.set()
        await asyncio.sleep(0.05)
    release.set()
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert started == [job_id]


async def test_retry_later_and_bury_and_revive(runtime: Runtime) -> None:
    [job_id] = await _enqueue(runtime, 1)
    [job] = await queue.claim(runtime.engine, "w1", 1, LEASE)
    async with runtime.sessions() as session, session.begin():
        assert await queue.retry_later(session, job, "w1", "boom", 60)
    assert await queue.claim(runtime.engine, "w1", 1, LEASE) == [], "not due before its backoff"
    async with runtime.sessions() as session, session.begin():
        await queue.bury(session, job_id, "gave up")
    async with runtime.sessions() as session:
        dead = await queue.dead_jobs(session, workspace_id="", limit=10)
        row = await session.get_one(Job, job_id)
    assert row.state == "dead" and row.last_error == "gave up"
    assert dead == [], "dead letters are listed per workspace"
    async with runtime.sessions() as session, session.begin():
        assert await queue.revive(session, job_id)
    [again] = await queue.claim(runtime.engine, "w1", 1, LEASE)
    assert again.id == job_id and again.attempts == 1


def test_backoff_grows_and_is_capped() -> None:
    values = [queue.backoff_seconds(a, base=1.0, cap=60.0) for a in range(1, 12)]
    assert 0.5 <= values[0] <= 1.0
    assert 4.0 <= values[3] <= 8.0
    assert max(values) <= 60.0


async def test_many_workers_never_process_a_job_twice(settings, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    await _enqueue(runtime, 400)
    seen: Counter[str] = Counter()

    async def handle(rt: Runtime, job: ClaimedJob, worker_id: str) -> None:
        seen[job.id] += 1
        await asyncio.sleep(0.001)
        async with rt.sessions() as session, session.begin():
            assert await queue.finish(session, job.id, worker_id)

    runtimes = [Runtime.create(settings) for _ in range(3)]
    workers = [
        Worker(rt, {"test.job": handle}, concurrency=16, poll_seconds=0.05) for rt in runtimes
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(60):
            while True:
                async with runtime.sessions() as session:
                    left = await session.scalar(select(func.count()).select_from(Job))
                if left == 0:
                    break
                await asyncio.sleep(0.1)
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        for rt in runtimes:
            await rt.close()
    assert len(seen) == 400
    assert max(seen.values()) == 1


async def test_job_out_of_attempts_goes_to_dead_letters(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        job_id = queue.enqueue(session, "test.fail", {}, max_attempts=2)
    calls = 0

    async def fail(rt: Runtime, job: ClaimedJob, worker_id: str) -> None:
        nonlocal calls
        calls += 1
        async with rt.sessions() as session, session.begin():
            await session.execute(update(Job).where(Job.id == job.id).values(run_at=utcnow()))
        raise RuntimeError("always")

    worker = Worker(runtime, {"test.fail": fail}, poll_seconds=0.05)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while True:
                async with runtime.sessions() as session:
                    row = await session.get(Job, job_id)
                    if row is not None and row.state == "dead":
                        break
                async with runtime.sessions() as session, session.begin():
                    await session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.state == "pending")
                        .values(run_at=utcnow())
                    )
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await task
    assert calls == 2
    assert row.last_error and "always" in row.last_error
