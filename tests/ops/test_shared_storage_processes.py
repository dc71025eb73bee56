"""Real processes: `tresen serve` and `tresen worker` with different data dirs and one S3 bucket;
the worker fetches a customer's image, the web process serves it."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests import helpers
from tests.ops.conftest import free_port, start, tresen_env
from tests.ops.s3server import make_bucket, s3_server, s3_settings
from tests.pipeline.stack import CUSTOMER
from tests.pipeline.test_media_e2e import PASSWORD, PNG, _csrf
from tresen.channels.manage import webhook_url
from tresen.db.tables import Media
from tresen.inbox import accounts
from tresen.media import store
from tresen.runtime import Runtime
from tresen.settings import load_settings
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for this test."""
    with s3_server() as endpoint:
        yield endpoint


async def _wait_http(url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not come up"
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_a_worker_process_stores_what_a_web_process_with_another_data_dir_serves(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = f"procs-{secrets.token_hex(4)}"
    make_bucket(s3_endpoint, bucket)
    shared = {
        "database_url": f"sqlite:///{tmp_path / 'shared.db'}",
        "secret_key": "one-key-for-all-processes",
        "outbound_allow_hosts": "127.0.0.1,localhost",
        "consent_first": "false",
        **s3_settings(s3_endpoint, bucket, prefix="shop/"),
    }
    web_env = tresen_env(data_dir=str(tmp_path / "web-data"), **shared)
    worker_env = tresen_env(data_dir=str(tmp_path / "worker-data"), **shared)
    assert start(["migrate"], web_env, tmp_path).wait(120) == 0
    seeder = Runtime.create(
        load_settings(tresen_env(data_dir=str(tmp_path / "test-data"), **shared))
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06))
    procs = []
    try:
        async with run_whatsapp_simulator(config) as sim:
            ws, channel = await helpers.seed_whatsapp(
                seeder,
                api_base=sim.base_url,
                access_token=config.access_token,
                app_secret=config.app_secret,
                phone_number_id=config.phone_number_id,
                waba_id=config.waba_id,
            )
            async with seeder.sessions() as session, session.begin():
                await accounts.add_user(
                    session, ws, "chefin@laden.test", "admin", PASSWORD, language="en"
                )
            procs = [
                start(["serve", "--no-worker", "--port", str(port)], web_env, tmp_path),
                start(["worker"], worker_env, tmp_path),
            ]
            await _wait_http(f"{base}/healthz")
            sim.config.webhook_url = webhook_url(base, channel)
            await sim.customer_sends(
                CUSTOMER, name="Jana", type="image", body={"mime_type": "image/png"}, media=PNG
            )
            deadline = time.monotonic() + 60
            while True:
                async with seeder.sessions() as session:
                    media = await session.scalar(select(Media))
                if media is not None and media.state != store.PENDING:
                    break
                assert time.monotonic() < deadline, "the worker did not fetch the image"
                await asyncio.sleep(0.2)
            assert media.state == store.STORED, media.reason
            for folder in ("web-data", "worker-data"):
                on_disk = [p for p in (tmp_path / folder).rglob("*") if "media" in p.parts]
                assert not [p for p in on_disk if p.is_file()], f"a file under {folder}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as agent:
                page = await agent.get("/inbox/login")
                signed_in = await agent.post(
                    "/inbox/login",
                    data={
                        "email": "chefin@laden.test",
                        "password": PASSWORD,
                        "_csrf_token": _csrf(page.text),
                    },
                )
                assert signed_in.status_code == 303, signed_in.text
                shown = await agent.get(f"/inbox/media/{media.id}")
            assert shown.status_code == 200, shown.text
            assert shown.content == PNG
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:  # a process that does not stop is killed
                proc.kill()
        await seeder.close()
