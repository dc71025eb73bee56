"""Access and portability (Art. 15, 20): one contact's data as a ZIP of documented JSON and HTML."""

from __future__ import annotations

import asyncio
import html
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncResult, AsyncSession, async_sessionmaker

from tresen.db.tables import (
    AuditEntry,
    Campaign,
    CampaignRecipient,
    ChannelRow,
    ConsentEvent,
    ContactIdentity,
    Conversation,
    LinkClick,
    Media,
    Message,
    Note,
    TrackedLink,
    User,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.media.store import is_media_key, load, stored_filename
from tresen.privacy import audit, export_de
from tresen.privacy.erasure import CHUNK, load_contact, media_file
from tresen.storage import FileStore

FORMAT = "tresen-export-v1"

README = """tresen personal data export ({format})
=========================================

This archive holds everything the business stores about one person in tresen, as of the time
in data.json "exported_at" (UTC, ISO 8601). Open index.html in a browser to read it.

Files
-----
index.html        the same content as a readable page
data.json         one JSON object (UTF-8):
  format          "{format}"
  exported_at     when this export was made
  business        the business (workspace) name
  contact         id, display_name, attributes (free key/values the business keeps),
                  consent_state (unknown|asked|granted|refused), restricted_at (set while
                  processing is restricted, Art. 18), created_at, updated_at
  identities[]    the person's address per channel: channel_id, channel_kind, channel_name,
                  address (phone number, chat id or e-mail address), display_name,
                  unreachable (the provider said the address cannot be reached), created_at
  consent_events[] proof of consent: purpose, action (requested|granted|refused|withdrawn),
                  channel_id, source (how it was given), text_version and text_hash (SHA-256
                  of the privacy notice shown), language, ip_address, user_agent, occurred_at
  conversations[] id, channel_id, channel_kind, status, legal_hold, created_at,
                  last_inbound_at, last_message_at
  notes[]         private notes agents wrote in the person's conversations: conversation_id,
                  author (agent name), body, created_at
  audit_entries[] entries of the audit log about the person or their conversations: action
                  (e.g. conversation.viewed, contact.exported), actor (agent name or null for
                  the system or an API client), subject_type, subject_id, details, occurred_at
  media[]         files stored for the person: message_id, file (path in this archive),
                  mime_type, filename, size
  tracked_links[] links made for the person alone (only with link-tracking consent):
                  url (where the link leads), campaign_id, created_at
  link_clicks[]   the person's clicks on links (only recorded with link-tracking consent):
                  url, campaign_id, clicked_at, ip_address and user_agent (only where the
                  setting allows storing them)
  broadcasts[]    campaigns the person was in: campaign (name), state (sent, skipped, failed,
                  ...), sent_at; the messages themselves are in messages.jsonl
messages.jsonl    one JSON object per line, oldest first: id, conversation_id, direction
                  (inbound = from the person, outbound = to them), sender_kind (contact, agent,
                  bot, system), content_kind (text, media, interactive, ...), body, payload (the
                  message as the channel delivered or sent it), state (queued, sent, delivered,
                  read, failed, ...), error_code, error_reason, created_at, sent_at,
                  delivered_at, read_at, failed_at
media/            the files themselves
"""

EXPORTED_AS: dict[str, str] = {
    "contacts": "data.json contact",
    "contact_identities": "data.json identities",
    "conversations": "data.json conversations",
    "messages": "messages.jsonl",
    "notes": "data.json notes",
    "consent_events": "data.json consent_events",
    "audit_log": "data.json audit_entries",
    "media": "data.json media, media/",
    "tracked_links": "data.json tracked_links",
    "link_clicks": "data.json link_clicks",
    "campaign_recipients": "data.json broadcasts",
}
"""Where a table's rows about the person appear in the export (the data map names it)."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
    "text-align:left;vertical-align:top}.in{background:#f3f7ff}pre{white-space:pre-wrap;margin:0}"
)


@dataclass(frozen=True)
class ExportSummary:
    """What went into an export (counts only)."""

    contact_id: str
    messages: int
    files: int


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _e(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return html.escape(str(value))


def _table(out: Any, title: str, heads: list[str], rows: Iterable[list[Any]]) -> None:
    word = getattr(out, "word", lambda english: english)
    out.write(f"<h2>{_e(word(title))}</h2><table><tr>")
    out.write("".join(f"<th>{_e(word(h))}</th>" for h in heads) + "</tr>")
    for row in rows:
        out.write("<tr>" + "".join(f"<td><pre>{_e(v)}</pre></td>" for v in row) + "</tr>")
    out.write("</table>\n")


MESSAGE_FIELDS = (
    Message.id,
    Message.conversation_id,
    Message.direction,
    Message.sender_kind,
    Message.content_kind,
    Message.body,
    Message.payload,
    Message.state,
    Message.error_code,
    Message.error_reason,
    Message.created_at,
    Message.sent_at,
    Message.delivered_at,
    Message.read_at,
    Message.failed_at,
)
"""What an export reads of a message: plain rows, not ORM objects (no identity map, no entities)."""


def _message_json(m: Row[Any]) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "direction": m.direction,
        "sender_kind": m.sender_kind,
        "content_kind": m.content_kind,
        "body": m.body,
        "payload": m.payload or {},
        "state": m.state,
        "error_code": m.error_code,
        "error_reason": m.error_reason,
        "created_at": _iso(m.created_at),
        "sent_at": _iso(m.sent_at),
        "delivered_at": _iso(m.delivered_at),
        "read_at": _iso(m.read_at),
        "failed_at": _iso(m.failed_at),
    }


async def _messages(session: AsyncSession, contact_id: str) -> AsyncResult[Any]:
    return await session.stream(
        select(*MESSAGE_FIELDS)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id)
        .order_by(Message.created_at, Message.id)
        .execution_options(yield_per=500)
    )


async def write_export(
    session: AsyncSession,
    workspace_id: str,
    contact_id: str,
    files: FileStore,
    out: Path,
    language: str = "en",
) -> ExportSummary:
    """Write the ZIP for one contact to `out` (messages are streamed, not loaded at once)."""
    contact = await load_contact(session, workspace_id, contact_id)
    workspace = await session.get_one(Workspace, workspace_id)
    channels = {
        c.id: c
        for c in await session.scalars(
            select(ChannelRow).where(ChannelRow.workspace_id == workspace_id)
        )
    }
    users: dict[str, str] = {
        row.id: row.display_name
        for row in await session.execute(
            select(User.id, User.display_name).where(User.workspace_id == workspace_id)
        )
    }
    identities = list(
        await session.scalars(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == contact.id)
            .order_by(ContactIdentity.created_at)
        )
    )
    conversations = list(
        await session.scalars(
            select(Conversation)
            .where(Conversation.contact_id == contact.id)
            .order_by(Conversation.created_at)
        )
    )
    conv_ids = [c.id for c in conversations]
    consents = list(
        await session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.workspace_id == workspace_id, ConsentEvent.contact_id == contact.id)
            .order_by(ConsentEvent.id)
        )
    )
    notes: list[Note] = []
    audits: list[AuditEntry] = []
    subjects = [contact.id, *conv_ids]
    for i in range(0, len(subjects), CHUNK):
        part = subjects[i : i + CHUNK]
        notes += list(await session.scalars(select(Note).where(Note.conversation_id.in_(part))))
        audits += list(
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.workspace_id == workspace_id, AuditEntry.subject_id.in_(part)
                )
            )
        )
    broadcasts = (
        await session.execute(
            select(Campaign.name, CampaignRecipient.state, CampaignRecipient.sent_at)
            .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
            .where(CampaignRecipient.contact_id == contact.id)
            .order_by(CampaignRecipient.id)
        )
    ).all()
    notes.sort(key=lambda n: (n.created_at, n.id))
    own_links = list(
        await session.scalars(
            select(TrackedLink)
            .where(TrackedLink.workspace_id == workspace_id, TrackedLink.contact_id == contact.id)
            .order_by(TrackedLink.created_at)
        )
    )
    clicks = (
        await session.execute(
            select(LinkClick, TrackedLink.url, TrackedLink.campaign_id)
            .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
            .where(LinkClick.workspace_id == workspace_id, LinkClick.contact_id == contact.id)
            .order_by(LinkClick.id)
        )
    ).all()
    audits.sort(key=lambda a: a.id)

    def kind(channel_id: str | None) -> str | None:
        row = channels.get(channel_id or "")
        return row.kind if row else None

    data: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": utcnow().isoformat(),
        "business": workspace.name,
        "contact": {
            "id": contact.id,
            "display_name": contact.display_name,
            "attributes": contact.attributes or {},
            "consent_state": contact.consent_state,
            "restricted_at": _iso(contact.restricted_at),
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
        },
        "identities": [
            {
                "channel_id": i.channel_id,
                "channel_kind": kind(i.channel_id),
                "channel_name": channels[i.channel_id].name if i.channel_id in channels else None,
                "address": i.address,
                "display_name": i.display_name,
                "unreachable": i.unreachable,
                "created_at": _iso(i.created_at),
            }
            for i in identities
        ],
        "consent_events": [
            {
                "purpose": e.purpose,
                "action": e.action,
                "channel_id": e.channel_id,
                "source": e.source,
                "text_version": e.text_version,
                "text_hash": e.text_hash,
                "language": e.language,
                "ip_address": e.ip_address,
                "user_agent": e.user_agent,
                "occurred_at": _iso(e.occurred_at),
            }
            for e in consents
        ],
        "conversations": [
            {
                "id": c.id,
                "channel_id": c.channel_id,
                "channel_kind": kind(c.channel_id),
                "status": c.status,
                "legal_hold": c.legal_hold,
                "created_at": _iso(c.created_at),
                "last_inbound_at": _iso(c.last_inbound_at),
                "last_message_at": _iso(c.last_message_at),
            }
            for c in conversations
        ],
        "notes": [
            {
                "conversation_id": n.conversation_id,
                "author": users.get(n.author_id or ""),
                "body": n.body,
                "created_at": _iso(n.created_at),
            }
            for n in notes
        ],
        "audit_entries": [
            {
                "action": a.action,
                "actor": users.get(a.actor_id or ""),
                "subject_type": a.subject_type,
                "subject_id": a.subject_id,
                "details": a.details or {},
                "occurred_at": _iso(a.occurred_at),
            }
            for a in audits
        ],
        "media": [],
        "tracked_links": [
            {"url": t.url, "campaign_id": t.campaign_id, "created_at": _iso(t.created_at)}
            for t in own_links
        ],
        "link_clicks": [
            {
                "url": url,
                "campaign_id": campaign_id,
                "clicked_at": _iso(c.clicked_at),
                "ip_address": c.ip_address,
                "user_agent": c.user_agent,
            }
            for c, url, campaign_id in clicks
        ],
        "broadcasts": [
            {"campaign": name, "state": state, "sent_at": _iso(sent_at)}
            for name, state, sent_at in broadcasts
        ],
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    count = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        readme = export_de.README if language == "de" else README
        zf.writestr("README.txt", readme.format(format=FORMAT))
        with zf.open("messages.jsonl", "w") as raw:
            async for m in await _messages(session, contact.id):
                count += 1
                line = json.dumps(_message_json(m), ensure_ascii=False, default=str)
                raw.write(line.encode() + b"\n")
                key = media_file(m.payload)
                if key is not None:
                    media = (m.payload or {}).get("media") or {}
                    data["media"].append(
                        {
                            "message_id": m.id,
                            "file": key,
                            "mime_type": media.get("mime_type"),
                            "filename": media.get("filename"),
                            "size": None,
                        }
                    )
        named, data["media"] = data["media"], []
        for item in named:
            content = await asyncio.to_thread(load, files, item["file"])
            if content is None:
                continue  # named by the message, but gone from the store
            item["size"] = len(content)
            zf.writestr(item["file"], content)
            data["media"].append(item)
        for row in await _stored_media(session, contact.id):
            content = await asyncio.to_thread(load, files, row.path)
            if content is None:
                continue
            name = f"media/{row.id}-{stored_filename(row.filename or 'file', row.content_type)}"
            zf.writestr(name, content)
            data["media"].append(
                {
                    "message_id": row.message_id,
                    "file": name,
                    "mime_type": row.content_type,
                    "filename": row.filename,
                    "size": row.size,
                }
            )
        zf.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=2))
        with zf.open("index.html", "w") as raw_html:
            await _write_html(raw_html, session, data, contact.id, language)
    tmp.replace(out)
    return ExportSummary(contact.id, count, len(data["media"]))


async def _stored_media(session: AsyncSession, contact_id: str) -> list[Media]:
    """Files of the media table that belong to the contact's messages."""
    rows = await session.scalars(
        select(Media)
        .join(Message, Message.id == Media.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id, Media.path.is_not(None))
    )
    return [row for row in rows if is_media_key(row.path)]


class _Text:
    """A text writer on top of a binary ZIP entry."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(text.encode())

    def word(self, english: str) -> str:
        """A heading or label in the export's language."""
        return english


class _GermanHeadings(_Text):
    """The same writer for a German export."""

    def word(self, english: str) -> str:
        """The German of a heading or label (as it is when it has none)."""
        return export_de.HTML.get(english, english)


async def _write_html(
    raw: IO[bytes],
    session: AsyncSession,
    data: dict[str, Any],
    contact_id: str,
    language: str = "en",
) -> None:
    out: Any = _GermanHeadings(raw) if language == "de" else _Text(raw)
    c = data["contact"]
    name = c["display_name"] or c["id"]
    if language == "de":
        words = export_de.HTML
        title = words["title"].format(name=_e(name))
        heading = words["heading"].format(business=_e(data["business"]))
        intro = words["intro"].format(when=_e(data["exported_at"]))
    else:
        title = f"Data of {_e(name)}"
        heading = f"Personal data held by {_e(data['business'])}"
        intro = (
            f"Exported {_e(data['exported_at'])} (UTC). The same data as JSON is in data.json, "
            "explained in README.txt."
        )
    out.write(
        f'<!doctype html><html lang="{"de" if language == "de" else "en"}"><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style><body><h1>{heading}</h1><p>{intro}</p>"
    )
    _table(
        out,
        "Profile",
        ["field", "value"],
        [[k, v] for k, v in c.items()],
    )
    _table(
        out,
        "Addresses",
        ["channel", "address", "name", "unreachable", "since"],
        [
            [i["channel_kind"], i["address"], i["display_name"], i["unreachable"], i["created_at"]]
            for i in data["identities"]
        ],
    )
    _table(
        out,
        "Consent",
        ["when", "purpose", "action", "source", "notice version", "notice hash", "language"],
        [
            [
                e["occurred_at"],
                e["purpose"],
                e["action"],
                e["source"],
                e["text_version"],
                e["text_hash"],
                e["language"],
            ]
            for e in data["consent_events"]
        ],
    )
    out.write(
        f"<h2>{out.word('Messages')}</h2><table><tr><th>{out.word('when')}</th>"
        f"<th>{out.word('from')}</th><th>{out.word('text')}</th><th>{out.word('state')}</th></tr>"
    )
    async for m in await _messages(session, contact_id):
        who = out.word("you" if m.direction == "inbound" else m.sender_kind)
        cls = ' class="in"' if m.direction == "inbound" else ""
        out.write(
            f"<tr{cls}><td>{_e(m.created_at)}</td><td>{_e(who)}</td>"
            f"<td><pre>{_e(m.body)}</pre></td><td>{_e(m.state)}</td></tr>"
        )
    out.write("</table>\n")
    _table(
        out,
        "Files",
        ["file", "name", "type", "size"],
        [
            [
                x["file"],
                x["filename"],
                x["mime_type"],
                x["size"],
            ]
            for x in data["media"]
        ],
    )
    _table(
        out,
        "Link clicks",
        ["when", "link", "campaign", "IP address", "browser"],
        [
            [k["clicked_at"], k["url"], k["campaign_id"], k["ip_address"], k["user_agent"]]
            for k in data["link_clicks"]
        ],
    )
    _table(
        out,
        "Notes of the team",
        ["when", "author", "note"],
        [[n["created_at"], n["author"], n["body"]] for n in data["notes"]],
    )
    _table(
        out,
        "Audit log entries about you",
        ["when", "action", "by", "subject"],
        [
            [a["occurred_at"], a["action"], a["actor"], f"{a['subject_type']} {a['subject_id']}"]
            for a in data["audit_entries"]
        ],
    )
    out.write("</body></html>\n")


async def export_contact(
    sessions: async_sessionmaker[AsyncSession],
    *,
    workspace_id: str,
    contact_id: str,
    files: FileStore,
    out: Path,
    actor_id: str | None,
    via: str,
    language: str = "en",
) -> ExportSummary:
    """Write the export and record in the audit log who exported whom."""
    async with sessions() as session:
        summary = await write_export(session, workspace_id, contact_id, files, out, language)
    async with sessions() as session, session.begin():
        await audit.record(
            session,
            workspace_id,
            "contact.exported",
            actor_id=actor_id,
            subject_type="contact",
            subject_id=contact_id,
            details={"via": via, "messages": summary.messages, "files": summary.files},
        )
    return summary


async def export_to_file(
    sessions: async_sessionmaker[AsyncSession],
    *,
    workspace_id: str,
    contact_id: str,
    data_dir: Path,
    files: FileStore,
    actor_id: str | None,
    via: str,
    language: str = "en",
) -> Path:
    """Write an audited export to a private file under DATA_DIR/exports (delete it after sending).

    The ZIP is built and sent by the same process, so it stays on local disk; the files in it
    come from the install's file store. README and index.html are in `language` (de or en).
    """
    folder = data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{new_id()}.zip"
    try:
        await export_contact(
            sessions,
            workspace_id=workspace_id,
            contact_id=contact_id,
            files=files,
            out=path,
            actor_id=actor_id,
            via=via,
            language=language,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".part").unlink(missing_ok=True)
        raise
    return path
