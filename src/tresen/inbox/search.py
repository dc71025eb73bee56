"""Full-text search over a workspace's conversations and contacts (FTS5 or tsvector)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db import crypto
from tresen.db.tables import (
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    Message,
)
from tresen.privacy.visibility import Withholding

MAX_QUERY_CHARS = 200
MAX_LIMIT = 200
CONTACT_LIMIT = 10
SNIPPET_CHARS = 160
SPARSE_MATCHES = 2000

_TOKEN = re.compile(r"[^\W_]+")
_TERM = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class Term:
    """One word or quoted phrase of a query."""

    raw: str
    tokens: tuple[str, ...]
    phrase: bool
    prefix: bool


@dataclass(frozen=True)
class Snippet:
    """Plain text around the match; `matches` are (start, end) offsets into `text`."""

    text: str
    matches: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ConversationHit:
    """A conversation with a matching message."""

    id: str
    contact_id: str
    contact_name: str | None
    address: str
    channel_id: str
    channel_kind: str
    channel_name: str
    status: str
    last_message_at: datetime | None
    message_id: str
    message_at: datetime
    snippet: Snippet


@dataclass(frozen=True)
class ContactHit:
    """A contact whose name or an address matches."""

    id: str
    name: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class SearchPage:
    """One page of results; pass `next_before` as `before` to get the next page."""

    query: str
    conversations: list[ConversationHit] = field(default_factory=list)
    contacts: list[ContactHit] = field(default_factory=list)
    next_before: str | None = None
    ignored_filters: tuple[str, ...] = ()
    bodies_searched: bool = True
    """False while encryption at rest is on: message texts are ciphertext in the database."""


def fold(value: str) -> str:
    """Lower case without diacritics, "ß" as "ss" (what both indexes do to text)."""
    decomposed = unicodedata.normalize("NFD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


def tokens(value: str) -> list[str]:
    """The folded words of a text."""
    return _TOKEN.findall(fold(value))


def parse_query(query: str) -> list[Term]:
    """Words and quoted phrases; the last word is a prefix unless quoted; wordless parts dropped."""
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(
            f"search query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are allowed"
        )
    terms: list[Term] = []
    open_end = False
    for m in _TERM.finditer(query.replace("\x00", " ")):
        phrase = m.group(2) is None
        raw = m.group(1) if phrase else m.group(2)
        toks = tuple(tokens(raw))
        if toks:
            terms.append(Term(raw=raw, tokens=toks, phrase=phrase, prefix=False))
            open_end = not phrase or len(m.group(0)) < 2 or not m.group(0).endswith('"')
    if terms and open_end:
        last = terms[-1]
        terms[-1] = Term(raw=last.raw, tokens=last.tokens, phrase=last.phrase, prefix=True)
    return terms


def fts5_query(terms: list[Term]) -> str:
    """An FTS5 MATCH expression in which every term is a quoted string (no operators)."""
    parts = []
    for term in terms:
        quoted = '"' + " ".join(term.tokens).replace('"', '""') + '"'
        parts.append(quoted + "*" if term.prefix else quoted)
    return " ".join(parts)


def _pg_tsquery(terms: list[Term]) -> tuple[str, dict[str, str]]:
    """A tsquery expression built from bound parameters; PostgreSQL parses each term itself."""
    parts: list[str] = []
    params: dict[str, str] = {}
    for i, term in enumerate(terms):
        name = f"q{i}"
        params[name] = term.raw
        part = f"phraseto_tsquery('simple'::regconfig, tresen_search_fold(:{name}))"
        if term.prefix:
            # The text form of a tsquery ends with the quote of its last lexeme: mark it a prefix.
            part = f"CAST(regexp_replace(CAST({part} AS text), '''$', ''':*') AS tsquery)"
        parts.append(part)
    return "(" + " && ".join(parts) + ")", params


class _Matcher:
    """The dialect's SQL for "this row matches the query"."""

    def __init__(self, dialect: str, terms: list[Term]) -> None:
        self.dialect = dialect
        if dialect == "postgresql":
            self.tsquery, self.params = _pg_tsquery(terms)
        else:
            self.tsquery, self.params = "", {"fts": fts5_query(terms)}

    def messages(self) -> ColumnElement[bool]:
        """Messages whose body matches."""
        if self.dialect == "postgresql":
            sql = f"messages.search_tsv @@ {self.tsquery}"
        else:
            sql = "messages.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :fts)"
        return text(sql).bindparams(**self.params)  # type: ignore[return-value]

    def contacts(self) -> ColumnElement[bool]:
        """Contacts whose name or one of whose identities matches."""
        if self.dialect == "postgresql":
            # A UNION of two GIN lookups; an OR would make PostgreSQL scan every contact.
            sql = (
                f"contacts.id IN (SELECT c2.id FROM contacts AS c2 WHERE c2.search_tsv @@ "
                f"{self.tsquery} UNION SELECT i2.contact_id FROM contact_identities AS i2 "
                f"WHERE i2.search_tsv @@ {self.tsquery})"
            )
        else:
            sql = "contacts.rowid IN (SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH :fts)"
        return text(sql).bindparams(**self.params)  # type: ignore[return-value]


