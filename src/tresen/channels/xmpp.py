"""XMPP (Jabber) channel: one long-lived client per business account, on the business's own server."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import ipaddress
import logging
import random
import secrets
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import msgspec
from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tresen.channels.addresses import bare_jid as address_bare_jid
from tresen.channels.base import (
    AuthError,
    Capabilities,
    ChannelBase,
    ConfigError,
    FetchedMedia,
    InboundMessage,
    LinkTarget,
    MediaRef,
    OutboundMessage,
    ParsedWebhook,
    PermanentError,
    PrivacyRecord,
    SendResult,
    StatusUpdate,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    download,
)
from tresen.domain.message import ContentKind, DeliveryState

logger = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_OOB = "jabber:x:oob"
NS_NICK = "http://jabber.org/protocol/nick"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_PING = "urn:xmpp:ping"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
MAM_PAGE = 100
MAM_MAX_PAGES = 50
CATCH_UP_MARGIN = timedelta(minutes=5)
"""How far before the newest stored message the archive is read again (clock skew, a batch
that was being stored when the worker stopped); repeats are absorbed by the dedupe."""
NS_REPLY = "urn:xmpp:reply:0"
_UNDERSTOOD = frozenset({NS_OOB, NS_REPLY, NS_CORRECT})
"""Payload namespaces whose XEP-0428 fallback body we may show as the message itself."""
_ENCRYPTED = {
    "{eu.siacs.conversations.axolotl}encrypted": "omemo",
    "{urn:xmpp:omemo:2}encrypted": "omemo",
    "{jabber:x:encrypted}x": "pgp",
    "{urn:xmpp:openpgp:0}openpgp": "openpgp",
}
OWN_ID_PREFIX = "tresen-"
"""Our outbound stanza ids start with this; statuses for other ids are not ours and dropped."""
MAX_ID_LENGTH = 200
MAX_ADDRESS_LENGTH = 320
MAX_PROVIDER_ID_LENGTH = 256
MAX_NICK_LENGTH = 100
MAX_BODY_LENGTH = 20_000
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class XmppConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one XMPP account of the business."""

    jid: str
    password: str
    host: str = ""
    """Connect here instead of the JID's domain (DNS SRV); needs `port`."""
    port: int = 5222
    direct_tls: bool = False
    """TLS from the first byte (XEP-0368, usually port 5223) instead of STARTTLS."""
    tls_ca_file: str | None = None
    """A CA bundle (PEM) for a server with a private certificate authority or a self-signed one."""
    allow_plain: bool = False
    """Accept a stream without TLS; only for a server on loopback (tests)."""
    tls_insecure: bool = False
    """Accept any certificate; only for a server on loopback (tests)."""
    messages_per_second: float = 5.0
    allow_private_media: bool = False
    """Fetch customers' files (XEP-0066 URLs) from private or loopback addresses too; only for
    a server on loopback (tests). Otherwise such URLs are refused (no requests into your LAN)."""


def _is_loopback(host: str) -> bool:
    name = host.strip().lower().strip("[]")
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bare_jid(value: str) -> str | None:
    """The normalised bare JID of a string, or None when it is no valid JID."""
    try:
        jid = JID(value)
    except (InvalidJID, ValueError, TypeError):
        return None
    return jid.bare or None


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _child(xml: ET.Element, tag: str) -> ET.Element | None:
    return xml.find(tag)


def _text(xml: ET.Element, tag: str) -> str:
    found = xml.find(tag)
    return (found.text or "") if found is not None else ""


def _sent_at(xml: ET.Element, now: datetime) -> datetime:
    """When the customer sent a message: the XEP-0203 delay stamp (offline storage), else now."""
    delay = xml.find(f"{{{NS_DELAY}}}delay")
    stamp = delay.get("stamp") if delay is not None else None
    if not stamp:
        return now
    try:
        when = datetime.fromisoformat(stamp.strip())
    except ValueError:
        return now
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return min(when, now)


def _reference(stanza_id: str) -> str:
    """Our message id inside our stanza id: a status that overtakes the send record finds it."""
    return stanza_id[len(OWN_ID_PREFIX) :]


