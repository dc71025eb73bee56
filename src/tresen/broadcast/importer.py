"""Subscriber import from CSV: every row carries its proof of consent, or it is refused."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import links
from tresen.broadcast.topics import ALL_TOPICS, CONFIRMED
from tresen.db.tables import ChannelRow, ConsentEvent, Contact, ContactIdentity, Subscription, Topic
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy import audit
from tresen.privacy.suppression import Suppressed, check_import

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_FIELD = 500
REQUIRED = ("channel", "address", "consent_source", "consent_at")
PROOF_ANY = ("consent_text_version", "consent_proof")
OPTIONAL = ("language", "name", "link_tracking")
KNOWN = frozenset(REQUIRED + PROOF_ANY + OPTIONAL)
IMPORTABLE = ("whatsapp", "sms", "telegram", "messenger", "instagram", "email", "xmpp")
_YES = {"1", "yes", "ja", "true", "y", "j", "x"}
_NO = {"", "0", "no", "nein", "false", "n"}
_PHONE_NOISE = re.compile(r"[\s\-()/.\u00a0]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_JID = re.compile(r"[^@\s/]{1,256}@[^@\s/]+")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header, size)."""


@dataclass(frozen=True)
class Row:
    """One data row as read from the file (not yet checked against the database)."""

    line: int
    channel: str
    address: str
    consent_source: str
    consent_at: datetime
    text_version: str
    proof: str
    language: str
    name: str
    link_tracking: bool


@dataclass(frozen=True)
class Problem:
    """Why one line was refused."""

    line: int
    message: str


@dataclass
class Parsed:
    """The rows of a file and the lines refused while reading it."""

    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    records: int = 0


@dataclass
class ImportReport:
    """What an import did (or would do, in a dry run)."""

    topic: str
    dry_run: bool
    records: int = 0
    imported: int = 0
    already: int = 0
    problems: list[Problem] = field(default_factory=list)
    written: bool = False

    def lines(self) -> list[str]:
        """The report as printable lines."""
        verb = "would import" if self.dry_run or not self.written else "imported"
        head = (
            f"{self.records} rows: {verb} {self.imported}, already subscribed {self.already}, "
            f"refused {len(self.problems)}"
        )
        return [head, *(f"line {p.line}: {p.message}" for p in self.problems)]


def decode(data: bytes) -> str:
    """The file as text (UTF-8, with or without BOM), or an error saying where it is not."""
    if len(data) > MAX_BYTES:
        raise ImportFileError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"the file is not UTF-8 (line {line}, byte {exc.start}); save it as "
            "'CSV UTF-8' and try again"
        ) from exc


def _delimiter(text: str) -> str:
    """Comma, semicolon (German Excel) or tab, as the header line uses it."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each record; a broken record raises ImportFileError."""
    reader = csv.reader(io.StringIO(text, newline=""), csv.excel, delimiter=delimiter)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"line {start}: the CSV is malformed: {exc}") from exc
        yield start, fields
        start = reader.line_num + 1


