"""One provider API call: no answer becomes TransientError, the body comes back as JSON or None."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tresen.channels.base import TransientError
from tresen.channels.calls import call_api


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def test_the_answer_and_its_json_body_come_back() -> None:
    async with _client(lambda r: httpx.Response(201, json={"id": "m1"})) as http:
        response, data = await call_api(http.get("https://api.example/x"), "Example")
    assert (response.status_code, data) == (201, {"id": "m1"})


async def test_a_body_that_is_not_json_is_none() -> None:
    async with _client(lambda r: httpx.Response(502, text="<html>Bad gateway</html>")) as http:
        response, data = await call_api(http.get("https://api.example/x"), "Example")
    assert (response.status_code, data) == (502, None)


@pytest.mark.parametrize(
    ("exc", "upload", "reason"),
    [
        (httpx.ReadTimeout("slow"), False, "timeout talking to Example: ReadTimeout"),
        (httpx.ConnectError("refused"), False, "connection to Example failed: ConnectError"),
        (httpx.ReadTimeout("slow"), True, "timeout uploading to Example: ReadTimeout"),
        (httpx.ConnectError("refused"), True, "upload to Example failed: ConnectError"),
    ],
)
async def test_no_answer_is_a_transient_error_naming_the_provider(
    exc: Exception, upload: bool, reason: str
) -> None:
    async with _client(_raise(exc)) as http:
        with pytest.raises(TransientError) as caught:
            await call_api(http.post("https://api.example/x"), "Example", upload=upload)
    assert caught.value.reason == reason
    assert caught.value.kind == "transient"
