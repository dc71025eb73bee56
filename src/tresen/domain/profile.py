"""The business profile: name, logo, description, opening hours, holidays, time zone, texts.

Stored as JSON under ``Workspace.settings["profile"]``. Opening hours are intervals per weekday
in the business's time zone; a holiday closes a day or gives it its own hours.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tresen.domain.errors import DomainError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGES = ("de", "en")
MAX_TEXT = 1000
MAX_URL = 500
DEFAULT_COLOUR = "#1d4ed8"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_INTERVALS = 4
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")
_HOLIDAY = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*(.*)$")


class ProfileError(DomainError):
    """A profile field that cannot be used, with a message that says which and why."""


Interval = tuple[time, time | None]
"""Open from the first time to the second (None: until midnight)."""


@dataclass(frozen=True)
class Profile:
    """What customers and agents see of the business."""

    name: str = ""
    description: str = ""
    timezone: str = "Europe/Berlin"
    hours: dict[str, list[Interval]] = field(default_factory=dict)
    holidays: dict[date, list[Interval]] = field(default_factory=dict)
    welcome: dict[str, str] = field(default_factory=dict)
    after_hours: dict[str, str] = field(default_factory=dict)
    logo: str | None = None
    privacy_url: str = ""
    """The business's privacy policy, linked from the consent notice on every channel."""
    colour: str = DEFAULT_COLOUR
    """The business's colour (#rrggbb), used by the web chat widget."""

    @property
    def zone(self) -> ZoneInfo:
        """The business's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def has_hours(self) -> bool:
        """Whether any opening hours are set (without any, the business counts as always open)."""
        return any(self.hours.values())


# --- parsing (form text → values) --------------------------------------------------------------


def parse_intervals(text: str) -> list[Interval]:
    """'09:00-12:30, 14:00-18:00' → intervals; empty or 'closed'/'geschlossen' → none."""
    cleaned = text.strip().lower()
    if cleaned in ("", "closed", "geschlossen", "-"):
        return []
    intervals: list[Interval] = []
    for part in cleaned.split(","):
        found = _INTERVAL.match(part)
        if not found:
            raise ProfileError(
                "not_a_time_range",
                "{text!r} is not a time range like 09:00-18:00",
                params={"text": part.strip()},
            )
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        start = _time(h1, m1, part)
        end = None if (h2, m2) in ((24, 0), (0, 0)) else _time(h2, m2, part)
        if end is not None and end <= start:
            raise ProfileError(
                "closing_before_opening",
                "{text!r}: closing must come after opening",
                params={"text": part.strip()},
            )
        intervals.append((start, end))
    if len(intervals) > MAX_INTERVALS:
        raise ProfileError(
            "too_many_ranges", "at most {max} time ranges per day", params={"max": MAX_INTERVALS}
        )
    intervals.sort()
    for (_, end), (start, _) in itertools.pairwise(intervals):
        if end is None or start < end:
            raise ProfileError("ranges_overlap", "time ranges of one day must not overlap")
    return intervals


def _time(hour: int, minute: int, part: str) -> time:
    if hour > 23 or minute > 59:
        raise ProfileError(
            "not_a_time", "{text!r} is not a time of day", params={"text": part.strip()}
        )
    return time(hour, minute)


def format_intervals(intervals: list[Interval]) -> str:
    """Intervals back to the text form ('' when closed)."""
    return ", ".join(
        f"{start:%H:%M}-{'24:00' if end is None else f'{end:%H:%M}'}" for start, end in intervals
    )


def parse_holidays(text: str) -> dict[date, list[Interval]]:
    """One per line: '2026-12-24' (closed) or '2026-12-24 09:00-12:00' (own hours)."""
    holidays: dict[date, list[Interval]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        found = _HOLIDAY.match(line)
        if not found:
            raise ProfileError(
                "holiday_without_date",
                "{text!r} does not start with a date like 2026-12-24",
                params={"text": line.strip()},
            )
        try:
            day = date.fromisoformat(found.group(1))
        except ValueError as exc:
            raise ProfileError(
                "not_a_date", "{text!r} is not a date", params={"text": found.group(1)}
            ) from exc
        holidays[day] = parse_intervals(found.group(2))
    if len(holidays) > 366:
        raise ProfileError("too_many_holidays", "at most 366 holidays")
    return holidays


def check_timezone(name: str) -> str:
    """An IANA time zone name, or a ProfileError."""
    cleaned = name.strip()
    if cleaned not in available_timezones():
        raise ProfileError(
            "unknown_time_zone",
            "unknown time zone {name!r} (e.g. Europe/Berlin)",
            params={"name": cleaned},
        )
    try:
        ZoneInfo(cleaned)
    except ZoneInfoNotFoundError as exc:
        raise ProfileError(
            "unknown_time_zone",
            "unknown time zone {name!r} (e.g. Europe/Berlin)",
            params={"name": cleaned},
        ) from exc
    return cleaned


def check_privacy_url(value: str) -> str:
    """An http(s) address of the privacy policy ('' for none), or a ProfileError."""
    cleaned = value.strip()
    if not cleaned:
        return ""
    parts = urlsplit(cleaned)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in cleaned)
    ):
        raise ProfileError(
            "privacy_url",
            "The privacy policy must be a web address starting with https:// or http://.",
        )
    if len(cleaned) > MAX_URL:
        raise ProfileError(
            "privacy_url_too_long",
            "the privacy policy address is longer than {max} characters",
            params={"max": MAX_URL},
        )
    return cleaned


def check_colour(value: str) -> str:
    """A colour as #rrggbb in lower case ('' gives the default), or a ProfileError."""
    cleaned = value.strip() or DEFAULT_COLOUR
    if not _COLOUR.match(cleaned):
        raise ProfileError("colour", "The colour must be given as #rrggbb, for example #1d4ed8.")
    return cleaned.lower()


