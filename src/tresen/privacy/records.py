"""Records of processing activities (Art. 30 GDPR), generated from the configuration.

The provider facts below (who runs a messaging service for a business in the EU, where the
data goes, on which safeguard) are as the providers state them in their business terms; the
data protection officer confirms them against the contract in force (`verify` says what).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.registry import CHANNEL_CLASSES, channel_factory
from tresen.db import crypto
from tresen.db.tables import ChannelRow, Workspace
from tresen.db.types import utcnow
from tresen.privacy import datamap, records_de
from tresen.privacy.retention import periods
from tresen.settings import Settings

FORMATS = ("md", "html", "json")


PURPOSES: tuple[tuple[str, dict[str, str], dict[str, str]], ...] = (
    (
        "service_conversation",
        {
            "en": "Answering customers who write first on a messenger, by agents and the bot",
            "de": "Beantwortung von Kundenanfragen, die über einen Messenger eingehen, durch "
            "Mitarbeitende und den Bot",
        },
        {"en": "consent, Art. 6(1)(a) GDPR", "de": "Einwilligung, Art. 6 Abs. 1 lit. a DSGVO"},
    ),
    (
        "topics",
        {
            "en": "News and live tickers to subscribers (double opt-in per topic)",
            "de": "Neuigkeiten und Live-Ticker an Abonnenten (Double-Opt-in je Thema)",
        },
        {"en": "consent, Art. 6(1)(a) GDPR", "de": "Einwilligung, Art. 6 Abs. 1 lit. a DSGVO"},
    ),
    (
        "transactional",
        {
            "en": "Order confirmations, shipping and appointment notices the shop sends",
            "de": "Bestellbestätigungen, Versand- und Terminhinweise des Shops",
        },
        {"en": "contract, Art. 6(1)(b) GDPR", "de": "Vertrag, Art. 6 Abs. 1 lit. b DSGVO"},
    ),
    (
        "accountability",
        {
            "en": "Consent proof, audit log, suppression list after erasure",
            "de": "Einwilligungsnachweis, Audit-Log, Sperrliste nach Löschung",
        },
        {
            "en": "legal obligation, Art. 6(1)(c) with Art. 5(2), 7(1), 17 GDPR",
            "de": "rechtliche Verpflichtung, Art. 6 Abs. 1 lit. c i. V. m. Art. 5 Abs. 2, 7 "
            "Abs. 1, 17 DSGVO",
        },
    ),
    (
        "staff_accounts",
        {
            "en": "Sign-in of the business's staff to the inbox",
            "de": "Anmeldung der Mitarbeitenden am Posteingang",
        },
        {
            "en": "employment, Art. 6(1)(b) GDPR, § 26 BDSG",
            "de": "Beschäftigungsverhältnis, Art. 6 Abs. 1 lit. b DSGVO, § 26 BDSG",
        },
    ),
)

_RETENTION_OF: dict[str, str] = {
    "contacts": "inactive_contacts",
    "contact_identities": "inactive_contacts",
    "conversations": "conversations",
    "messages": "conversations",
    "notes": "conversations",
    "media": "media",
    "bot_conversations": "conversations",
    "bot_turns": "conversations",
    "audit_log": "audit_log",
    "tracked_links": "tracking_events",
    "link_clicks": "tracking_events",
}

PURPOSE_OF_TABLE: dict[str, str] = {
    "subscriptions": "topics",
    "campaign_recipients": "topics",
    "tracked_links": "topics",
    "link_clicks": "topics",
    "notifications": "transactional",
}
"""The purpose of a table where the rule in `purpose_of` does not fit."""


def purpose_of(entry: datamap.TableEntry) -> str:
    """The key of the purpose (in PURPOSES) a table's personal data serves."""
    if entry.table in PURPOSE_OF_TABLE:
        return PURPOSE_OF_TABLE[entry.table]
    if entry.subject == "agent":
        return "staff_accounts"
    if entry.erasure == datamap.Erasure.KEEP_AS_PROOF:
        return "accountability"
    return "service_conversation"


def legal_basis(entry: datamap.TableEntry, language: str = "en") -> str:
    """The legal basis of a table's personal data, from its purpose."""
    key = purpose_of(entry)
    return next(basis[language] for k, _, basis in PURPOSES if k == key)


