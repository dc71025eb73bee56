"""The outbound-URL guard: private addresses refused, addresses pinned, redirects re-checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import WA_CONFIG
from tresen.channels.base import MediaRef, PermanentError
from tresen.channels.messenger import MessengerChannel
from tresen.channels.sms import SmsChannel
from tresen.channels.whatsapp import WhatsAppChannel
from tresen.net.guard import (
    GuardedTransport,
    OutboundPolicy,
    UrlRefused,
    guarded_client,
    is_public,
)
from tresen.runtime import Runtime
from tresen.settings import Settings


@asynccontextmanager
async def http_server(location: str = "") -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback HTTP server: answers "secret" (or redirects to location); records requests."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if location:
            writer.write(
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()
        await server.wait_closed()


def _guarded(allow: str = "", resolver: Callable[..., object] | None = None) -> httpx.AsyncClient:
    policy = OutboundPolicy.from_setting(allow)
    inner = httpx.AsyncHTTPTransport()
    transport = (
        GuardedTransport(inner, policy)
        if resolver is None
        else GuardedTransport(inner, policy, resolver)  # type: ignore[arg-type]
    )
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("224.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_loopback_is_refused_unless_allowed() -> None:
    async with http_server() as (port, seen):
        async with _guarded() as http:
            with pytest.raises(UrlRefused, match="non-public"):
                await http.get(f"http://127.0.0.1:{port}/")
            with pytest.raises(UrlRefused):
                await http.get(f"http://localhost:{port}/")
        assert seen == [], "nothing reached the loopback server"
        async with _guarded(f"127.0.0.1:{port}") as http:
            response = await http.get(f"http://127.0.0.1:{port}/")
        assert response.text == "secret"


async def test_a_redirect_to_loopback_is_refused() -> None:
    async with http_server() as (inner_port, seen_inner):  # noqa: SIM117 (inner port first)
        async with http_server(f"http://127.0.0.1:{inner_port}/") as (outer_port, seen_outer):
            async with _guarded(f"127.0.0.1:{outer_port}") as http:
                with pytest.raises(UrlRefused):
                    await http.get(f"http://127.0.0.1:{outer_port}/")
            assert len(seen_outer) == 1 and seen_inner == []


async def test_a_name_resolving_to_metadata_address_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]

    async with _guarded(resolver=resolver) as http:
        with pytest.raises(UrlRefused):
            await http.get("http://metadata.example/latest/meta-data/")


async def test_the_checked_address_is_the_one_connected_to() -> None:
    calls: list[str] = []
    sent: list[httpx.Request] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"ok")

    transport = GuardedTransport(httpx.MockTransport(handler), OutboundPolicy(), resolver)
    async with httpx.AsyncClient(transport=transport) as http:
        await http.get("https://shop.example/orders/1")
        await http.get("https://shop.example/orders/2")
    assert [r.url.host for r in sent] == ["93.184.216.34", "93.184.216.34"]
    assert sent[0].headers["host"] == "shop.example"
    assert sent[0].extensions["sni_hostname"] == "shop.example"
    assert calls == ["shop.example"], "the answer is cached briefly"


async def test_an_oversized_body_is_stopped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * 5000))

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    policy = OutboundPolicy(max_response_bytes=1000)
    transport = GuardedTransport(httpx.MockTransport(handler), policy, resolver)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(UrlRefused, match="larger"):
            await http.get("https://big.example/")


async def test_the_runtime_clients_are_guarded(tmp_path: Path) -> None:
    async with http_server() as (port, seen):
        runtime = Runtime.create(Settings(data_dir=tmp_path, secret_key="k"))
        try:
            with pytest.raises(UrlRefused):
                await runtime.http.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
            assert runtime.bulk_http is not None
            with pytest.raises(UrlRefused):
                await runtime.bulk_http.get(f"http://127.0.0.1:{port}/")
        finally:
            await runtime.close()
        assert seen == []


async def test_messenger_media_only_from_its_hosts() -> None:
    requested: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request)
        return httpx.Response(200, content=b"GIF89a")

    config = {"page_id": "1", "page_access_token": "t", "app_secret": "s", "verify_token": "v"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        channel = MessengerChannel(config, http)
        with pytest.raises(PermanentError) as err:
            await channel.fetch_media(
                MediaRef(kind="image", ref={"url": "http://127.0.0.1:8080/x"}), 1000
            )
        assert err.value.code == "media_host"
        fetched = await channel.fetch_media(
            MediaRef(kind="image", ref={"url": "https://scontent.xx.fbcdn.net/v/a.gif"}), 1000
        )
    assert fetched.content == b"GIF89a"
    assert [r.url.host for r in requested] == ["scontent.xx.fbcdn.net"]


async def test_sms_credentials_go_only_to_the_provider_host() -> None:
    requested: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request)
        return httpx.Response(200, content=b"\xff\xd8\xff")

    config = {
        "account_sid": "AC" + "1" * 32,
        "auth_token": "tok-secret",
        "from_number": "+4915100000000",
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        channel = SmsChannel(config, http)
        with pytest.raises(PermanentError) as err:
            await channel.fetch_media(
                MediaRef(kind="image", ref={"url": "https://evil.example/steal"}), 1000
            )
        assert err.value.code == "media_host"
        await channel.fetch_media(
            MediaRef(kind="image", ref={"url": "https://api.twilio.com/2010-04-01/M/1"}), 1000
        )
    assert [r.url.host for r in requested] == ["api.twilio.com"]
    assert "authorization" in requested[0].headers


async def test_whatsapp_token_not_sent_to_a_foreign_download_url() -> None:
    requested: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request)
        return httpx.Response(200, json={"url": "https://evil.example/f", "mime_type": "image/gif"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        channel = WhatsAppChannel(WA_CONFIG, http)
        with pytest.raises(PermanentError) as err:
            await channel.fetch_media(MediaRef(kind="image", ref={"id": "123"}), 1000)
    assert err.value.code == "media_host"
    assert [r.url.host for r in requested] == ["graph.facebook.com"]


async def test_the_cloud_metadata_address_is_refused(tmp_path: Path) -> None:
    runtime = Runtime.create(Settings(data_dir=tmp_path, secret_key="k"))
    try:
        for url in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"):
            with pytest.raises(UrlRefused):
                await runtime.http.post(url, content=b"{}")
    finally:
        await runtime.close()


async def test_a_standalone_client_is_guarded_too() -> None:
    async with http_server() as (port, seen):
        async with guarded_client("") as http:
            with pytest.raises(UrlRefused):
                await http.get(f"http://127.0.0.1:{port}/")
        async with guarded_client(f"127.0.0.1:{port}") as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "secret"
        assert len(seen) == 1


async def test_refusals_say_whether_asking_again_can_help() -> None:
    async def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    async with _guarded(resolver=unresolvable) as http:
        with pytest.raises(UrlRefused) as raised:
            await http.get("http://shop.example/hook")
    assert raised.value.permanent is False
    async with _guarded() as http:
        with pytest.raises(UrlRefused) as raised:
            await http.get("http://127.0.0.1:9/hook")
    assert raised.value.permanent is True