def parse_time(raw: str) -> datetime:
    """An ISO 8601 date or time (UTC when it has no offset), not in the future."""
    text = raw.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise ValueError(
            f"consent_at {raw[:40]!r} is not a date or time like 2025-03-01 or "
            "2025-03-01T10:15:00+01:00"
        ) from exc
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > utcnow():
        raise ValueError("consent_at lies in the future")
    return when


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def parse_csv(data: bytes) -> Parsed:
    """Read a subscriber CSV: header check, then every record becomes a row or a problem."""
    text = decode(data)
    if not text.strip():
        raise ImportFileError("the file is empty")
    if "\x00" in text:
        raise ImportFileError("the file contains NUL bytes; it is not a CSV text file")
    records = _records(text, _delimiter(text))
    header_line, header = next(records, (1, []))
    names = [_clean(h).lower().replace(" ", "_") for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing or not any(c in names for c in PROOF_ANY):
        wanted = ", ".join(
            missing + ([] if any(c in names for c in PROOF_ANY) else [" or ".join(PROOF_ANY)])
        )
        raise ImportFileError(
            f"line {header_line}: the header lacks {wanted}; columns: channel, address, "
            "consent_source, consent_at, consent_text_version and/or consent_proof "
            "(optional: language, name, link_tracking)"
        )
    unknown = [n for n in names if n and n not in KNOWN]
    if unknown:
        raise ImportFileError(f"line {header_line}: unknown columns {unknown}")
    if len(set(names) - {""}) != len([n for n in names if n]):
        raise ImportFileError(f"line {header_line}: a column name appears twice")
    parsed = Parsed()
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # blank line
        parsed.records += 1
        if parsed.records > MAX_ROWS:
            raise ImportFileError(f"more than {MAX_ROWS} rows; split the file")
        try:
            parsed.rows.append(_row(line, names, fields))
        except ValueError as exc:
            parsed.problems.append(Problem(line, str(exc)))
    return parsed


def _row(line: int, names: list[str], fields: list[str]) -> Row:
    if len(fields) != len(names):
        raise ValueError(f"{len(fields)} fields, the header has {len(names)}")
    values = {n: _clean(f) for n, f in zip(names, fields, strict=True) if n}
    for name, value in values.items():
        if len(value) > MAX_FIELD:
            raise ValueError(f"{name} is longer than {MAX_FIELD} characters")
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError(f"{name} contains control characters")
    for name in ("channel", "address"):
        if not values.get(name):
            raise ValueError(f"{name} is empty")
    proof = [c for c in ("consent_source", "consent_at") if not values.get(c)]
    if proof or not any(values.get(c) for c in PROOF_ANY):
        lacking = proof + (
            [] if any(values.get(c) for c in PROOF_ANY) else [" or ".join(PROOF_ANY)]
        )
        raise ValueError(f"no proof of consent: {', '.join(lacking)} empty")
    language = values.get("language", "").lower() or "de"
    if language not in ("de", "en"):
        raise ValueError(f"language {language!r} is not de or en")
    tracking = values.get("link_tracking", "").lower()
    if tracking not in _YES | _NO:
        raise ValueError(f"link_tracking {tracking!r} is not yes or no")
    return Row(
        line=line,
        channel=values["channel"],
        address=values["address"],
        consent_source=values["consent_source"],
        consent_at=parse_time(values["consent_at"]),
        text_version=values.get("consent_text_version", ""),
        proof=values.get("consent_proof", ""),
        language=language,
        name=values.get("name", ""),
        link_tracking=tracking in _YES,
    )


def phone(raw: str, *, bare_digits: bool) -> str:
    """Digits of a number with country code (+49..., 0049...; bare digits only if allowed)."""
    text = _PHONE_NOISE.sub("", raw)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif bare_digits and text.isdigit() and not text.startswith("0"):
        digits = text
    else:
        raise ValueError(f"phone number {raw!r} needs its country code, e.g. +49 151 12345678")
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        raise ValueError(f"{raw!r} is not a phone number (7 to 15 digits with country code)")
    return digits


def normalise_address(kind: str, raw: str) -> str:
    """The address as the channel stores it (wa_id digits, +E.164, chat id, lower-case e-mail)."""
    if kind == "whatsapp":
        return phone(raw, bare_digits=True)
    if kind == "sms":
        return "+" + phone(raw, bare_digits=False)
    if kind == "telegram":
        if not re.fullmatch(r"-?[0-9]{1,20}", raw):
            raise ValueError(f"a Telegram chat id is a number, not {raw[:40]!r}")
        return raw
    if kind in ("messenger", "instagram"):
        if not re.fullmatch(r"[0-9]{1,64}", raw):
            raise ValueError(f"a {kind} id (PSID/IGSID) is digits, not {raw[:40]!r}")
        return raw
    if kind == "email":
        if not _EMAIL.fullmatch(raw):
            raise ValueError(f"{raw[:60]!r} is not an e-mail address")
        return raw.lower()
    if kind == "xmpp":
        if not _JID.fullmatch(raw):
            raise ValueError(f"{raw[:60]!r} is not a bare XMPP address (name@server)")
        return raw.lower()
    raise ValueError(f"subscribers of {kind} channels cannot be imported")


def _channel_lookup(channels: list[ChannelRow]) -> dict[str, ChannelRow | str]:
    """Channel by id, name (case-insensitive) or kind; an ambiguous key maps to an error text."""
    out: dict[str, ChannelRow | str] = {}
    for c in channels:
        out[c.id] = c
    for key_of in (lambda c: c.name.casefold(), lambda c: c.kind):
        seen: dict[str, list[ChannelRow]] = {}
        for c in channels:
            seen.setdefault(key_of(c), []).append(c)
        for key, found in seen.items():
            if key in out:
                continue
            out[key] = (
                found[0]
                if len(found) == 1
                else (f"{len(found)} channels are called {key!r}; give the channel id")
            )
    return out


def proof_hash(row: Row, topic: Topic) -> str:
    """SHA-256 over the row's proof of consent, as stored in the consent event."""
    canonical = "\x1f".join(
        (
            "import-v1",
            topic.keyword,
            row.consent_source,
            row.consent_at.isoformat(),
            row.text_version,
            row.proof,
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _opted_out(session: AsyncSession, contact_id: str, topic: Topic) -> bool:
    """Whether the contact ever withdrew this topic (or all topics)."""
    found = await session.scalar(
        select(ConsentEvent.id)
        .where(
            ConsentEvent.contact_id == contact_id,
            ConsentEvent.purpose.in_((f"topic:{topic.keyword}", ALL_TOPICS)),
            ConsentEvent.action == "withdrawn",
        )
        .limit(1)
    )
    return found is not None


async def import_subscribers(
    session: AsyncSession,
    *,
    secret_key: str,
    workspace_id: str,
    topic: Topic,
    data: bytes,
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor_id: str | None = None,
) -> ImportReport:
    """Check every row, then (unless a dry run, or a row was refused without skip_invalid) import.

    Raises ImportFileError when the file as a whole cannot be read. Writes happen in the
    caller's transaction; nothing is written when the report says `written` is False.
    """
    parsed = parse_csv(data)
    report = ImportReport(topic=topic.keyword, dry_run=dry_run, records=parsed.records)
    report.problems.extend(parsed.problems)
    channels = list(
        await session.scalars(select(ChannelRow).where(ChannelRow.workspace_id == workspace_id))
    )
    lookup = _channel_lookup(channels)
    planned: list[tuple[Row, ChannelRow, str, str | None]] = []
    seen: set[tuple[str, str]] = set()
    for row in parsed.rows:
        found = lookup.get(row.channel) or lookup.get(row.channel.casefold())
        if found is None or isinstance(found, str):
            report.problems.append(
                Problem(
                    row.line, found or f"no channel {row.channel!r} (give its id, name or kind)"
                )
            )
            continue
        try:
            address = normalise_address(found.kind, row.address)
            await check_import(session, secret_key, workspace_id, address)
        except (ValueError, Suppressed) as exc:
            report.problems.append(Problem(row.line, str(exc)))
            continue
        if (found.id, address) in seen:
            report.already += 1  # the same person twice in the file
            continue
        seen.add((found.id, address))
        state, contact_id = await _existing(session, found, address, topic)
        if state == "confirmed":
            report.already += 1
        elif state is not None:
            report.problems.append(Problem(row.line, state))
        else:
            planned.append((row, found, address, contact_id))
    report.problems.sort(key=lambda p: p.line)
    report.imported = len(planned)
    if dry_run or (report.problems and not skip_invalid):
        return report
    for i, (row, channel, address, contact_id) in enumerate(planned):
        await _write(session, workspace_id, topic, row, channel, address, contact_id)
        if i % 500 == 499:
            await session.flush()  # written rows leave the session's memory
    await session.flush()
    await audit.record(
        session,
        workspace_id,
        "subscribers.imported",
        actor_id=actor_id,
        subject_type="topic",
        subject_id=topic.id,
        details={
            "imported": report.imported,
            "already": report.already,
            "refused": len(report.problems),
            "file_sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    report.written = True
    return report


async def _existing(
    session: AsyncSession, channel: ChannelRow, address: str, topic: Topic
) -> tuple[str | None, str | None]:
    """("confirmed", a reason to refuse, or None to import; the contact id of a known address)."""
    contact = await session.scalar(
        select(Contact)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.channel_id == channel.id, ContactIdentity.address == address)
    )
    if contact is None:
        return None, None
    if contact.consent_state in ("refused", "restricted"):
        return "this person refused processing or is restricted; not imported", contact.id
    state = await session.scalar(
        select(Subscription.state).where(
            Subscription.topic_id == topic.id, Subscription.contact_id == contact.id
        )
    )
    if state == CONFIRMED:
        return "confirmed", contact.id
    if await _opted_out(session, contact.id, topic):
        reason = "this person unsubscribed from the topic; an import does not subscribe them again"
        return reason, contact.id
    return None, contact.id


async def _write(
    session: AsyncSession,
    workspace_id: str,
    topic: Topic,
    row: Row,
    channel: ChannelRow,
    address: str,
    contact_id: str | None,
) -> None:
    """Contact and identity (when new), the confirmed subscription and its consent event."""
    now = utcnow()
    sub: Subscription | None = None
    if contact_id is None:
        contact = Contact(
            id=new_id(),
            workspace_id=workspace_id,
            display_name=row.name or None,
            attributes={},
            consent_state="unknown",
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        session.add(
            ContactIdentity(
                id=new_id(),
                workspace_id=workspace_id,
                contact_id=contact.id,
                channel_id=channel.id,
                address=address,
                display_name=row.name or None,
                unreachable=False,
                created_at=now,
            )
        )
    else:
        contact = await session.get_one(Contact, contact_id)
        sub = await session.scalar(
            select(Subscription).where(
                Subscription.topic_id == topic.id, Subscription.contact_id == contact.id
            )
        )
    values: dict[str, Any] = {
        "state": CONFIRMED,
        "channel_id": channel.id,
        "source": "import",
        "language": row.language,
        "token_hash": None,
        "token_expires_at": None,
        "token_used_at": None,
        "requested_at": row.consent_at,
        "confirmed_at": row.consent_at,
        "withdrawn_at": None,
    }
    if sub is None:
        session.add(
            Subscription(
                id=new_id(),
                workspace_id=workspace_id,
                topic_id=topic.id,
                contact_id=contact.id,
                **values,
            )
        )
    else:
        for name, value in values.items():
            setattr(sub, name, value)
    source = f"import: {row.consent_source}" + (f"; proof {row.proof}" if row.proof else "")
    session.add(
        ConsentEvent(
            workspace_id=workspace_id,
            contact_id=contact.id,
            purpose=f"topic:{topic.keyword}",
            action="granted",
            channel_id=channel.id,
            source=source[:200],
            text_version=(row.text_version or row.proof)[:64] or None,
            text_hash=proof_hash(row, topic),
            language=row.language,
            occurred_at=row.consent_at,
        )
    )
    known = contact_id is not None and await links.tracking_allowed(session, contact.id)
    if row.link_tracking and not known:
        await links.record_consent(
            session,
            contact,
            "granted",
            source=source,
            channel_id=channel.id,
            text_version=(row.text_version or row.proof)[:64] or None,
            language=row.language,
            occurred_at=row.consent_at,
        )
