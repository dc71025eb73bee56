"""The conformance table: one description per channel; every channel runs the same tests."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests import helpers
from tests.channels import cases
from tresen.domain.message import ContentKind

if TYPE_CHECKING:
    from tresen.runtime import Runtime
    from tresen.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """How a channel's inbound path answered one input: an HTTP status (or its equivalent)."""

    status_code: int
    message: str = ""


Feed = Callable[["Runtime", str, bytes], Awaitable[Outcome]]
"""Hands one input to the inbound path of a channel without a webhook: (runtime, channel id, input).

Answers 200 when it was taken (stored, a status applied, or dropped as not ours), 400 with the
reason when nothing in it could be used, 404 for an unknown channel."""


@dataclass(frozen=True)
class ChannelCase:
    """How to talk to one channel kind's inbound path like its provider does.

    Webhook channels are fed over HTTP; channels that keep a connection (XMPP) or poll (e-mail)
    name a `feed` that hands the same kinds of input to their stanza handler or mail ingest.
    """

    kind: str
    config: dict[str, Any]
    sign: Callable[[bytes, str], dict[str, str]]
    """Headers that authenticate `body` posted to the public webhook URL (second argument)."""
    forge: Callable[[bytes, str], dict[str, str]]
    inbound_text: Callable[[str, str, str], bytes]
    """A body carrying one text message: (provider id, sender address, text)."""
    unknown_type: Callable[[str], bytes]
    many_entries: Callable[[int], bytes] | None
    """A body with n messages, or None when the provider sends one message per call."""
    content_type: str = "application/json"
    status: Callable[[str, str], bytes | None] | None = None
    """A status for (provider id, state) or None for a state the provider never reports;
    None instead of a function when the provider sends no statuses."""
    recorded: dict[str, ContentKind] = field(default_factory=dict)
    malformed: dict[str, bytes] = field(default_factory=dict)
    empty: list[bytes] = field(default_factory=list)
    inbound_at: Callable[[str, str, str, datetime], bytes] | None = None
    """A text message with the time the customer sent it, when the provider says so."""
    feed: Feed | None = None
    """Set for channels without a webhook (their webhook URL refuses every call)."""
    spoofed: dict[str, bytes] = field(default_factory=dict)
    """Inputs a feed channel must not trust (the webhook channels' forged signatures)."""
    damaged: dict[str, bytes] = field(default_factory=dict)
    """Broken input that still is a customer's message: stored once, as unsupported."""
    size_limit: Callable[[Settings], int] = lambda settings: settings.max_webhook_bytes
    oversized_marker: str | None = None
    """A feed cannot refuse with 413: it keeps an oversized message cut, noted under this key."""
    provider_id: Callable[[str, str], str] = lambda _message_id, pid: pid
    """The provider id a send of our message (id) gets, given a test's suggestion (pid)."""
    statuses_name_message: bool = False
    """Statuses carry our own message id, so they apply before the send is recorded."""


def _wa_many(n: int) -> bytes:
    env = helpers.wa_envelope(messages=[])
    change = env["entry"][0]["changes"][0]
    env["entry"] = [
        {
            "id": "200",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        **change["value"],
                        "messages": [
                            helpers.wa_text(
                                f"wamid.many{i:06d}",
                                sender=f"49151{i % 50:07d}",
                                body=f"Nachricht {i}",
                            )
                        ],
                    },
                }
            ],
        }
        for i in range(n)
    ]
    return helpers.dumps(env)


WHATSAPP = ChannelCase(
    kind="whatsapp",
    config=helpers.WA_CONFIG,
    sign=lambda body, _url: helpers.wa_sign(body),
    forge=lambda body, _url: helpers.wa_sign(body, secret="not-the-secret"),
    inbound_text=lambda pid, sender, text: helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(pid, sender, text)],
            contacts=[{"profile": {"name": "Kundin"}, "wa_id": sender}],
        )
    ),
    status=lambda pid, state: helpers.dumps(
        helpers.wa_envelope(statuses=[helpers.wa_status(pid, state)])
    ),
    unknown_type=lambda pid: helpers.dumps(
        helpers.wa_envelope(
            messages=[
                {
                    "from": "4915100000001",
                    "id": pid,
                    "timestamp": "1763800000",
                    "type": "teleport",
                    "teleport": {"to": "mars"},
                }
            ]
        )
    ),
    many_entries=_wa_many,
    inbound_at=lambda pid, sender, text, at: helpers.dumps(
        helpers.wa_envelope(messages=[helpers.wa_text(pid, sender, text, int(at.timestamp()))])
    ),
    recorded={
        "whatsapp/inbound_text.json": ContentKind.TEXT,
        "whatsapp/inbound_image.json": ContentKind.MEDIA,
        "whatsapp/inbound_audio.json": ContentKind.MEDIA,
        "whatsapp/inbound_video.json": ContentKind.MEDIA,
        "whatsapp/inbound_document.json": ContentKind.MEDIA,
        "whatsapp/inbound_sticker.json": ContentKind.MEDIA,
        "whatsapp/inbound_location.json": ContentKind.LOCATION,
        "whatsapp/inbound_contacts.json": ContentKind.CONTACTS,
        "whatsapp/inbound_reaction.json": ContentKind.REACTION,
        "whatsapp/inbound_interactive_button.json": ContentKind.INTERACTIVE,
        "whatsapp/inbound_interactive_list.json": ContentKind.INTERACTIVE,
        "whatsapp/inbound_button.json": ContentKind.BUTTON,
        "whatsapp/inbound_unsupported.json": ContentKind.UNSUPPORTED,
        "whatsapp/inbound_unknown_future_type.json": ContentKind.UNSUPPORTED,
    },
    malformed={
        "not json": b"{this is not json",
        "json array": b"[1, 2, 3]",
        "wrong object": helpers.dumps({**helpers.wa_envelope(messages=[]), "object": "page"}),
        "entry not a list": helpers.dumps(
            {"object": "whatsapp_business_account", "entry": {"id": 1}}
        ),
        "message without id": helpers.dumps(
            helpers.wa_envelope(messages=[{"from": "49151", "type": "text", "text": {"body": "x"}}])
        ),
        "messages not a list": helpers.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {"id": "1", "changes": [{"field": "messages", "value": {"messages": "nope"}}]}
                ],
            }
        ),
        "invalid utf-8": b'{"object": "whatsapp_business_account", "entry": ["\xff\xfe"]}',
        "foreign phone number id": helpers.dumps(
            {
                **helpers.wa_envelope(messages=[helpers.wa_text("wamid.foreign")]),
                "entry": [
                    {
                        "id": "2",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "metadata": {"phone_number_id": "999"},
                                    "messages": [helpers.wa_text("wamid.foreign")],
                                },
                            }
                        ],
                    }
                ],
            }
        ),
    },
    empty=[
        helpers.dumps({"object": "whatsapp_business_account", "entry": []}),
        helpers.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}]}
        ),
        helpers.dumps(helpers.wa_envelope(messages=[], statuses=[])),
    ],
)


def _discovered() -> list[ChannelCase]:
    """Cases that other channel modules contribute (tests/channels/cases/<kind>.py)."""

    found = []
    for module in sorted(pkgutil.iter_modules(cases.__path__), key=lambda m: m.name):
        found.append(importlib.import_module(f"tests.channels.cases.{module.name}").CASE)
    return found


CASES = [WHATSAPP, *_discovered()]
