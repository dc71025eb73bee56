"""Meta's webhook envelope: decoded once for WhatsApp, Messenger and Instagram, refused with 400."""

from __future__ import annotations

import msgspec
import pytest

from tresen.channels.base import WebhookRejected
from tresen.channels.meta import decode_envelope


class _Envelope(msgspec.Struct):
    object: str
    entry: list[dict[str, int]]


def test_a_body_of_the_expected_object_is_decoded() -> None:
    envelope = decode_envelope(b'{"object": "page", "entry": [{}]}', _Envelope, "Messenger", "page")
    assert (envelope.object, envelope.entry) == ("page", [{}])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "webhook body is not valid JSON"),
        (b'{"object": "page"}', "webhook body does not have the Messenger shape"),
        (b'{"object": "instagram", "entry": []}', "object must be 'page', got 'instagram'"),
    ],
)
def test_anything_else_is_refused_with_400(body: bytes, message: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        decode_envelope(body, _Envelope, "Messenger", "page")
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(message)
