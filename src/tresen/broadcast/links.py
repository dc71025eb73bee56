"""Link tracking: URLs in outgoing texts become redirect links that count clicks.

Per person only for contacts who consented to the purpose "link_tracking" (when the link is
made and again when it is clicked); anonymous counts otherwise.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import ConsentEvent, Contact, LinkClick, TrackedLink
from tresen.db.types import utcnow
from tresen.db.upsert import insert_ignore
from tresen.domain.ids import new_id

PURPOSE = "link_tracking"
MAX_URL = 2000
_CHUNK = 1000  # ids per IN (...) query
TOKEN_LENGTH = 16  # secrets.token_urlsafe(12): 96 random bits
_URL = re.compile(r"https?://[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*_~"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
# Link-preview fetchers open a link when a message is sent or shown; they are not clicks.
_PREVIEW_AGENTS = re.compile(
    r"facebookexternalhit|facebot|whatsapp|telegrambot|twitterbot|slackbot|discordbot|"
    r"linkedinbot|skypeuripreview|googleimageproxy|applebot|bingpreview|embedly",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LinkStats:
    """Clicks on one URL of a campaign."""

    url: str
    clicks: int
    unique_persons: int


def _trim(url: str) -> str:
    """Drop punctuation that ends the sentence rather than the URL (keeps balanced brackets)."""
    while url:
        last = url[-1]
        unbalanced = last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])
        if last not in _TRAILING and not unbalanced:
            break
        url = url[:-1]
    return url


def is_trackable(url: str) -> bool:
    """Whether a string is an http(s) URL with a host that we may store and redirect to."""
    if len(url) > MAX_URL or any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return False
    del port
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def to_uri(url: str) -> str | None:
    """The URL in pure ASCII (IDNA host, percent-encoded path), as a Location header needs."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    try:
        netloc = parts.netloc.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    uri = urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=_SAFE),
            quote(parts.query, safe=_SAFE),
            quote(parts.fragment, safe=_SAFE),
        )
    )
    return uri if is_trackable(uri) else None


def find_urls(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) of the http(s) URLs in a text."""
    spans = []
    for match in _URL.finditer(text):
        url = _trim(match.group(0))
        if is_trackable(url) and to_uri(url) is not None:
            spans.append((match.start(), match.start() + len(url)))
    return spans


def redirect_base(base_url: str) -> str:
    """The prefix of every tracked link."""
    return base_url.rstrip("/") + "/l/"


def _key(campaign_id: str | None, contact_id: str | None, url: str) -> str:
    raw = "\x1f".join((campaign_id or "", contact_id or "", url))
    return hashlib.sha256(raw.encode()).hexdigest()


async def tracking_allowed(session: AsyncSession, contact_id: str) -> bool:
    """Whether the contact's latest link-tracking consent event is a grant (and they are not restricted)."""
    state = await session.scalar(select(Contact.consent_state).where(Contact.id == contact_id))
    if state is None or state in ("restricted", "refused"):
        return False
    return await latest_action(session, contact_id) == "granted"


async def latest_action(session: AsyncSession, contact_id: str) -> str | None:
    """The contact's latest link-tracking consent event ("granted", "withdrawn" or None)."""
    return await session.scalar(
        select(ConsentEvent.action)
        .where(ConsentEvent.contact_id == contact_id, ConsentEvent.purpose == PURPOSE)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )


