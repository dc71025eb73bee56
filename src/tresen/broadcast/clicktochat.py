"""Click-to-chat links and QR codes that open a chat with a prefilled "START keyword"."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from typing import Any

import segno
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import LinkTarget
from tresen.channels.registry import channel_factory, kinds_where, registry
from tresen.channels.webchat import PREFILL_PARAM
from tresen.db.tables import ChannelRow, Topic
from tresen.domain.deeplink import PayloadTooLong, decode_payload, encode_payload

__all__ = ["PREFILL_PARAM", "PayloadTooLong", "decode_payload", "encode_payload"]

LABELS = {
    "de": "„{topic}“ über {channel} abonnieren",
    "en": "Subscribe to “{topic}” on {channel}",
}


def inbound_text(text: str | None, payload: dict[str, Any], channel_kind: str) -> str | None:
    """The text a message stands for: a deep link's payload decoded, else the text itself."""
    return channel_factory(channel_kind).deep_link_text(text, payload)


def prefill(topic: Topic) -> str:
    """The text that subscribes to a topic."""
    return f"START {topic.keyword}"


@dataclass(frozen=True)
class ChatLink:
    """A link that opens a chat on one channel with a prefilled text (or why there is none)."""

    channel_id: str
    channel_name: str
    kind: str
    text: str
    url: str | None
    missing: str | None = None
    hint: str | None = None


def link_for(channel: ChannelRow, text: str, base_url: str) -> ChatLink:
    """The click-to-chat link of one channel; `missing` names the configuration it lacks."""
    target = channel_factory(channel.kind).chat_link(
        channel.config or {}, channel.id, text, base_url
    )
    if target is None:
        target = LinkTarget(None, f"{channel.kind} has no click-to-chat links")
    return ChatLink(
        channel.id, channel.name, channel.kind, text, target.url, target.missing, target.hint
    )


async def links_for_topic(
    session: AsyncSession, workspace_id: str, topic: Topic, base_url: str
) -> list[ChatLink]:
    """One link per enabled channel of a kind that has click-to-chat links."""
    channels = await session.scalars(
        select(ChannelRow)
        .where(
            ChannelRow.workspace_id == workspace_id,
            ChannelRow.enabled.is_(True),
            ChannelRow.kind.in_(kinds_with_links()),
        )
        .order_by(ChannelRow.created_at, ChannelRow.id)
    )
    return [link_for(c, prefill(topic), base_url) for c in channels]


def kinds_with_links() -> list[str]:
    """The channel kinds that offer click-to-chat links."""
    return kinds_where(lambda factory: factory.chat_link({}, "", "", "") is not None)


def kind_names() -> dict[str, str]:
    """How people call each channel kind (WhatsApp, Web-Chat, ...)."""
    return {kind: factory.display_name for kind, factory in registry().items()}


async def all_topic_links(
    session: AsyncSession, workspace_id: str, base_url: str
) -> list[tuple[Topic, list[ChatLink]]]:
    """Every topic of the workspace with its links, by keyword."""
    found = await session.scalars(
        select(Topic).where(Topic.workspace_id == workspace_id).order_by(Topic.keyword)
    )
    return [(t, await links_for_topic(session, workspace_id, t, base_url)) for t in found]


def qr(url: str) -> segno.QRCode:
    """The QR code of a URL (error correction M: survives print and a little dirt)."""
    return segno.make(url, error="m", micro=False)


def qr_svg(url: str, scale: int = 4) -> str:
    """The QR code as a standalone SVG document."""
    out = io.BytesIO()
    qr(url).save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    return out.getvalue().decode()


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code as PNG bytes (segno writes PNG without Pillow)."""
    out = io.BytesIO()
    qr(url).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_data_uri(url: str, scale: int = 4) -> str:
    """The QR code as an SVG data: URI, for an <img> that needs no request to tresen."""
    return str(qr(url).svg_data_uri(scale=scale, border=4))


def label(topic: Topic, kind: str, language: str) -> str:
    """The link text for a website, in German or English."""
    return LABELS["en" if language == "en" else "de"].format(
        topic=topic.name, channel=kind_names().get(kind, kind)
    )


def share_snippet(link: ChatLink, topic: Topic, language: str = "de") -> str:
    """HTML to paste into a website: the link and its QR code (an inline image, no tracking)."""
    if link.url is None:
        raise ValueError(f"no link for channel {link.channel_name!r}: set {link.missing}")
    text = html.escape(label(topic, link.kind, language))
    href = html.escape(link.url)
    width, height = qr(link.url).symbol_size(scale=4, border=4)
    return (
        f'<a href="{href}" target="_blank" rel="noopener">'
        f'<img src="{qr_data_uri(link.url)}" width="{width}" height="{height}" alt="{text}">'
        f"<br>{text}</a>"
    )
