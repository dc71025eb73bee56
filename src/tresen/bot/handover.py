"""The note for the team when the bot hands a conversation over: in the workspace's language,
written for people (no slot keys, no placeholders), with what the bot found out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tresen.bot.flows import ANY, FlowSpec, SlotSpec
from tresen.bot.kb import KnowledgeBase
from tresen.bot.products import Catalog, price_text
from tresen.bot.text import clean

NOTE_LANGUAGES = ("de", "en")
LAST_MESSAGE_CHARS = 300
# Slots never written into the note: the second factor of an order look-up stays private.
PRIVATE_TYPES = frozenset(["verification", "postcode", "email"])

REASONS: dict[str, dict[str, str]] = {
    "de": {
        "asked_for_person": "Wunsch nach einer Person aus dem Team",
        "callback": "Bitte um Rückruf",
        "not_understood": "der Bot hat zweimal nicht verstanden",
        "frustration": "Unmut über den Bot",
        "insult": "ausfallender Ton",
        "complaint": "Beschwerde",
        "lost_parcel": "Paket nicht angekommen, beschädigt oder falsch",
        "flow": "eine Rückfrage des Bots blieb ohne passende Antwort",
        "order_verification": "Bestellung dreimal nicht gefunden (Nummer oder PLZ/E-Mail passten nicht)",
        "shop_unavailable": "der Shop war für die Bestellabfrage nicht erreichbar",
        "media": "Bild, Sprachnachricht oder Datei, die der Bot nicht auswerten kann",
        "too_long": "Nachricht zu lang, um sie ganz zu lesen",
        "unreadable": "Nachricht, die der Bot nicht lesen kann (z. B. Standort oder Kontakt)",
        "cannot_send": "die Antwort des Bots ließ sich nicht senden",
    },
    "en": {
        "asked_for_person": "asked for a person from the team",
        "callback": "asked for a call back",
        "not_understood": "the bot did not understand twice",
        "frustration": "annoyed with the bot",
        "insult": "abusive language",
        "complaint": "complaint",
        "lost_parcel": "parcel not arrived, damaged or wrong",
        "flow": "a question of the bot got no usable answer",
        "order_verification": "order not found three times (number or postcode/e-mail did not match)",
        "shop_unavailable": "the shop could not be reached for the order look-up",
        "media": "a picture, voice message or file the bot cannot use",
        "too_long": "message too long to read whole",
        "unreadable": "a message the bot cannot read (e.g. a location or contact)",
        "cannot_send": "the bot's reply could not be sent",
    },
}
LINES: dict[str, dict[str, str]] = {
    "de": {
        "title": "Vom Bot übergeben: {reason}",
        "language": "Sprache im Gespräch: {language}",
        "asked": "Beantwortete Fragen: {questions}",
        "guess": "Vermutlich gemeint (unsicher): {question}",
        "products": "Angesehene Produkte: {products}",
        "found": "Gezeigte Suchergebnisse: {products}",
        "details": "Angaben: {details}",
        "order": "Bestellung {order}: {status}",
        "order_unknown": "Bestellnummer {order} (nicht gefunden oder Angaben passten nicht)",
        "order_open": "Bestellnummer {order} (noch nicht abgefragt)",
        "media": "Geschickt: {media}",
        "last": "Letzte Nachricht: „{text}“",
    },
    "en": {
        "title": "Handed over by the bot: {reason}",
        "language": "Language of the conversation: {language}",
        "asked": "Questions answered: {questions}",
        "guess": "Probably meant (not sure): {question}",
        "products": "Products looked at: {products}",
        "found": "Search results shown: {products}",
        "details": "Details: {details}",
        "order": "Order {order}: {status}",
        "order_unknown": "Order number {order} (not found or details did not match)",
        "order_open": "Order number {order} (not looked up yet)",
        "media": "Sent: {media}",
        "last": "Last message: “{text}”",
    },
}
LANGUAGE_NAMES = {
    "de": {"de": "Deutsch", "en": "Englisch"},
    "en": {"de": "German", "en": "English"},
}
MEDIA_NAMES = {
    "de": {
        "image": "ein Foto",
        "audio": "eine Sprachnachricht",
        "video": "ein Video",
        "document": "eine Datei",
        "sticker": "einen Sticker",
        "location": "einen Standort",
        "contacts": "einen Kontakt",
    },
    "en": {
        "image": "a photo",
        "audio": "a voice message",
        "video": "a video",
        "document": "a file",
        "sticker": "a sticker",
        "location": "a location",
        "contacts": "a contact",
    },
}
SLOT_LABELS = {
    "de": {
        "category": "Kategorie",
        "brand": "Marke",
        "color": "Farbe",
        "size": "Größe",
        "shoe_size": "Schuhgröße",
        "amount": "Preis",
        "height": "Körpergröße",
        "order_number": "Bestellnummer",
    },
    "en": {
        "category": "category",
        "brand": "brand",
        "color": "colour",
        "size": "size",
        "shoe_size": "shoe size",
        "amount": "price",
        "height": "height",
        "order_number": "order number",
    },
}
ANY_WORD = {"de": "egal", "en": "any"}


def _label(slot: SlotSpec, lang: str) -> str:
    if slot.label:
        value = slot.label.get(lang) or next(iter(slot.label.values()))
        return str(value if isinstance(value, str) else next(iter(value.values())))
    key = slot.choices_from or slot.type
    if key in SLOT_LABELS[lang]:
        return SLOT_LABELS[lang][key]
    ask = slot.ask.get(lang) or next(iter(slot.ask.values()))
    question = ask if isinstance(ask, str) else next(iter(ask.values()))
    return f"„{question.strip()}“" if lang == "de" else f"“{question.strip()}”"


def _value(slot: SlotSpec, value: Any, lang: str) -> str:
    if value == ANY:
        return ANY_WORD[lang]
    if slot.type == "amount" and isinstance(value, int | float):
        up_to = "bis" if lang == "de" else "up to"
        return f"{up_to} {price_text(round(float(value) * 100), lang)}"
    if slot.type == "height":
        return f"{value} cm"
    if isinstance(value, float):
        text = f"{value:g}"
        return text.replace(".", ",") if lang == "de" else text
    return clean(str(value))[:100]


def _details(slots: Mapping[str, Any], flows: Iterable[FlowSpec], lang: str) -> list[str]:
    """The slot values the bot gathered, each named as a person would name it."""
    known: dict[str, SlotSpec] = {}
    for flow in flows:
        for slot in flow.slots:
            known.setdefault(slot.name, slot)
    out = []
    for name, value in slots.items():
        spec = known.get(name)
        if spec is None or spec.type in PRIVATE_TYPES or spec.type == "order_number":
            continue
        out.append(f"{_label(spec, lang)} {_value(spec, value, lang)}")
    return out


def _product_names(skus: Iterable[Any], catalog: Catalog | None) -> str:
    names = []
    for sku in skus:
        product = catalog.by_sku(str(sku)) if catalog else None
        if product is None:
            names.append(str(sku))
            continue
        brand = product.brand if product.brand.casefold() not in product.name.casefold() else ""
        names.append(f"{brand} {product.name} ({product.sku})".strip())
    return ", ".join(names)


def note(
    state: Mapping[str, Any],
    kb: KnowledgeBase,
    reason: str,
    last_text: str,
    *,
    flows: Iterable[FlowSpec] = (),
    catalog: Catalog | None = None,
    language: str | None = None,
    media: str | None = None,
    status_names: Mapping[str, str] | None = None,
) -> str:
    """A short note for the team: why, the customer's language, what the bot answered and found."""
    lang = language if language in NOTE_LANGUAGES else "de" if kb.language == "de" else "en"
    lines_of = LINES[lang]
    reason_text = REASONS[lang].get(reason, reason.replace("_", " "))
    lines = [lines_of["title"].format(reason=reason_text)]
    spoken = str(state.get("language") or kb.language)
    lines.append(
        lines_of["language"].format(language=LANGUAGE_NAMES[lang].get(spoken, spoken.upper()))
    )
    matched = [k for k in dict.fromkeys(state.get("matched", [])) if k in kb.by_id]
    if matched:
        questions = "; ".join(kb.by_id[k].questions[0] for k in matched)
        lines.append(lines_of["asked"].format(questions=questions))
    guess = state.get("guess")
    if guess and guess in kb.by_id and not matched:
        lines.append(lines_of["guess"].format(question=kb.by_id[guess].questions[0]))
    if state.get("products"):
        lines.append(
            lines_of["products"].format(products=_product_names(state["products"], catalog))
        )
    if state.get("found"):
        lines.append(lines_of["found"].format(products=_product_names(state["found"], catalog)))
    details = _details(state.get("slots") or {}, flows, lang)
    if details:
        lines.append(lines_of["details"].format(details=", ".join(details)))
    order = state.get("order") if isinstance(state.get("order"), dict) else None
    number = (order or {}).get("number") or _order_number(state.get("slots") or {}, flows)
    if order and order.get("status"):
        status = (status_names or {}).get(str(order["status"]), str(order["status"]))
        lines.append(lines_of["order"].format(order=order["number"], status=status))
    elif order and number:
        lines.append(lines_of["order_unknown"].format(order=number))
    elif number:
        lines.append(lines_of["order_open"].format(order=number))
    if media:
        lines.append(lines_of["media"].format(media=MEDIA_NAMES[lang].get(media, media)))
    last = clean(last_text)[:LAST_MESSAGE_CHARS]
    if last:
        lines.append(lines_of["last"].format(text=last))
    return "\n".join(lines)


def _order_number(slots: Mapping[str, Any], flows: Iterable[FlowSpec]) -> str | None:
    for spec in flows:
        for slot in spec.slots:
            if slot.type == "order_number" and slots.get(slot.name):
                return str(slots[slot.name])
    return None
