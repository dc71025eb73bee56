"""Real worker processes: SIGKILL mid-send, and two workers sharing one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.pipeline.stack import running_stack
from tresen.db.tables import Job, Message, PendingStatus
from tresen.runtime import Runtime
from tresen.sim.whatsapp import WhatsAppSimConfig

DONE = {"read"}


@contextmanager
def worker_process(
    runtime: Runtime, tmp_path: Path, name: str, lease_seconds: float = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """`tresen worker` as its own OS process on the test's database."""
    env = {
        **os.environ,
        "TRESEN_DATABASE_URL": runtime.settings.effective_database_url,
        "TRESEN_DATA_DIR": str(tmp_path / "data"),
        "TRESEN_SECRET_KEY": runtime.settings.secret_key,  # one key per install (doctor checks)
        "TRESEN_OUTBOUND_ALLOW_HOSTS": runtime.settings.outbound_allow_hosts,  # the simulator
        "TRESEN_JOB_LEASE_SECONDS": str(lease_seconds),
        "TRESEN_SEND_TIMEOUT_SECONDS": str(min(lease_seconds, 20)),
        "TRESEN_CONSENT_FIRST": "false",
    }
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tresen", "worker", "--concurrency", "16"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


async def _queue_messages(stack, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    conv = await stack.customer_writes("Hallo")
    ids = []
    for i in range(n):
        response = await stack.reply(conv, {"kind": "text", "body": f"Nachricht {i}"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def _diagnose(runtime: Runtime, stack) -> str:  # type: ignore[no-untyped-def]
    """For messages that did not reach read: their rows, the simulator's ledger and pending statuses."""

    async with runtime.sessions() as session:
        stuck = list(
            await session.scalars(
                select(Message).where(Message.direction == "outbound", Message.state != "read")
            )
        )
        pending = list(await session.scalars(select(PendingStatus)))
    lines = [f"webhooks: {stack.sim.webhook_stats}"]
    for m in stuck:
        entries = [
            (e.wamid, e.status) for e in stack.sim.ledger if e.biz_opaque_callback_data == m.id
        ]
        lines.append(f"{m.id} state={m.state} pid={m.provider_message_id} ledger={entries}")
    lines.append(f"pending: {[(p.provider_message_id, p.state) for p in pending]}")
    return "\n".join(lines)


async def _states(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(Message.state, func.count())
                .where(Message.direction == "outbound")
                .group_by(Message.state)
            )
        ).all()
    return {state: n for state, n in rows}


@pytest.mark.slow
async def test_worker_killed_mid_send_loses_nothing(runtime: Runtime, tmp_path: Path) -> None:
    config = WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06), mps=30)
    async with running_stack(runtime, config, worker=False, channel_mps=30) as stack:
        ids = await _queue_messages(stack, 90)
        with worker_process(runtime, tmp_path, "victim") as victim:
            deadline = time.monotonic() + 60
            while len(stack.sim.ledger) < 15:
                assert victim.poll() is None, (tmp_path / "victim.log").read_text()
                assert time.monotonic() < deadline, "the first worker never got going"
                await asyncio.sleep(0.02)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        at_kill = await _states(runtime)
        in_flight = at_kill.get("sending", 0)
        assert sum(at_kill.get(s, 0) for s in ("queued", "sending")) > 0, (
            f"nothing left to recover: {at_kill}"
        )
        with worker_process(runtime, tmp_path, "rescuer"):
            try:
                rows = await stack.wait_states(ids, DONE, timeout=90)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await _diagnose(runtime, stack)}") from exc
        assert all(r.provider_message_id for r in rows.values())
        assert {e.biz_opaque_callback_data for e in stack.sim.ledger} == set(ids)
        assert stack.sim.duplicates() <= in_flight, (stack.sim.duplicates(), in_flight)
        async with runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_worker_processes_never_send_twice(runtime: Runtime, tmp_path: Path) -> None:
    config = WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06), mps=500)
    async with running_stack(runtime, config, worker=False, channel_mps=500) as stack:
        ids = await _queue_messages(stack, 200)
        # Leases and send timeouts long enough that a starved machine does not make a worker
        # give a send up (that re-send is the crash path, tested above): this test is about claiming.
        with (
            worker_process(runtime, tmp_path, "w1", lease_seconds=30),
            worker_process(runtime, tmp_path, "w2", lease_seconds=30),
        ):
            try:
                # 200 sends and 600 status webhooks: a machine busy with other work needs minutes.
                await stack.wait_states(ids, DONE, timeout=240)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await _diagnose(runtime, stack)}") from exc
        assert len(stack.sim.ledger) == 200
        assert stack.sim.duplicates() == 0