def _statuses(xml: ET.Element, sender: str, now: datetime) -> list[StatusUpdate]:
    """Delivery receipts (XEP-0184) and chat markers (XEP-0333) for our own messages."""
    found: list[StatusUpdate] = []
    for tag, state in (
        (f"{{{NS_RECEIPTS}}}received", DeliveryState.DELIVERED),
        (f"{{{NS_MARKERS}}}received", DeliveryState.DELIVERED),
        (f"{{{NS_MARKERS}}}displayed", DeliveryState.READ),
        (f"{{{NS_MARKERS}}}acknowledged", DeliveryState.READ),
    ):
        for element in xml.findall(tag):
            ref = (element.get("id") or "").strip()
            if ref.startswith(OWN_ID_PREFIX) and len(ref) <= MAX_ID_LENGTH:
                found.append(
                    StatusUpdate(
                        provider_message_id=ref,
                        state=state,
                        occurred_at=now,
                        recipient_address=sender,
                        client_reference=_reference(ref),
                    )
                )
    return found


def _error_status(xml: ET.Element, sender: str | None, now: datetime) -> list[StatusUpdate]:
    """A bounced message of ours (type='error' with our id) as a failed status."""
    ref = (xml.get("id") or "").strip()
    if not ref.startswith(OWN_ID_PREFIX) or len(ref) > MAX_ID_LENGTH:
        return []
    error = xml.find(f"{{{NS_CLIENT}}}error")
    condition = "undefined-condition"
    text = ""
    if error is not None:
        for child in error:
            if child.tag.startswith(f"{{{NS_STANZAS}}}"):
                name = child.tag.split("}", 1)[1]
                if name == "text":
                    text = (child.text or "").strip()[:300]
                else:
                    condition = name
    reason = f"the XMPP server refused the message ({condition})" + (f": {text}" if text else "")
    return [
        StatusUpdate(
            provider_message_id=ref,
            state=DeliveryState.FAILED,
            occurred_at=now,
            recipient_address=sender,
            error_code=condition,
            error_reason=reason,
            client_reference=_reference(ref),
        )
    ]


def _archived(xml: ET.Element, result: ET.Element, own: str, now: datetime) -> ParsedWebhook:
    """A message from our own archive (XEP-0313 result): the forwarded original, parsed."""
    raw_from = xml.get("from") or ""
    if raw_from and bare_jid(raw_from) != own:
        # Only our server answers for our archive; anybody else's "result" is a forgery.
        return ParsedWebhook(errors=["ignored archive result that is not from our own archive"])
    forwarded = result.find(f"{{{NS_FORWARD}}}forwarded")
    inner = forwarded.find(f"{{{NS_CLIENT}}}message") if forwarded is not None else None
    if forwarded is None or inner is None or inner.find(f"{{{NS_MAM}}}result") is not None:
        return ParsedWebhook(errors=["ignored archive result without a forwarded message"])
    inner = copy.deepcopy(inner)
    delay = forwarded.find(f"{{{NS_DELAY}}}delay")
    if delay is not None and inner.find(f"{{{NS_DELAY}}}delay") is None:
        inner.append(copy.deepcopy(delay))  # when the server archived it: the sent time
    return parse_stanza(inner, own, now)


