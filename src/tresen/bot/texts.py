"""Every text the bot sends, in German and English, each in "du" and "Sie" (informal/formal).

Keys: language, then text name, then form ("du"/"sie"); a value is one text or a list of
variants. Status names and button titles that need no form are plain strings. Values in braces
are filled in by the bot. Admins override any of them on the bot texts page.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_TEXTS: dict[str, dict[str, Any]] = {
    "de": {
        "greeting": {
            "du": "Hallo! Ich bin {name}, der digitale Assistent von {business} 👋 Wie kann ich dir helfen?",
            "sie": "Guten Tag! Ich bin {name}, der digitale Assistent von {business} 👋 Wie kann ich Ihnen helfen?",
        },
        "thanks": {
            "du": "Gern geschehen! Kann ich sonst noch etwas für dich tun?",
            "sie": "Gern geschehen! Kann ich sonst noch etwas für Sie tun?",
        },
        "fallback": {
            "du": [
                "Das habe ich leider nicht verstanden 🤔 Kannst du es anders formulieren? Oder schreib „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
                "Hm, da bin ich mir nicht sicher. Magst du deine Frage etwas genauer stellen? Mit „Mitarbeiter“ erreichst du jemanden aus dem Team.",
                "Dazu weiß ich leider nichts. Schreib „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
            ],
            "sie": [
                "Das habe ich leider nicht verstanden 🤔 Können Sie es anders formulieren? Oder schreiben Sie „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
                "Da bin ich mir nicht sicher. Können Sie Ihre Frage etwas genauer stellen? Mit „Mitarbeiter“ erreichen Sie jemanden aus dem Team.",
                "Dazu weiß ich leider nichts. Schreiben Sie „Mitarbeiter“, dann meldet sich jemand aus dem Team.",
            ],
        },
        "dont_know": {
            "du": "Dazu habe ich leider keine Angaben. Schreib „Mitarbeiter“, dann hilft dir jemand aus dem Team weiter.",
            "sie": "Dazu habe ich leider keine Angaben. Schreiben Sie „Mitarbeiter“, dann hilft Ihnen jemand aus dem Team weiter.",
        },
        "handover": {
            "du": "Ich gebe dich an mein Team weiter – gleich meldet sich jemand bei dir.",
            "sie": "Ich gebe Sie an unser Team weiter – gleich meldet sich jemand bei Ihnen.",
        },
        "handover_sorry": {
            "du": "Das tut mir leid. Ich gebe dich an mein Team weiter – gleich meldet sich jemand bei dir.",
            "sie": "Das tut mir leid. Ich gebe Sie an unser Team weiter – gleich meldet sich jemand bei Ihnen.",
        },
        "handover_callback": {
            "du": "Gern. Ich gebe deinen Rückrufwunsch an mein Team weiter – gleich meldet sich jemand bei dir.",
            "sie": "Gern. Ich gebe Ihren Rückrufwunsch an unser Team weiter – gleich meldet sich jemand bei Ihnen.",
        },
        "handover_media": {
            "du": "Bilder, Sprachnachrichten und Dateien kann ich leider nicht auswerten. Ich gebe dich an mein Team weiter – gleich meldet sich jemand bei dir.",
            "sie": "Bilder, Sprachnachrichten und Dateien kann ich leider nicht auswerten. Ich gebe Sie an unser Team weiter – gleich meldet sich jemand bei Ihnen.",
        },
        "handover_long": {
            "du": "Deine Nachricht ist so ausführlich, dass sie jemand aus meinem Team lesen sollte. Gleich meldet sich jemand bei dir.",
            "sie": "Ihre Nachricht ist so ausführlich, dass sie jemand aus unserem Team lesen sollte. Gleich meldet sich jemand bei Ihnen.",
        },
        "blacklisted": {
            "du": "Zu anderen Anbietern kann ich nichts sagen, aber gern helfe ich dir bei uns weiter.",
            "sie": "Zu anderen Anbietern kann ich nichts sagen, aber gern helfe ich Ihnen bei uns weiter.",
        },
        "answer_only_in": "(Diese Antwort gibt es nur auf {answer_language}.)",
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
        "product_price": {
            "du": "{product} kostet {price}. {url}",
            "sie": "{product} kostet {price}. {url}",
        },
        "product_colour_in_stock": {
            "du": "{product} gibt es in {colour}: vorrätig, {price}. {url}",
            "sie": "{product} gibt es in {colour}: vorrätig, {price}. {url}",
        },
        "product_colour_sold_out": {
            "du": "{product} in {colour} ist gerade leider ausverkauft. Vorrätige Farben: {colours}.",
            "sie": "{product} in {colour} ist gerade leider ausverkauft. Vorrätige Farben: {colours}.",
        },
        "product_colour_not_offered": {
            "du": "{product} gibt es leider nicht in {colour}. Farben: {colours}.",
            "sie": "{product} gibt es leider nicht in {colour}. Farben: {colours}.",
        },
        "product_colour_unknown": {
            "du": "Zu den Farben von {product} habe ich leider keine Angaben. Schreib „Mitarbeiter“, dann hilft dir jemand aus dem Team weiter.",
            "sie": "Zu den Farben von {product} habe ich leider keine Angaben. Schreiben Sie „Mitarbeiter“, dann hilft Ihnen jemand aus dem Team weiter.",
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
        "invalid": {
            "du": "Das habe ich leider nicht verstanden.",
            "sie": "Das habe ich leider nicht verstanden.",
        },
        "invalid_shoe_size": {
            "du": "Bitte nenn mir eine Schuhgröße zwischen 35 und 48 (halbe Größen gehen auch, z. B. 42,5).",
            "sie": "Bitte nennen Sie eine Schuhgröße zwischen 35 und 48 (halbe Größen gehen auch, z. B. 42,5).",
        },
        "invalid_size": {
            "du": "Bitte nenn mir eine Größe, z. B. 42 oder M.",
            "sie": "Bitte nennen Sie eine Größe, z. B. 42 oder M.",
        },
        "invalid_amount": {
            "du": "Bitte nenn mir einen Betrag, z. B. 100 €.",
            "sie": "Bitte nennen Sie einen Betrag, z. B. 100 €.",
        },
        "invalid_height": {
            "du": "Bitte nenn mir deine Körpergröße, z. B. 1,80 m oder 180 cm.",
            "sie": "Bitte nennen Sie Ihre Körpergröße, z. B. 1,80 m oder 180 cm.",
        },
        "invalid_color": {
            "du": "Bitte nenn mir eine Farbe, z. B. Schwarz.",
            "sie": "Bitte nennen Sie eine Farbe, z. B. Schwarz.",
        },
        "invalid_order_number": {
            "du": "Das sieht nicht nach einer Bestellnummer aus. Du findest sie in deiner Bestellbestätigung.",
            "sie": "Das sieht nicht nach einer Bestellnummer aus. Sie finden sie in Ihrer Bestellbestätigung.",
        },
        "invalid_postcode": {
            "du": "Bitte nenn mir eine fünfstellige Postleitzahl, z. B. 70173.",
            "sie": "Bitte nennen Sie eine fünfstellige Postleitzahl, z. B. 70173.",
        },
        "invalid_email": {
            "du": "Bitte nenn mir eine gültige E-Mail-Adresse, z. B. name@beispiel.de.",
            "sie": "Bitte nennen Sie eine gültige E-Mail-Adresse, z. B. name@beispiel.de.",
        },
        "invalid_verification": {
            "du": "Bitte nenn mir die Postleitzahl der Lieferadresse oder die E-Mail-Adresse der Bestellung.",
            "sie": "Bitte nennen Sie die Postleitzahl der Lieferadresse oder die E-Mail-Adresse der Bestellung.",
        },
        "invalid_choice": {
            "du": "Bitte wähle eine der Möglichkeiten.",
            "sie": "Bitte wählen Sie eine der Möglichkeiten.",
        },
        "numbered_hint": {
            "du": "Antworte einfach mit der Nummer.",
            "sie": "Antworten Sie einfach mit der Nummer.",
        },
        "way_out_choice": {
            "du": "Ich habe dich leider noch nicht verstanden. Wähl bitte eine der Möglichkeiten – oder brich ab oder sprich mit jemandem aus meinem Team.",
            "sie": "Ich habe Sie leider noch nicht verstanden. Wählen Sie bitte eine der Möglichkeiten – oder brechen Sie ab oder sprechen Sie mit jemandem aus unserem Team.",
        },
        "way_out_free": {
            "du": "Hier komme ich leider nicht weiter. Möchtest du abbrechen oder mit jemandem aus meinem Team sprechen?",
            "sie": "Hier komme ich leider nicht weiter. Möchten Sie abbrechen oder mit jemandem aus unserem Team sprechen?",
        },
        "cancelled": {
            "du": "Alles klar, ich habe abgebrochen. Wie kann ich dir sonst helfen?",
            "sie": "Alles klar, ich habe abgebrochen. Wie kann ich Ihnen sonst helfen?",
        },
        "expired": {
            "du": "Wir hatten eine Weile nichts voneinander gehört, deshalb fange ich neu an.",
            "sie": "Wir hatten eine Weile nichts voneinander gehört, deshalb fange ich neu an.",
        },
        "resume_offer": {
            "du": "Wollen wir danach mit {title} weitermachen?",
            "sie": "Sollen wir danach mit {title} weitermachen?",
        },
        "resume_declined": {
            "du": "Alles klar. Wie kann ich dir sonst helfen?",
            "sie": "Alles klar. Wie kann ich Ihnen sonst helfen?",
        },
        "flow_title": {"du": "deiner Anfrage", "sie": "Ihrer Anfrage"},
        "any_value": "egal",
        "button_any": "Egal",
        "button_cancel": "Abbrechen",
        "button_person": "Jemand vom Team",
        "button_resume": "Ja, weiter",
        "button_no_resume": "Nein, danke",
    },
    "en": {
        "greeting": {
            "du": "Hi! I'm {name}, the digital assistant of {business} 👋 How can I help?",
            "sie": "Hello! I am {name}, the digital assistant of {business} 👋 How may I help you?",
        },
        "thanks": {
            "du": "You're welcome! Anything else I can do for you?",
            "sie": "You are welcome! Is there anything else I can do for you?",
        },
        "fallback": {
            "du": [
                "Sorry, I didn't get that 🤔 Could you put it another way? Or type “agent” and someone from the team will reply.",
                "Hmm, I'm not sure. Could you ask a bit more specifically? Typing “agent” gets you someone from the team.",
                "I don't know about that one. Type “agent” and someone from the team will reply.",
            ],
            "sie": [
                "I am sorry, I did not understand that 🤔 Could you rephrase it? Or type “agent” and a member of our team will reply.",
                "I am not sure about that. Could you ask a little more specifically? Typing “agent” reaches a member of our team.",
                "I cannot answer that. Type “agent” and a member of our team will reply.",
            ],
        },
        "dont_know": {
            "du": "I have no details on that, sorry. Type “agent” and someone from the team will help.",
            "sie": "I am afraid I have no details on that. Type “agent” and a member of our team will help.",
        },
        "handover": {
            "du": "I'm passing you to my team – someone will be with you shortly.",
            "sie": "I am passing you to our team – someone will be with you shortly.",
        },
        "handover_sorry": {
            "du": "I'm sorry about that. I'm passing you to my team – someone will be with you shortly.",
            "sie": "I am sorry about that. I am passing you to our team – someone will be with you shortly.",
        },
        "handover_callback": {
            "du": "Sure. I'm passing your call-back request to my team – someone will get back to you shortly.",
            "sie": "Certainly. I am passing your call-back request to our team – someone will get back to you shortly.",
        },
        "handover_media": {
            "du": "I can't look at pictures, voice messages or files, sorry. I'm passing you to my team – someone will be with you shortly.",
            "sie": "I am afraid I cannot look at pictures, voice messages or files. I am passing you to our team – someone will be with you shortly.",
        },
        "handover_long": {
            "du": "Your message is so detailed that someone from my team should read it. They'll be with you shortly.",
            "sie": "Your message is so detailed that a member of our team should read it. Someone will be with you shortly.",
        },
        "blacklisted": {
            "du": "I can't comment on other providers, but I'm happy to help you with ours.",
            "sie": "I cannot comment on other providers, but I am glad to help you with ours.",
        },
        "answer_only_in": "(This answer is only available in {answer_language}.)",
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
        "product_price": {
            "du": "{product} costs {price}. {url}",
            "sie": "{product} costs {price}. {url}",
        },
        "product_colour_in_stock": {
            "du": "{product} comes in {colour}: in stock, {price}. {url}",
            "sie": "{product} comes in {colour}: in stock, {price}. {url}",
        },
        "product_colour_sold_out": {
            "du": "{product} in {colour} is sold out right now. Colours in stock: {colours}.",
            "sie": "{product} in {colour} is sold out at the moment. Colours in stock: {colours}.",
        },
        "product_colour_not_offered": {
            "du": "{product} doesn't come in {colour}, sorry. Colours: {colours}.",
            "sie": "{product} does not come in {colour}, I am afraid. Colours: {colours}.",
        },
        "product_colour_unknown": {
            "du": "I have no details on the colours of {product}, sorry. Type “agent” and someone from the team will help.",
            "sie": "I am afraid I have no details on the colours of {product}. Type “agent” and a member of our team will help.",
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
        "invalid": {
            "du": "Sorry, I didn't get that.",
            "sie": "I am sorry, I did not understand that.",
        },
        "invalid_shoe_size": {
            "du": "Please give me a shoe size between 35 and 48 (half sizes are fine, e.g. 42.5).",
            "sie": "Please give a shoe size between 35 and 48 (half sizes are fine, e.g. 42.5).",
        },
        "invalid_size": {
            "du": "Please give me a size, e.g. 42 or M.",
            "sie": "Please give a size, e.g. 42 or M.",
        },
        "invalid_amount": {
            "du": "Please give me an amount, e.g. 100 €.",
            "sie": "Please give an amount, e.g. 100 €.",
        },
        "invalid_height": {
            "du": "Please tell me how tall you are, e.g. 1.80 m or 180 cm.",
            "sie": "Please give your height, e.g. 1.80 m or 180 cm.",
        },
        "invalid_color": {
            "du": "Please give me a colour, e.g. black.",
            "sie": "Please give a colour, e.g. black.",
        },
        "invalid_order_number": {
            "du": "That doesn't look like an order number. You'll find it in your order confirmation.",
            "sie": "That does not look like an order number. You will find it in your order confirmation.",
        },
        "invalid_postcode": {
            "du": "Please give me a five-digit postcode, e.g. 70173.",
            "sie": "Please give a five-digit postcode, e.g. 70173.",
        },
        "invalid_email": {
            "du": "Please give me a valid e-mail address, e.g. name@example.com.",
            "sie": "Please give a valid e-mail address, e.g. name@example.com.",
        },
        "invalid_verification": {
            "du": "Please give me the postcode of the delivery address or the e-mail address of the order.",
            "sie": "Please give the postcode of the delivery address or the e-mail address of the order.",
        },
        "invalid_choice": {
            "du": "Please pick one of the options.",
            "sie": "Please choose one of the options.",
        },
        "numbered_hint": {
            "du": "Just reply with the number.",
            "sie": "Simply reply with the number.",
        },
        "way_out_choice": {
            "du": "Sorry, I still didn't get that. Pick one of the options – or cancel, or talk to someone from my team.",
            "sie": "I am sorry, I still did not understand. Please choose one of the options – or cancel, or talk to a member of our team.",
        },
        "way_out_free": {
            "du": "I'm stuck here, sorry. Do you want to cancel or talk to someone from my team?",
            "sie": "I am afraid I cannot get any further here. Would you like to cancel or talk to a member of our team?",
        },
        "cancelled": {
            "du": "All right, I've cancelled that. How else can I help?",
            "sie": "All right, I have cancelled that. How else may I help you?",
        },
        "expired": {
            "du": "It's been a while, so I'm starting over.",
            "sie": "It has been a while, so I am starting over.",
        },
        "resume_offer": {
            "du": "Shall we carry on with {title} afterwards?",
            "sie": "Would you like to carry on with {title} afterwards?",
        },
        "resume_declined": {
            "du": "All right. How else can I help?",
            "sie": "All right. How else may I help you?",
        },
        "flow_title": {"du": "your request", "sie": "your request"},
        "any_value": "any",
        "button_any": "Any",
        "button_cancel": "Cancel",
        "button_person": "Talk to a person",
        "button_resume": "Yes, carry on",
        "button_no_resume": "No, thanks",
    },
}

# German marks of the informal and the formal address (the formal ones are capitalised).
_DU = re.compile(
    r"\b(?:du|dich|dir|dein|deine|deinen|deinem|deiner|deines|gib|wähle|wähl|prüf|prüfe|schreib|"
    r"schreibe|antworte|nenn|nenne|brich|sprich|nimm|sag|schau|möchtest|willst|kannst|brauchst|"
    r"magst|hast|bist|findest|suchst)\b",
    re.IGNORECASE,
)
_SIE = re.compile(r"\b(?:Sie|Ihnen|Ihr|Ihre|Ihren|Ihrem|Ihrer|Ihres)\b")


def address_forms(text: str) -> set[str]:
    """Which forms of address a German text uses: {"du"}, {"sie"}, both or none."""
    found = set()
    if _DU.search(text):
        found.add("du")
    if _SIE.search(text):
        found.add("sie")
    return found
