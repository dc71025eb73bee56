"""XMPP adapter: stanza parsing, configuration, and a real Prosody on loopback (reconnect included)."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import ssl
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp import ClientXMPP
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.examples import examples
from tresen.app import make_worker
from tresen.channels.base import (
    ChannelRef,
    ConfigError,
    MediaRef,
    MediaTooLarge,
    OutboundMessage,
    PermanentError,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from tresen.channels.manage import add_channel, default_workspace
from tresen.channels.registry import channel_factory
from tresen.channels.xmpp import (
    MAX_PROVIDER_ID_LENGTH,
    XmppChannel,
    XmppConfig,
    XmppLink,
    live_link,
    parse_stanza,
    parse_stanza_text,
)
from tresen.cli import app
from tresen.db.tables import (
    ChannelRow,
    ContactIdentity,
    Conversation,
    Job,
    Message,
    PendingStatus,
)
from tresen.domain.message import ContentKind, DeliveryState
from tresen.handlers.xmpp import make_sink, poll_xmpp
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.runtime import Runtime
from tresen.sim.email import TlsFiles, make_tls
from tresen.sim.xmpp import PROSODY, Prosody, make_prosody

IN_CI = os.environ.get("CI", "").lower() == "true"
SHOP = "shop@localhost"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def stanza(inner: str = "<body>Hallo</body>", **attrs: str) -> ET.Element:
    """A <message/> stanza as the server hands it to us."""
    attrs = {"from": "kunde@example.org/phone", "to": SHOP, "type": "chat", "id": "m1", **attrs}
    head = " ".join(f'{k}="{v}"' for k, v in attrs.items() if v is not None)
    return ET.fromstring(f'<message xmlns="jabber:client" {head}>{inner}</message>')


def config(**overrides: Any) -> dict[str, Any]:
    """A valid channel configuration."""
    return XmppChannel.check_config({"jid": SHOP, "password": "pw", **overrides})


# -- configuration ------------------------------------------------------------------------------


def test_registered_and_config_normalised() -> None:
    assert channel_factory("xmpp") is XmppChannel
    cfg = config(jid="Shop@Example.ORG/laptop", host=" xmpp.example.org ")
    assert cfg["jid"] == "shop@example.org"
    assert cfg["host"] == "xmpp.example.org"
    assert cfg["port"] == 5222 and cfg["allow_plain"] is False and cfg["tls_insecure"] is False


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"jid": "example.org"}, "shop@example.com"),
        ({"jid": "a@b@c"}, "valid JID"),
        ({"password": ""}, "password is required"),
        ({"port": 0}, "TCP port"),
        ({"messages_per_second": 0}, "positive"),
        (
            {"allow_plain": True, "host": "xmpp.example.org"},
            "only allowed for a server on loopback",
        ),
        ({"tls_insecure": True}, "only allowed for a server on loopback"),
        ({"secret": "x"}, "xmpp channel"),
    ],
)
def test_config_refused_clearly(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        config(jid=overrides.pop("jid", "shop@example.org"), **overrides)


def test_plain_allowed_on_loopback_only() -> None:
    assert config(allow_plain=True, host="127.0.0.1")["allow_plain"] is True
    assert config(tls_insecure=True, host="::1")["tls_insecure"] is True
    assert config(jid="shop@localhost", allow_plain=True)["allow_plain"] is True


def test_no_webhook() -> None:
    channel = XmppChannel(config(), httpx.AsyncClient())
    request = WebhookRequest("POST", "http://t/webhooks/xmpp/x", {}, {}, b"")
    with pytest.raises(WebhookRejected) as exc:
        channel.verify(request)
    assert exc.value.status_code == 405
    with pytest.raises(WebhookRejected) as exc:
        channel.handshake(request)
    assert exc.value.status_code == 404


def test_cli_channel_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["channel", "add", "xmpp", "--name", "Jabber", "--jid", "laden@example.org"]
    ok = runner.invoke(app, [*args, "--password", "geheim", "--port", "5223"])
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["channel", "list"])
    assert "\txmpp\tJabber\t" in listed.output and "geheim" not in listed.output
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "needs --password" in missing.output
    plain = runner.invoke(app, [*args, "--password", "x", "--allow-plain", "true"])
    assert plain.exit_code == 2 and "loopback" in plain.output


# -- parsing ------------------------------------------------------------------------------------


def test_chat_message_becomes_inbound_by_bare_jid() -> None:
    parsed = parse_stanza(
        stanza(
            '<body>Habt ihr Samstag offen?</body><request xmlns="urn:xmpp:receipts"/>'
            '<nick xmlns="http://jabber.org/protocol/nick">Anna</nick><thread>t1</thread>',
            **{"from": "Kunde@Example.org/Handy"},
        ),
        SHOP,
        NOW,
    )
    assert parsed.errors == [] and parsed.statuses == []
    (msg,) = parsed.messages
    assert msg.sender_address == "kunde@example.org"
    assert msg.sender_name == "Anna"
    assert msg.body == "Habt ihr Samstag offen?"
    assert msg.content_kind == ContentKind.TEXT
    assert msg.sent_at == NOW
    assert msg.provider_message_id.startswith("kunde@example.org/m1#")
    assert msg.payload["thread"] == "t1" and msg.payload["from"] == "Kunde@Example.org/Handy"
    assert msg.acknowledgement == {"receipt_to": "Kunde@Example.org/Handy", "receipt_id": "m1"}


def test_normal_type_with_body_is_a_message_without_receipt_request() -> None:
    (msg,) = parse_stanza(stanza(type="normal"), SHOP, NOW).messages
    assert msg.acknowledgement is None
    (msg,) = parse_stanza(
        ET.fromstring('<message xmlns="jabber:client" from="a@b.c"><body>x</body></message>'),
        SHOP,
        NOW,
    ).messages
    assert msg.sender_address == "a@b.c"


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (stanza(type="groupchat"), "groupchat"),
        (stanza(type="headline"), "headline"),
        (stanza(type="error"), "error"),
        (stanza('<composing xmlns="http://jabber.org/protocol/chatstates"/>'), "without a body"),
        (stanza("<body>   </body>"), "without a body"),
        (stanza(**{"from": "localhost"}), "customer sender"),
        (stanza(**{"from": "shop@localhost/other"}), "our own account"),
        (stanza(**{"from": "@@bad"}), "customer sender"),
        (stanza(**{"from": "x" * 400 + "@example.org"}), "longer than 320"),
        (ET.fromstring('<presence xmlns="jabber:client"/>'), "not a message"),
    ],
)
def test_ignored_stanzas_say_why(element: ET.Element, reason: str) -> None:
    parsed = parse_stanza(element, SHOP, NOW)
    assert parsed.messages == [] and parsed.statuses == []
    assert any(reason in e for e in parsed.errors), parsed.errors


def test_receipts_and_markers_become_statuses_for_our_ids_only() -> None:
    parsed = parse_stanza(
        stanza(
            '<received xmlns="urn:xmpp:receipts" id="tresen-A"/>'
            '<displayed xmlns="urn:xmpp:chat-markers:0" id="tresen-B"/>'
            '<received xmlns="urn:xmpp:receipts" id="someone-else"/>'
        ),
        SHOP,
        NOW,
    )
    assert parsed.messages == []
    assert [(s.provider_message_id, s.state) for s in parsed.statuses] == [
        ("tresen-A", DeliveryState.DELIVERED),
        ("tresen-B", DeliveryState.READ),
    ]
    assert parsed.statuses[0].recipient_address == "kunde@example.org"


def test_bounce_of_our_message_is_a_failed_status() -> None:
    parsed = parse_stanza(
        stanza(
            '<body>Ja</body><error type="cancel">'
            '<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
            '<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">no such user</text></error>',
            type="error",
            id="tresen-M1",
        ),
        SHOP,
        NOW,
    )
    (status,) = parsed.statuses
    assert status.state == DeliveryState.FAILED and status.error_code == "service-unavailable"
    assert "no such user" in (status.error_reason or "")


def test_offline_delay_stamp_is_the_sent_time_and_never_in_the_future() -> None:
    old = parse_stanza(
        stanza('<body>x</body><delay xmlns="urn:xmpp:delay" stamp="2026-11-30T08:15:00Z"/>'),
        SHOP,
        NOW,
    )
    assert old.messages[0].sent_at == datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    future = parse_stanza(
        stanza('<body>x</body><delay xmlns="urn:xmpp:delay" stamp="2099-01-01T00:00:00Z"/>'),
        SHOP,
        NOW,
    )
    assert future.messages[0].sent_at == NOW
    broken = parse_stanza(
        stanza('<body>x</body><delay xmlns="urn:xmpp:delay" stamp="gestern"/>'), SHOP, NOW
    )
    assert broken.messages[0].sent_at == NOW


def test_encrypted_message_is_unsupported_and_files_are_media() -> None:
    omemo = parse_stanza(
        stanza(
            "<body>I sent you an OMEMO encrypted message.</body>"
            '<encrypted xmlns="eu.siacs.conversations.axolotl"/>'
        ),
        SHOP,
        NOW,
    ).messages[0]
    assert omemo.content_kind == ContentKind.UNSUPPORTED and omemo.payload["encrypted"] == "omemo"
    url = "https://upload.example.org/abc/foto.jpg"
    media = parse_stanza(
        stanza(f'<body>{url}</body><x xmlns="jabber:x:oob"><url>{url}</url></x>'), SHOP, NOW
    ).messages[0]
    assert media.content_kind == ContentKind.MEDIA and media.payload["oob_url"] == url


def test_provider_ids_dedupe_repeats_but_not_reused_ids() -> None:
    first = parse_stanza(stanza("<body>ok</body>"), SHOP, NOW).messages[0]
    again = parse_stanza(stanza("<body>ok</body>"), SHOP, NOW + timedelta(seconds=3)).messages[0]
    assert first.provider_message_id == again.provider_message_id
    reused = parse_stanza(stanza("<body>anderes</body>"), SHOP, NOW).messages[0]
    assert reused.provider_message_id != first.provider_message_id
    origin = parse_stanza(
        stanza('<body>ok</body><origin-id xmlns="urn:xmpp:sid:0" id="o-7"/>'), SHOP, NOW
    ).messages[0]
    assert "/o-7#" in origin.provider_message_id
    no_id = stanza("<body>ok</body>", id="")
    del no_id.attrib["id"]
    a = parse_stanza(no_id, SHOP, NOW).messages[0]
    b = parse_stanza(no_id, SHOP, NOW).messages[0]
    assert a.provider_message_id == b.provider_message_id and a.acknowledgement is None
    long = parse_stanza(stanza(id="i" * 5000), SHOP, NOW).messages[0]
    assert len(long.provider_message_id) <= MAX_PROVIDER_ID_LENGTH


def test_malformed_text_is_an_error_not_an_exception() -> None:
    assert parse_stanza_text("<message", SHOP).errors[0].startswith("malformed stanza")
    channel = XmppChannel(config(), httpx.AsyncClient())
    body = (
        b'<message xmlns="jabber:client" from="a@b.c" type="chat" id="1"><body>Hi</body></message>'
    )
    request = WebhookRequest("POST", "http://t", {}, {}, body)
    assert channel.parse(request).messages[0].body == "Hi"


_attr = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["chat", "normal", "error"]))
_xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)


@settings(max_examples=examples(300), deadline=None)
@given(
    kind=_attr,
    sender=_attr,
    stanza_id=_attr,
    body=st.one_of(st.none(), _xml_text),
    stamp=_attr,
    extras=st.lists(
        st.sampled_from(
            [
                '<request xmlns="urn:xmpp:receipts"/>',
                '<received xmlns="urn:xmpp:receipts" id="tresen-1"/>',
                '<displayed xmlns="urn:xmpp:chat-markers:0"/>',
                '<x xmlns="jabber:x:oob"><url>u</url></x>',
                '<encrypted xmlns="urn:xmpp:omemo:2"/>',
                '<origin-id xmlns="urn:xmpp:sid:0" id=""/>',
                "<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
            ]
        ),
        max_size=4,
    ),
)
def test_parser_fuzz_never_raises_and_respects_limits(
    kind: str | None,
    sender: str | None,
    stanza_id: str | None,
    body: str | None,
    stamp: str | None,
    extras: list[str],
) -> None:
    element = ET.Element("{jabber:client}message")
    for name, value in (("type", kind), ("from", sender), ("id", stanza_id)):
        if value is not None:
            element.set(name, value)
    if body is not None:
        ET.SubElement(element, "{jabber:client}body").text = body
    if stamp is not None:
        ET.SubElement(element, "{urn:xmpp:delay}delay", {"stamp": stamp})
    for extra in extras:
        element.append(ET.fromstring(extra.replace("<error>", "<error xmlns='jabber:client'>")))
    parsed = parse_stanza(element, SHOP, NOW)
    for msg in parsed.messages:
        assert msg.body and msg.body.strip()
        assert len(msg.provider_message_id) <= MAX_PROVIDER_ID_LENGTH
        assert "@" in msg.sender_address and len(msg.sender_address) <= 320
        assert msg.sent_at <= NOW
    assert all(s.provider_message_id.startswith("tresen-") for s in parsed.statuses)
    assert parsed.messages or parsed.statuses or parsed.errors


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=300))
def test_parser_fuzz_raw_text(text: str) -> None:
    parse_stanza_text(text, SHOP, NOW)


# -- sending without a connection ----------------------------------------------------------------


async def test_send_without_connection_is_retryable_and_non_text_permanent() -> None:
    channel = XmppChannel(config(), httpx.AsyncClient())
    out = OutboundMessage("kunde@example.org", ContentKind.TEXT, "Hallo", {}, "01REF")
    with pytest.raises(TransientError) as exc:
        await channel.send(out)
    assert exc.value.code == "not_connected"
    with pytest.raises(PermanentError):
        await channel.send(OutboundMessage("kunde@example.org", ContentKind.MEDIA, None, {}, "r"))
    with pytest.raises(PermanentError):
        await channel.send(OutboundMessage("@@", ContentKind.TEXT, "x", {}, "r"))


def test_oob_file_becomes_a_media_ref() -> None:
    url = "https://upload.example.org/aB9xQ/schaden.jpg"
    (msg,) = parse_stanza(
        stanza(f'<body>{url}</body><x xmlns="jabber:x:oob"><url>{url}</url></x>'), SHOP, NOW
    ).messages
    assert msg.content_kind == ContentKind.MEDIA
    [ref] = XmppChannel.media_refs(msg.payload)
    assert (ref.kind, ref.ref, ref.filename) == ("image", {"url": url}, "schaden.jpg")
    assert XmppChannel.media_refs({"oob_url": "file:///etc/passwd"}) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/a.png",
        "http://10.1.2.3/a.png",
        "https://[::1]/a.png",
        "https://169.254.169.254/",
    ],
)
async def test_oob_fetch_never_reaches_into_private_networks(url: str) -> None:
    calls: list[httpx.Request] = []
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200))
    )
    channel = XmppChannel(config(), http)
    with pytest.raises(PermanentError, match="private network"):
        await channel.fetch_media(MediaRef("image", {"url": url}), 1000)
    assert calls == []


async def test_oob_fetch_with_limits_and_no_redirects() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big.png":
            return httpx.Response(200, content=png * 100, headers={"content-type": "image/png"})
        if request.url.path == "/moved.png":
            return httpx.Response(302, headers={"location": "http://127.0.0.1/secret"})
        return httpx.Response(200, content=png, headers={"content-type": "image/png"})

    channel = XmppChannel(config(), httpx.AsyncClient(transport=httpx.MockTransport(serve)))
    got = await channel.fetch_media(
        MediaRef("image", {"url": "https://93.184.215.14/a.png"}, filename="a.png"), 1000
    )
    assert got.content == png and got.content_type == "image/png" and got.filename == "a.png"
    with pytest.raises(MediaTooLarge):
        await channel.fetch_media(MediaRef("image", {"url": "https://93.184.215.14/big.png"}), 1000)
    with pytest.raises(PermanentError):
        await channel.fetch_media(
            MediaRef("image", {"url": "https://93.184.215.14/moved.png"}), 1000
        )


async def test_agent_file_goes_out_as_its_signed_link(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str, str, str | None]] = []

    class Link:
        async def send_chat(
            self, to: str, body: str, stanza_id: str, oob: str | None = None
        ) -> None:
            sent.append((to, body, stanza_id, oob))

    monkeypatch.setattr("tresen.channels.xmpp.live_link", lambda _jid: Link())
    channel = XmppChannel(config(), httpx.AsyncClient())
    link = "https://tresen.example/media/public/01M?exp=1&sig=ab"
    out = OutboundMessage(
        "kunde@example.org", ContentKind.MEDIA, "Die Rechnung", {"link": link}, "01R"
    )
    assert (await channel.send(out)).provider_message_id == "tresen-01R"
    assert sent == [("kunde@example.org", f"Die Rechnung\n{link}", "tresen-01R", link)]


# -- a real Prosody on loopback -------------------------------------------------------------------


@pytest.fixture
def prosody_ready() -> None:
    if PROSODY is None:
        if IN_CI:
            pytest.fail("CI=true but prosody is not installed (apt-get install -y prosody)")
        pytest.skip("prosody is not installed (apt-get install -y prosody)")


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path)


@pytest.fixture
def prosody(prosody_ready: None, tmp_path: Path, tls: TlsFiles) -> Iterator[Prosody]:
    server = make_prosody(tmp_path / "prosody", tls)
    server.register("shop", "shop-secret")
    server.register("kunde", "kunde-secret")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Customer:
    """A customer's XMPP client (slixmpp), answering receipt requests like real clients do."""

    def __init__(self, server: Prosody, tls: TlsFiles) -> None:
        self.server = server
        self.client = ClientXMPP("kunde@localhost/handy", "kunde-secret")
        self.client.ssl_context = ssl.create_default_context(cafile=str(tls.ca_file))
        self.client.enable_direct_tls = False
        self.client.register_plugin("xep_0184")
        self.client.register_plugin("xep_0199")
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.receipts: list[str] = []
        self.client.add_event_handler("message", self._on_message)
        self.client.add_event_handler(
            "receipt_received", lambda msg: self.receipts.append(msg["receipt"])
        )

    def _on_message(self, msg: Any) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.inbox.put_nowait(msg)

    async def connect(self) -> None:
        started = asyncio.get_running_loop().create_future()
        self.client.add_event_handler(
            "session_start", lambda _e: started.done() or started.set_result(None)
        )
        self.client.connect("127.0.0.1", self.server.port)
        await asyncio.wait_for(started, 15)
        self.client.send_presence()

    async def say(self, text: str) -> str:
        """Send a chat message with a receipt request; returns once the server has it."""
        msg = self.client.make_message(mto=SHOP, mbody=text, mtype="chat")
        msg["request_receipt"] = True
        msg.send()
        await self.client.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        return str(msg["id"])

    async def next_message(self, timeout: float = 30.0) -> Any:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def close(self) -> None:
        if self.client.is_connected():
            await self.client.disconnect(wait=1.0)