def parse_stanza(xml: ET.Element, own_jid: str, now: datetime | None = None) -> ParsedWebhook:
    """One <message/> stanza as typed events: a customer message, statuses, or a reason to ignore it."""
    now = now or datetime.now(UTC)
    if xml.tag != f"{{{NS_CLIENT}}}message":
        return ParsedWebhook(errors=[f"ignored {xml.tag!r}: not a message stanza"])
    kind = (xml.get("type") or "normal").strip()
    raw_from = xml.get("from") or ""
    sender = bare_jid(raw_from) if raw_from else None
    own = bare_jid(own_jid) or own_jid
    result = xml.find(f"{{{NS_MAM}}}result")
    if result is not None:
        return _archived(xml, result, own, now)
    if kind == "error":
        statuses = _error_status(xml, sender, now)
        return ParsedWebhook(statuses=statuses, errors=[] if statuses else ["ignored error stanza"])
    if kind in ("groupchat", "headline"):
        return ParsedWebhook(errors=[f"ignored {kind} message"])
    if kind not in ("chat", "normal"):
        # RFC 6121 5.2.2: a type the recipient does not understand means "normal".
        kind = "normal"
    if sender is None or "@" not in sender:
        # No sender, a broken one, or the server itself (announcements, MOTD).
        return ParsedWebhook(errors=["ignored message without a customer sender"])
    if sender == own:
        return ParsedWebhook(errors=["ignored message from our own account"])
    if len(sender) > MAX_ADDRESS_LENGTH:
        return ParsedWebhook(
            errors=[f"ignored message: sender JID longer than {MAX_ADDRESS_LENGTH}"]
        )
    statuses = _statuses(xml, sender, now)
    body = _text(xml, f"{{{NS_CLIENT}}}body")
    if not body.strip():
        return ParsedWebhook(
            statuses=statuses, errors=[] if statuses else ["ignored message without a body"]
        )
    payload: dict[str, Any] = {"from": raw_from[:3071], "type": kind}
    content = ContentKind.TEXT
    oob = _text(xml, f"{{{NS_OOB}}}x/{{{NS_OOB}}}url").strip()
    if oob:
        payload["oob_url"] = oob[:2048]
        if oob == body.strip():
            content = ContentKind.MEDIA
    fallback_for = sorted(
        {
            (f.get("for") or "").strip()[:MAX_ID_LENGTH]
            for f in xml.findall(f"{{{NS_FALLBACK}}}fallback")
        }
        - _UNDERSTOOD
    )
    if fallback_for:
        # XEP-0428: the body only stands in for a payload tresen does not understand.
        content = ContentKind.UNSUPPORTED
        payload["fallback_for"] = fallback_for[:5]
    for tag, scheme in _ENCRYPTED.items():
        if xml.find(tag) is not None:
            content = ContentKind.UNSUPPORTED
            payload["encrypted"] = scheme
    thread = _text(xml, f"{{{NS_CLIENT}}}thread").strip()
    if thread:
        payload["thread"] = thread[:MAX_ID_LENGTH]
    replaced = _child(xml, f"{{{NS_CORRECT}}}replace")
    if replaced is not None and replaced.get("id"):
        payload["replaces"] = (replaced.get("id") or "")[:MAX_ID_LENGTH]
    if len(body) > MAX_BODY_LENGTH:
        payload["truncated_from"] = len(body)
        body = body[:MAX_BODY_LENGTH]
    stanza_id = (xml.get("id") or "").strip()
    origin = _child(xml, f"{{{NS_SID}}}origin-id")
    if origin is not None and (origin.get("id") or "").strip():
        stanza_id = (origin.get("id") or "").strip()
    delay = xml.find(f"{{{NS_DELAY}}}delay")
    stamp = (delay.get("stamp") or "") if delay is not None else ""
    # The same stanza can reach several of our sessions (one per worker): the id plus a digest
    # of the content names it; clients that reuse ids do not lose messages to the dedupe.
    digest = _sha(body, oob, stamp if not stanza_id else "")[:16]
    if stanza_id:
        key = stanza_id if len(stanza_id) <= MAX_ID_LENGTH else "sha256." + _sha(stanza_id)
        provider_id = f"{sender}/{key}#{digest}"
        payload["stanza_id"] = stanza_id[:MAX_ID_LENGTH]
    else:
        provider_id = f"{sender}/#{_sha(raw_from, body, oob, stamp)[:32]}"
    if len(provider_id) > MAX_PROVIDER_ID_LENGTH:
        provider_id = "sha256." + _sha(provider_id)
    nick = _text(xml, f"{{{NS_NICK}}}nick").strip()[:MAX_NICK_LENGTH] or None
    wants_receipt = (
        bool(stanza_id) and xml.find(f"{{{NS_RECEIPTS}}}request") is not None and bool(raw_from)
    )
    return ParsedWebhook(
        messages=[
            InboundMessage(
                provider_message_id=provider_id,
                sender_address=sender,
                sender_name=nick,
                sent_at=_sent_at(xml, now),
                content_kind=content,
                body=body,
                payload=payload,
                acknowledgement=(
                    {"receipt_to": raw_from, "receipt_id": stanza_id} if wants_receipt else None
                ),
            )
        ],
        statuses=statuses,
    )


