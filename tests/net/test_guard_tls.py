"""A pinned connection still verifies TLS for the host name (httpx's and aiohttp's transports)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme
from httpx_aiohttp.transport import AiohttpTransport

from tresen.net import guard
from tresen.net.guard import GuardedTransport, OutboundPolicy


@asynccontextmanager
async def tls_server(ca: trustme.CA, name: str) -> AsyncIterator[tuple[int, list[bytes]]]:
    """HTTPS on loopback with a certificate for `name`; records the Host headers it gets."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    hosts: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        hosts.extend(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"host:")
        )
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], hosts
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the test's loopback server stand in for a public address (the check is tested
    elsewhere); what is tested here is the connection to the pinned address."""
    monkeypatch.setattr(guard, "_all_public", lambda addresses: next(iter(addresses)))


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_pinned_https_checks_the_certificate_for_the_name(
    loopback_counts_as_public: None, transport: str
) -> None:
    ca = trustme.CA()
    verify = ssl.create_default_context()
    ca.configure_trust(verify)

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    def client() -> httpx.AsyncClient:
        inner: httpx.AsyncBaseTransport = (
            httpx.AsyncHTTPTransport(verify=verify)
            if transport == "httpx"
            else AiohttpTransport(verify=verify, trust_env=False)
        )
        return httpx.AsyncClient(
            transport=GuardedTransport(inner, OutboundPolicy(), resolver), trust_env=False
        )

    async with tls_server(ca, "shop.example") as (port, hosts):
        async with client() as http:
            response = await http.get(f"https://shop.example:{port}/orders/1")
        assert response.text == "ok"
        assert hosts == [f"shop.example:{port}".encode()]
        async with client() as http:
            # The certificate is for shop.example (aiohttp's error is not mapped to httpx's).
            with pytest.raises(Exception, match=r"(?i)certificate"):
                await http.get(f"https://other.example:{port}/")