async def record_consent(
    session: AsyncSession,
    contact: Contact,
    action: str,
    *,
    source: str,
    channel_id: str | None = None,
    text_version: str | None = None,
    text_hash: str | None = None,
    language: str | None = None,
    user_agent: str | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Append a link-tracking consent event ("granted" or "withdrawn") for a contact."""
    if action not in ("granted", "withdrawn"):
        raise ValueError("link tracking consent is 'granted' or 'withdrawn'")
    session.add(
        ConsentEvent(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            purpose=PURPOSE,
            action=action,
            channel_id=channel_id,
            source=source[:200],
            text_version=text_version,
            text_hash=text_hash,
            language=language,
            user_agent=user_agent,
            occurred_at=occurred_at or utcnow(),
        )
    )
    await session.flush()


async def tracking_granted(session: AsyncSession, contact_ids: Iterable[str]) -> set[str]:
    """Of these contacts, those whose latest link-tracking consent event is a grant (in bulk)."""
    latest: dict[str, str] = {}
    ids = list(dict.fromkeys(contact_ids))
    for start in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(ConsentEvent.contact_id, ConsentEvent.action)
            .where(
                ConsentEvent.purpose == PURPOSE,
                ConsentEvent.contact_id.in_(ids[start : start + _CHUNK]),
            )
            .order_by(ConsentEvent.id)
        )
        latest.update({contact_id: action for contact_id, action in rows})
    return {contact_id for contact_id, action in latest.items() if action == "granted"}


async def link_tokens(
    session: AsyncSession,
    workspace_id: str,
    campaign_id: str | None,
    wanted: Iterable[tuple[str | None, str]],
) -> dict[tuple[str | None, str], str]:
    """Tokens of the tracked links for (contact or None, URL) pairs, each created once, in bulk."""
    by_key = {_key(campaign_id, person, url): (person, url) for person, url in set(wanted)}
    if not by_key:
        return {}
    now = utcnow()
    await session.execute(
        insert_ignore(session, TrackedLink.__table__),
        [
            {
                "id": new_id(),
                "workspace_id": workspace_id,
                "token": secrets.token_urlsafe(TOKEN_LENGTH * 3 // 4),
                "key": key,
                "url": url,
                "campaign_id": campaign_id,
                "contact_id": person,
                "clicks": 0,
                "created_at": now,
            }
            for key, (person, url) in by_key.items()
        ],
    )
    keys = list(by_key)
    tokens: dict[tuple[str | None, str], str] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = await session.execute(
            select(TrackedLink.key, TrackedLink.token).where(
                TrackedLink.workspace_id == workspace_id,
                TrackedLink.key.in_(keys[start : start + _CHUNK]),
            )
        )
        tokens.update({by_key[key]: token for key, token in rows})
    return tokens


def trackable_uris(text: str, prefix: str) -> list[str]:
    """The URLs of a text that get a redirect link (ASCII form; tracked links left out)."""
    uris = []
    for start, end in find_urls(text):
        url = text[start:end]
        uri = to_uri(url)
        if uri is not None and not url.startswith(prefix):
            uris.append(uri)
    return uris


def substitute(
    text: str, prefix: str, tokens: dict[tuple[str | None, str], str], person: str | None
) -> str:
    """The text with each trackable URL replaced by its redirect link from `tokens`."""
    out, pos = [], 0
    for start, end in find_urls(text):
        url = text[start:end]
        uri = to_uri(url)
        token = None if uri is None or url.startswith(prefix) else tokens.get((person, uri))
        out.append(text[pos:start])
        out.append(url if token is None else prefix + token)
        pos = end
    out.append(text[pos:])
    return "".join(out)


async def rewrite_links(
    session: AsyncSession,
    text: str,
    *,
    campaign_id: str | None,
    contact_id: str | None,
    per_person: bool,
    workspace_id: str | None = None,
    base_url: str | None = None,
) -> str:
    """Replace each http(s) URL of `text` by a {base_url}/l/<token> redirect link.

    Per-person links are made only when `per_person` is set and the contact has consented to
    link tracking; otherwise every recipient of the campaign shares one link per URL.
    `workspace_id` defaults to the contact's; `base_url` to TRESEN_BASE_URL of the runtime
    that made the session (Runtime puts it in `session.info`).
    """
    if not find_urls(text):
        return text
    if workspace_id is None:
        if contact_id is None:
            raise ValueError("rewrite_links needs a workspace_id or a contact_id")
        workspace_id = await session.scalar(
            select(Contact.workspace_id).where(Contact.id == contact_id)
        )
        if workspace_id is None:
            raise ValueError("no contact with this id")
    prefix = redirect_base(base_url or session_base_url(session))
    person = (
        contact_id
        if per_person and contact_id and await tracking_allowed(session, contact_id)
        else None
    )
    wanted = [(person, uri) for uri in trackable_uris(text, prefix)]
    tokens = await link_tokens(session, workspace_id, campaign_id, wanted)
    return substitute(text, prefix, tokens, person)


def session_base_url(session: AsyncSession) -> str:
    """TRESEN_BASE_URL of the runtime whose sessionmaker made this session."""
    base = session.info.get("base_url")
    if not isinstance(base, str) or not base:
        raise ValueError("rewrite_links needs base_url (or a session made by a Runtime)")
    return base


@dataclass(frozen=True)
class Click:
    """What a click resolved to."""

    url: str
    counted: bool
    per_person: bool


def is_preview(user_agent: str | None) -> bool:
    """Whether a request comes from a link-preview fetcher rather than a person."""
    return bool(user_agent) and _PREVIEW_AGENTS.search(user_agent or "") is not None


async def click(
    session: AsyncSession,
    token: str,
    *,
    user_agent: str | None = None,
    ip_address: str | None = None,
    store_client: bool = False,
    count: bool = True,
) -> Click | None:
    """Resolve a token to its stored URL and count the click; None for an unknown token."""
    if len(token) > TOKEN_LENGTH and not token[TOKEN_LENGTH:].strip("_-"):
        # "_" and "-" right after a link are glued to it by some messengers' auto-linking.
        token = token[:TOKEN_LENGTH]
    if len(token) != TOKEN_LENGTH:
        return None
    link = await session.scalar(select(TrackedLink).where(TrackedLink.token == token))
    if link is None:
        return None
    if not count or is_preview(user_agent):
        return Click(link.url, False, False)
    person = link.contact_id
    if person is not None and not await tracking_allowed(session, person):
        person = None
    await session.execute(
        update(TrackedLink).where(TrackedLink.id == link.id).values(clicks=TrackedLink.clicks + 1)
    )
    keep_client = store_client and person is not None
    session.add(
        LinkClick(
            workspace_id=link.workspace_id,
            link_id=link.id,
            contact_id=person,
            ip_address=(ip_address or "")[:64] or None if keep_client else None,
            user_agent=(user_agent or "")[:400] or None if keep_client else None,
            clicked_at=utcnow(),
        )
    )
    return Click(link.url, True, person is not None)


async def clicks_per_link(
    session: AsyncSession, campaign_id: str, workspace_id: str | None = None
) -> list[LinkStats]:
    """Per URL of a campaign: all clicks (anonymous counters) and distinct consenting persons."""
    where = [TrackedLink.campaign_id == campaign_id]
    if workspace_id is not None:
        where.append(TrackedLink.workspace_id == workspace_id)
    totals = dict(
        (
            await session.execute(
                select(TrackedLink.url, func.sum(TrackedLink.clicks))
                .where(*where)
                .group_by(TrackedLink.url)
            )
        ).all()
    )
    persons = dict(
        (
            await session.execute(
                select(TrackedLink.url, func.count(func.distinct(LinkClick.contact_id)))
                .join(LinkClick, LinkClick.link_id == TrackedLink.id)
                .where(*where, LinkClick.contact_id.is_not(None))
                .group_by(TrackedLink.url)
            )
        ).all()
    )
    stats = [
        LinkStats(url, int(total or 0), int(persons.get(url, 0))) for url, total in totals.items()
    ]
    return sorted(stats, key=lambda s: (-s.clicks, s.url))
