"""The worker loop: claim due jobs with a lease, run them concurrently, keep leases alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from tresen import metrics
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.logs import CONVERSATION_ID, WORKSPACE_ID
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
        poller_grace: float | None = None,
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
        self.shutdown_seconds = (
            poller_grace if poller_grace is not None else runtime.settings.shutdown_seconds
        )
        """At a stop, how long jobs and pollers may take to finish before they are cancelled
        and their jobs handed back."""

    def stop(self) -> None:
        """Ask the loop to finish the jobs it holds and return."""
        self._stopping.set()
        self.runtime.jobs_ready.set()

    async def run(self) -> None:
        """Claim and run jobs until stopped."""
        beat = asyncio.create_task(self._heartbeat())
        pollers = [
            asyncio.create_task(p(self.runtime, self._stopping), name=_name_of(p))
            for p in self.pollers
        ]
        try:
            while not self._stopping.is_set():
                # Cleared before claiming: a wake-up that comes while the claim runs is kept.
                self.runtime.jobs_ready.clear()
                claimed = await self._claim_some()
                if claimed:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.runtime.jobs_ready.wait(), self.poll_seconds)
        finally:
            # Pollers watch the stop event (set here too when the loop was cancelled).
            self._stopping.set()
            await self._wind_down(pollers)
            beat.cancel()

    async def _wind_down(self, pollers: list[asyncio.Task[None]]) -> None:
        """Let running jobs and pollers finish for a bounded time; hand back what is left."""
        running = dict(self._inflight)
        tasks = [*running.values(), *pollers]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        cut = [job_id for job_id, task in running.items() if task in pending]
        if not pending:
            return
        log.warning(
            "stopping: %d jobs and the pollers %s still ran after %.0f s and were cancelled",
            len(cut),
            sorted(task.get_name() for task in pending if task in pollers) or "none",
            self.shutdown_seconds,
        )
        try:
            await queue.release(self.runtime.engine, self.worker_id, cut)
        except Exception:
            log.exception("could not hand back %d jobs; their leases will expire", len(cut))

    async def _claim_some(self) -> int:
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait(
                [*self._inflight.values(), stop], return_when=asyncio.FIRST_COMPLETED
            )
            stop.cancel()
            return 1
        try:
            jobs = await queue.claim(
                self.runtime.engine,
                self.worker_id,
                free,
                self.lease,
                kinds=list(self.handlers),
                holding=list(self._inflight),
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
        started = time.perf_counter()
        WORKSPACE_ID.set(job.workspace_id)
        CONVERSATION_ID.set(str(job.payload.get("conversation_id") or "") or None)
        try:
            if job.attempts > job.max_attempts:
                await self._bury(
                    job, "gave up: no attempts left (the job's lease expired too often)"
                )
                return
            await self.handlers[job.kind](self.runtime, job, self.worker_id)
            metrics.JOB_RUN_SECONDS.labels(kind=job.kind).observe(time.perf_counter() - started)
        except Exception as exc:
            metrics.JOB_RUN_SECONDS.labels(kind=job.kind).observe(time.perf_counter() - started)
            metrics.JOB_FAILURES.labels(kind=job.kind).inc()
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
        queue.dead_letter(job)
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


def _name_of(poller: object) -> str:
    """A poller's function name, also through functools.partial."""
    return str(getattr(poller, "__name__", None) or getattr(poller, "func", poller).__name__)
