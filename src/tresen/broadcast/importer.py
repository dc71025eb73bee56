"""Subscriber import from CSV: every row carries its proof of consent, or it is refused."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import links
from tresen.broadcast.topics import ALL_TOPICS, CONFIRMED
from tresen.channels import addresses as address_rules
from tresen.channels.registry import CHANNEL_CLASSES, channel_factory, kinds_where
from tresen.db import outbox
from tresen.db.tables import ChannelRow, ConsentEvent, Contact, ContactIdentity, Subscription, Topic
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError, Param
from tresen.domain.events import ConsentChanged, SubscriptionChanged
from tresen.domain.ids import new_id
from tresen.privacy import audit
from tresen.privacy.suppression import Keys, refused_imports

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_FIELD = 500
BATCH = 500  # rows per query and per bulk insert
REQUIRED = ("channel", "address", "consent_source", "consent_at")
PROOF_ANY = ("consent_text_version", "consent_proof")
OPTIONAL = ("language", "name", "link_tracking")
KNOWN = frozenset(REQUIRED + PROOF_ANY + OPTIONAL)
_YES = {"1", "yes", "ja", "true", "y", "j", "x"}
_NO = {"", "0", "no", "nein", "false", "n"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_COLUMNS = (
    "columns: channel, address, consent_source, consent_at, consent_text_version and/or "
    "consent_proof (optional: language, name, link_tracking)"
)
# Every refusal by code, in English; the web pages show them translated (web/locale).
MESSAGES: dict[str, str] = {
    "file_too_large": "the file is larger than {mb} MB",
    "not_utf8": (
        "the file is not UTF-8 (line {line}, byte {byte}); save it as 'CSV UTF-8' and try again"
    ),
    "file_empty": "the file is empty",
    "nul_bytes": "the file contains NUL bytes; it is not a CSV text file",
    "malformed": "line {line}: the CSV is malformed: {detail}",
    "header_lacks": "line {line}: the header lacks {columns}; " + _COLUMNS,
    "header_lacks_proof": (
        "line {line}: the header lacks consent_text_version or consent_proof; " + _COLUMNS
    ),
    "header_lacks_both": (
        "line {line}: the header lacks {columns}, consent_text_version or consent_proof; "
        + _COLUMNS
    ),
    "unknown_columns": "line {line}: unknown columns {columns}",
    "duplicate_column": "line {line}: a column name appears twice",
    "no_rows": "the file has a header but no rows",
    "too_many_rows": "more than {limit} rows; split the file",
    "field_count": "{found} fields, the header has {expected}",
    "too_long": "{column} is longer than {limit} characters",
    "control_characters": "{column} contains control characters",
    "empty": "{column} is empty",
    "no_proof": "no proof of consent: {columns} empty",
    "no_proof_version": "no proof of consent: consent_text_version or consent_proof empty",
    "no_proof_both": (
        "no proof of consent: {columns}, consent_text_version or consent_proof empty"
    ),
    "bad_language": "language {value!r} is not de or en",
    "bad_link_tracking": "link_tracking {value!r} is not yes or no",
    "bad_time": (
        "consent_at {value!r} is not a date or time like 2025-03-01 or 2025-03-01T10:15:00+01:00"
    ),
    "future_time": "consent_at lies in the future",
    **address_rules.MESSAGES,
    "ambiguous_channel": "{count} channels are called {value!r}; give the channel id",
    "no_channel": "no channel {value!r} (give its id, name or kind)",
    "erased": (
        "this address belongs to a person whose data was erased; "
        "they must write to you and consent again before it can be imported"
    ),
    "no_secret_key": "suppression hashes need TRESEN_SECRET_KEY",
    "refused_processing": "this person refused processing or is restricted; not imported",
    "unsubscribed": (
        "this person unsubscribed from the topic; an import does not subscribe them again"
    ),
}
Params = Mapping[str, Param]


def _english(message: str) -> str:
    return message


def render(code: str, params: Params, gettext: Callable[[str], str] = _english) -> str:
    """A refusal in the language `gettext` translates to (English when its words do not fit)."""
    try:
        return gettext(MESSAGES[code]).format(**params)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return MESSAGES[code].format(**params)


class _Refusal(DomainError):
    """A refusal with its code and parameters (message from MESSAGES); str() gives English."""

    def __init__(self, code: str, **params: Param) -> None:
        super().__init__(code, MESSAGES[code], params=params)


class ImportFileError(_Refusal):
    """The file as a whole cannot be read (encoding, header, size)."""


class RowError(_Refusal):
    """One row cannot be imported."""


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
    """Why one line was refused: a code of MESSAGES and its parameters."""

    line: int
    code: str
    params: Params = field(default_factory=dict)

    @classmethod
    def of(cls, line: int, error: RowError) -> Problem:
        """The problem a row error describes."""
        return cls(line, error.code, error.params)

    @property
    def message(self) -> str:
        """In English (the CLI)."""
        return render(self.code, self.params)

    def text(self, gettext: Callable[[str], str]) -> str:
        """The message in the language `gettext` translates to."""
        return render(self.code, self.params, gettext)


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
        raise ImportFileError("file_too_large", mb=MAX_BYTES // (1024 * 1024))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError("not_utf8", line=line, byte=exc.start) from exc


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
            raise ImportFileError("malformed", line=start, detail=str(exc)) from exc
        yield start, fields
        start = reader.line_num + 1


def parse_time(raw: str) -> datetime:
    """An ISO 8601 date or time (UTC when it has no offset), not in the future."""
    text = raw.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise RowError("bad_time", value=raw[:40]) from exc
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > utcnow():
        raise RowError("future_time")
    return when


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def parse_csv(data: bytes) -> Parsed:
    """Read a subscriber CSV: header check, then every record becomes a row or a problem."""
    text = decode(data)
    if not text.strip():
        raise ImportFileError("file_empty")
    if "\x00" in text:
        raise ImportFileError("nul_bytes")
    records = _records(text, _delimiter(text))
    header_line, header = next(records, (1, []))
    names = [_clean(h).lower().replace(" ", "_") for h in header]
    missing = [c for c in REQUIRED if c not in names]
    no_proof = not any(c in names for c in PROOF_ANY)
    if not missing and no_proof:
        raise ImportFileError("header_lacks_proof", line=header_line)
    if missing:
        code = "header_lacks_both" if no_proof else "header_lacks"
        raise ImportFileError(code, line=header_line, columns=", ".join(missing))
    unknown = [n for n in names if n and n not in KNOWN]
    if unknown:
        raise ImportFileError("unknown_columns", line=header_line, columns=repr(unknown))
    if len(set(names) - {""}) != len([n for n in names if n]):
        raise ImportFileError("duplicate_column", line=header_line)
    parsed = Parsed()
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # blank line
        parsed.records += 1
        if parsed.records > MAX_ROWS:
            raise ImportFileError("too_many_rows", limit=MAX_ROWS)
        try:
            parsed.rows.append(_row(line, names, fields))
        except RowError as exc:
            parsed.problems.append(Problem.of(line, exc))
    if not parsed.records:
        raise ImportFileError("no_rows")
    return parsed


def _row(line: int, names: list[str], fields: list[str]) -> Row:
    if len(fields) != len(names):
        raise RowError("field_count", found=len(fields), expected=len(names))
    values = {n: _clean(f) for n, f in zip(names, fields, strict=True) if n}
    for name, value in values.items():
        if len(value) > MAX_FIELD:
            raise RowError("too_long", column=name, limit=MAX_FIELD)
        if _CONTROL.search(value):
            raise RowError("control_characters", column=name)
    for name in ("channel", "address"):
        if not values.get(name):
            raise RowError("empty", column=name)
    lacking = [c for c in ("consent_source", "consent_at") if not values.get(c)]
    no_proof = not any(values.get(c) for c in PROOF_ANY)
    if not lacking and no_proof:
        raise RowError("no_proof_version")
    if lacking:
        raise RowError("no_proof_both" if no_proof else "no_proof", columns=", ".join(lacking))
    language = values.get("language", "").lower() or "de"
    if language not in ("de", "en"):
        raise RowError("bad_language", value=language)
    tracking = values.get("link_tracking", "").lower()
    if tracking not in _YES | _NO:
        raise RowError("bad_link_tracking", value=tracking)
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


def importable_kinds() -> list[str]:
    """The channel kinds whose customers' addresses can be typed into a file."""
    return kinds_where(lambda factory: factory.address_form is not None)


