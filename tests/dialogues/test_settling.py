"""The dialogue runner's wait for a settled pipeline: shared polls, a clear error on timeout."""

from __future__ import annotations

import asyncio

import pytest

from tests import helpers
from tresen.dialogues.runner import IDLE_CHECKS, RunnerError, _Settling
from tresen.jobs import queue
from tresen.runtime import Runtime


async def test_waiting_customers_share_one_poll_loop(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    settling = _Settling(runtime, ws)
    await asyncio.gather(*(settling.wait(timeout=10) for _ in range(4)))
    # Four customers, each needing IDLE_CHECKS quiet polls: the polls were shared.
    assert IDLE_CHECKS <= len(settling._busy) < 4 * IDLE_CHECKS


async def test_a_job_left_due_is_reported_after_the_timeout(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        queue.enqueue(session, "never.run", {}, workspace_id=ws)
    settling = _Settling(runtime, ws)
    with pytest.raises(RunnerError, match="did not settle within"):
        await settling.wait(timeout=0.5)
    await asyncio.sleep(0.1)
    assert settling._loop is None, "the poll loop stops when nobody waits"
