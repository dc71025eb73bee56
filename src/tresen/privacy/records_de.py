"""The German words of the records of processing: what the data map, the retention rules and
the channels' provider facts say in English."""

from __future__ import annotations

TABLES: dict[str, tuple[str, str]] = {
    "contacts": ("Kontakte", "Name und eigene Merkmale der Kundschaft"),
    "contact_identities": ("Kontaktadressen", "Telefonnummer, Konto-ID oder E-Mail-Adresse, Name"),
    "webchat_sessions": ("Web-Chat-Sitzungen", "Kennung der Besucherin oder des Besuchers"),
    "conversations": ("Unterhaltungen", "Zeitpunkte der letzten Nachrichten"),
    "messages": ("Nachrichten", "Nachrichtentexte, Inhalte, Kennungen beim Anbieter, Fehlergründe"),
    "pending_statuses": ("Offene Zustellmeldungen", "Kennungen beim Anbieter, Fehlergründe"),
    "jobs": ("Aufgaben", "Inhalte noch zu erledigender Arbeit, letzte Fehler"),
    "notes": ("Notizen", "interne Notizen der Mitarbeitenden"),
    "consent_events": (
        "Einwilligungsnachweise",
        "IP-Adresse und Browserkennung bei der Einwilligung",
    ),
    "audit_log": ("Audit-Log", "Einzelheiten protokollierter Vorgänge"),
    "suppressions": ("Sperrliste", "Prüfsumme der Adresse"),
    "users": ("Konten", "E-Mail, Name, Passwort-Hash, Zwei-Faktor-Geheimnis, Sprache, Status"),
    "invitations": ("Einladungen", "E-Mail-Adresse der eingeladenen Person"),
    "auth_sessions": ("Anmeldesitzungen", "Sitzungskennung"),
    "media": ("Dateien", "Dateiname, Speicherort, Verweis, Grund, Prüfsumme"),
    "contact_merges": (
        "Zusammenführungen",
        "zusammengeführte Adressen und Unterhaltungen, Stand vorher",
    ),
    "bot_conversations": ("Bot-Gespräche", "Gesprächsstand des Bots, Übergabe-Zusammenfassung"),
    "subscriptions": ("Abonnements", "Prüfsumme des Bestätigungslinks"),
    "notifications": ("Benachrichtigungen", "Schlüssel und Prüfsumme der Anfrage"),
    "tracked_links": ("Verfolgte Links", "Ziel-URL"),
    "link_clicks": ("Link-Klicks", "IP-Adresse und Browserkennung beim Klick"),
}
"""Table -> (what it is, what personal data it holds)."""

STORES: dict[str, tuple[str, str]] = {
    "DATA_DIR/media/*": ("Dateiablage", "Dateien, die Kundinnen und Kunden hochgeladen haben"),
    "messages_fts, contacts_fts (FTS5)": (
        "Suchindex",
        "Suchindex über Nachrichtentexte, Namen und Adressen",
    ),
    "messages.search_tsv, contacts.search_tsv, contact_identities.search_tsv": (
        "Suchvektoren",
        "Suchvektoren über Nachrichtentexte, Namen und Adressen",
    ),
    "tresen.db-wal (SQLite write-ahead log)": (
        "Schreibprotokoll der Datenbank",
        "Abbilder kürzlich geänderter Seiten",
    ),
    "in-process caches": (
        "Zwischenspeicher im Prozess",
        "Zähler der Web-Chat-Begrenzung je Besucherkennung (60 s); Live-Ereignisse tragen nur "
        "Kennungen",
    ),
}
"""Store location -> (what it is, what it holds)."""

ERASURE = {
    "delete": "löschen",
    "anonymise": "anonymisieren",
    "keep-as-proof": "als Nachweis behalten",
    "not-about-contacts": "betrifft keine Kundschaft",
}

RETENTION = {
    "inactive_contacts": "inaktive Kontakte",
    "conversations": "Unterhaltungen",
    "media": "Dateien",
    "audit_log": "Audit-Log",
    "tracking_events": "Klick-Auswertung",
}
"""Retention category -> its name."""

