"""Click-to-chat links and QR codes that open a chat with a prefilled "START keyword"."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import segno
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import ChannelRow, Topic
from tresen.domain.deeplink import PayloadTooLong, decode_payload, encode_payload

__all__ = ["PayloadTooLong", "decode_payload", "encode_payload"]

KINDS = ("whatsapp", "telegram", "messenger", "webchat", "sms")
PREFILL_PARAM = "tresen_text"
"""The query parameter the web chat widget reads to open with a prefilled message."""
_START = re.compile(r"^/start(?:@[A-Za-z0-9_]+)?\s+(\S{1,64})\s*$")
LABELS = {
    "de": "„{topic}“ über {channel} abonnieren",
    "en": "Subscribe to “{topic}” on {channel}",
}
KIND_NAMES = {
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "messenger": "Messenger",
    "webchat": "Web-Chat",
    "sms": "SMS",
}


def _ref(payload: dict[str, Any]) -> str | None:
    """The `ref` of a Messenger referral (m.me link), also inside a Get Started postback."""
    for holder in (payload, payload.get("postback")):
        referral = holder.get("referral") if isinstance(holder, dict) else None
        if isinstance(referral, dict) and isinstance(referral.get("ref"), str):
            return str(referral["ref"])
    return None


def inbound_text(text: str | None, payload: dict[str, Any], channel_kind: str) -> str | None:
    """The text a message stands for: a deep link's payload decoded, else the text itself."""
    if channel_kind == "telegram" and text:
        match = _START.match(text.strip())
        if match:
            return decode_payload(match.group(1)) or text
    if channel_kind in ("messenger", "instagram") and isinstance(payload, dict):
        ref = _ref(payload)
        if ref:
            return decode_payload(ref) or text
    return text


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


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def link_for(channel: ChannelRow, text: str, base_url: str) -> ChatLink:
    """The click-to-chat link of one channel; `missing` names the configuration it lacks."""
    config = channel.config or {}

    def made(url: str | None, missing: str | None = None, hint: str | None = None) -> ChatLink:
        return ChatLink(channel.id, channel.name, channel.kind, text, url, missing, hint)

    if channel.kind == "whatsapp":
        number = str(config.get("display_phone_number") or "")
        if not number:
            return made(None, "display_phone_number (the number customers see, e.g. +4930123456)")
        return made(f"https://wa.me/{number}?text={quote(text, safe='')}")
    if channel.kind == "telegram":
        username = str(config.get("bot_username") or "")
        if not username:
            return made(None, "bot_username (the bot's @username from BotFather)")
        return made(f"https://t.me/{username}?start={encode_payload(text)}")
    if channel.kind == "messenger":
        page = str(config.get("page_username") or config.get("page_id") or "")
        if not page:
            return made(None, "page_id")
        return made(f"https://m.me/{page}?ref={encode_payload(text)}")
    if channel.kind == "webchat":
        page_url = str(config.get("page_url") or "")
        if page_url:
            return made(_with_param(page_url, PREFILL_PARAM, text))
        own = f"{base_url.rstrip('/')}/chat/{channel.id}/demo"
        return made(
            _with_param(own, PREFILL_PARAM, text),
            hint="page_url (a page of your website with the widget); until then the link "
            "opens tresen's own test page",
        )
    if channel.kind == "sms":
        number = str(config.get("from_number") or "")
        if not number:
            return made(None, "from_number (a messaging service has no number to link to)")
        return made(f"sms:{number}?body={quote(text, safe='')}")
    return made(None, f"{channel.kind} has no click-to-chat links")


async def links_for_topic(
    session: AsyncSession, workspace_id: str, topic: Topic, base_url: str
) -> list[ChatLink]:
    """One link per enabled channel of a kind that has click-to-chat links."""
    channels = await session.scalars(
        select(ChannelRow)
        .where(
            ChannelRow.workspace_id == workspace_id,
            ChannelRow.enabled.is_(True),
            ChannelRow.kind.in_(KINDS),
        )
        .order_by(ChannelRow.created_at, ChannelRow.id)
    )
    return [link_for(c, prefill(topic), base_url) for c in channels]


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
        topic=topic.name, channel=KIND_NAMES.get(kind, kind)
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