@pytest.fixture
async def customers(prosody: Prosody, tls: TlsFiles) -> AsyncIterator[list[Customer]]:
    made: list[Customer] = []
    yield made
    for customer in made:
        await customer.close()


async def _seed_channel(runtime: Runtime, server: Prosody, tls: TlsFiles, **extra: Any) -> str:
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session)
        cfg = {
            "jid": SHOP,
            "password": "shop-secret",
            "host": "127.0.0.1",
            "port": server.port,
            "tls_ca_file": str(tls.ca_file),
            **extra,
        }
        row = await add_channel(session, ws.id, "xmpp", "Jabber", cfg)
        return row.id


async def _inbound(runtime: Runtime, body: str) -> Message | None:
    async with runtime.sessions() as session:
        return await session.scalar(
            select(Message).where(Message.direction == "inbound", Message.body == body)
        )


async def _message(runtime: Runtime, message_id: str) -> Message | None:
    async with runtime.sessions() as session:
        return await session.get(Message, message_id)


async def _reply(runtime: Runtime, channel_id: str, text: str) -> str:
    async with runtime.sessions() as session, session.begin():
        conversation = await session.scalar(
            select(Conversation).where(Conversation.channel_id == channel_id)
        )
        channel = await session.get(ChannelRow, channel_id)
        assert conversation is not None and channel is not None
        row = await queue_message(
            session, conversation, channel, OutboundContent(ContentKind.TEXT, text)
        )
        message_id = row.id
    runtime.jobs_ready.set()
    return message_id


