"""Webhook traffic per channel kind for `tresen bench ingest`: channel config, seed data, signed requests.

Each `Traffic` builds, for one generator connection `w` and unit `u`, the raw HTTP/1.1 requests
a provider would post, in the wire format of the simulator for that kind (`tresen.sim.*`), each
with the checks the parent later runs against the database:

- `["in", provider_message_id]`: an inbound message stored under this id (exactly once);
- `["st", provider_message_id, state]`: an outbound message at least in `state`, or the status
  kept as pending when no message has that id;
- `["wm", address, state, ms]`: every pre-inserted outbound message to `address` sent at or
  before `ms` (milliseconds since the epoch) at least in `state` (Messenger's watermarks).

Outbound message `o` is pre-inserted in state `sent` for recipient `o % KNOWN_SENDERS` with a
synthetic send time `t0_ms + o`, so a watermark for message `o` covers exactly that recipient's
messages up to `o`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

from tresen.channels.sms import segments
from tresen.channels.telegram import SECRET_HEADER
from tresen.sim.sms import sign_request
from tresen.sim.whatsapp import encode_webhook, sign_body

SENDERS = 3000
KNOWN_SENDERS = 2000
REDELIVER_EVERY = 50
API_BASE = "http://127.0.0.1:9"  # nothing is sent during the benchmark

Check = list[Any]
Request = tuple[str, list[Check], bytes]
"""(label, checks, raw HTTP request); label is "in", "redelivery" or a status label."""

TEXT = "Hallo, ist meine Bestellung schon unterwegs? Nummer {n}"


def _http_post(target: str, headers: Mapping[str, str], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(".".join(str(p) for p in parts).encode()).digest()


class Traffic(ABC):
    """The webhooks of one channel kind; subclasses say what one unit of traffic posts."""

    kind: ClassVar[str]
    has_statuses: ClassVar[bool] = True
    """Whether the provider reports on outbound messages (then outbound messages are seeded)."""
    mix: ClassVar[str]

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.run: str = cfg["run"]
        self.concurrency: int = cfg["concurrency"]
        self.channel_id: str = cfg.get("channel_id", "")
        self.port: int = cfg.get("port", 0)
        self.t0_ms: int = cfg.get("t0_ms", 0)
        self.redeliver_every: int = cfg.get("redeliver_every", REDELIVER_EVERY)
        self.path = f"/webhooks/{self.kind}/{self.channel_id}"

    # -- seed ----------------------------------------------------------------------------

    @abstractmethod
    def channel_config(self) -> dict[str, Any]:
        """The configuration `add_channel` stores for the benchmark's channel."""

    def config_after_add(self, webhook_url: str) -> dict[str, Any]:
        """Configuration that needs the channel's own webhook URL (known once it is added)."""
        return {}

    @abstractmethod
    def address(self, n: int) -> str:
        """Customer n's address on this channel."""

    def name(self, n: int) -> str:
        """Customer n's display name."""
        return f"Kunde {n}"

    @abstractmethod
    def out_id(self, o: int) -> str:
        """The provider's id of pre-inserted outbound message o."""

    def out_ref(self, o: int) -> str:
        """Our id (Message.id, 26 characters) of pre-inserted outbound message o."""
        return f"{self.run}{o:018d}"

    def out_sent_ms(self, o: int) -> int:
        """When outbound message o was sent, in milliseconds since the epoch."""
        return self.t0_ms + o

    @staticmethod
    def recipient(o: int) -> int:
        """The customer outbound message o went to (one of the known senders)."""
        return o % KNOWN_SENDERS

    # -- traffic -------------------------------------------------------------------------

    def sender(self, w: int, u: int) -> int:
        """The customer who writes the inbound message of connection w, unit u."""
        return ((u * self.concurrency + w) * 7919) % SENDERS

    @abstractmethod
    def inbound(self, w: int, u: int, now: int) -> Request:
        """The inbound message of connection w, unit u."""

    def statuses(self, w: int, u: int, now: int) -> list[Request]:
        """The status webhooks connection w posts in unit u."""
        return []

    def unit(self, w: int, u: int, now: int) -> list[Request]:
        """All requests of one unit: inbound, statuses, now and then another connection's retry."""
        out = [self.inbound(w, u, now), *self.statuses(w, u, now)]
        c = self.concurrency
        if u % self.redeliver_every == self.redeliver_every - 1 and c > 1:
            _, checks, data = self.inbound((w + 1) % c, u, now)
            out.append(("redelivery", checks, data))
        return out

    def out_index(self, w: int, u: int, lag: int) -> int | None:
        """The outbound message of connection w's unit u-lag (None before the first unit)."""
        return None if u < lag else (u - lag) * self.concurrency + w