def parse_stanza_text(text: str, own_jid: str, now: datetime | None = None) -> ParsedWebhook:
    """A serialised <message/> stanza (namespace jabber:client) as typed events; never raises."""
    try:
        xml = ET.fromstring(text)
    except ET.ParseError as exc:
        return ParsedWebhook(errors=[f"malformed stanza: {exc}"])
    return parse_stanza(xml, own_jid, now)


def merge(parsed: list[ParsedWebhook]) -> ParsedWebhook:
    """Several parsed stanzas as one batch, in order."""
    out = ParsedWebhook()
    for p in parsed:
        out.messages.extend(p.messages)
        out.statuses.extend(p.statuses)
        out.errors.extend(p.errors)
    return out


def _parse_safely(xml: ET.Element, own_jid: str) -> ParsedWebhook:
    """`parse_stanza`, and a stanza it cannot handle is skipped instead of stopping the link."""
    try:
        return parse_stanza(xml, own_jid)
    except Exception:
        logger.exception("an XMPP stanza could not be parsed; skipped")
        return ParsedWebhook(errors=["unparseable stanza"])


# ---------------------------------------------------------------------------------------------
# The live connection.

Sink = Callable[[ParsedWebhook], Awaitable[None]]
"""Stores a batch of parsed stanzas durably; raises when it could not (the batch is kept)."""
Since = Callable[[], Awaitable[datetime | None]]
"""When the newest stored inbound message arrived (None: nothing stored yet)."""

_LINKS: dict[str, XmppLink] = {}
"""The connected accounts of this process, by bare JID: sends go out through them."""


def live_link(jid: str) -> XmppLink | None:
    """The link of an account in this process, if one runs."""
    return _LINKS.get(bare_jid(jid) or jid)