def retention_of(
    entry: datamap.TableEntry, days: dict[str, int], settings: Settings, language: str = "en"
) -> str:
    """How long a table's rows are kept, given the retention periods in days."""
    de = language == "de"
    category = _RETENTION_OF.get(entry.table)
    if entry.subject == "agent":
        return _said("while the account exists", de)
    if entry.table == "subscriptions":
        if de:
            return f"unbestätigt: {settings.optin_purge_days:g} Tage"
        return f"unconfirmed: {settings.optin_purge_days:g} days"
    if category is not None:
        name = records_de.RETENTION[category] if de else category
        if not days[category]:
            return f"{name}: {_said('kept', de)}"
        return f"{name}: {days[category]} {'Tage' if de else 'days'}"
    if entry.erasure == datamap.Erasure.KEEP_AS_PROOF:
        return _said("kept as proof", de)
    return _said("with the contact", de)


def _said(text: str, de: bool) -> str:
    return records_de.german(text) if de else text


class Code(str):
    """An identifier (a table, a column): shown as code, never translated."""

    __slots__ = ()


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Records of processing activities (Art. 30 GDPR)",
        "controller": "Controller",
        "generated": "Generated from the configuration at",
        "purposes": "Purposes and legal bases",
        "categories": "Categories of data subjects and personal data",
        "recipients": "Recipients (providers of the connected channels)",
        "transfers": "Transfers to third countries",
        "retention": "Time limits for erasure",
        "measures": "Technical and organisational measures (Art. 32)",
        "purpose": "purpose",
        "basis": "legal basis",
        "table": "where",
        "subjects": "data subjects",
        "data": "personal data",
        "erasure": "on erasure",
        "deleted_after": "deleted after",
        "channel": "channel",
        "provider": "recipient",
        "country": "seat",
        "to": "third country",
        "safeguard": "safeguard",
        "verify": "to verify against",
        "category": "category",
        "days": "days (0: kept)",
        "none": "none",
        "draft": "Generated by tresen from the data map, the connected channels and the "
        "retention settings. The provider facts are as the providers state them; the data "
        "protection officer checks them against the contracts in force.",
    },
    "de": {
        "title": "Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO)",
        "controller": "Verantwortlicher",
        "generated": "Aus der Konfiguration erstellt am",
        "purposes": "Zwecke und Rechtsgrundlagen",
        "categories": "Kategorien betroffener Personen und personenbezogener Daten",
        "recipients": "Empfänger (Anbieter der verbundenen Kanäle)",
        "transfers": "Übermittlungen in Drittländer",
        "retention": "Fristen für die Löschung",
        "measures": "Technische und organisatorische Maßnahmen (Art. 32)",
        "purpose": "Zweck",
        "basis": "Rechtsgrundlage",
        "table": "Speicherort",
        "subjects": "Betroffene",
        "data": "personenbezogene Daten",
        "erasure": "bei Löschung",
        "deleted_after": "gelöscht nach",
        "channel": "Kanal",
        "provider": "Empfänger",
        "country": "Sitz",
        "to": "Drittland",
        "safeguard": "Garantie",
        "verify": "zu prüfen anhand",
        "category": "Kategorie",
        "days": "Tage (0: bleibt)",
        "none": "keine",
        "draft": "Von tresen aus der Datenkarte, den verbundenen Kanälen und den "
        "Aufbewahrungsfristen erstellt. Die Angaben zu Anbietern entsprechen deren eigenen "
        "Angaben; die oder der Datenschutzbeauftragte prüft sie anhand der geltenden Verträge.",
    },
}
_SUBJECTS = {
    "contact": {"en": "customers", "de": "Kundinnen und Kunden"},
    "agent": {"en": "staff", "de": "Mitarbeitende"},
}


@dataclass
class Records:
    """The records of one workspace, as data."""

    controller: str
    generated_at: str
    purposes: list[dict[str, str]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, str]] = field(default_factory=list)
    retention: dict[str, int] = field(default_factory=dict)
    measures: list[str] = field(default_factory=list)


