"""Instagram adapter: Messenger's code with Instagram's envelope, tags and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests import helpers
from tresen.channels.base import (
    ChannelRef,
    OutboundMessage,
    PermanentError,
    WebhookRejected,
    WebhookRequest,
)
from tresen.channels.instagram import InstagramChannel
from tresen.channels.manage import add_channel, default_workspace
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, Conversation, Message
from tresen.domain.message import ContentKind, DeliveryState
from tresen.handlers.send import record_sent
from tresen.pipeline.inbound import ingest
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.runtime import Runtime

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
        ("inbound_share", ContentKind.TEXT),
        ("inbound_ig_post", ContentKind.TEXT),
        ("inbound_reel", ContentKind.MEDIA),
    ],
)
def test_parse(name: str, kind: ContentKind) -> None:
    [msg] = channel().parse(request(helpers.fixture_bytes(f"instagram/{name}.json"))).messages
    assert msg.content_kind == kind and msg.sender_address == IGSID


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("inbound_story_mention", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=fx2"),
        (
            "inbound_ig_reel",
            "Neue Kollektion\nhttps://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=fx3",
        ),
        ("inbound_share", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=fx5"),
        (
            "inbound_ig_post",
            "Neue Regenjacken sind da\n"
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18139494541428835",
        ),
        (
            "inbound_reel",
            "Gibt es die auch in Blau?\nHerbstkollektion\n"
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=fx6",
        ),
    ],
)
def test_shared_posts_reels_and_stories_keep_title_and_link(name: str, body: str) -> None:
    [msg] = channel().parse(request(helpers.fixture_bytes(f"instagram/{name}.json"))).messages
    assert msg.body == body


def test_standby_message_is_kept_and_marked() -> None:
    [msg] = channel().parse(request(helpers.fixture_bytes("instagram/standby.json"))).messages
    assert msg.body == "Wann habt ihr geöffnet?" and msg.payload["standby"] is True


def test_read_by_mid_and_deleted_messages() -> None:
    statuses = channel().parse(request(helpers.fixture_bytes("instagram/read.json"))).statuses
    seen = datetime(2025, 11, 22, 8, 26, 40, tzinfo=UTC)
    # The message itself, and a mark "read up to this message" for the customer.
    assert [
        (s.provider_message_id, s.state, s.watermark, s.recipient_address) for s in statuses
    ] == [
        ("aWdfZAG1faXRlbTpfx_ours", DeliveryState.READ, None, IGSID),
        ("aWdfZAG1faXRlbTpfx_ours", DeliveryState.READ, seen, IGSID),
    ]
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


async def _sent_to_customer(runtime: Runtime, count: int) -> tuple[ChannelRef, list[str]]:
    """An Instagram channel, a customer who wrote, and `count` replies sent a second apart."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Radladen")
        row = await add_channel(session, ws.id, "instagram", "IG", CONFIG)
        ref = ChannelRef(row.id, ws.id, "instagram")
    body = _receipt("message", {"mid": "aWdf_in_1", "text": "Habt ihr offen?"})
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, channel().parse(request(body)))
    ids: list[str] = []
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for i in range(count):
        async with runtime.sessions() as session, session.begin():
            conv = await session.scalar(select(Conversation))
            channel_row = await session.get_one(ChannelRow, ref.id)
            assert conv is not None
            m = await queue_message(
                session, conv, channel_row, OutboundContent(ContentKind.TEXT, f"Antwort {i}")
            )
            await record_sent(session, m.id, ref.id, f"aWdf_out_{i}")
            await session.execute(
                update(Message)
                .where(Message.id == m.id)
                .values(sent_at=start + timedelta(seconds=i))
            )
            ids.append(m.id)
    return ref, ids


async def _states(runtime: Runtime, ids: list[str]) -> list[str]:
    async with runtime.sessions() as session:
        return [(await session.get_one(Message, i)).state for i in ids]


def _receipt(kind: str, value: dict[str, object]) -> bytes:
    return helpers.dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": CONFIG["page_id"],
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": IGSID},
                            "recipient": {"id": CONFIG["page_id"]},
                            "timestamp": int(datetime.now(UTC).timestamp() * 1000),
                            kind: value,
                        }
                    ],
                }
            ],
        }
    )


async def test_read_of_one_message_marks_the_earlier_ones_read(runtime: Runtime) -> None:
    ref, ids = await _sent_to_customer(runtime, 3)
    async with runtime.sessions() as session, session.begin():
        await ingest(
            session, ref, channel().parse(request(_receipt("read", {"mid": "aWdf_out_1"})))
        )
    assert await _states(runtime, ids) == ["read", "read", "sent"]
    # A read naming a message we do not know marks nothing.
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, channel().parse(request(_receipt("read", {"mid": "aWdf_x"}))))
    assert await _states(runtime, ids) == ["read", "read", "sent"]


async def test_delivery_watermark_is_handled_like_messengers(runtime: Runtime) -> None:
    # providers.md describes delivery{mids,watermark} for the whole platform; Meta documents
    # only messaging_seen for Instagram. Both are handled: a delivery watermark moves forward.
    ref, ids = await _sent_to_customer(runtime, 3)
    async with runtime.sessions() as session:
        second = (await session.get_one(Message, ids[1])).sent_at
    assert second is not None
    mark = int(second.replace(tzinfo=UTC).timestamp() * 1000)
    async with runtime.sessions() as session, session.begin():
        await ingest(
            session, ref, channel().parse(request(_receipt("delivery", {"watermark": mark})))
        )
    assert await _states(runtime, ids) == ["delivered", "delivered", "sent"]
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, channel().parse(request(_receipt("read", {"watermark": mark}))))
        await ingest(
            session, ref, channel().parse(request(_receipt("delivery", {"watermark": mark})))
        )
    assert await _states(runtime, ids) == ["read", "read", "sent"], "never backwards"