async def test_stored_once_and_a_receipt_overtaking_the_send_record(runtime: Runtime) -> None:

    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session)
        row = await add_channel(session, ws.id, "xmpp", "Jabber", config())
        ref = ChannelRef(row.id, row.workspace_id, "xmpp")
    sink = make_sink(runtime, ref)
    hello = stanza("<body>Hallo</body>", **{"from": "kunde@example.org/a"})
    await sink(parse_stanza(hello, SHOP))
    # The same stanza again, as a second worker's session receives it.
    await sink(parse_stanza(hello, SHOP))
    async with runtime.sessions() as session:
        inbound = list(await session.scalars(select(Message).where(Message.direction == "inbound")))
    assert len(inbound) == 1
    reply_id = await _reply(runtime, row.id, "Ja")
    # The customer's receipt is stored before the send job recorded its outcome.
    receipt = stanza(f'<received xmlns="urn:xmpp:receipts" id="tresen-{reply_id}"/>', id="r1")
    await sink(parse_stanza(receipt, SHOP))
    reply = await _message(runtime, reply_id)
    assert reply is not None and reply.state == DeliveryState.DELIVERED.value
    assert reply.provider_message_id == f"tresen-{reply_id}"
    # A receipt naming a message we never sent is dropped, not kept as waiting.
    stray = stanza('<received xmlns="urn:xmpp:receipts" id="tresen-UNKNOWN"/>', id="r2")
    await sink(parse_stanza(stray, SHOP))
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PendingStatus)) == 0
    async with runtime.sessions() as session:
        assert (
            await session.scalar(
                select(Message).where(Message.provider_message_id.like("%UNKNOWN"))
            )
            is None
        )


