"""An erasure interrupted by a crash (a killed process, a failure between steps) resumes and
completes: on the next worker start, the next retention run, or the next erase call."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests import helpers
from tests.privacy.test_erasure import (
    MARKER,
    _files_containing,
    assert_gone_from_storage,
    seed_contact,
)
from tresen.db.tables import Contact, ErasureRequest
from tresen.db.types import utcnow
from tresen.privacy import erasure, retention
from tresen.runtime import Runtime

KILLER = """
import os, signal, sys
from tresen.privacy import erasure

async def die(step: str) -> None:
    if step == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

erasure.after_step = die
from tresen.cli import app
app(["privacy", "erase", sys.argv[1], "--yes"])
"""


async def _request(runtime: Runtime) -> ErasureRequest:
    async with runtime.sessions() as session:
        return (await session.scalars(select(ErasureRequest))).one()


async def _erase(runtime: Runtime, ws: str, contact_id: str) -> erasure.ErasureReport:
    async with runtime.sessions() as session:
        return await erasure.erase(
            runtime.engine,
            session,
            secret_key=runtime.settings.secret_key,
            files=runtime.files,
            workspace_id=ws,
            contact_id=contact_id,
            actor_id=None,
            via="test",
        )


@pytest.mark.parametrize("step", ["files", "rows"])
async def test_failure_between_steps_then_resume(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")

    async def fail(done: str) -> None:
        if done == step:
            raise RuntimeError("power cut")

    original = erasure.after_step
    monkeypatch.setattr(erasure, "after_step", fail)
    with pytest.raises(RuntimeError, match="power cut"):
        await _erase(runtime, ws, contact_id)
    request = await _request(runtime)
    assert request.state == "running"
    assert request.step == {"files": "rows", "rows": "compact"}[step]
    assert not _files_containing(runtime.settings.data_dir, MARKER.encode())  # files went first
    async with runtime.sessions() as session:
        still_there = await session.get(Contact, contact_id) is not None
    assert still_there == (step == "files")

    monkeypatch.setattr(erasure, "after_step", original)
    # A fresh request is not taken over while its process may still be working on it.
    kwargs = {"secret_key": runtime.settings.secret_key, "files": runtime.files}
    assert await erasure.resume_pending(runtime.engine, runtime.sessions, **kwargs) == 0
    resumed = await erasure.resume_pending(
        runtime.engine, runtime.sessions, idle=timedelta(0), **kwargs
    )
    assert resumed == 1
    request = await _request(runtime)
    assert (request.state, request.step, request.attempts) == ("done", "done", 2)
    assert request.counts["messages"] == 32 and request.finished_at is not None
    await assert_gone_from_storage(runtime, MARKER.encode(), b"Keepme4Other")
    assert (
        await erasure.resume_pending(runtime.engine, runtime.sessions, idle=timedelta(0), **kwargs)
        == 0
    )


@pytest.mark.slow
@pytest.mark.parametrize("step", ["files", "rows"])
async def test_killed_process_is_resumed_by_the_next_worker(
    runtime: Runtime, tmp_path: Path, step: str
) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    contact_id = await seed_contact(runtime, channel, MARKER)
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")
    env = {
        **os.environ,
        "TRESEN_DATABASE_URL": runtime.settings.database_url,
        "TRESEN_DATA_DIR": str(runtime.settings.data_dir),
        "TRESEN_SECRET_KEY": runtime.settings.secret_key,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLER, contact_id, step, env=env, cwd=tmp_path
    )
    assert await asyncio.wait_for(process.wait(), 120) == -signal.SIGKILL
    request = await _request(runtime)
    assert request.state == "running" and request.step != "files"

    # The crash was a while ago: the next worker takes the request over when it starts.
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ErasureRequest).values(updated_at=utcnow() - timedelta(minutes=5))
        )
    async with helpers.worker_running(runtime):
        for _ in range(400):
            if (await _request(runtime)).state == "done":
                break
            await asyncio.sleep(0.05)
    request = await _request(runtime)
    assert request.state == "done", request.step
    await assert_gone_from_storage(runtime, MARKER.encode(), b"Keepme4Other")


async def test_retention_run_and_a_second_erase_finish_an_interrupted_erasure(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    first = await seed_contact(runtime, channel, MARKER)
    second = await seed_contact(runtime, channel, "Zweiter8Canary", phone="4915199990003")
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990004")

    async def fail(done: str) -> None:
        if done == "files":
            raise RuntimeError("crash")

    original = erasure.after_step
    monkeypatch.setattr(erasure, "after_step", fail)
    for contact_id in (first, second):
        with pytest.raises(RuntimeError):
            await _erase(runtime, ws, contact_id)
    monkeypatch.setattr(erasure, "after_step", original)

    # Asking again continues the same request instead of starting a second one.
    report = await _erase(runtime, ws, second)
    assert report.messages == 32
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ErasureRequest).values(updated_at=utcnow() - timedelta(minutes=5))
        )
    await retention.run(
        runtime.sessions,
        runtime.settings.secret_key,
        runtime.files,
        engine=runtime.engine,
    )
    async with runtime.sessions() as session:
        states = list(await session.scalars(select(ErasureRequest.state)))
    assert states == ["done", "done"]
    await assert_gone_from_storage(runtime, MARKER.encode(), b"Keepme4Other")
    await assert_gone_from_storage(runtime, b"Zweiter8Canary", b"Keepme4Other")