def _text(value: str, what: str) -> str:
    cleaned = value.strip()
    if len(cleaned) > MAX_TEXT:
        raise ProfileError(
            "too_long", what + " is longer than {max} characters", params={"max": MAX_TEXT}
        )
    return cleaned


def from_form(form: dict[str, str], logo: str | None) -> Profile:
    """A profile from the settings form's fields, or a ProfileError naming the bad field."""
    hours = {}
    for day in WEEKDAYS:
        try:
            hours[day] = parse_intervals(form.get(f"hours_{day}", ""))
        except ProfileError as exc:
            raise ProfileError(
                exc.code, "{day}: " + exc.template, params={**exc.params, "day": day}
            ) from exc
    return Profile(
        name=_text(form.get("name", ""), "the name")[:100],
        description=_text(form.get("description", ""), "the description"),
        timezone=check_timezone(form.get("timezone", "") or "Europe/Berlin"),
        hours=hours,
        holidays=parse_holidays(form.get("holidays", "")),
        welcome={
            lang: _text(form.get(f"welcome_{lang}", ""), "the welcome message")
            for lang in LANGUAGES
        },
        after_hours={
            lang: _text(form.get(f"after_hours_{lang}", ""), "the after-hours reply")
            for lang in LANGUAGES
        },
        logo=logo,
        privacy_url=check_privacy_url(form.get("privacy_url", "")),
        colour=check_colour(form.get("colour", "")),
    )


# --- storage (JSON in workspace settings) ------------------------------------------------------


def to_json(profile: Profile) -> dict[str, Any]:
    """The profile as JSON for ``Workspace.settings["profile"]``."""
    return {
        "name": profile.name,
        "description": profile.description,
        "timezone": profile.timezone,
        "hours": {day: format_intervals(iv) for day, iv in profile.hours.items()},
        "holidays": {day.isoformat(): format_intervals(iv) for day, iv in profile.holidays.items()},
        "welcome": profile.welcome,
        "after_hours": profile.after_hours,
        "logo": profile.logo,
        "privacy_url": profile.privacy_url,
        "colour": profile.colour,
    }


def from_settings(settings: dict[str, Any] | None, default_name: str = "") -> Profile:
    """The stored profile (defaults where nothing is stored)."""
    data = (settings or {}).get("profile") or {}
    return Profile(
        name=str(data.get("name") or default_name),
        description=str(data.get("description", "")),
        timezone=str(data.get("timezone") or "Europe/Berlin"),
        hours={day: parse_intervals(str(text)) for day, text in (data.get("hours") or {}).items()},
        holidays={
            date.fromisoformat(day): parse_intervals(str(text))
            for day, text in (data.get("holidays") or {}).items()
        },
        welcome={k: str(v) for k, v in (data.get("welcome") or {}).items()},
        after_hours={k: str(v) for k, v in (data.get("after_hours") or {}).items()},
        logo=data.get("logo"),
        privacy_url=str(data.get("privacy_url") or ""),
        colour=str(data.get("colour") or DEFAULT_COLOUR),
    )


# --- opening hours -----------------------------------------------------------------------------


def _day_intervals(profile: Profile, day: date) -> list[Interval]:
    if day in profile.holidays:
        return profile.holidays[day]
    return profile.hours.get(WEEKDAYS[day.weekday()], [])


def is_open(profile: Profile, at: datetime) -> bool:
    """Whether the business is open at an aware moment (no hours set: always open)."""
    if not profile.has_hours:
        return True
    local = at.astimezone(profile.zone)
    now = local.time().replace(tzinfo=None)
    return any(
        start <= now and (end is None or now < end)
        for start, end in _day_intervals(profile, local.date())
    )


def next_opening(profile: Profile, at: datetime, *, days: int = 60) -> datetime | None:
    """The next moment the business opens after an aware moment (None: not within `days`)."""
    if not profile.has_hours:
        return None
    zone = profile.zone
    local = at.astimezone(zone)
    for offset in range(days + 1):
        day = local.date() + timedelta(days=offset)
        for start, _ in _day_intervals(profile, day):
            opening = datetime.combine(day, start, tzinfo=zone)
            # A wall time skipped by a DST change is normalised by a round trip through UTC.
            opening = opening.astimezone(ZoneInfo("UTC")).astimezone(zone)
            if opening > local:
                return opening
    return None