@pytest.mark.slow
async def test_round_trip_receipts_restart_offline_and_retry(
    runtime: Runtime, prosody: Prosody, tls: TlsFiles, customers: list[Customer]
) -> None:
    channel_id = await _seed_channel(runtime, prosody, tls)
    poller = functools.partial(poll_xmpp, scan_seconds=0.2, reconnect_min=6.0)
    worker = make_worker(runtime, pollers=[poller], poll_seconds=0.1)
    worker_task = asyncio.create_task(worker.run())
    try:

        async def linked() -> Any:
            link = live_link(SHOP)
            return link if link is not None and link.connected.is_set() else None

        link = await eventually(linked, what="the shop's XMPP link")
        assert link.sessions == 1

        # A customer writes: stored as inbound, a conversation opens, the customer gets a receipt.
        customers.append(anna := Customer(prosody, tls))
        await anna.connect()
        first_id = await anna.say("Habt ihr Samstag offen?")
        stored = await eventually(
            lambda: _inbound(runtime, "Habt ihr Samstag offen?"), what="inbound message"
        )
        async with runtime.sessions() as session:
            identity = await session.scalar(select(ContactIdentity))
            conversation = await session.scalar(select(Conversation))
        assert identity is not None and identity.address == "kunde@localhost"
        assert conversation is not None and conversation.status == "open"
        assert stored.conversation_id == conversation.id

        async def receipted() -> bool:
            return first_id in anna.receipts

        await eventually(receipted, what="our receipt to the customer")

        # An agent replies: the customer's client gets it, sends a receipt, we mark it delivered.
        reply_id = await _reply(runtime, channel_id, "Ja, bis 18 Uhr.")
        got = await anna.next_message()
        assert got["body"] == "Ja, bis 18 Uhr." and got["id"] == f"tresen-{reply_id}"

        async def delivered() -> bool:
            row = await _message(runtime, reply_id)
            return row is not None and row.state == DeliveryState.DELIVERED.value

        await eventually(delivered, what="the reply to become delivered")

        # The XMPP server restarts. Meanwhile an agent replies; the send fails and is retried.
        prosody.stop()
        await anna.close()

        async def dropped() -> bool:
            return not link.connected.is_set() and link.last_error is not None

        await eventually(dropped, what="the link to notice the server is gone")
        down_id = await _reply(runtime, channel_id, "Wir melden uns gleich.")

        async def retried() -> bool:
            async with runtime.sessions() as session:
                job = await session.scalar(
                    select(Job).where(Job.payload["message_id"].as_string() == down_id)
                )
            return (
                job is not None and job.attempts >= 1 and "not_connected" in (job.last_error or "")
            )

        await eventually(retried, what="the send job to fail retryably")
        row = await _message(runtime, down_id)
        assert row is not None and row.state in ("queued", "sending")

        # The server is back; the customer writes before tresen has reconnected (offline storage).
        prosody.start()
        customers.append(anna := Customer(prosody, tls))
        await anna.connect()
        await anna.say("Sind Sie noch da?")
        assert not link.connected.is_set(), "tresen reconnected too early to test offline delivery"

        async def relinked() -> bool:
            return link.connected.is_set() and link.sessions == 2

        await eventually(relinked, timeout=30, what="the link to reconnect")
        offline = await eventually(
            lambda: _inbound(runtime, "Sind Sie noch da?"), what="the offline message"
        )
        assert offline.conversation_id == conversation.id

        # The reply queued while the server was down arrives once.
        got = await anna.next_message(timeout=60)
        assert got["body"] == "Wir melden uns gleich." and got["id"] == f"tresen-{down_id}"

        async def down_delivered() -> bool:
            row = await _message(runtime, down_id)
            return row is not None and row.state == DeliveryState.DELIVERED.value

        await eventually(down_delivered, what="the retried reply to become delivered")
        await asyncio.sleep(1.0)
        assert anna.inbox.empty(), "a message arrived twice"
        async with runtime.sessions() as session:
            bodies = list(await session.scalars(select(Message.body).order_by(Message.created_at)))
        assert sorted(bodies) == sorted(
            [
                "Habt ihr Samstag offen?",
                "Ja, bis 18 Uhr.",
                "Wir melden uns gleich.",
                "Sind Sie noch da?",
            ]
        )
    finally:
        worker.stop()
        await asyncio.wait_for(worker_task, 30)


