"""German and English for the web pages: gettext catalogs (Babel .po) and locale formatting."""

from __future__ import annotations

import contextvars
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LOCALE_DIR = Path(__file__).parent / "locale"
current_language: contextvars.ContextVar[str] = contextvars.ContextVar(
    "language", default=DEFAULT_LANGUAGE
)


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


def ngettext(singular: str, plural: str, n: int) -> str:
    """Singular or plural, translated (the catalogs key plurals by their singular)."""
    return gettext(singular if n == 1 else plural)


def pick_language(preferred: str | None, accept_language: str | None) -> str:
    """The user's choice, else the browser's first supported language, else German."""
    if preferred in LANGUAGES:
        return preferred
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def when(value: datetime | None, time_zone: str = "Europe/Berlin") -> str:
    """A timestamp formatted for the current language, in the workspace's time zone."""
    if value is None:
        return ""
    return format_datetime(value, "short", tzinfo=_zone(time_zone), locale=current_language.get())


def number(value: float) -> str:
    """A number formatted for the current language."""
    return format_decimal(value, locale=current_language.get())


@cache
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)
