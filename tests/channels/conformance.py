"""The conformance table: one description per channel; every channel runs the same tests."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests import helpers
from tresen.domain.message import ContentKind


@dataclass(frozen=True)
class ChannelCase:
    """How to talk to one channel kind's webhook like its provider does."""

    kind: str
    config: dict[str, Any]
    sign: Callable[[bytes, str], dict[str, str]]
    """Headers that authenticate `body` posted to the public webhook URL (second argument)."""
    forge: Callable[[bytes, str], dict[str, str]]
    inbound_text: Callable[[str, str, str], bytes]
    """A webhook body carrying one text message: (provider id, sender address, text)."""
    unknown_type: Callable[[str], bytes]
    many_entries: Callable[[int], bytes] | None
    """A body with n messages, or None when the provider sends one message per call."""
    content_type: str = "application/json"
    status: Callable[[str, str], bytes] | None = None
    """A status webhook for (provider id, state), or None when the provider sends no statuses."""
    recorded: dict[str, ContentKind] = field(default_factory=dict)
    malformed: dict[str, bytes] = field(default_factory=dict)
    empty: list[bytes] = field(default_factory=list)


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
    from tests.channels import cases

    found = []
    for module in sorted(pkgutil.iter_modules(cases.__path__), key=lambda m: m.name):
        found.append(importlib.import_module(f"tests.channels.cases.{module.name}").CASE)
    return found


CASES = [WHATSAPP, *_discovered()]