@pytest.mark.slow
async def test_wrong_password_and_untrusted_certificate_do_not_connect(
    runtime: Runtime, prosody: Prosody, tls: TlsFiles
) -> None:

    async def sink(_parsed: Any) -> None:
        raise AssertionError("nothing may arrive")

    for cfg, why in (
        (
            XmppConfig(SHOP, "falsch", "127.0.0.1", prosody.port, tls_ca_file=str(tls.ca_file)),
            "login refused",
        ),
        (XmppConfig(SHOP, "shop-secret", "127.0.0.1", prosody.port), "certificate is not trusted"),
    ):
        link = XmppLink(cfg, sink, reconnect_min=60, connect_timeout=10)
        stopping = asyncio.Event()
        task = asyncio.create_task(link.run(stopping))

        async def failed(link: XmppLink = link) -> bool:
            return link.last_error is not None

        await eventually(failed, what=why)
        assert why in (link.last_error or "") and link.sessions == 0
        stopping.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.slow
async def test_plain_stream_only_when_allowed(prosody_ready: None, tmp_path: Path) -> None:

    server = make_prosody(tmp_path / "plain", None)
    server.register("shop", "shop-secret")
    server.start()
    try:

        async def sink(_parsed: Any) -> None:
            return None

        for allow, connects in ((False, False), (True, True)):
            cfg = XmppConfig(SHOP, "shop-secret", "127.0.0.1", server.port, allow_plain=allow)
            link = XmppLink(cfg, sink, reconnect_min=60, connect_timeout=10)
            stopping = asyncio.Event()
            task = asyncio.create_task(link.run(stopping))

            async def settled(link: XmppLink = link) -> bool:
                return link.connected.is_set() or link.last_error is not None

            await eventually(settled, what="the plain link to settle")
            assert link.connected.is_set() is connects, link.last_error
            if not connects:
                assert "TLS" in (link.last_error or "")
            stopping.set()
            await asyncio.wait_for(task, 10)
    finally:
        server.stop()


