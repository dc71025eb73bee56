"""`tresen demo`: everything comes up embedded, the seeded customer is there, the demo logins work."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import socket
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tresen.bot import store
from tresen.channels.manage import default_workspace
from tresen.cli import app
from tresen.demo import run_demo, write_command
from tresen.runtime import Runtime
from tresen.settings import Settings


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


runner = CliRunner()


def test_with_the_default_ports_the_demo_and_sim_whatsapp_send_agree() -> None:
    """On the simulator's default port the printed command needs no --sim-url at all."""
    assert "--sim-url" not in write_command("http://127.0.0.1:9001")
    assert write_command("http://127.0.0.1:9999").endswith("--sim-url http://127.0.0.1:9999")


async def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port, sim_port, shop_port = _free_ports(3)
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_demo(
            Settings(data_dir=tmp_path, secret_key="k"),
            port=port,
            sim_port=sim_port,
            shop_port=shop_port,
            ready=ready,
        )
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
            # The web chat page: the widget's consent step links the profile's privacy policy.
            chat_page = re.search(r"web chat page:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
            assert (await browser.get(chat_page)).status_code == 200
            chat_id = chat_page.split("/chat/", 1)[1].split("/", 1)[0]
            started = await browser.post(
                f"/chat/{chat_id}/session", json={}, headers={"origin": base}
            )
            step = started.json()
            assert step["privacy_link"] == "https://radhaus.example/datenschutz", step
            assert step["privacy_notice"].startswith("Radhaus Demo verarbeitet Ihre Nachrichten")
        shop_url = re.search(r"shop order API:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=shop_url) as shop:
            order = await shop.get(
                "/orders/RH-100234", headers={"Authorization": "Bearer sim-shop-token"}
            )
            assert order.json()["status"] == "shipped", "the demo's fake shop answers"
        command = re.search(r"or from a shell:\s+(tresen .+)", banner).group(1)  # type: ignore[union-attr]
        assert f"--sim-url http://127.0.0.1:{sim_port}" in command
        said = await asyncio.to_thread(runner.invoke, app, shlex.split(command)[1:])
        assert said.exit_code == 0, said.output
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            # Before consent the API withholds what the customer wrote; count their messages.
            for _ in range(100):
                listed = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()
                inbound = [m for m in listed["items"] if m["direction"] == "inbound"]
                if len(inbound) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(inbound) == 2, "the printed command reaches the demo's simulator"
        check = Runtime.create(Settings(data_dir=tmp_path, secret_key="k"))
        try:
            async with check.sessions() as session:
                ws = await default_workspace(session)
                assert len(await store.products(session, ws.id)) == 8, "the demo catalog is loaded"
        finally:
            await check.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
