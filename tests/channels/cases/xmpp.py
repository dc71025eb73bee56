"""The XMPP row of the conformance table: stanzas handed to the link's inbound handler."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from tests.channels.conformance import ChannelCase, Outcome
from tresen.channels.xmpp import OWN_ID_PREFIX, XmppChannel, XmppLink
from tresen.domain.message import ContentKind
from tresen.handlers.xmpp import make_sink
from tresen.runtime import Runtime

SHOP = "shop@localhost"
CONFIG: dict[str, Any] = {"jid": SHOP, "password": "shop-secret"}


def jid(sender: str) -> str:
    """The customer's bare JID for a test's sender (digits make a fine local part)."""
    return f"{sender}@example.org"


def message(inner: str, *, sender: str = "4915100000001", **attrs: str) -> bytes:
    """A <message/> stanza as the server hands it to our stream."""
    fields = {"from": f"{jid(sender)}/handy", "to": SHOP, "type": "chat", **attrs}
    head = " ".join(f"{k}={quoteattr(v)}" for k, v in fields.items())
    return f'<message xmlns="jabber:client" {head}>{inner}</message>'.encode()


def text(pid: str, sender: str, body: str, extra: str = "") -> bytes:
    """A chat message with a receipt request, like Conversations or Gajim send it."""
    inner = f'<body>{xml_escape(body)}</body><request xmlns="urn:xmpp:receipts"/>{extra}'
    return message(inner, sender=sender, id=pid)


def inbound_at(pid: str, sender: str, body: str, at: datetime) -> bytes:
    """A message the server kept while we were away: its XEP-0203 delay stamp is the sent time."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text(
        pid, sender, body, f'<delay xmlns="urn:xmpp:delay" from="localhost" stamp="{stamp}"/>'
    )


def status(provider_id: str, state: str) -> bytes | None:
    """A receipt (XEP-0184) or a chat marker (XEP-0333) from the customer's client."""
    element = {
        "delivered": f'<received xmlns="urn:xmpp:receipts" id="{provider_id}"/>',
        "read": f'<displayed xmlns="urn:xmpp:chat-markers:0" id="{provider_id}"/>',
    }.get(state)
    if element is None:
        return None  # XMPP servers report no "sent": the send itself is confirmed by a ping
    return message(element, sender="4915100000009", id=f"r-{state}-{provider_id[-8:]}")


async def feed(runtime: Runtime, channel_id: str, body: bytes) -> Outcome:
    """What the link's stanza handler does with one stanza of the stream."""
    loaded = await runtime.channel(channel_id)
    if loaded is None or loaded.ref.kind != "xmpp":
        return Outcome(404, "no xmpp channel with this id")
    adapter = loaded.adapter
    assert isinstance(adapter, XmppChannel)
    try:
        # slixmpp's stream parser hands over elements; input it cannot parse never gets here.
        element = ET.fromstring(body)
    except ET.ParseError as exc:
        return Outcome(400, f"not well-formed XML: {exc}")
    link = XmppLink(adapter.config, make_sink(runtime, loaded.ref))
    parsed = await link.receive([element])
    if parsed.messages or parsed.statuses:
        return Outcome(200)
    return Outcome(400, "; ".join(parsed.errors) or "nothing usable in the stanza")


CASE = ChannelCase(
    kind="xmpp",
    config=CONFIG,
    sign=lambda _body, _url: {"Content-Type": "application/xml"},
    forge=lambda _body, _url: {"Content-Type": "application/xml", "X-Forged": "1"},
    content_type="application/xml",
    inbound_text=text,
    inbound_at=inbound_at,
    unknown_type=lambda pid: text(
        pid,
        "4915100000001",
        "Dein Client kann keine Teleport-Nachrichten zeigen.",
        '<teleport xmlns="urn:example:teleport" to="mars"/>'
        '<fallback xmlns="urn:xmpp:fallback:0" for="urn:example:teleport"/>',
    ),
    many_entries=None,
    status=status,
    provider_id=lambda message_id, _pid: OWN_ID_PREFIX + message_id,
    statuses_name_message=True,
    feed=feed,
    oversized_marker="truncated_from",
    recorded={
        "xmpp/inbound_text.xml": ContentKind.TEXT,
        "xmpp/inbound_oob_image.xml": ContentKind.MEDIA,
        "xmpp/inbound_omemo.xml": ContentKind.UNSUPPORTED,
        "xmpp/inbound_reply.xml": ContentKind.TEXT,
    },
    malformed={
        "not well-formed": b'<message xmlns="jabber:client" from="a@example.org"><body>x',
        "invalid utf-8": b'<message xmlns="jabber:client"><body>\xff\xfe</body></message>',
        "not a message stanza": b'<iq xmlns="jabber:client" type="get" id="1"/>',
        "foreign namespace": b'<message xmlns="urn:example"><body>x</body></message>',
        "no sender": b'<message xmlns="jabber:client" type="chat"><body>x</body></message>',
        "sender not a JID": message("<body>x</body>", id="m1", **{"from": "@@nope"}),
        "only a chat state": message(
            '<composing xmlns="http://jabber.org/protocol/chatstates"/>', id="m2"
        ),
        "group chat": message("<body>x</body>", id="m3", type="groupchat"),
    },
    spoofed={
        "from our own account": message("<body>x</body>", id="s1", **{"from": f"{SHOP}/other"}),
        "from the server itself": message(
            "<body>Wartung um 22 Uhr</body>", id="s2", **{"from": "localhost"}
        ),
        "receipt for a message we never sent": status(
            OWN_ID_PREFIX + "01NEVERSENT0000000000000000", "delivered"
        )
        or b"",
        "bounce of a message we never sent": message(
            '<error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>',
            id=OWN_ID_PREFIX + "01NEVERSENT0000000000000001",
            type="error",
        ),
    },
)
