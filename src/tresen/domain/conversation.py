"""Conversations and the messaging window."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ConversationStatus(StrEnum):
    """Where a conversation stands for the team."""

    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


def window_open(last_inbound_at: datetime | None, window: timedelta | None, now: datetime) -> bool:
    """Whether free text may be sent: no window rule, or the customer wrote recently enough."""
    if window is None:
        return True
    if last_inbound_at is None:
        return False
    return now - last_inbound_at < window


def window_closes_at(last_inbound_at: datetime | None, window: timedelta | None) -> datetime | None:
    """When the window closes, if the channel has one and it was ever opened."""
    if window is None or last_inbound_at is None:
        return None
    return last_inbound_at + window