class XmppLink:
    """Keeps one account connected: reconnects with backoff, hands stanzas to a sink, sends."""

    def __init__(
        self,
        config: XmppConfig,
        sink: Sink,
        *,
        reconnect_min: float = 1.0,
        reconnect_max: float = 60.0,
        connect_timeout: float = 30.0,
        confirm_timeout: float = 10.0,
        keepalive: float = 60.0,
        since: Since | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.since = since
        self.caught_up = 0
        """How many archived messages the server counted for the last catch-up."""
        self.bare = bare_jid(config.jid) or config.jid
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self.keepalive = keepalive
        self.client: ClientXMPP | None = None
        self.sessions = 0
        """How many sessions were established so far (a reconnect adds one)."""
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        self._inbox: asyncio.Queue[ET.Element] = asyncio.Queue()
        self._ended: asyncio.Future[Any] | None = None

    # -- lifecycle

    async def run(self, stopping: asyncio.Event) -> None:
        """Stay connected until `stopping` is set; stored stanzas are drained before returning."""
        if self.bare in _LINKS:
            logger.warning("an XMPP link for this account already runs in this process")
            return
        _LINKS[self.bare] = self
        consumer = asyncio.create_task(self._consume(stopping))
        failures = 0
        try:
            while not stopping.is_set():
                try:
                    established = await self._one_session(stopping)
                except AuthError as exc:
                    self.last_error = exc.reason
                    logger.warning("XMPP login refused; retrying later")
                    established = False
                    failures = max(failures, 4)
                except TransientError as exc:
                    self.last_error = exc.reason
                    established = False
                except (OSError, ssl.SSLError, ValueError) as exc:
                    # An unreadable CA file, a broken address: say so and keep trying.
                    self.last_error = f"cannot connect: {type(exc).__name__}"
                    logger.warning("XMPP link: %s", self.last_error)
                    established = False
                    failures = max(failures, 4)
                failures = 0 if established else failures + 1
                if stopping.is_set():
                    break
                delay = min(self.reconnect_max, self.reconnect_min * 2 ** max(0, failures - 1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay * random.uniform(0.8, 1.0))
        finally:
            if _LINKS.get(self.bare) is self:
                del _LINKS[self.bare]
            await self._drain_then_stop(consumer)

    async def _drain_then_stop(self, consumer: asyncio.Task[None]) -> None:
        """Give the consumer a moment to store what arrived, then end it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._inbox.join(), 3)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer

    def _make_client(self) -> ClientXMPP:
        cfg = self.config
        resource = "tresen-" + secrets.token_hex(4)
        client = ClientXMPP(f"{self.bare}/{resource}", cfg.password)
        ctx = ssl.create_default_context(cafile=cfg.tls_ca_file)
        if cfg.tls_insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client.ssl_context = ctx
        client.enable_direct_tls = cfg.direct_tls
        client.enable_starttls = not cfg.direct_tls
        client.enable_plaintext = cfg.allow_plain
        if cfg.allow_plain:
            mechanisms = client.plugin["feature_mechanisms"]
            mechanisms.config["unencrypted_plain"] = True
            mechanisms.config["unencrypted_scram"] = True
        # Customers may see whether the shop is online; the shop does not ask for their presence.
        client.auto_authorize = True
        client.auto_subscribe = False
        client.register_handler(
            Callback(
                "tresen inbound",
                MatchXPath(f"{{{NS_CLIENT}}}message"),
                lambda stanza: self._inbox.put_nowait(stanza.xml),
            )
        )
        return client

    async def _one_session(self, stopping: asyncio.Event) -> bool:
        """Connect once and stay until the stream ends; True when a session was established."""
        loop = asyncio.get_running_loop()
        client = self._make_client()
        started: asyncio.Future[Any] = loop.create_future()
        ended: asyncio.Future[Any] = loop.create_future()

        def fail(exc: Exception) -> None:
            if not started.done():
                started.set_exception(exc)

        def on_end(_event: Any) -> None:
            # A moment's grace: a precise reason (certificate, login) may follow the close.
            loop.call_later(0.5, fail, TransientError("the XMPP server closed the connection"))
            if not ended.done():
                ended.set_result(None)

        def on_start(_event: Any) -> None:
            if not started.done():
                started.set_result(None)

        client.add_event_handler("session_start", on_start)
        client.add_event_handler(
            "connection_failed", lambda _e: fail(TransientError("XMPP server not reachable"))
        )

        def on_auth_failed(_event: Any) -> None:
            transport = client.transport
            if transport is None or transport.get_extra_info("ssl_object") is None:
                # slixmpp never sends the password over a stream without TLS unless allowed.
                fail(TransientError("the XMPP server offers no TLS (allow_plain is off)"))
            else:
                fail(AuthError("XMPP login refused"))

        def on_bad_certificate(_event: Any) -> None:
            fail(TransientError("the XMPP server's TLS certificate is not trusted (tls_ca_file?)"))

        client.add_event_handler("failed_all_auth", on_auth_failed)
        client.add_event_handler("ssl_invalid_chain", on_bad_certificate)
        client.add_event_handler("disconnected", on_end)
        if self.config.host:
            client.connect(self.config.host, self.config.port)
        else:
            client.connect()
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {started, stop_wait},
                timeout=self.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if started not in done or started.exception() is not None:
                error = started.exception() if started.done() else None
                client.cancel_connection_attempt()
                client.abort()
                if stop_wait in done:
                    return False
                raise error or TransientError("XMPP connection timed out")
            self.client = client
            self._ended = ended
            # Initial presence: the server now hands over what was stored while we were away.
            client.send_presence()
            self.sessions += 1
            self.last_error = None
            self.connected.set()
            logger.info("XMPP account connected (session %d)", self.sessions)
            await self._catch_up(client, ended)
            await self._keep_alive(client, ended, stop_wait)
            if not ended.done():
                await client.disconnect(wait=2.0)
            return True
        finally:
            stop_wait.cancel()
            if not started.done():
                started.cancel()
            elif not started.cancelled():
                started.exception()  # retrieved: no "exception never retrieved" warning
            self.connected.clear()
            self.client = None
            self._ended = None
            # slixmpp's send loop of this client would otherwise wait forever (one per attempt).
            sender = getattr(client, "_run_out_filters", None)
            if sender is not None:
                sender.cancel()
            logger.info("XMPP account disconnected")

    async def _keep_alive(
        self, client: ClientXMPP, ended: asyncio.Future[Any], stop_wait: asyncio.Future[Any]
    ) -> None:
        """Wait for the end of the session, pinging the server now and then to notice a dead link."""
        while True:
            done, _ = await asyncio.wait(
                {ended, stop_wait}, timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                return
            try:
                await self._confirm(client, ended)
            except TransientError:
                logger.warning("the XMPP server stopped answering; reconnecting")
                client.abort()
                return

    # -- inbound

    async def _catch_up(self, client: ClientXMPP, ended: asyncio.Future[Any]) -> None:
        """Read our archive (XEP-0313) since the newest stored message: what reached a session
        that died before storing it (a killed worker) is not lost. Without MAM: nothing to do."""
        if self.since is None:
            return
        try:
            newest = await self.since()
        except Exception:
            logger.exception("XMPP catch-up: the newest stored message could not be read")
            return
        if newest is None:
            return
        start = (newest - CATCH_UP_MARGIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        after: str | None = None
        fetched = 0
        for _ in range(MAM_MAX_PAGES):
            iq = client.make_iq_set()
            query = ET.Element(f"{{{NS_MAM}}}query", {"queryid": "tresen-" + secrets.token_hex(6)})
            form = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "submit"})
            for var, value in (("FORM_TYPE", NS_MAM), ("start", start)):
                field = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var})
                ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
            rsm = ET.SubElement(query, f"{{{NS_RSM}}}set")
            ET.SubElement(rsm, f"{{{NS_RSM}}}max").text = str(MAM_PAGE)
            if after:
                ET.SubElement(rsm, f"{{{NS_RSM}}}after").text = after
            iq.append(query)
            answer = asyncio.ensure_future(iq.send(timeout=self.confirm_timeout * 3))
            done, _ = await asyncio.wait({answer, ended}, return_when=asyncio.FIRST_COMPLETED)
            if answer not in done:
                answer.cancel()
                return
            try:
                fin = answer.result().xml.find(f"{{{NS_MAM}}}fin")
            except (IqError, IqTimeout):
                logger.info("XMPP catch-up: the server keeps no archive (mod_mam?)")
                return
            if fin is None:
                return
            last = fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}last")
            count = fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count")
            fetched += int(count.text) if count is not None and (count.text or "").isdigit() else 0
            if fin.get("complete") in ("true", "1") or last is None or not last.text:
                break
            after = last.text
        self.caught_up = fetched
        logger.info("XMPP catch-up read the archive since the newest stored message")

    async def receive(self, stanzas: list[ET.Element]) -> ParsedWebhook:
        """Parse stanzas as the stream handed them over and store them (raises when storing fails)."""
        parsed = merge([_parse_safely(x, self.bare) for x in stanzas])
        if parsed.messages or parsed.statuses:
            await self.sink(parsed)
        return parsed

    async def _consume(self, stopping: asyncio.Event) -> None:
        """Hand arrived stanzas to the sink in order; keep them until the sink stored them."""
        failures = 0
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty() and len(batch) < 50:
                batch.append(self._inbox.get_nowait())
            while True:
                try:
                    await self.receive(batch)
                    failures = 0
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # the batch stays; the database may come back
                    failures += 1
                    logger.exception("storing XMPP stanzas failed; retrying")
                    await asyncio.sleep(min(30.0, 0.5 * 2**failures))
            for _ in batch:
                self._inbox.task_done()

    # -- outbound

    def _session(self) -> tuple[ClientXMPP, asyncio.Future[Any]]:
        client, ended = self.client, self._ended
        if client is None or ended is None or ended.done() or not client.is_connected():
            raise TransientError("the XMPP account is not connected", code="not_connected")
        return client, ended

    async def send_chat(
        self, to: str, body: str, stanza_id: str, oob_url: str | None = None
    ) -> None:
        """Send a chat message with a receipt request; returns once the server has taken it."""
        client, ended = self._session()
        msg = client.make_message(mto=to, mbody=body, mtype="chat")
        msg["id"] = stanza_id
        if oob_url:
            # XEP-0066: clients show the file the URL names (inline when the body is the URL).
            oob = ET.Element(f"{{{NS_OOB}}}x")
            ET.SubElement(oob, f"{{{NS_OOB}}}url").text = oob_url
            msg.append(oob)
        msg.append(ET.Element(f"{{{NS_RECEIPTS}}}request"))
        msg.append(ET.Element(f"{{{NS_MARKERS}}}markable"))
        msg.append(ET.Element(f"{{{NS_SID}}}origin-id", {"id": stanza_id}))
        msg.send()
        await self._confirm(client, ended)

    async def send_receipt(self, to: str, ref: str) -> None:
        """Tell the customer's client we have stored its message (XEP-0184)."""
        client, ended = self._session()
        msg = client.make_message(mto=to)
        msg["id"] = OWN_ID_PREFIX + "r-" + secrets.token_hex(8)
        msg.append(ET.Element(f"{{{NS_RECEIPTS}}}received", {"id": ref}))
        msg.send()
        await self._confirm(client, ended)

    async def _confirm(self, client: ClientXMPP, ended: asyncio.Future[Any]) -> None:
        """Ping the server: the stream is ordered, so an answer means it processed what we sent."""
        iq = client.make_iq_get(ito=client.boundjid.domain)
        iq.append(ET.Element(f"{{{NS_PING}}}ping"))
        pong: asyncio.Future[Any] = asyncio.ensure_future(iq.send(timeout=self.confirm_timeout))
        try:
            done, _ = await asyncio.wait(
                {pong, ended}, timeout=self.confirm_timeout + 1, return_when=asyncio.FIRST_COMPLETED
            )
            if pong not in done:
                raise TransientError(
                    "the XMPP connection dropped before the server confirmed", code="unconfirmed"
                )
            try:
                pong.result()
            except IqError:
                pass  # an error answer still proves the server processed the stream up to here
            except IqTimeout as exc:
                raise TransientError("the XMPP server did not answer", code="timeout") from exc
        finally:
            if not pong.done():
                pong.cancel()


# ---------------------------------------------------------------------------------------------
# The channel adapter.


def _media_kind(url: str, declared: str | None = None) -> str:
    """image, audio, video or document, from a declared type or the URL's file extension."""
    top = (declared or "").split("/", 1)[0]
    if top in ("image", "audio", "video"):
        return top
    ext = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
    for kind, exts in (
        ("image", {"jpg", "jpeg", "png", "gif", "webp"}),
        ("audio", {"ogg", "opus", "mp3", "m4a", "aac"}),
        ("video", {"mp4", "webm", "mov", "3gp"}),
    ):
        if ext in exts:
            return kind
    return "document"


async def _ignore(parsed: ParsedWebhook) -> None:
    """A sink for the live check's short session: whatever arrives is left to the real link."""


async def _public_host(host: str, port: int) -> bool:
    """Whether every address a host name resolves to is a public one."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    return bool(addresses) and all(a.is_global for a in addresses)


class XmppChannel(ChannelBase):
    """One XMPP account: sends through the live link of this process; inbound comes from the link."""

    kind: ClassVar[str] = "xmpp"
    display_name: ClassVar[str] = "XMPP"
    address_form: ClassVar[str | None] = "bare XMPP address name@server (stored lower-case)"
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = "xmpp"
    simulator: ClassVar[str | None] = "xmpp"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "the XMPP server named below, and the customer's own server (federation)",
        "where those servers are operated",
        (),
        "the business's contract with its XMPP host",
        "the XMPP host's data processing agreement and location",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """A lower-cased bare JID."""
        return address_bare_jid(raw)

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """None: tresen offers no xmpp: links yet."""
        return None

    @staticmethod
    def privacy_detail(config: Mapping[str, Any]) -> str:
        """The XMPP server of the business's account."""
        jid = str(config.get("jid", ""))
        return f"server {config.get('host') or jid.partition('@')[2] or '?'}"

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_length=MAX_BODY_LENGTH,
        window=None,
        templates=False,
        media=True,
        interactive=False,
        messages_per_second=5.0,
    )
    config_type: ClassVar[type[XmppConfig]] = XmppConfig

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient) -> None:
        self.config = msgspec.convert(dict(config), XmppConfig)
        self.http = http
        self.messages_per_second = self.config.messages_per_second

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise an XMPP account configuration."""
        try:
            cfg = msgspec.convert(dict(config), XmppConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError("xmpp channel: {detail}", params={"detail": str(exc)}) from exc
        try:
            jid = JID(cfg.jid.strip())
        except (InvalidJID, ValueError) as exc:
            raise ConfigError(
                "xmpp channel: jid is not a valid JID ({detail})", params={"detail": str(exc)}
            ) from exc
        if not jid.user or not jid.domain:
            raise ConfigError("xmpp channel: jid must look like shop@example.com")
        if not cfg.password:
            raise ConfigError("xmpp channel: password is required")
        if not 0 < cfg.port < 65536:
            raise ConfigError("xmpp channel: port must be a TCP port (1-65535)")
        if cfg.messages_per_second <= 0:
            raise ConfigError("xmpp channel: messages_per_second must be positive")
        server = cfg.host.strip() or jid.domain
        for flag in ("allow_plain", "tls_insecure", "allow_private_media"):
            if getattr(cfg, flag) and not _is_loopback(server):
                raise ConfigError(
                    "xmpp channel: {flag} is only allowed for a server on loopback "
                    "(use tls_ca_file for a private or self-signed certificate)",
                    params={"flag": flag},
                )
        out = msgspec.to_builtins(cfg)
        out["jid"] = jid.bare
        out["host"] = cfg.host.strip()
        return dict(out)

    def handshake(self, request: WebhookRequest) -> str:
        """XMPP has no webhook."""
        raise WebhookRejected(404, "the xmpp channel has no webhook; tresen stays connected")

    def verify(self, request: WebhookRequest) -> None:
        """XMPP has no webhook: every call is refused."""
        raise WebhookRejected(405, "the xmpp channel has no webhook; tresen stays connected")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse one serialised <message/> stanza (the body) into typed events."""
        return parse_stanza_text(request.body.decode("utf-8", "replace"), self.config.jid)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send a text, or a file as its signed, expiring link (XEP-0066), through the live link."""
        oob: str | None = None
        if message.content_kind == ContentKind.MEDIA:
            oob = message.payload.get("link")
            if not isinstance(oob, str) or not oob.startswith(("https://", "http://")):
                raise PermanentError("the file of this message has no link", code="no_file")
            body = f"{message.body}\n{oob}" if message.body else oob
        elif message.content_kind == ContentKind.TEXT and message.body:
            body = message.body
        else:
            raise PermanentError(
                f"xmpp can carry text and files only, not {message.content_kind.value}",
                code="unsupported",
            )
        to = bare_jid(message.to)
        if to is None or "@" not in to:
            raise PermanentError("the customer's address is not a valid JID", code="bad_jid")
        link = live_link(self.config.jid)
        if link is None:
            raise TransientError("the XMPP account is not connected", code="not_connected")
        stanza_id = OWN_ID_PREFIX + message.client_reference
        await link.send_chat(to, body, stanza_id, oob)
        return SendResult(provider_message_id=stanza_id)

    async def check(self) -> str | None:
        """Sign in once with a link of its own (the running link is left alone), then leave."""
        link = XmppLink(self.config, _ignore, connect_timeout=15.0)
        stopping = asyncio.Event()
        session = asyncio.create_task(link._one_session(stopping))
        connected = asyncio.create_task(link.connected.wait())
        try:
            await asyncio.wait({session, connected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.set()
            connected.cancel()
        try:
            established = await asyncio.wait_for(session, 10)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TransientError(f"cannot connect: {type(exc).__name__}") from exc
        if not established:
            raise TransientError("XMPP connection timed out")
        return link.bare

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """The file a customer's message links to (XEP-0066 out-of-band URL)."""
        url = payload.get("oob_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return []
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:200] or None
        return [MediaRef(kind=_media_kind(url), ref={"url": url}, filename=name)]

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Download a customer's file through the media limits; never from a private network."""
        url = str(ref.ref.get("url") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise PermanentError("the file link is not an http(s) URL", code="media_url")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not self.config.allow_private_media and not await _public_host(parts.hostname, port):
            raise PermanentError(
                "the file link points into a private network; not fetched", code="media_url"
            )
        # No redirects: a public URL must not lead the download into a private network.
        fetched = await download(
            self.http,
            url,
            max_bytes,
            provider="the customer's file server",
            follow_redirects=self.config.allow_private_media,
        )
        return FetchedMedia(fetched.content, fetched.content_type, ref.filename)

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Send the delivery receipt the customer's client asked for, once the message is stored."""
        to, ref = str(data.get("receipt_to") or ""), str(data.get("receipt_id") or "")
        if not to or not ref:
            return
        link = live_link(self.config.jid)
        if link is None:
            raise TransientError("the XMPP account is not connected", code="not_connected")
        await link.send_receipt(to, ref)