def normalise_address(kind: str, raw: str) -> str:
    """The address as the channel stores it (wa_id digits, +E.164, chat id, lower-case e-mail)."""
    if kind not in CHANNEL_CLASSES:
        raise RowError("kind_not_importable", kind=kind)
    try:
        return channel_factory(kind).normalise_address(raw)
    except address_rules.AddressError as exc:
        raise RowError(exc.code, **exc.params) from exc


def _channel_lookup(channels: list[ChannelRow]) -> dict[str, ChannelRow | RowError]:
    """Channel by id, name (case-insensitive) or kind; an ambiguous key maps to its error."""
    out: dict[str, ChannelRow | RowError] = {}
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
                else RowError("ambiguous_channel", count=len(found), value=key)
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


@dataclass(frozen=True)
class _Known:
    """What the database knows of one address: its contact and why it is not imported."""

    contact_id: str
    refusal: str | None  # "confirmed", the code of a refusal, or None to import


@dataclass(frozen=True)
class _Plan:
    """One row to write."""

    row: Row
    channel: ChannelRow
    address: str
    contact_id: str | None


@dataclass
class _Checked:
    """What the check of all rows found: the rows to write and facts the writes need."""

    plans: list[_Plan] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    subscription_of: dict[str, str] = field(default_factory=dict)  # contact id -> its row id


