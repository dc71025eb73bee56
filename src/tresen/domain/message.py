"""Messages: direction, sender, content kinds and delivery states."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """Whether a message came from the customer or goes to them."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class SenderKind(StrEnum):
    """Who wrote a message."""

    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class ContentKind(StrEnum):
    """What a message carries."""

    TEXT = "text"
    MEDIA = "media"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    TEMPLATE = "template"
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"


class DeliveryState(StrEnum):
    """Where an outbound message is on its way to the customer."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DEAD = "dead"
    RECEIVED = "received"


_RANK: dict[DeliveryState, int] = {
    DeliveryState.QUEUED: 0,
    DeliveryState.SENDING: 1,
    DeliveryState.SENT: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.READ: 4,
}
TERMINAL_STATES = frozenset({DeliveryState.FAILED, DeliveryState.DEAD, DeliveryState.READ})


def state_rank(state: DeliveryState) -> int:
    """Order of a non-terminal-failure state; failures rank above everything."""
    return _RANK.get(state, 10)


def can_advance(current: DeliveryState, new: DeliveryState) -> bool:
    """True when moving from current to new goes forward.

    Failure ends a message unless the provider later proves delivery (a `delivered` or `read`
    after a failed status), which wins because the customer has the message.
    """
    if current == new:
        return False
    if current in (DeliveryState.FAILED, DeliveryState.DEAD):
        return new in (DeliveryState.DELIVERED, DeliveryState.READ)
    if current == DeliveryState.READ:
        return False
    if new in (DeliveryState.FAILED, DeliveryState.DEAD):
        return current not in (DeliveryState.DELIVERED,)
    return state_rank(new) > state_rank(current)


def states_below(new: DeliveryState) -> list[DeliveryState]:
    """All states from which `new` is a step forward."""
    return [s for s in DeliveryState if s != DeliveryState.RECEIVED and can_advance(s, new)]
