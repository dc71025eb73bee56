"""Every channel kind tresen knows, in one explicit list, and the look-ups the house makes in it.

A new kind is one module in `channels/` whose class declares everything the rest of the house
needs to know (see `ChannelBase` and docs/channels/adding-a-channel.md), plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from tresen.channels.base import ChannelFactory, ConfigError
from tresen.channels.email import EmailChannel
from tresen.channels.instagram import InstagramChannel
from tresen.channels.messenger import MessengerChannel
from tresen.channels.sms import SmsChannel
from tresen.channels.telegram import TelegramChannel
from tresen.channels.webchat import WebchatChannel
from tresen.channels.whatsapp import WhatsAppChannel
from tresen.channels.xmpp import XmppChannel

CHANNEL_CLASSES: dict[str, ChannelFactory] = {
    cls.kind: cls
    for cls in (
        WhatsAppChannel,
        MessengerChannel,
        InstagramChannel,
        TelegramChannel,
        SmsChannel,
        EmailChannel,
        WebchatChannel,
        XmppChannel,
    )
}
"""Every channel kind with its class, in the order pages and lists show them."""


def channel_factory(kind: str) -> ChannelFactory:
    """The class of a channel kind, or a clear error."""
    found = CHANNEL_CLASSES.get(kind)
    if found is None:
        raise ConfigError(
            f"unknown channel kind {kind!r}; known: {', '.join(sorted(CHANNEL_CLASSES))}"
        )
    return found


def registry() -> dict[str, ChannelFactory]:
    """Every channel kind with its class."""
    return dict(CHANNEL_CLASSES)


def kinds_where(test: Callable[[ChannelFactory], bool]) -> list[str]:
    """The kinds whose class passes `test`, in registry order."""
    return [kind for kind, factory in CHANNEL_CLASSES.items() if test(factory)]


def receives_webhooks(factory: ChannelFactory) -> bool:
    """Whether a provider calls the kind's webhook URL (not a poller, not a site widget)."""
    return factory.poller is None and not factory.widget
