"""Records of processing (Art. 30) follow the configuration: channels, retention, data map."""

from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import _login, _user
from tresen.channels.manage import add_channel
from tresen.channels.registry import CHANNEL_CLASSES, channel_factory
from tresen.cli import app
from tresen.privacy import datamap, records_de
from tresen.privacy.records import build, render
from tresen.privacy.retention import set_period
from tresen.runtime import Runtime
from tresen.web.i18n import LOCALE_DIR


async def test_records_follow_channels_retention_and_the_data_map(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session:
        records = await build(session, ws, runtime.settings, "en")
    assert [r["channel"] for r in records.recipients] == ["whatsapp: Test WhatsApp"]
    assert [t["country"] for t in records.transfers] == list(
        channel_factory("whatsapp").privacy.third_countries
    )
    tables = {c["table"] for c in records.categories}
    assert {e.table for e in datamap.TABLES if e.holds_personal_data} <= tables
    messages = next(c for c in records.categories if c["table"] == "messages")
    assert messages["retention"] == "conversations: 730 days" and "body" in messages["data"]

    async with runtime.sessions() as session, session.begin():
        await add_channel(
            session, ws, "telegram", "Ticker", {"bot_token": "1:abc", "secret_token": "s3"}
        )
        await set_period(session, ws, "conversations", 90)
    async with runtime.sessions() as session:
        records = await build(session, ws, runtime.settings, "de")
    assert sorted(r["channel"].split(":")[0] for r in records.recipients) == [
        "telegram",
        "whatsapp",
    ]
    assert any(
        "Vereinigte" in t["country"] or "Emirates" in t["country"] for t in records.transfers
    )
    assert records.retention["conversations"] == 90
    messages = next(c for c in records.categories if c["table"] == "messages")
    assert messages["retention"] == "Unterhaltungen: 90 Tage"
    assert messages["label"] == "Nachrichten" and messages["erasure"] == "löschen"
    assert any("Verschlüsselung" in m and m.endswith("aus") for m in records.measures)

    assert json.loads(render(records, "json"))["controller"] == "Testladen"
    md = render(records, "md", "de")
    assert md.startswith("# Verzeichnis von Verarbeitungstätigkeiten") and "| telegram" in md
    page = render(records, "html", "de")
    assert "<table>" in page and "Telegram" in page
    with pytest.raises(ValueError):
        render(records, "pdf")


async def test_records_page_and_cli(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "chef@laden.de", "admin", language="de")
    await _user(runtime, channel, "hilfe@laden.de", "agent")
    async with helpers.client_for(runtime) as client:
        await _login(client, "chef@laden.de")
        page = await client.get("/inbox/admin/privacy")
        assert page.status_code == 200 and "Verzeichnis von Verarbeitungstätigkeiten" in page.text
        assert "Meta" in page.text and "&lt;" not in page.text.split("<main")[0][-20:]
        download = await client.get("/inbox/admin/privacy", params={"format": "json"})
        assert download.json()["recipients"][0]["channel"] == "whatsapp: Test WhatsApp"
        assert (
            await client.get("/inbox/admin/privacy", params={"format": "pdf"})
        ).status_code == 400
        client.cookies.clear()
        await _login(client, "hilfe@laden.de")
        assert (await client.get("/inbox/admin/privacy")).status_code == 403

    monkeypatch.setenv("TRESEN_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", runtime.settings.secret_key)
    loop = asyncio.get_running_loop()

    async def tresen(*args: str) -> tuple[int, str]:
        result = await loop.run_in_executor(None, lambda: CliRunner().invoke(app, list(args)))
        return result.exit_code, result.output

    code, out = await tresen("privacy", "records", "--format", "json", "--lang", "en")
    assert code == 0, out
    assert json.loads(out)["purposes"][0]["basis"].startswith("consent")
    code, out = await tresen("privacy", "records")
    assert code == 0 and "Übermittlungen in Drittländer" in out
    assert (await tresen("privacy", "records", "--format", "pdf"))[0] == 2


ENGLISH = re.compile(
    r"\b(the|and|with|of|to|for|by|where|while|kept|none|not|needed|own|server|below|"
    r"contract|terms|provider|delete|anonymise|proof|days|customers|staff|files|search|"
    r"hosted|agreement|policy|countries|other|unconfirmed|contact|rows|above|caches|"
    r"index|messages|names|addresses|recent|page|images)\b",
)
"""English words the German records must not show outside identifiers (<code>); lower case, as
"Server" and "Index" are German nouns too."""


def test_every_provider_fact_and_data_map_entry_has_german_words() -> None:
    missing = [
        text
        for factory in CHANNEL_CLASSES.values()
        for record in [factory.privacy]
        for text in (
            record.recipient,
            record.country,
            record.safeguard,
            record.verify,
            *record.third_countries,
        )
        if text not in records_de.PHRASES and text not in records_de.NAMES
    ]
    assert not missing, missing
    personal = {e.table for e in datamap.TABLES if e.holds_personal_data}
    assert personal <= set(records_de.TABLES), personal - set(records_de.TABLES)
    assert {s.location for s in datamap.STORES} <= set(records_de.STORES)
    assert {e.value for e in datamap.Erasure} <= set(records_de.ERASURE)


async def test_the_german_records_page_shows_no_english(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await add_channel(
            session, ws, "telegram", "Ticker", {"bot_token": "1:abc", "secret_token": "s3"}
        )
        await add_channel(
            session,
            ws,
            "email",
            "Post",
            {
                "address": "shop@laden.de",
                "smtp_host": "smtp.laden.de",
                "imap_host": "imap.laden.de",
                "smtp_password": "x",
                "imap_password": "y",
            },
        )
        await set_period(session, ws, "media", 0)
    await _user(runtime, channel, "chef@laden.de", "admin", language="de")
    async with helpers.client_for(runtime) as client:
        await _login(client, "chef@laden.de")
        page = (await client.get("/inbox/admin/privacy")).text
    records = page.split('<main class="admin records"', 1)[1].split("</main>", 1)[0]
    shown = re.sub(r"<code>.*?</code>|<[^>]+>|https?://\S+", " ", records)
    assert not ENGLISH.findall(html.unescape(shown)), sorted(set(ENGLISH.findall(shown)))
    assert "<code>messages</code>" in records and "Nachrichten" in records


def test_the_topics_link_hints_of_every_channel_have_german_words() -> None:
    """What the topics page says a channel lacks for its chat link is shown in German."""
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        german = {str(m.id): str(m.string) for m in read_po(handle, locale="de") if m.id}
    said = []
    for factory in CHANNEL_CLASSES.values():
        link = factory.chat_link({}, "c1", "START ticker", "https://laden.example")
        if link is not None:
            said += [t for t in (link.missing, link.hint) if t]
    assert len(said) >= 5
    assert [t for t in said if not german.get(t)] == []
