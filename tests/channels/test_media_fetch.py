"""Downloading provider files: streamed, stopped over the limit, errors mapped to the four kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tests.helpers import WA_CONFIG
from tresen.channels.base import (
    AuthError,
    ChannelError,
    MediaRef,
    MediaTooLarge,
    PermanentError,
    RateLimited,
    TransientError,
    download,
)
from tresen.channels.email import EmailChannel
from tresen.channels.messenger import MessengerChannel
from tresen.channels.sms import SmsChannel
from tresen.channels.telegram import TelegramChannel
from tresen.channels.webchat import WebchatChannel
from tresen.channels.whatsapp import WhatsAppChannel


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


class _Endless(httpx.AsyncByteStream):
    """A body without Content-Length that never ends on its own."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.sent += 1024
            yield b"x" * 1024


async def test_stream_without_length_is_stopped_at_the_limit() -> None:
    body = _Endless()
    async with _client(lambda r: httpx.Response(200, stream=body)) as http:
        with pytest.raises(MediaTooLarge) as err:
            await download(http, "https://cdn.example/f", 10_000, provider="X")
    assert err.value.kind == "permanent" and "10000" in err.value.reason
    assert body.sent <= 11 * 1024, "the download stopped right after the limit"


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": "999999"}, content=b"")

    async with _client(handler) as http:
        with pytest.raises(MediaTooLarge):
            await download(http, "https://cdn.example/f", 1000, provider="X")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, PermanentError),
        (410, PermanentError),
        (429, RateLimited),
        (500, TransientError),
        (503, TransientError),
    ],
)
async def test_status_codes_map_to_kinds(status: int, error: type[ChannelError]) -> None:
    async with _client(lambda r: httpx.Response(status, content=b"nope")) as http:
        with pytest.raises(error):
            await download(http, "https://cdn.example/f", 1000, provider="X")


async def test_redirects_are_followed_and_timeouts_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(307, headers={"location": "https://s3.example/b"})
        if request.url.host == "s3.example":
            return httpx.Response(200, content=b"%PDF-1.4", headers={"content-type": "x/y"})
        raise httpx.ReadTimeout("slow", request=request)

    async with _client(handler) as http:
        got = await download(http, "https://cdn.example/a", 1000, provider="X")
        assert (got.content, got.content_type) == (b"%PDF-1.4", "x/y")
        with pytest.raises(TransientError):
            await download(http, "https://cdn.example/slow", 1000, provider="X")


async def test_whatsapp_refuses_a_file_graph_says_is_too_large() -> None:
    downloads: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/123"):
            assert request.headers["authorization"] == "Bearer sim-access-token"
            return httpx.Response(
                200, json={"url": "https://lookaside.fbsbx.com/x", "file_size": 50_000_000}
            )
        downloads.append(str(request.url))
        return httpx.Response(200, content=b"")

    async with _client(handler) as http:
        channel = WhatsAppChannel(WA_CONFIG, http)
        with pytest.raises(MediaTooLarge):
            await channel.fetch_media(MediaRef("image", {"id": "123"}), 16_000_000)
        with pytest.raises(PermanentError):
            await channel.fetch_media(MediaRef("image", {"id": "../me"}), 16_000_000)
    assert downloads == []


async def test_telegram_refuses_a_file_path_that_climbs() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True, "result": {"file_path": "../../etc/x"}})

    async with _client(handler) as http:
        channel = TelegramChannel({"bot_token": "1:abc", "secret_token": "s"}, http)
        with pytest.raises(PermanentError):
            await channel.fetch_media(MediaRef("document", {"file_id": "f"}), 1000)


def test_media_refs_per_channel() -> None:
    wa = {
        "type": "document",
        "document": {"id": "77", "mime_type": "application/pdf", "filename": "a.pdf"},
    }
    assert WhatsAppChannel.media_refs(wa) == [
        MediaRef("document", {"id": "77"}, "application/pdf", "a.pdf")
    ]
    assert WhatsAppChannel.media_refs({"type": "text", "text": {"body": "x"}}) == []
    assert WhatsAppChannel.media_refs({"type": "image", "image": {"id": 5}}) == []
    tg = {"media": {"type": "photo", "file_id": "F", "mime_type": "image/jpeg"}}
    assert TelegramChannel.media_refs(tg) == [MediaRef("image", {"file_id": "F"}, "image/jpeg")]
    fb = {
        "message": {
            "attachments": [
                {"type": "file", "payload": {"url": "https://cdn.example/a"}},
                {"type": "location", "payload": {"coordinates": {}}},
                {"type": "image", "payload": {"url": "javascript:alert(1)"}},
                {"type": ["image"], "payload": {"url": "https://cdn.example/b"}},
            ]
        }
    }
    assert MessengerChannel.media_refs(fb) == [
        MediaRef("document", {"url": "https://cdn.example/a"})
    ]
    sms = {"media": [{"url": "https://api.example/M1", "content_type": "image/png"}, {"url": 3}]}
    assert SmsChannel.media_refs(sms) == [
        MediaRef("image", {"url": "https://api.example/M1"}, "image/png")
    ]
    mail = {
        "attachments": [{"name": "a.pdf", "type": "application/pdf", "staged": "media/incoming/x"}]
    }
    assert EmailChannel.media_refs(mail) == [
        MediaRef("document", {"local": "media/incoming/x"}, "application/pdf", "a.pdf")
    ]
    for channel in (WhatsAppChannel, TelegramChannel, MessengerChannel, SmsChannel, EmailChannel):
        assert channel.media_refs({}) == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "image",
                    "document",
                    "id",
                    "media",
                    "file_id",
                    "message",
                    "attachments",
                    "payload",
                    "url",
                    "content_type",
                    "mime_type",
                    "filename",
                    "file_name",
                    "name",
                    "staged",
                    "refused",
                    "path",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=examples(300), deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["type", "image", "document", "media", "message", "attachments"]),
        _json,
        max_size=4,
    )
)
def test_fuzz_media_refs_never_raise(payload: dict[str, object]) -> None:
    """Whatever a stored payload holds, every channel names only well-formed refs or none."""
    for channel in (
        WhatsAppChannel,
        TelegramChannel,
        MessengerChannel,
        SmsChannel,
        EmailChannel,
        WebchatChannel,
    ):
        for ref in channel.media_refs(payload):  # type: ignore[arg-type]
            assert ref.kind in ("image", "audio", "video", "document")
            url = ref.ref.get("url")
            assert url is None or (isinstance(url, str) and url.startswith(("http://", "https://")))