def _encode_cursor(at: datetime | None, conversation_id: str) -> str:
    return f"{at.isoformat() if at else ''}~{conversation_id}"


def _decode_cursor(before: str) -> tuple[datetime | None, str]:
    try:
        at_text, conversation_id = before.split("~", 1)
        at = datetime.fromisoformat(at_text) if at_text else None
    except ValueError:
        raise ValueError("invalid search cursor 'before'") from None
    if at is not None and at.tzinfo is None:
        raise ValueError("invalid search cursor 'before'")
    if not conversation_id or len(conversation_id) > 26:
        raise ValueError("invalid search cursor 'before'")
    return at, conversation_id


def _after_cursor(before: str) -> ColumnElement[bool]:
    """Conversations after the cursor in the order last_message_at DESC NULLS LAST, id DESC."""
    at, conversation_id = _decode_cursor(before)
    if at is None:
        return and_(Conversation.last_message_at.is_(None), Conversation.id < conversation_id)
    return or_(
        Conversation.last_message_at < at,
        and_(Conversation.last_message_at == at, Conversation.id < conversation_id),
        Conversation.last_message_at.is_(None),
    )


def _conversation_filters(
    *,
    channel_id: str | None,
    status: str | None,
    assignee_id: str | None,
    team_id: str | None,
    label: str | None,
) -> tuple[list[ColumnElement[bool]], tuple[str, ...]]:
    """WHERE clauses for the filters; filters whose column does not exist yet are reported."""
    columns = Conversation.__table__.c
    clauses: list[ColumnElement[bool]] = []
    ignored: list[str] = []
    if channel_id is not None:
        clauses.append(Conversation.channel_id == channel_id)
    if status is not None:
        clauses.append(Conversation.status == status)
    for name, value in (("assignee_id", assignee_id), ("team_id", team_id)):
        if value is None:
            continue
        if name in columns:
            clauses.append(columns[name] == value)
        else:
            ignored.append(name)
    if label is not None:
        clauses.append(
            Conversation.id.in_(
                select(ConversationLabel.conversation_id).where(ConversationLabel.label_id == label)
            )
        )
    return clauses, tuple(ignored)


