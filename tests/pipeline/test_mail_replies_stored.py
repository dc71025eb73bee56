"""Real-world mail through the mailbox ingest into the database: reply as body, quote and forward in the payload."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from tests.channels.conformance import CASES
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import Message
from tresen.runtime import Runtime

CORPUS = Path(__file__).parent.parent / "fixtures" / "email" / "corpus"
EMAIL = next(case for case in CASES if case.kind == "email")
CONFIG = EMAIL.config


def _mail(mid: str, subject: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jana Müller <jana@example.org>"
    msg["To"] = CONFIG["address"]
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid}@mail.example.org>"
    msg.set_content(text)
    return msg.as_bytes()


def _apple_text_image_text() -> bytes:
    return (
        b"From: jana@example.org\r\nMessage-ID: <apple.1@example.org>\r\nSubject: Kratzer\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nDer Kratzer (Reparatur 80 \x80):\r\n"
        b'--B\r\nContent-Type: image/jpeg; name="kratzer.jpg"\r\n'
        b'Content-Disposition: inline; filename="kratzer.jpg"\r\nContent-Transfer-Encoding: base64\r\n'
        b"\r\n/9j/4AAQSkZJRgABAQ==\r\n"
        b"--B\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\nViele Gr\xc3\xbc\xc3\x9fe\r\n--B--\r\n"
    )


async def test_replies_quotes_and_forwards_are_stored(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Radladen")
        channel = await add_channel(session, ws.id, "email", "Postfach", CONFIG)
    bottom = (CORPUS / "own_thunderbird_bottom_de.txt").read_text("utf-8")
    forward = (CORPUS / "own_forward_gmail_de.txt").read_text("utf-8")
    for raw in (
        _mail("bottom.1", "Re: Ihr Rad", bottom),
        _mail("forward.1", "Fwd: Ihre Sendung 00340434", forward),
        _apple_text_image_text(),
    ):
        assert EMAIL.feed is not None
        assert (await EMAIL.feed(runtime, channel.id, raw)).status_code == 200
    async with runtime.sessions() as session:
        rows = {m.provider_message_id: m for m in await session.scalars(select(Message))}
    stored = rows["<bottom.1@mail.example.org>"]
    assert stored.body == "Ich komme am Samstag gegen 11 Uhr.\n\nGrüße\nJana"
    assert stored.payload["reply_style"] == "bottom"
    assert stored.payload["quote"].startswith("Am 01.12.26 um 10:00 schrieb Radladen:")
    assert stored.payload["text"] == bottom.strip()
    fwd = rows["<forward.1@mail.example.org>"]
    assert fwd.body is not None and fwd.body.startswith("FYI\n\n---------- Weitergeleitete")
    assert fwd.body.endswith("Sie liegt in der Filiale Hauptstraße 5.")
    assert fwd.payload["forwarded"]["headers"]["subject"] == "Ihre Sendung 00340434"
    apple = rows["<apple.1@example.org>"]
    assert apple.body == "Der Kratzer (Reparatur 80 €):\n\nViele Grüße"
    assert [a["name"] for a in apple.payload["attachments"]] == ["kratzer.jpg"]