class WhatsAppTraffic(Traffic):
    """Cloud API: inbound text plus sent/delivered/read of each outbound message."""

    kind = "whatsapp"
    mix = "1 inbound text + sent/delivered/read statuses (3 per outbound message)"
    phone_number_id = "100000000000001"
    waba_id = "102290129340398"
    app_secret = "bench-app-secret"

    def channel_config(self) -> dict[str, Any]:
        """Cloud API phone number config."""
        return {
            "phone_number_id": self.phone_number_id,
            "app_secret": self.app_secret,
            "verify_token": "bench",
            "access_token": "bench",
            "api_base": API_BASE,
            "messages_per_second": 1000.0,
        }

    def address(self, n: int) -> str:
        """A wa_id (digits)."""
        return f"49170{n:08d}"

    def out_id(self, o: int) -> str:
        """A wamid."""
        return f"wamid.{self.run}.out.{o:09d}"

    def _post(self, value: dict[str, Any]) -> bytes:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "4930123456",
                "phone_number_id": self.phone_number_id,
            },
            **value,
        }
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
        body = encode_webhook(envelope)
        headers = {
            "User-Agent": "facebookexternalua",
            "Accept": "*/*",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_body(self.app_secret, body),
        }
        return _http_post(self.path, headers, body)

    def inbound(self, w: int, u: int, now: int) -> Request:
        """One text message."""
        wamid = f"wamid.{self.run}.in.{w:04d}.{u:07d}"
        n = self.sender(w, u)
        addr = self.address(n)
        data = self._post(
            {
                "contacts": [{"profile": {"name": self.name(n)}, "wa_id": addr}],
                "messages": [
                    {
                        "from": addr,
                        "id": wamid,
                        "timestamp": str(now),
                        "type": "text",
                        "text": {"body": TEXT.format(n=wamid[-7:])},
                    }
                ],
            }
        )
        return ("in", [["in", wamid]], data)

    def statuses(self, w: int, u: int, now: int) -> list[Request]:
        """sent of message u, delivered of u-1, read of u-2 (in order per message, spaced)."""
        out: list[Request] = []
        for lag, state in ((0, "sent"), (1, "delivered"), (2, "read")):
            o = self.out_index(w, u, lag)
            if o is None:
                continue
            wamid = self.out_id(o)
            status: dict[str, Any] = {
                "id": wamid,
                "status": state,
                "timestamp": str(now),
                "recipient_id": self.address(self.recipient(o)),
            }
            if state != "read":
                status["conversation"] = {
                    "id": f"c0ffee{wamid[-9:]}",
                    "origin": {"type": "service"},
                }
                status["pricing"] = {
                    "billable": True,
                    "pricing_model": "PMP",
                    "category": "service",
                }
            out.append((state, [["st", wamid, state]], self._post({"statuses": [status]})))
        return out


