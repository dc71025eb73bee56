"""German and English for the web pages: gettext catalogs (Babel .po) and locale formatting."""

from __future__ import annotations

import contextvars
import re
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from tresen.domain.errors import DomainError, from_record

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_ZONE = "Europe/Berlin"
current_language: contextvars.ContextVar[str] = contextvars.ContextVar(
    "language", default=DEFAULT_LANGUAGE
)
current_zone: contextvars.ContextVar[str] = contextvars.ContextVar("zone", default=DEFAULT_ZONE)
"""The signed-in person's workspace time zone (set with the person, like the language)."""


@cache
def catalog(language: str) -> dict[str, str]:
    """Translations of one language (English is the source language)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    return {str(m.id): str(m.string) for m in po if m.id and m.string and not m.fuzzy}


def gettext(message: str) -> str:
    """The message in the current language."""
    return catalog(current_language.get()).get(message, message)


def error_text(exc: BaseException) -> str:
    """A refusal for a page: a DomainError rendered in the current language from its template."""
    if isinstance(exc, DomainError) and gettext(exc.template) != exc.template:
        return exc.text(gettext)
    return said(exc.message if isinstance(exc, DomainError) else str(exc))


def reason_text(stored: str | None) -> str:
    """A stored reason in the current language: a recorded DomainError translated, else as is."""
    error = from_record(stored)
    return error.text(gettext) if error is not None else (stored or "")


def ngettext(singular: str, plural: str, n: int) -> str:
    """Singular or plural, translated (the catalogs key plurals by their singular)."""
    return gettext(singular if n == 1 else plural)


_SERVICE_PATTERNS = (
    (re.compile(r"^the shortcut /(\S+) exists already$"), "the shortcut /{0} exists already"),
    (re.compile(r"^unknown variable \{(\w+)\}$"), "unknown variable {{{0}}}"),
    (
        re.compile(r"^a user with the e-mail (\S+) exists already$"),
        "a user with the e-mail {0} exists already",
    ),
    (re.compile(r"^not an e-mail address: '(.*)'$"), "not an e-mail address: {0}"),
    (
        re.compile(r"^a topic with the keyword '(.*)' exists$"),
        "a topic with the keyword {0} exists",
    ),
    (
        re.compile(r"^'(.*)' is a command word and cannot be a keyword$"),
        "{0} is a command word and cannot be a keyword",
    ),
    (
        re.compile(r"^unknown time zone '(.*)'(?: \(e\.g\. Europe/Berlin\))?$"),
        "unknown time zone {0} (e.g. Europe/Berlin)",
    ),
    (
        re.compile(r"^(?:(\w{3}): )?'(.*)' is not a time range like 09:00-18:00$"),
        "{0} {1} is not a time range like 09:00-18:00",
    ),
)
"""Service messages that carry a value: the English pattern and the catalog id it maps to."""


def said(message: str) -> str:
    """A service's English error message in the current language (as it is if not in the catalog)."""
    if (exact := gettext(message)) != message:
        return exact
    for pattern, msgid in _SERVICE_PATTERNS:
        if found := pattern.match(message):
            translated = gettext(msgid)
            if translated != msgid:
                return translated.format(*(g or "" for g in found.groups())).strip()
    return message


def pick_language(preferred: str | None, accept_language: str | None) -> str:
    """The user's choice, else the browser's first supported language, else German."""
    if preferred in LANGUAGES:
        return preferred
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def when(value: datetime | None, time_zone: str | None = None, *, zone: bool = False) -> str:
    """A timestamp in the current language and the workspace's time zone (named if `zone`)."""
    if value is None:
        return ""
    name = time_zone or current_zone.get()
    text = format_datetime(value, "short", tzinfo=_zone(name), locale=current_language.get())
    return f"{text} ({name})" if zone else text


def number(value: float) -> str:
    """A number formatted for the current language."""
    return format_decimal(value, locale=current_language.get())


@cache
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)
