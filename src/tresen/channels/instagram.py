"""Instagram messaging (Messenger Platform for Instagram): Messenger's code, Instagram's rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tresen.channels.addresses import numeric_id
from tresen.channels.base import Capabilities, LinkTarget, PrivacyRecord
from tresen.channels.messenger import (
    HUMAN_AGENT,
    HUMAN_AGENT_WINDOW,
    MAX_QUICK_REPLIES,
    MAX_QUICK_REPLY_TITLE,
    WINDOW,
    MessengerChannel,
    MessengerConfig,
    check_meta_config,
)


class InstagramConfig(MessengerConfig, forbid_unknown_fields=True):
    """Stored configuration of one Instagram professional account (its id goes in page_id)."""


class InstagramChannel(MessengerChannel):
    """One Instagram professional account on the Messenger Platform."""

    kind: ClassVar[str] = "instagram"
    display_name: ClassVar[str] = "Instagram"
    address_form: ClassVar[str | None] = "Instagram-scoped user id (IGSID, digits)"
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = "messenger"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "Meta Platforms Ireland Ltd. (Instagram Messaging API)",
        "Ireland (EU)",
        ("USA (Meta Platforms, Inc.)",),
        "EU-US Data Privacy Framework (Meta is certified); standard contractual clauses",
        "Meta Platform Terms and data processing terms",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """An IGSID, unchanged."""
        return numeric_id(raw, r"[0-9]{1,64}", "bad_meta_id", kind="instagram")

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """None: ig.me links carry no prefilled text tresen could read back."""
        return None

    envelope_object: ClassVar[str] = "instagram"
    provider: ClassVar[str] = "Instagram"
    config_type: ClassVar[type[MessengerConfig]] = InstagramConfig
    # Instagram knows only the HUMAN_AGENT tag, no business-update tags:
    # https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message
    allowed_tags: ClassVar[frozenset[str]] = frozenset({HUMAN_AGENT})
    send_metadata: ClassVar[bool] = False
    # Instagram texts are limited to 1000 bytes of UTF-8, not characters.
    max_text_bytes: ClassVar[int | None] = 1000
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_length=1000,
        window=WINDOW,
        templates=False,
        media=True,
        interactive=True,
        # 300 Send API calls/s per Instagram professional account for text:
        # https://developers.facebook.com/docs/messenger-platform/overview/rate-limiting
        messages_per_second=300.0,
        max_buttons=MAX_QUICK_REPLIES,
        max_button_title=MAX_QUICK_REPLY_TITLE,
        human_agent_window=HUMAN_AGENT_WINDOW,
    )

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        return check_meta_config("instagram", config, InstagramConfig)
