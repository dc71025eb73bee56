"""The German words of a personal data export: the README and the headings of index.html."""

from __future__ import annotations

README = """Export personenbezogener Daten aus tresen ({format})
===================================================

Dieses Archiv enthält alles, was das Unternehmen in tresen über eine Person speichert, mit dem
Stand des Zeitpunkts „exported_at“ in data.json (UTC, ISO 8601). Öffnen Sie index.html in einem
Browser, um es zu lesen.

Dateien
-------
index.html        derselbe Inhalt als lesbare Seite
data.json         ein JSON-Objekt (UTF-8); die Feldnamen sind englisch:
  format          "{format}"
  exported_at     wann dieser Export erstellt wurde
  business        das Unternehmen (der Arbeitsbereich)
  contact         id, display_name (Name), attributes (freie Angaben, die das Unternehmen
                  führt), consent_state (Stand der Einwilligung: unknown = noch nicht gefragt,
                  asked = gefragt, granted = erteilt, refused = abgelehnt), restricted_at
                  (gesetzt, solange die Verarbeitung eingeschränkt ist, Art. 18 DSGVO),
                  created_at (angelegt), updated_at (geändert)
  identities[]    die Adresse der Person je Kanal: channel_id, channel_kind, channel_name,
                  address (Telefonnummer, Chat-ID oder E-Mail-Adresse), display_name,
                  unreachable (der Anbieter meldet die Adresse als nicht erreichbar), created_at
  consent_events[] Nachweis der Einwilligung: purpose (Zweck), action (requested = angefragt,
                  granted = erteilt, refused = abgelehnt, withdrawn = widerrufen), channel_id,
                  source (wie sie gegeben wurde), text_version und text_hash (SHA-256 des
                  gezeigten Datenschutzhinweises), language (Sprache), ip_address, user_agent,
                  occurred_at (Zeitpunkt)
  conversations[] id, channel_id, channel_kind, status, legal_hold (gesetzliche
                  Aufbewahrung), created_at, last_inbound_at, last_message_at
  notes[]         interne Notizen der Mitarbeitenden in den Unterhaltungen der Person:
                  conversation_id, author (Name), body (Text), created_at
  audit_entries[] Einträge des Audit-Logs über die Person oder ihre Unterhaltungen: action
                  (z. B. conversation.viewed, contact.exported), actor (Name der oder des
                  Mitarbeitenden; leer für das System oder einen API-Zugang), subject_type,
                  subject_id, details, occurred_at
  media[]         für die Person gespeicherte Dateien: message_id, file (Pfad in diesem
                  Archiv), mime_type, filename, size (Größe in Bytes)
  tracked_links[] Links, die nur für die Person erzeugt wurden (nur mit Einwilligung in die
                  Klick-Auswertung): url (Ziel), campaign_id, created_at
  link_clicks[]   Klicks der Person auf Links (nur mit Einwilligung in die Klick-Auswertung):
                  url, campaign_id, clicked_at, ip_address und user_agent (nur, wo die
                  Einstellung ihre Speicherung erlaubt)
  broadcasts[]    Rundsendungen, die die Person erhalten sollte: campaign (Name), state
                  (sent = gesendet, skipped = übersprungen, failed = fehlgeschlagen, ...),
                  sent_at; die Nachrichten selbst stehen in messages.jsonl
messages.jsonl    ein JSON-Objekt je Zeile, älteste zuerst: id, conversation_id, direction
                  (inbound = von der Person, outbound = an sie), sender_kind (contact = die
                  Person, agent = Mitarbeitende, bot, system), content_kind (text, media,
                  interactive, ...), body (Text), payload (die Nachricht, wie der Kanal sie
                  geliefert oder gesendet hat), state (queued = wartet, sent = gesendet,
                  delivered = zugestellt, read = gelesen, failed = fehlgeschlagen, ...),
                  error_code, error_reason, created_at, sent_at, delivered_at, read_at,
                  failed_at
media/            die Dateien selbst
"""

HTML = {
    "title": "Daten von {name}",
    "heading": "Personenbezogene Daten bei {business}",
    "intro": "Exportiert am {when} (UTC). Dieselben Daten als JSON stehen in data.json, "
    "erklärt in README.txt.",
    "Profile": "Profil",
    "Addresses": "Adressen",
    "Consent": "Einwilligung",
    "Messages": "Nachrichten",
    "Files": "Dateien",
    "Link clicks": "Link-Klicks",
    "Notes of the team": "Notizen des Teams",
    "Audit log entries about you": "Einträge des Audit-Logs über Sie",
    "field": "Feld",
    "value": "Wert",
    "channel": "Kanal",
    "address": "Adresse",
    "name": "Name",
    "unreachable": "nicht erreichbar",
    "since": "seit",
    "when": "Zeitpunkt",
    "purpose": "Zweck",
    "action": "Vorgang",
    "source": "Quelle",
    "notice version": "Version des Hinweises",
    "notice hash": "Prüfsumme des Hinweises",
    "language": "Sprache",
    "from": "von",
    "text": "Text",
    "state": "Status",
    "file": "Datei",
    "type": "Typ",
    "size": "Größe",
    "link": "Link",
    "campaign": "Rundsendung",
    "IP address": "IP-Adresse",
    "browser": "Browser",
    "author": "verfasst von",
    "note": "Notiz",
    "by": "durch",
    "subject": "betrifft",
    "you": "Sie",
    "agent": "Mitarbeitende",
    "bot": "Bot",
    "system": "System",
}
"""English heading -> German."""
