"""The bot's tone per language: name, du or Sie, emoji, greeting, varied fallback replies."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_EMOJI = re.compile(
    "[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff\u2b50\u2b06\u2194-\u21aa\ufe0f\u200d]+"
)

# Keys: text name, then form ("du"/"sie"); each value is one text or a list of variants.
DEFAULT_TEXTS: dict[str, dict[str, Any]] = {
    "de": {
        "greeting": {
            "du": "Hallo! Ich bin {name}, der digitale Assistent von {business} 👋 Wie kann ich dir helfen?",
            "sie": "Guten Tag! Ich bin {name}, der digitale Assistent von {business} 👋 Wie kann ich Ihnen helfen?",
        },
        "fallback": {
            "du": [
                "Das habe ich leider nicht verstanden 🤔 Kannst du es anders formulieren?",
                "Hm, da bin ich mir nicht sicher. Magst du deine Frage etwas genauer stellen?",
                "Dazu weiß ich leider nichts. Schreib „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
            ],
            "sie": [
                "Das habe ich leider nicht verstanden 🤔 Können Sie es anders formulieren?",
                "Da bin ich mir nicht sicher. Können Sie Ihre Frage etwas genauer stellen?",
                "Dazu weiß ich leider nichts. Schreiben Sie „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
            ],
        },
        "handover": {
            "du": "Ich gebe dich an mein Team weiter – gleich meldet sich jemand bei dir.",
            "sie": "Ich gebe Sie an unser Team weiter – gleich meldet sich jemand bei Ihnen.",
        },
        "blacklisted": {
            "du": "Zu anderen Anbietern kann ich nichts sagen, aber gern helfe ich dir bei uns weiter.",
            "sie": "Zu anderen Anbietern kann ich nichts sagen, aber gern helfe ich Ihnen bei uns weiter.",
        },
        "product_in_stock": {
            "du": "{product} gibt es in Größe {size}: vorrätig, {price}. {url}",
            "sie": "{product} gibt es in Größe {size}: vorrätig, {price}. {url}",
        },
        "product_size_sold_out": {
            "du": "{product} in Größe {size} ist gerade leider ausverkauft. Vorrätig: {sizes}.",
            "sie": "{product} in Größe {size} ist gerade leider ausverkauft. Vorrätig: {sizes}.",
        },
        "product_size_not_offered": {
            "du": "{product} gibt es nicht in Größe {size}. Vorrätig: {sizes}.",
            "sie": "{product} gibt es nicht in Größe {size}. Vorrätig: {sizes}.",
        },
        "product_info": {
            "du": "{product} kostet {price}. Vorrätige Größen: {sizes}. Welche Größe brauchst du? {url}",
            "sie": "{product} kostet {price}. Vorrätige Größen: {sizes}. Welche Größe brauchen Sie? {url}",
        },
        "product_info_no_sizes": {
            "du": "{product} kostet {price} und ist vorrätig. {url}",
            "sie": "{product} kostet {price} und ist vorrätig. {url}",
        },
        "product_sold_out": {
            "du": "{product} ist gerade leider ausverkauft.",
            "sie": "{product} ist gerade leider ausverkauft.",
        },
        "finder_results": {
            "du": "Das passt zu deiner Suche:\n{list}",
            "sie": "Das passt zu Ihrer Suche:\n{list}",
        },
        "finder_none": {
            "du": "Dazu habe ich gerade leider nichts Passendes vorrätig. Schreib „Mitarbeiter“, dann hilft dir jemand aus dem Team weiter.",
            "sie": "Dazu habe ich gerade leider nichts Passendes vorrätig. Schreiben Sie „Mitarbeiter“, dann hilft Ihnen jemand aus dem Team weiter.",
        },
        "order_status": {
            "du": "Deine Bestellung {order}: {status}.",
            "sie": "Ihre Bestellung {order}: {status}.",
        },
        "order_status_tracking": {
            "du": "Deine Bestellung {order}: {status}. Sendungsverfolgung: {tracking}",
            "sie": "Ihre Bestellung {order}: {status}. Sendungsverfolgung: {tracking}",
        },
        "order_not_found": {
            "du": "Zu dieser Bestellnummer und dieser Angabe finde ich keine Bestellung. Bitte prüf beide noch einmal.",
            "sie": "Zu dieser Bestellnummer und dieser Angabe finde ich keine Bestellung. Bitte prüfen Sie beide noch einmal.",
        },
        "order_unavailable": {
            "du": "Ich komme gerade nicht an den Bestellstatus.",
            "sie": "Ich komme gerade nicht an den Bestellstatus.",
        },
        "status_processing": "in Bearbeitung",
        "status_shipped": "versandt",
        "status_delivered": "zugestellt",
        "status_cancelled": "storniert",
        "status_returned": "zurückgeschickt",
    },
    "en": {
        "greeting": {
            "du": "Hi! I'm {name}, the digital assistant of {business} 👋 How can I help?",
            "sie": "Hello! I am {name}, the digital assistant of {business} 👋 How may I help you?",
        },
        "fallback": {
            "du": [
                "Sorry, I didn't get that 🤔 Could you put it another way?",
                "Hmm, I'm not sure. Could you ask a bit more specifically?",
                "I don't know about that one. Type “agent” and someone from the team will reply.",
            ],
            "sie": [
                "I am sorry, I did not understand that 🤔 Could you rephrase it?",
                "I am not sure about that. Could you ask a little more specifically?",
                "I cannot answer that. Type “agent” and a member of our team will reply.",
            ],
        },
        "handover": {
            "du": "I'm passing you to my team – someone will be with you shortly.",
            "sie": "I am passing you to our team – someone will be with you shortly.",
        },
        "blacklisted": {
            "du": "I can't comment on other providers, but I'm happy to help you with ours.",
            "sie": "I cannot comment on other providers, but I am glad to help you with ours.",
        },
        "product_in_stock": {
            "du": "{product} in size {size}: in stock, {price}. {url}",
            "sie": "{product} in size {size}: in stock, {price}. {url}",
        },
        "product_size_sold_out": {
            "du": "{product} in size {size} is sold out right now. In stock: {sizes}.",
            "sie": "{product} in size {size} is sold out at the moment. In stock: {sizes}.",
        },
        "product_size_not_offered": {
            "du": "{product} doesn't come in size {size}. In stock: {sizes}.",
            "sie": "{product} does not come in size {size}. In stock: {sizes}.",
        },
        "product_info": {
            "du": "{product} costs {price}. Sizes in stock: {sizes}. Which size do you need? {url}",
            "sie": "{product} costs {price}. Sizes in stock: {sizes}. Which size do you need? {url}",
        },
        "product_info_no_sizes": {
            "du": "{product} costs {price} and is in stock. {url}",
            "sie": "{product} costs {price} and is in stock. {url}",
        },
        "product_sold_out": {
            "du": "{product} is sold out right now.",
            "sie": "{product} is sold out at the moment.",
        },
        "finder_results": {
            "du": "Here is what fits:\n{list}",
            "sie": "These match your search:\n{list}",
        },
        "finder_none": {
            "du": "I have nothing in stock that fits, sorry. Type “agent” and someone from the team will help.",
            "sie": "I am afraid nothing in stock fits. Type “agent” and a member of our team will help.",
        },
        "order_status": {
            "du": "Your order {order}: {status}.",
            "sie": "Your order {order}: {status}.",
        },
        "order_status_tracking": {
            "du": "Your order {order}: {status}. Tracking: {tracking}",
            "sie": "Your order {order}: {status}. Tracking: {tracking}",
        },
        "order_not_found": {
            "du": "I can't find an order with this number and these details. Please check both.",
            "sie": "I cannot find an order with this number and these details. Please check both.",
        },
        "order_unavailable": {
            "du": "I can't reach the order status right now.",
            "sie": "I cannot reach the order status at the moment.",
        },
        "status_processing": "being processed",
        "status_shipped": "shipped",
        "status_delivered": "delivered",
        "status_cancelled": "cancelled",
        "status_returned": "returned",
    },
}


def strip_emoji(text: str) -> str:
    """Text without emoji (and the blank they leave)."""
    return re.sub(r"[ \t]{2,}", " ", _EMOJI.sub("", text)).strip()


def _stable_index(key: str, n: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % n


@dataclass(frozen=True)
class Persona:
    """How the bot speaks; `texts` overrides any default text per language, key and form."""

    name: str = "Tresi"
    business: str = ""
    form: str = "sie"  # "du" or "sie"
    emoji: bool = True
    default_language: str = "de"
    texts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.form not in {"du", "sie"}:
            raise ValueError(f"form must be 'du' or 'sie', not {self.form!r}")

    def _variants(self, key: str, language: str | None) -> Sequence[str]:
        lang = language if language in DEFAULT_TEXTS else self.default_language
        override = self.texts.get(lang, {}).get(key)
        value: Any = (
            override if override is not None else DEFAULT_TEXTS.get(lang, DEFAULT_TEXTS["de"])[key]
        )
        if isinstance(value, Mapping):
            value = value.get(self.form) or next(iter(value.values()))
        return [value] if isinstance(value, str) else list(value)

    def say(self, key: str, language: str | None = None, variant: int = 0, **values: Any) -> str:
        """The text `key` in `language`, in this persona's form, with emoji removed if off."""
        options = self._variants(key, language)
        text = options[variant % len(options)].format_map(
            _Defaults(name=self.name, business=self.business or self.name, **values)
        )
        return text if self.emoji else strip_emoji(text)

    def greeting(self, language: str | None = None) -> str:
        """The opening message."""
        return self.say("greeting", language)

    def fallback(self, language: str | None = None, turn: int = 0, conversation: str = "") -> str:
        """A "didn't understand" reply; consecutive turns of a conversation get different ones."""
        n = len(self._variants("fallback", language))
        return self.say("fallback", language, (_stable_index(conversation, n) + turn) % n)


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