async def import_subscribers(
    session: AsyncSession,
    *,
    secret_key: Keys,
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
    checked = _Checked()
    async with _custom_plans(session):
        for lo in range(0, len(parsed.rows), BATCH):
            batch = parsed.rows[lo : lo + BATCH]
            await _check(session, secret_key, workspace_id, topic, lookup, batch, checked, report)
    report.problems.sort(key=lambda p: p.line)
    report.imported = len(checked.plans)
    if dry_run or (report.problems and not skip_invalid):
        return report
    await _write(session, workspace_id, topic, checked)
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


@asynccontextmanager
async def _custom_plans(session: AsyncSession) -> AsyncIterator[None]:
    """On PostgreSQL, plan the lookups with their values, not once for any values."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    # A prepared statement gets a generic plan after five runs. Planned while the tables had no
    # statistics (a first big import), it compares each row with the batch's 500 values in turn.
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield
    # Inserts, prepared once and run per row, keep their generic plans.
    await session.execute(text("SET LOCAL plan_cache_mode = DEFAULT"))


async def _check(
    session: AsyncSession,
    secret_key: Keys,
    workspace_id: str,
    topic: Topic,
    lookup: dict[str, ChannelRow | RowError],
    rows: list[Row],
    checked: _Checked,
    report: ImportReport,
) -> None:
    """Sort a batch of rows into refused, already subscribed and to write, in file order."""
    candidates: list[tuple[Row, ChannelRow, str]] = []
    for row in rows:
        found = lookup.get(row.channel) or lookup.get(row.channel.casefold())
        if not isinstance(found, ChannelRow):
            refusal = found or RowError("no_channel", value=row.channel)
            report.problems.append(Problem.of(row.line, refusal))
            continue
        try:
            candidates.append((row, found, normalise_address(found.kind, row.address)))
        except RowError as exc:
            report.problems.append(Problem.of(row.line, exc))
    if not candidates:
        return
    if not secret_key:
        report.problems.extend(Problem(row.line, "no_secret_key") for row, _, _ in candidates)
        return
    erased = await refused_imports(session, secret_key, workspace_id, [a for _, _, a in candidates])
    known = await _existing(
        session,
        topic,
        {(c.id, a) for _, c, a in candidates if (c.id, a) not in checked.seen},
        checked.subscription_of,
    )
    for row, channel, address in candidates:
        if address in erased:
            report.problems.append(Problem(row.line, "erased"))
            continue
        if (channel.id, address) in checked.seen:
            report.already += 1  # the same person twice in the file
            continue
        checked.seen.add((channel.id, address))
        found_contact = known.get((channel.id, address))
        if found_contact is None:
            checked.plans.append(_Plan(row, channel, address, None))
        elif found_contact.refusal == "confirmed":
            report.already += 1
        elif found_contact.refusal is not None:
            report.problems.append(Problem(row.line, found_contact.refusal))
        else:
            checked.plans.append(_Plan(row, channel, address, found_contact.contact_id))


async def _existing(
    session: AsyncSession,
    topic: Topic,
    pairs: set[tuple[str, str]],
    subscription_of: dict[str, str],
) -> dict[tuple[str, str], _Known]:
    """The known contacts among (channel id, address) pairs; notes their subscriptions' ids."""
    by_channel: dict[str, list[str]] = {}
    for channel_id, address in pairs:
        by_channel.setdefault(channel_id, []).append(address)
    contacts: dict[tuple[str, str], tuple[str, str]] = {}
    for channel_id, addresses in by_channel.items():
        found = await session.execute(
            select(ContactIdentity.address, Contact.id, Contact.consent_state)
            .join(Contact, Contact.id == ContactIdentity.contact_id)
            .where(ContactIdentity.channel_id == channel_id, ContactIdentity.address.in_(addresses))
        )
        contacts.update(((channel_id, a), (cid, state)) for a, cid, state in found)
    ids = list({cid for cid, _ in contacts.values()})
    if not ids:
        return {}
    states: dict[str, str] = {}
    for sub_id, contact_id, state in await session.execute(
        select(Subscription.id, Subscription.contact_id, Subscription.state).where(
            Subscription.topic_id == topic.id, Subscription.contact_id.in_(ids)
        )
    ):
        states[contact_id] = state
        subscription_of[contact_id] = sub_id
    opted_out = set(
        await session.scalars(
            select(ConsentEvent.contact_id)
            .where(
                ConsentEvent.contact_id.in_(ids),
                ConsentEvent.purpose.in_((f"topic:{topic.keyword}", ALL_TOPICS)),
                ConsentEvent.action == "withdrawn",
            )
            .distinct()
        )
    )
    known: dict[tuple[str, str], _Known] = {}
    for pair, (contact_id, consent_state) in contacts.items():
        refusal: str | None = None
        if consent_state in ("refused", "restricted"):
            refusal = "refused_processing"
        elif states.get(contact_id) == CONFIRMED:
            refusal = "confirmed"
        elif contact_id in opted_out:
            refusal = "unsubscribed"
        known[pair] = _Known(contact_id, refusal)
    return known


async def _write(session: AsyncSession, workspace_id: str, topic: Topic, checked: _Checked) -> None:
    """Contacts and identities (when new), confirmed subscriptions and consent events, in bulk."""
    tracking = await links.tracking_granted(
        session,
        sorted({p.contact_id for p in checked.plans if p.contact_id and p.row.link_tracking}),
    )
    subscription_of = checked.subscription_of
    for lo in range(0, len(checked.plans), BATCH):
        now = utcnow()
        contacts: list[dict[str, Any]] = []
        identities: list[dict[str, Any]] = []
        new_subs: dict[str, dict[str, Any]] = {}
        changed_subs: dict[str, dict[str, Any]] = {}
        changed_contacts: set[str] = set()
        events: list[dict[str, Any]] = []
        for plan in checked.plans[lo : lo + BATCH]:
            row, channel = plan.row, plan.channel
            contact_id = plan.contact_id
            if contact_id is None:
                contact_id = new_id()
                contacts.append(
                    {
                        "id": contact_id,
                        "workspace_id": workspace_id,
                        "display_name": row.name or None,
                        "attributes": {},
                        "consent_state": "unknown",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                identities.append(
                    {
                        "id": new_id(),
                        "workspace_id": workspace_id,
                        "contact_id": contact_id,
                        "channel_id": channel.id,
                        "address": plan.address,
                        "display_name": row.name or None,
                        "unreachable": False,
                        "created_at": now,
                    }
                )
            values = {
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
            sub_id = subscription_of.get(contact_id)
            if sub_id is None:
                sub_id = subscription_of[contact_id] = new_id()
                new_subs[sub_id] = {
                    "id": sub_id,
                    "workspace_id": workspace_id,
                    "topic_id": topic.id,
                    "contact_id": contact_id,
                    **values,
                }
            elif sub_id in new_subs:
                new_subs[sub_id].update(values)
            else:
                changed_subs[sub_id] = {"id": sub_id, **values}
                changed_contacts.add(contact_id)
            source = f"import: {row.consent_source}" + (f"; proof {row.proof}" if row.proof else "")
            event = {
                "workspace_id": workspace_id,
                "contact_id": contact_id,
                "channel_id": channel.id,
                "source": source[:200],
                "text_version": (row.text_version or row.proof)[:64] or None,
                "language": row.language,
                "occurred_at": row.consent_at,
            }
            events.append(
                {
                    **event,
                    "purpose": f"topic:{topic.keyword}",
                    "action": "granted",
                    "text_hash": proof_hash(row, topic),
                }
            )
            if row.link_tracking and contact_id not in tracking:
                tracking.add(contact_id)
                events.append(
                    {**event, "purpose": links.PURPOSE, "action": "granted", "text_hash": None}
                )
        for table, rows in (
            (Contact, contacts),
            (ContactIdentity, identities),
            (Subscription, list(new_subs.values())),
            (ConsentEvent, events),
        ):
            if rows:  # Core inserts: the ORM would insert rows without a primary key one by one
                await session.execute(insert(cast(Table, table.__table__)), rows)
        if changed_subs:
            await session.execute(update(Subscription), list(changed_subs.values()))
        # Core inserts pass the outbox's ORM hook: the import announces its changes itself.
        outbox.record(
            session,
            *(
                SubscriptionChanged(workspace_id, sub["contact_id"], topic.id, CONFIRMED)
                for sub in new_subs.values()
            ),
            *(
                SubscriptionChanged(workspace_id, contact_id, topic.id, CONFIRMED)
                for contact_id in sorted(changed_contacts)
            ),
            *(
                ConsentChanged(workspace_id, e["contact_id"], e["purpose"], e["action"])
                for e in events
            ),
        )