def _measures(settings: Settings, language: str) -> list[str]:
    de = language == "de"
    on, off = ("an", "aus") if de else ("on", "off")
    encrypted = crypto.parse_keys(settings.encryption_keys) is not None
    items = [
        (
            f"Verschlüsselung ruhender Daten (AES-256-GCM; Nachrichten, Notizen, Dateien): "
            f"{on if encrypted else off}"
            if de
            else f"Encryption at rest (AES-256-GCM; messages, notes, files): "
            f"{on if encrypted else off}"
        ),
        (
            f"Einwilligung zuerst: {on if settings.consent_first else off}"
            if de
            else f"Consent first: {on if settings.consent_first else off}"
        ),
        (
            "Nachrichten vor der Einwilligung für Mitarbeitende sichtbar: "
            + (on if settings.agents_see_before_consent else off)
            if de
            else "Agents see messages before consent: "
            + (on if settings.agents_see_before_consent else off)
        ),
        (
            "Unveränderliches, verkettetes Audit-Log (tresen audit verify)"
            if de
            else "Append-only, hash-chained audit log (tresen audit verify)"
        ),
        (
            "Rollen (Admin, Supervisor, Agent), Zwei-Faktor-Anmeldung, argon2-Passwörter"
            if de
            else "Roles (admin, supervisor, agent), two-factor sign-in, argon2 passwords"
        ),
        (
            "Keine personenbezogenen Daten in Logs; Löschung überschreibt Datenbankseiten"
            if de
            else "No personal data in logs; erasure overwrites database pages"
        ),
    ]
    return items


def _erasure(erasure: datamap.Erasure, de: bool) -> str:
    return records_de.ERASURE[erasure.value] if de else erasure.value


async def build(
    session: AsyncSession, workspace_id: str, settings: Settings, language: str = "de"
) -> Records:
    """The records for one workspace from its data map, channels and retention settings."""
    lang = language if language in TEXTS else "de"
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise LookupError(f"no workspace with the id {workspace_id!r}")
    days = periods(workspace)
    records = Records(controller=workspace.name, generated_at=utcnow().isoformat())
    records.purposes = [
        {"key": key, "purpose": text[lang], "basis": basis[lang]} for key, text, basis in PURPOSES
    ]
    de = lang == "de"
    for entry in datamap.TABLES:
        if not entry.holds_personal_data:
            continue
        label, data = records_de.TABLES.get(entry.table, ("", "")) if de else ("", "")
        records.categories.append(
            {
                "table": entry.table,
                "label": label,
                "subjects": _SUBJECTS.get(entry.subject, {}).get(lang, entry.subject),
                "data": data or ", ".join(entry.personal_columns),
                "columns": ", ".join(entry.personal_columns),
                "why": entry.why,
                "erasure": _erasure(entry.erasure, de),
                "retention": retention_of(entry, days, settings, lang),
            }
        )
    dialect = "postgresql" if settings.effective_database_url.startswith("postgresql") else "sqlite"
    for store in datamap.STORES:
        if dialect not in store.dialects:
            continue
        label, holds = records_de.STORES.get(store.location, ("", "")) if de else ("", "")
        records.categories.append(
            {
                "table": store.location,
                "label": label,
                "subjects": _SUBJECTS["contact"][lang],
                "data": holds or store.holds,
                "columns": "",
                "why": store.why,
                "erasure": _erasure(store.erasure, de),
                "retention": _said("with the rows above", de),
            }
        )
    channels = list(
        await session.scalars(
            select(ChannelRow)
            .where(ChannelRow.workspace_id == workspace_id, ChannelRow.enabled.is_(True))
            .order_by(ChannelRow.kind, ChannelRow.name)
        )
    )
    seen: set[tuple[str, str]] = set()
    for row in channels:
        if row.kind not in CHANNEL_CLASSES:
            continue
        factory = channel_factory(row.kind)
        provider = factory.privacy
        detail = factory.privacy_detail(row.config or {})
        records.recipients.append(
            {
                "channel": f"{row.kind}: {row.name}",
                "recipient": _said(provider.recipient, de),
                "detail": "Server " + detail[7:] if de and detail.startswith("server ") else detail,
                "country": _said(provider.country, de),
                "verify": _said(provider.verify, de),
            }
        )
        for country in provider.third_countries:
            if (row.kind, country) in seen:
                continue
            seen.add((row.kind, country))
            records.transfers.append(
                {
                    "channel": row.kind,
                    "recipient": _said(provider.recipient, de),
                    "country": _said(country, de),
                    "safeguard": _said(provider.safeguard, de),
                }
            )
    records.retention = days
    records.measures = _measures(settings, lang)
    return records


