"""The worker loop: claim due jobs with a lease, run them concurrently, keep leases alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.runtime import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[Runtime, ClaimedJob, str], Awaitable[None]]
DeadHook = Callable[[Runtime, ClaimedJob, str], Awaitable[None]]
Poller = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]


class Worker:
    """Runs jobs from the shared table; any number of these may run in any number of processes."""

    def __init__(
        self,
        runtime: Runtime,
        handlers: dict[str, Handler],
        *,
        on_dead: dict[str, DeadHook] | None = None,
        concurrency: int | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = 0.5,
        worker_id: str | None = None,
        pollers: list[Poller] | None = None,
        poller_grace: float = 5.0,
    ):
        self.runtime = runtime
        self.handlers = handlers
        self.on_dead = on_dead or {}
        self.concurrency = concurrency or runtime.settings.worker_concurrency
        self.lease = timedelta(seconds=lease_seconds or runtime.settings.job_lease_seconds)
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.pollers = pollers or []
        self.poller_grace = poller_grace

    def stop(self) -> None:
        """Ask the loop to finish the jobs it holds and return."""
        self._stopping.set()
        self.runtime.jobs_ready.set()

    async def run(self) -> None:
        """Claim and run jobs until stopped."""
        beat = asyncio.create_task(self._heartbeat())
        pollers = [asyncio.create_task(p(self.runtime, self._stopping)) for p in self.pollers]
        try:
            while not self._stopping.is_set():
                claimed = await self._claim_some()
                if claimed:
                    continue
                self.runtime.jobs_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.runtime.jobs_ready.wait(), self.poll_seconds)
            if self._inflight:
                await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        finally:
            beat.cancel()
            if pollers:
                # Pollers watch the stop event (set here too when the loop was cancelled); a
                # moment lets them store what they hold.
                self._stopping.set()
                _, pending = await asyncio.wait(pollers, timeout=self.poller_grace)
                for task in pending:
                    task.cancel()

    async def _claim_some(self) -> int:
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            await asyncio.wait(list(self._inflight.values()), return_when=asyncio.FIRST_COMPLETED)
            return 1
        try:
            jobs = await queue.claim(
                self.runtime.engine, self.worker_id, free, self.lease, kinds=list(self.handlers)
            )
        except Exception:
            log.exception("claiming jobs failed; retrying shortly")
            await asyncio.sleep(self.poll_seconds)
            return 0
        for job in jobs:
            task = asyncio.create_task(self._run_one(job))
            self._inflight[job.id] = task
            task.add_done_callback(self._forget(job.id))
        return len(jobs)

    def _forget(self, job_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(job_id, None)

        return done

    async def _run_one(self, job: ClaimedJob) -> None:
        try:
            if job.attempts > job.max_attempts:
                await self._bury(
                    job, "gave up: no attempts left (the job's lease expired too often)"
                )
                return
            await self.handlers[job.kind](self.runtime, job, self.worker_id)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = f"{type(exc).__name__}: {exc}"
            try:
                if job.attempts >= job.max_attempts:
                    await self._bury(job, error)
                else:
                    async with self.runtime.sessions() as session, session.begin():
                        await queue.retry_later(
                            session, job, self.worker_id, error, queue.backoff_seconds(job.attempts)
                        )
            except Exception:
                log.exception(
                    "could not record the failure of job %s; its lease will expire", job.id
                )

    async def _bury(self, job: ClaimedJob, error: str) -> None:
        async with self.runtime.sessions() as session, session.begin():
            await queue.bury(session, job.id, error)
        hook = self.on_dead.get(job.kind)
        if hook is not None:
            await hook(self.runtime, job, error)

    async def _heartbeat(self) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await queue.heartbeat(
                    self.runtime.engine, self.worker_id, list(self._inflight), self.lease
                )
            except Exception:
                log.exception("heartbeat failed")
