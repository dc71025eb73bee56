"""Property-based API testing from our own OpenAPI document: no 500s, responses match the schema."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from tests import helpers
from tests.examples import examples
from tresen.app import create_app
from tresen.runtime import Runtime
from tresen.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server on SQLite with a seeded conversation; yields (base URL, token)."""
    data = Path(tmp_path_factory.mktemp("schemathesis"))
    settings_ = Settings(data_dir=data, secret_key="k", base_url="http://127.0.0.1")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings_, embedded_worker=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)

    async def seed() -> str:
        rt = Runtime.create(settings_)
        try:
            ws, channel = await helpers.seed_whatsapp(rt)
            token = await helpers.seed_token(rt, ws)
        finally:
            await rt.close()
        body = helpers.dumps(helpers.wa_envelope(messages=[helpers.wa_text("wamid.schema1")]))
        async with httpx.AsyncClient(base_url=base) as client:
            assert (
                await client.post(
                    f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
                )
            ).status_code == 200
        return token

    token = asyncio.run(seed())
    yield base, token
    server.should_exit = True
    thread.join(10)


def test_api_never_fails_server_side(live_api: tuple[str, str]) -> None:
    base, token = live_api
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples(30),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"})

        check()