@pytest.mark.slow
async def test_a_server_that_stops_answering_is_noticed_and_reconnected(
    prosody: Prosody, tls: TlsFiles
) -> None:

    async def sink(_parsed: Any) -> None:
        return None

    cfg = XmppConfig(SHOP, "shop-secret", "127.0.0.1", prosody.port, tls_ca_file=str(tls.ca_file))
    link = XmppLink(cfg, sink, reconnect_min=0.5, connect_timeout=3, confirm_timeout=1, keepalive=1)
    stopping = asyncio.Event()
    task = asyncio.create_task(link.run(stopping))
    assert prosody.process is not None
    try:

        async def up(n: int) -> bool:
            return link.connected.is_set() and link.sessions == n

        await eventually(functools.partial(up, 1), what="the first session")
        # The server hangs (the TCP connection stays open, nothing answers), then recovers.
        prosody.process.send_signal(signal.SIGSTOP)

        async def down() -> bool:
            return not link.connected.is_set()

        await eventually(down, what="the hang to be noticed")
        prosody.process.send_signal(signal.SIGCONT)
        await eventually(functools.partial(up, 2), timeout=30, what="the reconnect")
    finally:
        if prosody.process is not None:
            prosody.process.send_signal(signal.SIGCONT)
        stopping.set()
        await asyncio.wait_for(task, 15)