class TelegramTraffic(Traffic):
    """Bot API: one Update per customer message; no delivery reports exist."""

    kind = "telegram"
    has_statuses = False
    mix = "1 inbound text Update per unit (Telegram has no delivery statuses)"
    secret_token = "bench-secret-token"
    first_update_id = 300_000_000

    def channel_config(self) -> dict[str, Any]:
        """Bot config."""
        return {
            "bot_token": "123456789:bench-token",
            "secret_token": self.secret_token,
            "api_base": API_BASE,
        }

    def address(self, n: int) -> str:
        """A private chat id (= the user id)."""
        return str(5_000_000_000 + n)

    def out_id(self, o: int) -> str:
        """chat:message_id of a bot message."""
        return f"{self.address(self.recipient(o))}:{1_000_000_000 + o}"

    def inbound(self, w: int, u: int, now: int) -> Request:
        """One Update with a text message, as the Telegram simulator builds it."""
        seq = u * self.concurrency + w
        n = self.sender(w, u)
        chat = int(self.address(n))
        user = {"id": chat, "is_bot": False, "first_name": "Kunde", "last_name": str(n)}
        message = {
            "message_id": seq + 1,
            "from": {**user, "language_code": "de"},
            "chat": {"id": chat, "first_name": "Kunde", "last_name": str(n), "type": "private"},
            "date": now,
            "text": TEXT.format(n=seq),
        }
        update = {"update_id": self.first_update_id + seq, "message": message}
        body = json.dumps(update, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", SECRET_HEADER: self.secret_token}
        return ("in", [["in", f"{chat}:{seq + 1}"]], _http_post(self.path, headers, body))


class MessengerTraffic(Traffic):
    """Messenger Platform: messages, delivery (mids + watermark) and read watermarks."""

    kind = "messenger"
    envelope_object = "page"
    mid_prefix = "m_"
    mix = (
        "1 inbound text + delivery{mids,watermark} of outbound message u + "
        "read{watermark} of message u-2"
    )
    page_id = "300000000000001"
    app_secret = "bench-app-secret"

    def channel_config(self) -> dict[str, Any]:
        """Page config."""
        return {
            "page_id": self.page_id,
            "app_secret": self.app_secret,
            "verify_token": "bench",
            "page_access_token": "bench",
            "api_base": API_BASE,
        }

    def address(self, n: int) -> str:
        """A page-scoped id (digits)."""
        return str(7_000_000_000_000_000 + n)

    def _mid(self, *parts: object) -> str:
        raw = base64.urlsafe_b64encode(_digest(self.run, *parts)[:30]).decode()
        return self.mid_prefix + raw.rstrip("=")

    def out_id(self, o: int) -> str:
        """A message id."""
        return self._mid("out", o)

    def _post(self, event: dict[str, Any], now_ms: int) -> bytes:
        envelope = {
            "object": self.envelope_object,
            "entry": [{"id": self.page_id, "time": now_ms, "messaging": [event]}],
        }
        body = encode_webhook(envelope)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_body(self.app_secret, body),
        }
        return _http_post(self.path, headers, body)

    def _from(self, address: str, now_ms: int) -> dict[str, Any]:
        return {"sender": {"id": address}, "recipient": {"id": self.page_id}, "timestamp": now_ms}

    def inbound(self, w: int, u: int, now: int) -> Request:
        """One text message event."""
        mid = self._mid("in", w, u)
        now_ms = now * 1000
        event = self._from(self.address(self.sender(w, u)), now_ms)
        event["message"] = {"mid": mid, "text": TEXT.format(n=u * self.concurrency + w)}
        return ("in", [["in", mid]], self._post(event, now_ms))

    def statuses(self, w: int, u: int, now: int) -> list[Request]:
        """delivery of message u (by mid and watermark), read watermark of message u-2."""
        out: list[Request] = []
        now_ms = now * 1000
        o = self.out_index(w, u, 0)
        if o is not None:
            addr, mark = self.address(self.recipient(o)), self.out_sent_ms(o)
            event = self._from(addr, now_ms)
            event["delivery"] = {"mids": [self.out_id(o)], "watermark": mark}
            checks: list[Check] = [
                ["st", self.out_id(o), "delivered"],
                ["wm", addr, "delivered", mark],
            ]
            out.append(("delivery", checks, self._post(event, now_ms)))
        o = self.out_index(w, u, 2)
        if o is not None:
            addr, mark = self.address(self.recipient(o)), self.out_sent_ms(o)
            event = self._from(addr, now_ms)
            event["read"] = {"watermark": mark}
            out.append(("read", [["wm", addr, "read", mark]], self._post(event, now_ms)))
        return out


class InstagramTraffic(MessengerTraffic):
    """Instagram messaging: messages and reads per message id (Instagram sends no deliveries)."""

    kind = "instagram"
    envelope_object = "instagram"
    mid_prefix = "aWdf"
    mix = "1 inbound text + read{mid} of outbound message u-1 (Instagram reports no deliveries)"
    page_id = "17841400000000001"

    def address(self, n: int) -> str:
        """An Instagram-scoped id (digits)."""
        return str(6_000_000_000_000_000 + n)

    def statuses(self, w: int, u: int, now: int) -> list[Request]:
        """read of message u-1, by its mid (as the simulator's Instagram mode sends it)."""
        o = self.out_index(w, u, 1)
        if o is None:
            return []
        now_ms = now * 1000
        event = self._from(self.address(self.recipient(o)), now_ms)
        event["read"] = {"mid": self.out_id(o)}
        return [("read", [["st", self.out_id(o), "read"]], self._post(event, now_ms))]