def snippet(body: str, terms: list[Term], width: int = SNIPPET_CHARS) -> Snippet:
    """Plain text of about `width` characters around the first match, with match offsets."""
    exact = {t for term in terms for t in (term.tokens[:-1] if term.prefix else term.tokens)}
    prefixes = [term.tokens[-1] for term in terms if term.prefix]
    spans = []
    for m in _TOKEN.finditer(body):
        word = fold(m.group())
        if word in exact or any(word.startswith(p) for p in prefixes):
            spans.append((m.start(), m.end()))
    if not spans:
        cut = body[:width]
        return Snippet(cut + ("…" if len(body) > width else ""), ())
    start = max(0, spans[0][0] - width // 4)
    if start > 0:
        space = body.find(" ", start, spans[0][0])
        start = space + 1 if space >= 0 else start
    end = min(len(body), start + width)
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(body) else ""
    shift = len(lead) - start
    inside = tuple((s + shift, e + shift) for s, e in spans if s >= start and e <= end)
    return Snippet(lead + body[start:end] + tail, inside)


async def search(
    session: AsyncSession,
    workspace_id: str,
    query: str,
    *,
    channel_id: str | None = None,
    status: str | None = None,
    assignee_id: str | None = None,
    team_id: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before: str | None = None,
    visible: ColumnElement[bool] | None = None,
    withholding: Withholding | None = None,
) -> SearchPage:
    """Conversations with a matching message (newest activity first) and matching contacts.

    `visible` is an extra WHERE clause on conversations, e.g. `permissions.visible(actor)`;
    messages `withholding` hides (before consent, restricted) never match.
    A label alone (no words) lists the conversations carrying it, with their latest message.
    """
    terms = parse_query(query)
    if not terms and label is None:
        return SearchPage(query=query)
    limit = max(1, min(limit, MAX_LIMIT))
    matcher = _Matcher(session.get_bind().dialect.name, terms) if terms else None
    filters, ignored = _conversation_filters(
        channel_id=channel_id, status=status, assignee_id=assignee_id, team_id=team_id, label=label
    )

    message_where: list[ColumnElement[bool]] = [Message.workspace_id == workspace_id]
    # Encrypted bodies are ciphertext in the database and its index: no text search over them.
    bodies = crypto.active() is None
    if matcher is not None:
        message_where.append(matcher.messages() if bodies else false())
    if withholding is not None:
        message_where.append(~withholding.message_hidden())
    if since is not None:
        message_where.append(Message.created_at >= since)
    if until is not None:
        message_where.append(Message.created_at < until)
    if matcher is None:  # a label alone: the messages of the labelled conversations
        message_where.append(
            Message.conversation_id.in_(
                select(ConversationLabel.conversation_id).where(ConversationLabel.label_id == label)
            )
        )
    matching = select(Message.conversation_id).where(*message_where)
    # Few matches: take their conversation ids (an index lookup each). Many: let the database
    # walk conversations newest first and stop after a page. PostgreSQL's estimate for a rare
    # word is often far too high, which made it walk all conversations (seconds).
    probe = list((await session.scalars(matching.limit(SPARSE_MATCHES + 1))).all())
    sparse = len(probe) <= SPARSE_MATCHES
    in_matching = Conversation.id.in_(set(probe)) if sparse else Conversation.id.in_(matching)

    stmt = (
        select(
            Conversation.id,
            Conversation.contact_id,
            func.coalesce(Contact.display_name, ContactIdentity.display_name),
            ContactIdentity.address,
            Conversation.channel_id,
            ChannelRow.kind,
            ChannelRow.name,
            Conversation.status,
            Conversation.last_message_at,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
        .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
        .where(Conversation.workspace_id == workspace_id, in_matching, *filters)
        .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        .limit(limit + 1)
    )
    if visible is not None:
        stmt = stmt.where(visible)
    if before:
        stmt = stmt.where(_after_cursor(before))
    rows = (await session.execute(stmt)).all() if probe else []
    more = len(rows) > limit
    rows = rows[:limit]

    best = await _best_messages(session, [r[0] for r in rows], message_where)
    hits = []
    for r in rows:
        if r[0] not in best:  # deleted between the two statements
            continue
        message_id, message_at, body = best[r[0]]
        hits.append(
            ConversationHit(
                id=r[0],
                contact_id=r[1],
                contact_name=r[2],
                address=r[3],
                channel_id=r[4],
                channel_kind=r[5],
                channel_name=r[6],
                status=r[7],
                last_message_at=r[8],
                message_id=message_id,
                message_at=message_at,
                snippet=snippet(body or "", terms),
            )
        )
    contacts = []
    if not before and matcher is not None:
        contacts = await _contacts(session, workspace_id, matcher, channel_id)
    next_before = _encode_cursor(rows[-1][8], rows[-1][0]) if more and rows else None
    return SearchPage(
        query=query,
        conversations=hits,
        contacts=contacts,
        next_before=next_before,
        ignored_filters=ignored,
        bodies_searched=bodies,
    )


async def _best_messages(
    session: AsyncSession, conversation_ids: list[str], message_where: list[ColumnElement[bool]]
) -> dict[str, tuple[str, datetime, str | None]]:
    """The most recent matching message of each conversation."""
    if not conversation_ids:
        return {}
    ranked = (
        select(
            Message.conversation_id,
            Message.id,
            Message.created_at,
            Message.body,
            func.row_number()
            .over(
                partition_by=Message.conversation_id,
                order_by=(Message.created_at.desc(), Message.id.desc()),
            )
            .label("n"),
        )
        .where(Message.conversation_id.in_(conversation_ids), *message_where)
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.conversation_id, ranked.c.id, ranked.c.created_at, ranked.c.body).where(
            ranked.c.n == 1
        )
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def _contacts(
    session: AsyncSession, workspace_id: str, matcher: _Matcher, channel_id: str | None
) -> list[ContactHit]:
    """Contacts whose name or addresses match, at most CONTACT_LIMIT."""
    stmt = (
        select(Contact.id, Contact.display_name)
        .where(
            Contact.workspace_id == workspace_id,
            Contact.merged_into_id.is_(None),
            matcher.contacts(),
        )
        .order_by(Contact.display_name, Contact.id)
        .limit(CONTACT_LIMIT)
    )
    if channel_id is not None:
        stmt = stmt.where(
            Contact.id.in_(
                select(ContactIdentity.contact_id).where(ContactIdentity.channel_id == channel_id)
            )
        )
    found = (await session.execute(stmt)).all()
    if not found:
        return []
    addresses: dict[str, list[str]] = {}
    rows = await session.execute(
        select(ContactIdentity.contact_id, ContactIdentity.address)
        .where(ContactIdentity.contact_id.in_([c[0] for c in found]))
        .order_by(ContactIdentity.created_at)
    )
    for contact_id, address in rows:
        addresses.setdefault(contact_id, []).append(address)
    return [ContactHit(c[0], c[1], tuple(addresses.get(c[0], ()))) for c in found]


async def find_contacts(session: AsyncSession, workspace_id: str, query: str) -> list[ContactHit]:
    """Contacts (not merged away) whose name or an address matches, at most CONTACT_LIMIT."""
    terms = parse_query(query)
    if not terms:
        return []
    return await _contacts(
        session, workspace_id, _Matcher(session.get_bind().dialect.name, terms), None
    )


async def rebuild_sqlite_index(session: AsyncSession) -> None:
    """Rebuild the FTS5 tables from scratch (needed after a VACUUM renumbered rowids)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    fold_body = "replace(replace(body, 'ß', 'ss'), 'ẞ', 'ss')"
    await session.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('delete-all')"))
    await session.execute(
        text(
            f"INSERT INTO messages_fts(rowid, body) SELECT rowid, {fold_body} FROM messages "
            "WHERE body IS NOT NULL"
        )
    )
    await session.execute(text("DELETE FROM contacts_fts"))
    await session.execute(
        text(
            "INSERT INTO contacts_fts(rowid, doc) SELECT c.rowid, replace(replace("
            "coalesce(c.display_name, '') || ' ' || coalesce((SELECT group_concat("
            "coalesce(i.address, '') || ' ' || coalesce(i.display_name, ''), ' ') "
            "FROM contact_identities i WHERE i.contact_id = c.id), ''), 'ß', 'ss'), 'ẞ', 'ss') "
            "FROM contacts c"
        )
    )
