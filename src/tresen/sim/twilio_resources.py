"""The JSON shapes of Twilio's Messaging REST resources: Message, Media and list pages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "API_VERSION",
    "MediaItem",
    "MessageRecord",
    "media_resource",
    "message_resource",
    "page",
]

API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass
class MediaItem:
    """One file of a message (Twilio keeps a copy of every MMS file)."""

    sid: str
    parent_sid: str
    content: bytes
    content_type: str
    created_at: float = field(default_factory=time.time)


@dataclass
class MessageRecord:
    """What a Message resource shows, for either direction."""

    sid: str
    to: str
    from_: str | None
    body: str
    status: str
    direction: str
    num_segments: int
    num_media: int
    created_at: float
    messaging_service_sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None


def _date(at: float | None) -> str | None:
    return None if at is None else formatdate(at, usegmt=True)


def _base(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def message_resource(account_sid: str, record: MessageRecord) -> dict[str, Any]:
    """A Message resource: https://www.twilio.com/docs/messaging/api/message-resource."""
    uri = f"{_base(account_sid)}/Messages/{record.sid}"
    sent = record.status in ("sent", "delivered", "undelivered", "read", "received")
    return {
        "sid": record.sid,
        "account_sid": account_sid,
        "messaging_service_sid": record.messaging_service_sid,
        "to": record.to,
        "from": record.from_,
        "body": record.body,
        "status": record.status,
        "num_segments": str(record.num_segments),
        "num_media": str(record.num_media),
        "direction": record.direction,
        "api_version": API_VERSION,
        "price": None,
        "price_unit": "USD",
        "error_code": record.error_code,
        "error_message": record.error_message,
        "date_created": _date(record.created_at),
        "date_updated": _date(time.time()),
        "date_sent": _date(record.created_at) if sent else None,
        "uri": f"{uri}.json",
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
    }


def media_resource(account_sid: str, item: MediaItem) -> dict[str, Any]:
    """A Media resource; its uri without `.json` serves the file."""
    return {
        "sid": item.sid,
        "account_sid": account_sid,
        "parent_sid": item.parent_sid,
        "content_type": item.content_type,
        "date_created": _date(item.created_at),
        "date_updated": _date(item.created_at),
        "uri": f"{_base(account_sid)}/Messages/{item.parent_sid}/Media/{item.sid}.json",
    }


def page(
    key: str,
    path: str,
    items: list[dict[str, Any]],
    query: dict[str, str],
) -> dict[str, Any]:
    """One page of a list, with the paging fields Twilio's 2010 API answers with.

    `query` holds the request's filters and PageSize/Page; the next page's URI repeats them.
    """
    try:
        size = int(query.get("PageSize") or DEFAULT_PAGE_SIZE)
        number = int(query.get("Page") or 0)
    except ValueError:
        size, number = DEFAULT_PAGE_SIZE, 0
    size = max(1, min(size, MAX_PAGE_SIZE))
    number = max(0, number)
    filters = {k: v for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")}

    def uri(n: int) -> str:
        return f"{path}?{urlencode({**filters, 'PageSize': size, 'Page': n})}"

    start = number * size
    shown = items[start : start + size]
    more = start + size < len(items)
    return {
        key: shown,
        "first_page_uri": uri(0),
        "next_page_uri": (uri(number + 1) + f"&PageToken=PA{number + 1}") if more else None,
        "previous_page_uri": uri(number - 1) if number > 0 else None,
        "page": number,
        "page_size": size,
        "start": start,
        "end": start + max(len(shown) - 1, 0),
        "uri": uri(number),
    }