def as_json(records: Records) -> str:
    """The records as one JSON document."""
    return json.dumps(asdict(records), ensure_ascii=False, indent=2)


def _md_table(heads: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, tuple):
            return " ".join(cell(v) for v in value)
        text = str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")
        return f"`{text}`" if isinstance(value, Code) else text

    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _where(category: dict[str, Any]) -> Any:
    """A German name with the table as code, or the table alone."""
    if category.get("label"):
        return (category["label"], Code(category["table"]))
    return Code(category["table"])


def _sections(
    records: Records, t: dict[str, str], language: str = "en"
) -> list[tuple[str, list[str], list[list[Any]]]]:
    de = language == "de"
    return [
        (
            t["purposes"],
            [t["purpose"], t["basis"]],
            [[p["purpose"], p["basis"]] for p in records.purposes],
        ),
        (
            t["categories"],
            [t["table"], t["subjects"], t["data"], t["erasure"], t["deleted_after"]],
            [
                [_where(c), c["subjects"], c["data"], c["erasure"], c["retention"]]
                for c in records.categories
            ],
        ),
        (
            t["recipients"],
            [t["channel"], t["provider"], t["country"], t["verify"]],
            [
                [
                    r["channel"],
                    r["recipient"] + (f" ({r['detail']})" if r["detail"] else ""),
                    r["country"],
                    r["verify"],
                ]
                for r in records.recipients
            ],
        ),
        (
            t["transfers"],
            [t["channel"], t["provider"], t["to"], t["safeguard"]],
            [
                [x["channel"], x["recipient"], x["country"], x["safeguard"]]
                for x in records.transfers
            ],
        ),
        (
            t["retention"],
            [t["category"], t["days"]],
            [
                [(records_de.RETENTION.get(k, k), Code(k)) if de else Code(k), v]
                for k, v in records.retention.items()
            ],
        ),
    ]


def as_markdown(records: Records, language: str = "de") -> str:
    """The records as Markdown."""
    t = TEXTS[language if language in TEXTS else "de"]
    lines = [
        f"# {t['title']}",
        "",
        f"{t['controller']}: **{records.controller}** · {t['generated']} {records.generated_at}",
        "",
        t["draft"],
    ]
    for title, heads, rows in _sections(records, t, language):
        lines += ["", f"## {title}", ""]
        lines += _md_table(heads, rows) if rows else [t["none"]]
    lines += ["", f"## {t['measures']}", ""] + [f"- {m}" for m in records.measures]
    return "\n".join(lines) + "\n"


def _html_cell(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(_html_cell(v) for v in value)
    if isinstance(value, Code):
        return f"<code>{html.escape(str(value))}</code>"
    return html.escape(str(value))


def as_html(records: Records, language: str = "de", *, fragment: bool = False) -> str:
    """The records as HTML (a whole page, or a fragment for the admin page); all text escaped."""
    t = TEXTS[language if language in TEXTS else "de"]
    e = html.escape
    parts = [
        f"<h1>{e(t['title'])}</h1>",
        f"<p>{e(t['controller'])}: <strong>{e(records.controller)}</strong> · "
        f"{e(t['generated'])} {e(records.generated_at)}</p><p>{e(t['draft'])}</p>",
    ]
    for title, heads, rows in _sections(records, t, language):
        parts.append(f"<h2>{e(title)}</h2>")
        if not rows:
            parts.append(f"<p>{e(t['none'])}</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in heads) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{_html_cell(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    parts.append(f"<h2>{e(t['measures'])}</h2><ul>")
    parts += [f"<li>{e(m)}</li>" for m in records.measures]
    parts.append("</ul>")
    body = "".join(parts)
    if fragment:
        return body
    return (
        f'<!doctype html><html lang="{e(language)}"><meta charset="utf-8">'
        f"<title>{e(t['title'])}</title><body>{body}</body></html>\n"
    )


def render(records: Records, fmt: str, language: str = "de") -> str:
    """The records in one of FORMATS."""
    if fmt == "json":
        return as_json(records)
    if fmt == "md":
        return as_markdown(records, language)
    if fmt == "html":
        return as_html(records, language)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
