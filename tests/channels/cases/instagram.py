"""Instagram messaging in the conformance table (built like Messenger's)."""

from __future__ import annotations

from typing import Any

from tests.channels.cases.messenger import CONFIG as MESSENGER_CONFIG
from tests.channels.cases.messenger import make_case
from tresen.domain.message import ContentKind

IG_ID = "17841400000000001"
CONFIG: dict[str, Any] = {**MESSENGER_CONFIG, "page_id": IG_ID}

CASE = make_case(
    "instagram",
    "instagram",
    CONFIG,
    read_by_mid=True,
    recorded={
        "instagram/inbound_text.json": ContentKind.TEXT,
        "instagram/inbound_image.json": ContentKind.MEDIA,
        "instagram/inbound_story_mention.json": ContentKind.MEDIA,
        "instagram/inbound_ig_reel.json": ContentKind.MEDIA,
        "instagram/inbound_quick_reply.json": ContentKind.INTERACTIVE,
        "instagram/inbound_postback.json": ContentKind.BUTTON,
        "instagram/inbound_reaction.json": ContentKind.REACTION,
        "instagram/inbound_reply_to_story.json": ContentKind.TEXT,
        "instagram/inbound_unsupported.json": ContentKind.UNSUPPORTED,
        "instagram/inbound_share.json": ContentKind.TEXT,
        "instagram/inbound_ig_post.json": ContentKind.TEXT,
        "instagram/inbound_reel.json": ContentKind.MEDIA,
        "instagram/standby.json": ContentKind.TEXT,
    },
)
