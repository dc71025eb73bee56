"""A small bilingual knowledge base for the live bot tests."""

from __future__ import annotations

from typing import Any

import yaml

from tresen.bot import store
from tresen.runtime import Runtime

BLACKLISTED = "Fahrradkette24"

KB_YAML = f"""
business: Radladen Test
language: de
blacklist: ["{BLACKLISTED}"]
flows:
  - id: groesse
    slots:
      - name: size
        type: shoe_size
        ask: {{de: "Welche Größe brauchen Sie?", en: "Which size do you need?"}}
    done: {{de: "Größe {{size}} haben wir vorrätig.", en: "We have size {{size}} in stock."}}
faqs:
  - id: oeffnungszeiten
    questions:
      - Wann haben Sie geöffnet?
      - Wie sind Ihre Öffnungszeiten?
      - Habt ihr samstags offen?
      - When are you open?
      - What are your opening hours?
    answer:
      de: "Wir haben Montag bis Freitag von 9 bis 18 Uhr geöffnet."
      en: "We are open Monday to Friday from 9 am to 6 pm."
  - id: versand
    questions:
      - Was kostet der Versand?
      - Wie hoch sind die Versandkosten?
      - How much is shipping?
      - What are the shipping costs?
    answer:
      de: "Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."
      en: "Shipping costs 4.90 €, free from 50 €."
  - id: rueckgabe
    questions:
      - Kann ich etwas zurückgeben?
      - Wie funktioniert die Rücksendung?
      - Can I return an item?
      - How do returns work?
    answer:
      de: "Sie können Artikel 30 Tage lang zurückgeben, anders als bei {BLACKLISTED} kostenlos."
      en: "You can return items within 30 days, free of charge unlike {BLACKLISTED}."
  - id: schuhe
    flow: groesse
    questions:
      - Habt ihr den Radschuh in meiner Größe?
      - Gibt es die Radschuhe auch in anderen Größen?
      - Do you have the cycling shoe in my size?
    answer:
      de: "Unsere Radschuhe gibt es in vielen Größen."
      en: "Our cycling shoes come in many sizes."
  - id: zahlung
    questions:
      - Welche Zahlungsarten gibt es?
      - Kann ich mit PayPal bezahlen?
      - Which payment methods do you accept?
    answer:
      de: "Sie können mit PayPal, Karte oder auf Rechnung bezahlen."
      en: "You can pay with PayPal, card or by invoice."
"""


def kb_data() -> Any:
    """The test knowledge base as parsed YAML."""
    return yaml.safe_load(KB_YAML)


async def import_kb(runtime: Runtime, workspace_id: str, data: Any = None) -> int:
    """Import the test knowledge base (or `data`) into a workspace."""
    parsed = store.parse_import(data if data is not None else kb_data(), "test kb")
    async with runtime.sessions() as session, session.begin():
        return await store.import_file(session, workspace_id, parsed)


SHOP_FLOWS: list[dict[str, Any]] = [
    {
        "id": "finder",
        "action": "find_products",
        "slots": [
            {
                "name": "category",
                "type": "choice",
                "choices_from": "category",
                "ask": "Was suchen Sie?",
            },
            {"name": "size", "type": "size", "allow_any": True, "ask": "Welche Größe?"},
            {
                "name": "brand",
                "type": "choice",
                "choices_from": "brand",
                "allow_any": True,
                "ask": "Marke?",
            },
            {"name": "budget", "type": "amount", "allow_any": True, "ask": "Bis wie viel €?"},
        ],
    },
    {
        "id": "bestellstatus",
        "action": "order_status",
        "slots": [
            {
                "name": "order",
                "type": "order_number",
                "pattern": r"RH-?\d{5,8}",
                "ask": {"de": "Wie lautet Ihre Bestellnummer?", "en": "What is your order number?"},
            },
            {
                "name": "verification",
                "type": "verification",
                "ask": {
                    "de": "Wie lautet die Postleitzahl der Lieferadresse oder Ihre E-Mail-Adresse?",
                    "en": "What is the postcode of the delivery address or your e-mail address?",
                },
            },
        ],
    },
]
SHOP_FAQS: list[dict[str, Any]] = [
    {
        "id": "beratung",
        "flow": "finder",
        "questions": [
            "Können Sie mir etwas empfehlen?",
            "Ich suche etwas Neues",
            "Can you recommend something?",
        ],
        "answer": {"de": "Gern helfe ich beim Suchen.", "en": "Happy to help."},
    },
    {
        "id": "bestellung",
        "flow": "bestellstatus",
        "questions": [
            "Wo ist meine Bestellung?",
            "Wie ist der Status meiner Bestellung?",
            "Wann kommt mein Paket?",
            "Where is my order?",
        ],
        "answer": {"de": "Ich schaue nach Ihrer Bestellung.", "en": "I will look up your order."},
    },
]


def shop_kb_data() -> Any:
    """The test knowledge base plus a product finder and an order-status flow."""
    data = kb_data()
    data["flows"].extend(SHOP_FLOWS)
    data["faqs"].extend(SHOP_FAQS)
    return data
