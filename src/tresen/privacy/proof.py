"""A printable proof of consent per contact (Art. 7(1)): every consent event, as a page."""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import (
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Suppression,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.privacy import audit
from tresen.privacy.consent import PURPOSE, notice_for
from tresen.privacy.erasure import ContactNotFound

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Proof of consent",
        "intro": "Every consent event {business} recorded for this person, oldest first. The "
        "events are append-only: the database refuses to change or delete them. A withdrawal "
        "is a new event.",
        "contact": "Contact",
        "contact_id": "contact id",
        "name": "name",
        "addresses": "addresses",
        "state": "consent to the service conversation",
        "restricted": "processing restricted (Art. 18) since",
        "erased": "The person's data was erased; the addresses survive only as keyed hashes "
        "(suppression list). The events below are what remains as proof.",
        "summary": "Current state per purpose",
        "events": "Consent events",
        "when": "time (UTC)",
        "purpose": "purpose",
        "action": "action",
        "channel": "channel",
        "source": "source",
        "version": "text version",
        "hash": "SHA-256 of the text shown",
        "language": "language",
        "ip": "IP address",
        "agent": "user agent",
        "notice": "Text of the privacy notice (version {version}, {language}); its SHA-256 "
        "matches the recorded hash",
        "none": "No consent events are recorded for this contact.",
        "printed": "Made {now} (UTC) by tresen.",
        "requested": "asked",
        "granted": "granted",
        "refused": "refused",
        "withdrawn": "withdrawn",
        "service_conversation": "service conversation",
        "unknown": "not asked yet",
        "asked": "asked, no answer yet",
    },
    "de": {
        "title": "Nachweis der Einwilligung",
        "intro": "Alle Einwilligungs-Ereignisse, die {business} zu dieser Person gespeichert "
        "hat, das älteste zuerst. Die Ereignisse sind unveränderlich: Die Datenbank verweigert "
        "Änderungen und Löschungen. Ein Widerruf ist ein neues Ereignis.",
        "contact": "Kontakt",
        "contact_id": "Kontakt-ID",
        "name": "Name",
        "addresses": "Adressen",
        "state": "Einwilligung in die Service-Unterhaltung",
        "restricted": "Verarbeitung eingeschränkt (Art. 18) seit",
        "erased": "Die Daten der Person wurden gelöscht; die Adressen sind nur noch als "
        "verschlüsselter Hash (Sperrliste) vorhanden. Die folgenden Ereignisse bleiben als "
        "Nachweis.",
        "summary": "Aktueller Stand je Zweck",
        "events": "Einwilligungs-Ereignisse",
        "when": "Zeitpunkt (UTC)",
        "purpose": "Zweck",
        "action": "Vorgang",
        "channel": "Kanal",
        "source": "Quelle",
        "version": "Textversion",
        "hash": "SHA-256 des gezeigten Texts",
        "language": "Sprache",
        "ip": "IP-Adresse",
        "agent": "User-Agent",
        "notice": "Text des Datenschutzhinweises (Version {version}, {language}); sein SHA-256 "
        "stimmt mit dem gespeicherten überein",
        "none": "Zu diesem Kontakt sind keine Einwilligungs-Ereignisse gespeichert.",
        "printed": "Erstellt {now} (UTC) von tresen.",
        "requested": "angefragt",
        "granted": "erteilt",
        "refused": "abgelehnt",
        "withdrawn": "widerrufen",
        "service_conversation": "Service-Unterhaltung",
        "unknown": "noch nicht gefragt",
        "asked": "gefragt, noch keine Antwort",
    },
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;"
    "color:#111}table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{border:1px solid "
    "#999;padding:.25rem .4rem;text-align:left;vertical-align:top}code{word-break:break-all}"
    ".withdrawn,.refused{background:#fff1f0}.granted{background:#f0fff3}"
    "blockquote{border-left:3px solid #999;margin:.5rem 0;padding:.25rem .75rem}"
    "@media print{body{margin:0;max-width:none}a{color:inherit}}"
)


STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page has no script and no link; only its own inline style may apply."""


@dataclass(frozen=True)
class ProofEvent:
    """One consent event with its channel named."""

    occurred_at: datetime
    purpose: str
    action: str
    channel: str | None
    source: str
    text_version: str | None
    text_hash: str | None
    language: str | None
    ip_address: str | None
    user_agent: str | None


@dataclass
class Proof:
    """What the proof page shows."""

    business: str
    contact_id: str
    name: str | None
    consent_state: str | None
    restricted_at: datetime | None
    erased: bool
    addresses: list[tuple[str, str]] = field(default_factory=list)
    events: list[ProofEvent] = field(default_factory=list)
    notices: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """text hash -> (version, language, text) for hashes matching the configured notice."""

    def summary(self) -> list[tuple[str, str, datetime]]:
        """The latest action per purpose."""
        latest: dict[str, ProofEvent] = {}
        for event in self.events:
            latest[event.purpose] = event
        return [(p, e.action, e.occurred_at) for p, e in sorted(latest.items())]


async def gather(session: AsyncSession, workspace_id: str, contact_id: str) -> Proof:
    """Everything the proof shows; ContactNotFound when neither the contact nor events exist."""
    workspace = await session.get(Workspace, workspace_id)
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    rows = (
        await session.execute(
            select(ConsentEvent, ChannelRow.kind, ChannelRow.name)
            .outerjoin(ChannelRow, ChannelRow.id == ConsentEvent.channel_id)
            .where(ConsentEvent.workspace_id == workspace_id, ConsentEvent.contact_id == contact_id)
            .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
        )
    ).all()
    erased = contact is None and (
        await session.scalar(
            select(Suppression.id)
            .where(
                Suppression.workspace_id == workspace_id,
                Suppression.erased_contact_id == contact_id,
            )
            .limit(1)
        )
        is not None
    )
    if workspace is None or (contact is None and not rows):
        raise ContactNotFound(f"no contact {contact_id!r} in this workspace")
    proof = Proof(
        business=workspace.name,
        contact_id=contact_id,
        name=contact.display_name if contact else None,
        consent_state=contact.consent_state if contact else None,
        restricted_at=contact.restricted_at if contact else None,
        erased=erased or contact is None,
    )
    if contact is not None:
        proof.addresses = [
            (kind, address)
            for kind, address in await session.execute(
                select(ChannelRow.kind, ContactIdentity.address)
                .join(ChannelRow, ChannelRow.id == ContactIdentity.channel_id)
                .where(ContactIdentity.contact_id == contact.id)
                .order_by(ChannelRow.kind, ContactIdentity.address)
            )
        ]
    for event, kind, name in rows:
        proof.events.append(
            ProofEvent(
                occurred_at=event.occurred_at,
                purpose=event.purpose,
                action=event.action,
                channel=f"{kind} ({name})" if kind else None,
                source=event.source,
                text_version=event.text_version,
                text_hash=event.text_hash,
                language=event.language,
                ip_address=event.ip_address,
                user_agent=event.user_agent,
            )
        )
    for language in ("de", "en"):
        notice = notice_for(workspace, language)
        if any(e.text_hash == notice.text_hash for e in proof.events if e.purpose == PURPOSE):
            proof.notices[notice.text_hash] = (notice.version, notice.language, notice.text)
    return proof


def _e(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return html.escape(value.strftime("%Y-%m-%d %H:%M:%S"))
    return html.escape(str(value))


def _rows(cells: Iterable[Iterable[object]], classes: Iterable[str] | None = None) -> str:
    names = list(classes) if classes is not None else []
    out = []
    for i, row in enumerate(cells):
        cls = f' class="{html.escape(names[i])}"' if i < len(names) else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>")
    return "".join(out)


def render(proof: Proof, language: str = "de") -> str:
    """The proof as one self-contained, printable HTML page (all values escaped)."""
    language = language if language in TEXTS else "de"
    t = TEXTS[language]

    def word(key: str) -> str:
        return t.get(key, key)

    profile: list[list[object]] = [
        [t["contact_id"], proof.contact_id],
        [t["name"], proof.name],
        [t["addresses"], ", ".join(f"{k}: {a}" for k, a in proof.addresses)],
        [t["state"], word(proof.consent_state) if proof.consent_state else ""],
    ]
    if proof.restricted_at:
        profile.append([t["restricted"], proof.restricted_at])
    parts = [
        f'<!doctype html><html lang="{language}"><meta charset="utf-8">'
        f"<title>{_e(t['title'])} – {_e(proof.contact_id)}</title><style>{_STYLE}</style><body>",
        f"<h1>{_e(t['title'])} – {_e(proof.business)}</h1>",
        f"<p>{_e(t['intro'].format(business=proof.business))}</p>",
        f"<h2>{_e(t['contact'])}</h2><table>",
        _rows(profile),
        "</table>",
    ]
    if proof.erased:
        parts.append(f"<p><strong>{_e(t['erased'])}</strong></p>")
    if not proof.events:
        parts.append(f"<p>{_e(t['none'])}</p>")
    else:
        parts.append(f"<h2>{_e(t['summary'])}</h2><table>")
        parts.append(f"<tr><th>{_e(t['purpose'])}</th><th>{_e(t['action'])}</th>")
        parts.append(f"<th>{_e(t['when'])}</th></tr>")
        summary = proof.summary()
        parts.append(
            _rows(
                ([word(p), word(a), at] for p, a, at in summary),
                [a for _p, a, _at in summary],
            )
        )
        parts.append(f"</table><h2>{_e(t['events'])}</h2><table><tr>")
        heads = ["when", "purpose", "action", "channel", "source", "version", "hash", "language"]
        heads += ["ip", "agent"]
        parts.append("".join(f"<th>{_e(t[h])}</th>" for h in heads) + "</tr>")
        parts.append(
            _rows(
                (
                    [
                        e.occurred_at,
                        word(e.purpose),
                        word(e.action),
                        e.channel,
                        e.source,
                        e.text_version,
                        e.text_hash,
                        e.language,
                        e.ip_address,
                        e.user_agent,
                    ]
                    for e in proof.events
                ),
                [e.action for e in proof.events],
            )
        )
        parts.append("</table>")
        for text_hash, (version, lang, text) in proof.notices.items():
            parts.append(
                f"<h3>{_e(t['notice'].format(version=version, language=lang))}</h3>"
                f"<p><code>{_e(text_hash)}</code></p><blockquote>{_e(text)}</blockquote>"
            )
    parts.append(f"<p><small>{_e(t['printed'].format(now=_e(utcnow())))}</small></p>")
    parts.append("</body></html>\n")
    return "".join(parts)


async def consent_proof(
    session: AsyncSession,
    workspace_id: str,
    contact_id: str,
    *,
    language: str,
    actor_id: str | None,
    via: str,
) -> str:
    """The proof page for one contact; who printed it goes into the audit log."""
    proof = await gather(session, workspace_id, contact_id)
    await audit.record(
        session,
        workspace_id,
        "contact.consent_proof",
        actor_id=actor_id,
        subject_type="contact",
        subject_id=contact_id,
        details={"via": via, "events": len(proof.events)},
    )
    return render(proof, language)