PHRASES = {
    "while the account exists": "solange das Konto besteht",
    "kept as proof": "bleibt als Nachweis",
    "with the contact": "mit dem Kontakt",
    "with the rows above": "mit den Einträgen oben",
    "kept": "bleibt",
    # Provider facts of the channels (channels/*.py, PrivacyRecord).
    "the business's own mail provider (SMTP/IMAP server below)": (
        "der eigene Mail-Anbieter des Unternehmens (SMTP-/IMAP-Server unten)"
    ),
    "where that server is operated": "wo dieser Server betrieben wird",
    "the business's contract with its mail provider": (
        "der Vertrag des Unternehmens mit seinem Mail-Anbieter"
    ),
    "the mail provider's data processing agreement and location": (
        "Auftragsverarbeitungsvertrag und Standort des Mail-Anbieters"
    ),
    "Ireland (EU)": "Irland (EU)",
    "WhatsApp Ireland Ltd. / Meta Platforms Ireland Ltd. (WhatsApp Business Platform, "
    "Cloud API hosted by Meta)": (
        "WhatsApp Ireland Ltd. / Meta Platforms Ireland Ltd. (WhatsApp Business Platform, "
        "von Meta betriebene Cloud API)"
    ),
    "EU-US Data Privacy Framework (Meta is certified); standard contractual clauses": (
        "EU-US-Datenschutzrahmen (Meta ist zertifiziert); Standardvertragsklauseln"
    ),
    "Meta Platform Terms and data processing terms": (
        "Plattformbedingungen von Meta und Bedingungen zur Datenverarbeitung"
    ),
    "EU-US Data Privacy Framework (Twilio is certified); standard contractual clauses in "
    "Twilio's data protection addendum": (
        "EU-US-Datenschutzrahmen (Twilio ist zertifiziert); Standardvertragsklauseln im "
        "Datenschutzzusatz von Twilio"
    ),
    "Twilio's data protection addendum": "Datenschutzzusatz von Twilio",
    "Twilio Inc. (Programmable Messaging) and the mobile carriers": (
        "Twilio Inc. (Programmable Messaging) und die Mobilfunkanbieter"
    ),
    "United Arab Emirates": "Vereinigte Arabische Emirate",
    "other countries of Telegram's data centres": "weitere Länder der Rechenzentren von Telegram",
    "none offered: no adequacy decision and no data processing agreement for bots; the "
    "customer chose Telegram and writes first (assess Art. 49(1)(b) GDPR)": (
        "keine angeboten: kein Angemessenheitsbeschluss und kein Auftragsverarbeitungsvertrag "
        "für Bots; die Kundschaft wählt Telegram und schreibt zuerst (Art. 49 Abs. 1 lit. b "
        "DSGVO prüfen)"
    ),
    "Telegram's privacy policy and Bot API terms": (
        "Datenschutzerklärung von Telegram und Bedingungen der Bot-API"
    ),
    "none: the chat widget talks only to this tresen install": (
        "keiner: das Chat-Widget spricht nur mit dieser tresen-Installation"
    ),
    "where this install is operated": "wo diese Installation betrieben wird",
    "not needed (no third party)": "nicht nötig (kein Dritter)",
    "the hosting contract of this install": "der Hosting-Vertrag dieser Installation",
    "EU-US Data Privacy Framework (Meta is certified); standard contractual clauses in "
    "Meta's data processing terms": (
        "EU-US-Datenschutzrahmen (Meta ist zertifiziert); Standardvertragsklauseln in den "
        "Bedingungen von Meta zur Datenverarbeitung"
    ),
    "WhatsApp Business Solution Terms and the data processing terms accepted in Meta "
    "Business Manager": (
        "Bedingungen der WhatsApp Business Solution und die im Meta Business Manager "
        "akzeptierten Bedingungen zur Datenverarbeitung"
    ),
    "the XMPP server named below, and the customer's own server (federation)": (
        "der unten genannte XMPP-Server und der eigene Server der Kundschaft (Föderation)"
    ),
    "where those servers are operated": "wo diese Server betrieben werden",
    "the business's contract with its XMPP host": (
        "der Vertrag des Unternehmens mit seinem XMPP-Anbieter"
    ),
    "the XMPP host's data processing agreement and location": (
        "Auftragsverarbeitungsvertrag und Standort des XMPP-Anbieters"
    ),
}
"""English text of the records -> German."""

NAMES = frozenset(
    {
        "USA",
        "USA (Meta Platforms, Inc.)",
        "USA (Twilio Inc.)",
        "Meta Platforms Ireland Ltd. (Instagram Messaging API)",
        "Meta Platforms Ireland Ltd. (Messenger Platform)",
        "Telegram Messenger Inc. / Telegram FZ-LLC (Bot API)",
    }
)
"""Provider facts that are names, the same in German."""


def german(text: str) -> str:
    """The German of a records text; unknown text stays as it is (the tests list every one)."""
    return PHRASES.get(text, text)