def _worker_process(runtime: Runtime, log: Path) -> subprocess.Popen[bytes]:
    """`tresen worker` in its own process, on the test's database and data dir."""
    env = {
        **os.environ,
        "TRESEN_DATABASE_URL": runtime.settings.database_url,
        "TRESEN_DATA_DIR": str(runtime.settings.data_dir),
        "TRESEN_SECRET_KEY": runtime.settings.secret_key,
        "TRESEN_MAILBOX_POLL_SECONDS": "0",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tresen", "worker", "--concurrency", "4"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


@pytest.mark.slow
async def test_killed_worker_loses_nothing_the_archive_is_read_on_reconnect(
    runtime: Runtime, prosody: Prosody, tls: TlsFiles, customers: list[Customer], tmp_path: Path
) -> None:
    await _seed_channel(runtime, prosody, tls)
    log = tmp_path / "worker.log"
    worker = _worker_process(runtime, log)
    try:
        customers.append(anna := Customer(prosody, tls))
        await anna.connect()

        async def stored(body: str) -> Message | None:
            return await _inbound(runtime, body)

        # The worker may still be starting: say hello until it is stored.
        async def first() -> Message | None:
            if await stored("Hallo?"):
                return await stored("Hallo?")
            await anna.say("Hallo?")
            await asyncio.sleep(1.0)
            return None

        await eventually(first, timeout=60, what="the worker to store the first message")
        # The worker hangs (its connection stays open; the server keeps handing it messages),
        # then dies without a chance to store what it got.
        worker.send_signal(signal.SIGSTOP)
        await anna.say("Ist mein Rad fertig?")
        await anna.say("Ich komme um 17 Uhr.")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert await stored("Ist mein Rad fertig?") is None
        # While no worker runs, one more (offline storage).
        await anna.say("Hallo, jemand da?")
        worker = _worker_process(runtime, log)
        for body in ("Ist mein Rad fertig?", "Ich komme um 17 Uhr.", "Hallo, jemand da?"):
            await eventually(lambda b=body: stored(b), timeout=60, what=f"{body!r} after restart")
        await asyncio.sleep(2.0)
        async with runtime.sessions() as session:
            bodies = list(
                await session.scalars(select(Message.body).where(Message.direction == "inbound"))
            )
        for body in ("Ist mein Rad fertig?", "Ich komme um 17 Uhr.", "Hallo, jemand da?"):
            assert bodies.count(body) == 1, body
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
