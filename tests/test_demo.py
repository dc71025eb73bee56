"""`tresen demo`: everything comes up embedded, the seeded customer is there, the demo logins work."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from pathlib import Path

import httpx
import pytest

from tresen.demo import run_demo
from tresen.settings import Settings


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b, socket.socket() as c:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
                c.bind(("127.0.0.1", port + 2))  # the fake shop
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no three free neighbouring ports")


async def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port_pair()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_demo(Settings(data_dir=tmp_path, secret_key="k"), port=port, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 30)
        banner = capsys.readouterr().out
        token = re.search(r"API token \(all scopes, shown once\): (\S+)", banner).group(1)  # type: ignore[union-attr]
        email, password = re.search(r"login \(agent\):\s+(\S+) / (\S+)", banner).groups()  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            [conv] = (await api.get("/api/v1/conversations")).json()["items"]
            sent = await api.post(
                f"/api/v1/conversations/{conv['id']}/messages", json={"kind": "text", "body": "Ja!"}
            )
            message_id = sent.json()["id"]
            for _ in range(100):
                if (await api.get(f"/api/v1/messages/{message_id}")).json()["state"] == "read":
                    break
                await asyncio.sleep(0.1)
            assert (await api.get(f"/api/v1/messages/{message_id}")).json()["state"] == "read"
        async with httpx.AsyncClient(base_url=base) as browser:
            page = await browser.get("/inbox/login")
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            login = await browser.post(
                "/inbox/login", data={"email": email, "password": password, "_csrf_token": csrf}
            )
            assert login.status_code == 303
            inbox = await browser.get("/inbox")
            assert "Jana Müller" in inbox.text
        shop_url = re.search(r"shop order API:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=shop_url) as shop:
            order = await shop.get(
                "/orders/RH-100234", headers={"Authorization": "Bearer sim-shop-token"}
            )
            assert order.json()["status"] == "shipped", "the demo's fake shop answers"
        from tresen.bot import store
        from tresen.runtime import Runtime

        check = Runtime.create(Settings(data_dir=tmp_path, secret_key="k"))
        try:
            async with check.sessions() as session:
                from tresen.channels.manage import default_workspace

                ws = await default_workspace(session)
                assert len(await store.products(session, ws.id)) == 8, "the demo catalog is loaded"
        finally:
            await check.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