class SmsTraffic(Traffic):
    """Twilio: inbound SMS form posts plus queued/sent/delivered status callbacks."""

    kind = "sms"
    mix = (
        "1 inbound SMS + queued/sent/delivered status callbacks (3 per outbound message, "
        "to the status_callback_url with tresen_ref)"
    )
    account_sid = "AC" + "0" * 31 + "1"
    auth_token = "bench-auth-token"
    phone_number = "+4930123456700"

    def public_url(self, target: str) -> str:
        """The URL as Twilio was given it (TRESEN_BASE_URL + path + query)."""
        return f"http://127.0.0.1:{self.port}{target}"

    def channel_config(self) -> dict[str, Any]:
        """Sender config (status_callback_url follows in `config_after_add`)."""
        return {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.phone_number,
            "api_base": API_BASE,
            "messages_per_second": 100.0,
        }

    def config_after_add(self, webhook_url: str) -> dict[str, Any]:
        """Status callbacks go to the channel's own webhook, as the SMS end-to-end tests set it."""
        return {"status_callback_url": webhook_url}

    def address(self, n: int) -> str:
        """An E.164 mobile number."""
        return f"+49170{n:08d}"

    def _sid(self, *parts: object) -> str:
        return "SM" + _digest(self.run, *parts)[:16].hex()

    def out_id(self, o: int) -> str:
        """A MessageSid."""
        return self._sid("out", o)

    def _post(self, target: str, params: list[tuple[str, str]], token: str) -> bytes:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign_request(self.auth_token, self.public_url(target), params),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": token,
        }
        return _http_post(target, headers, urlencode(params).encode())

    def inbound(self, w: int, u: int, now: int) -> Request:
        """One inbound SMS with the fields the SMS simulator posts."""
        sid = self._sid("in", w, u)
        body = TEXT.format(n=u * self.concurrency + w)
        params = [
            ("ToCountry", "DE"),
            ("ToState", ""),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("ToCity", ""),
            ("FromZip", ""),
            ("SmsSid", sid),
            ("FromState", ""),
            ("SmsStatus", "received"),
            ("FromCity", ""),
            ("Body", body),
            ("FromCountry", "DE"),
            ("To", self.phone_number),
            ("ToZip", ""),
            ("NumSegments", str(segments(body).segments)),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", self.address(self.sender(w, u))),
            ("ApiVersion", "2010-04-01"),
        ]
        return ("in", [["in", sid]], self._post(self.path, params, sid[2:]))

    def statuses(self, w: int, u: int, now: int) -> list[Request]:
        """queued of message u, sent of u-1, delivered of u-2 (the simulator's sequence)."""
        out: list[Request] = []
        for lag, state in ((0, "queued"), (1, "sent"), (2, "delivered")):
            o = self.out_index(w, u, lag)
            if o is None:
                continue
            sid = self.out_id(o)
            params = [
                ("AccountSid", self.account_sid),
                ("ApiVersion", "2010-04-01"),
                ("From", self.phone_number),
                ("MessageSid", sid),
                ("MessageStatus", state),
                ("SmsSid", sid),
                ("SmsStatus", state),
                ("To", self.address(self.recipient(o))),
            ]
            if state == "delivered":
                params.append(("RawDlrDoneDate", time.strftime("%y%m%d%H%M", time.gmtime(now))))
            target = f"{self.path}?tresen_ref={self.out_ref(o)}"
            token = hmac.new(sid.encode(), state.encode(), hashlib.sha1).hexdigest()
            out.append((state, [["st", sid, state]], self._post(target, params, token)))
        return out


TRAFFIC: dict[str, type[Traffic]] = {
    t.kind: t
    for t in (WhatsAppTraffic, TelegramTraffic, MessengerTraffic, InstagramTraffic, SmsTraffic)
}


def traffic_for(cfg: Mapping[str, Any]) -> Traffic:
    """The traffic builder for cfg["channel"]."""
    return TRAFFIC[cfg["channel"]](cfg)
