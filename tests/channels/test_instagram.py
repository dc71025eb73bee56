"""Instagram adapter: Messenger's code with Instagram's envelope, tags and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests import helpers
from tresen.channels.base import (
    OutboundMessage,
    PermanentError,
    WebhookRejected,
    WebhookRequest,
    channel_factory,
)
from tresen.channels.instagram import InstagramChannel
from tresen.domain.message import ContentKind, DeliveryState

IGSID = "5566778899001122"
CONFIG = {
    "page_id": "17841400000000001",
    "app_secret": "sim-app-secret",
    "verify_token": "verify-me",
    "page_access_token": "sim-page-token",
}


def channel() -> InstagramChannel:
    return InstagramChannel(
        CONFIG, httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    )


def request(body: bytes) -> WebhookRequest:
    return WebhookRequest("POST", "http://t", {}, {}, body)


def out(**kw: object) -> OutboundMessage:
    base: dict[str, object] = {
        "to": IGSID,
        "content_kind": ContentKind.TEXT,
        "body": "Hallo",
        "payload": {},
        "client_reference": "01hmsg",
        "last_inbound_at": datetime.now(UTC) - timedelta(days=2),
    }
    return OutboundMessage(**(base | kw))  # type: ignore[arg-type]


def test_registered_with_instagram_rules() -> None:
    assert channel_factory("instagram") is InstagramChannel
    caps = InstagramChannel.capabilities
    assert caps.templates is False and caps.human_agent_window == timedelta(days=7)


def test_envelope_object_must_be_instagram() -> None:
    body = helpers.fixture_bytes("messenger/inbound_text.json")
    with pytest.raises(WebhookRejected) as exc:
        channel().parse(request(body))
    assert exc.value.status_code == 400


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("inbound_text", ContentKind.TEXT),
        ("inbound_story_mention", ContentKind.MEDIA),
        ("inbound_ig_reel", ContentKind.MEDIA),
        ("inbound_unsupported", ContentKind.UNSUPPORTED),
        ("inbound_postback", ContentKind.BUTTON),
    ],
)
def test_parse(name: str, kind: ContentKind) -> None:
    [msg] = channel().parse(request(helpers.fixture_bytes(f"instagram/{name}.json"))).messages
    assert msg.content_kind == kind and msg.sender_address == IGSID


def test_read_by_mid_and_deleted_messages() -> None:
    [status] = channel().parse(request(helpers.fixture_bytes("instagram/read.json"))).statuses
    assert (status.provider_message_id, status.state, status.watermark) == (
        "aWdfZAG1faXRlbTpfx_ours",
        DeliveryState.READ,
        None,
    )
    assert (
        channel().parse(request(helpers.fixture_bytes("instagram/inbound_deleted.json"))).messages
        == []
    )


def test_agent_reply_after_a_day_is_human_agent_without_metadata() -> None:
    payload = channel().build_payload(out())
    assert payload["tag"] == "HUMAN_AGENT" and "metadata" not in payload["message"]


def test_business_update_tags_and_long_texts_are_refused() -> None:
    with pytest.raises(PermanentError, match="HUMAN_AGENT"):
        channel().build_payload(out(payload={"tag": "POST_PURCHASE_UPDATE"}))
    with pytest.raises(PermanentError, match="too long"):
        channel().build_payload(out(body="ü" * 600))
