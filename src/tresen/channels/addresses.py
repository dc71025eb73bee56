"""Customer addresses as people type them, brought into the form a channel kind stores."""

from __future__ import annotations

import re

from tresen.domain.errors import DomainError, Param

MESSAGES: dict[str, str] = {
    "no_country_code": "phone number {value!r} needs its country code, e.g. +49 151 12345678",
    "bad_phone": "{value!r} is not a phone number (7 to 15 digits with country code)",
    "bad_telegram_id": "a Telegram chat id is a number, not {value!r}",
    "bad_meta_id": "a {kind} id (PSID/IGSID) is digits, not {value!r}",
    "bad_email": "{value!r} is not an e-mail address",
    "bad_xmpp": "{value!r} is not a bare XMPP address (name@server)",
    "kind_not_importable": "subscribers of {kind} channels cannot be imported",
}
"""Every refusal by code, in English (the web pages translate them: web/locale)."""

_PHONE_NOISE = re.compile(r"[\s\-()/.\u00a0]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_JID = re.compile(r"[^@\s/]{1,256}@[^@\s/]+")


class AddressError(DomainError):
    """An address that is not one of the kind's addresses; the code names the rule."""

    def __init__(self, code: str, **params: Param) -> None:
        super().__init__(code, MESSAGES[code], params=params)


def phone_digits(raw: str, *, bare_digits: bool) -> str:
    """Digits of a number with country code (+49..., 0049...; bare digits only if allowed)."""
    text = _PHONE_NOISE.sub("", raw)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif bare_digits and text.isdigit() and not text.startswith("0"):
        digits = text
    else:
        raise AddressError("no_country_code", value=raw)
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        raise AddressError("bad_phone", value=raw)
    return digits


def numeric_id(raw: str, pattern: str, code: str, **params: Param) -> str:
    """A provider's numeric user id, unchanged, or AddressError(code)."""
    if not re.fullmatch(pattern, raw):
        raise AddressError(code, value=raw[:40], **params)
    return raw


def email_address(raw: str) -> str:
    """A lower-cased e-mail address."""
    if not _EMAIL.fullmatch(raw):
        raise AddressError("bad_email", value=raw[:60])
    return raw.lower()


def bare_jid(raw: str) -> str:
    """A lower-cased bare XMPP address (name@server)."""
    if not _JID.fullmatch(raw):
        raise AddressError("bad_xmpp", value=raw[:60])
    return raw.lower()


def none_taken(kind: str) -> str:
    """For kinds whose addresses nobody can type (a web chat visitor id): always refused."""
    raise AddressError("kind_not_importable", kind=kind)
