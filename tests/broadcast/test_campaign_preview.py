"""The preview per channel kind: variables filled, SMS parts and encoding, the template text."""

from __future__ import annotations

from tests.channels.test_email import channel, text_out
from tresen.broadcast.campaigns import content_for
from tresen.db.tables import MessageTemplate
from tresen.web.campaign_preview import previews

VALUES = {"first_name": "Jürgen", "name": "Jürgen Test"}


def test_each_kind_gets_its_own_text_filled_in() -> None:
    content = {
        "text": "Hallo {first_name}, heute offen bis 20 Uhr.",
        "channels": {"sms": {"text": "Hi {first_name}: bis 20 Uhr offen"}},
    }
    shown = {p.kind: p for p in previews(content, ["whatsapp", "sms", "email"], VALUES, None)}
    assert shown["whatsapp"].text == "Hallo Jürgen, heute offen bis 20 Uhr."
    assert shown["email"].text == shown["whatsapp"].text
    assert shown["sms"].text == "Hi Jürgen: bis 20 Uhr offen"
    assert (shown["sms"].sms_encoding, shown["sms"].sms_segments) == ("GSM-7", 1)


def test_sms_parts_and_ucs2_are_counted() -> None:
    long_gsm = {"text": "a" * 161}
    assert previews(long_gsm, ["sms"], VALUES, None)[0].sms_segments == 2
    emoji = {"text": "Frühling 🌷 " + "b" * 60}
    info = previews(emoji, ["sms"], VALUES, None)[0]
    assert info.sms_encoding == "UCS-2" and info.sms_segments == 2


def test_the_template_shows_with_its_values() -> None:
    template = MessageTemplate(name="news", language="de", body="Hallo {{1}}, Neues: {{2}}")
    content = {
        "text": "frei",
        "channels": {
            "whatsapp": {"template": {"name": "news", "language": "de",
                                      "parameters": ["{first_name}"]}}
        },
    }  # fmt: skip
    shown = previews(content, ["whatsapp"], VALUES, template)[0]
    assert shown.template_text == "Hallo Jürgen, Neues: ", "a missing value shows as empty"
    assert shown.text == "frei"


def test_an_email_broadcast_carries_its_own_subject_without_re() -> None:
    content = {"text": "Hallo {first_name}", "channels": {"email": {"subject": "Frühlingsfest"}}}
    assert content_for(content, "email").payload == {"subject": "Frühlingsfest"}
    assert "subject" not in content_for(content, "whatsapp").payload
    shown = previews(content, ["email"], VALUES, None)[0]
    assert (shown.subject, shown.text) == ("Frühlingsfest", "Hallo Jürgen")
    broadcast = text_out("Hallo Jürgen", subject="Frühlingsfest", campaign="01JCAMPAIGN")
    assert channel().build(broadcast)["Subject"] == "Frühlingsfest"
    assert channel().build(text_out(subject="Frühlingsfest"))["Subject"] == "Re: Frühlingsfest"
