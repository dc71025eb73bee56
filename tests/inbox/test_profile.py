"""The business profile: hours parsing, open/closed across DST and holidays, the admin page, auto-replies."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tests.pipeline.stack import running_stack
from tresen.bot import store as bot_store
from tresen.db.tables import Workspace
from tresen.domain import profile as profiles
from tresen.inbox import accounts
from tresen.inbox.autoreply import after_hours_text
from tresen.privacy import consent
from tresen.runtime import Runtime

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAY_HOURS = {d: "09:00-12:30, 14:00-18:00" for d in profiles.WEEKDAYS[:5]}


def _profile(
    hours: dict[str, str], holidays: str = "", tz: str = "Europe/Berlin"
) -> profiles.Profile:
    form = {f"hours_{d}": text for d, text in hours.items()} | {
        "holidays": holidays,
        "timezone": tz,
    }
    return profiles.from_form(form, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-18:00", [(time(9), time(18))]),
        (" 14:00 – 18:00 , 9:00-12:30", [(time(9), time(12, 30)), (time(14), time(18))]),
        ("20:00-24:00", [(time(20), None)]),
        ("geschlossen", []),
        ("", []),
    ],
)
def test_intervals_parse(text: str, expected: list[profiles.Interval]) -> None:
    assert profiles.parse_intervals(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9-18", "not a time range"),
        ("25:00-26:00", "not a time of day"),
        ("18:00-09:00", "closing must come after opening"),
        ("09:00-12:00, 11:00-13:00", "must not overlap"),
        ("08:00-09:00, 10:00-11:00, 12:00-13:00, 14:00-15:00, 16:00-17:00", "at most 4"),
    ],
)
def test_bad_intervals_are_named(text: str, says: str) -> None:
    with pytest.raises(profiles.ProfileError, match=says):
        profiles.parse_intervals(text)


def test_bad_holidays_timezone_and_day_are_named() -> None:
    with pytest.raises(profiles.ProfileError, match="does not start with a date"):
        profiles.parse_holidays("Heiligabend")
    with pytest.raises(profiles.ProfileError, match="is not a date"):
        profiles.parse_holidays("2026-02-30")
    with pytest.raises(profiles.ProfileError, match="unknown time zone"):
        profiles.check_timezone("Europe/Bielefeld")
    with pytest.raises(profiles.ProfileError, match=r"^wed: "):
        profiles.from_form({"hours_wed": "morgens"}, None)


@given(st.text(max_size=60))
def test_interval_parser_never_fails_otherwise(text: str) -> None:
    try:
        parsed = profiles.parse_intervals(text)
    except profiles.ProfileError:
        return
    assert parsed == sorted(parsed)
    assert profiles.parse_intervals(profiles.format_intervals(parsed)) == parsed


def test_open_and_next_opening_across_the_dst_change() -> None:
    p = _profile(WEEKDAY_HOURS)
    # Saturday 28 March 2026, 20:00 in Berlin (CET); the clocks go forward on Sunday night.
    saturday = datetime(2026, 3, 28, 20, 0, tzinfo=BERLIN)
    assert not profiles.is_open(p, saturday)
    opening = profiles.next_opening(p, saturday)
    assert opening == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)
    assert opening is not None and opening.utcoffset() == timedelta(hours=2), "CEST by then"
    assert profiles.is_open(p, datetime(2026, 3, 30, 7, 30, tzinfo=UTC)), "09:30 CEST"
    assert not profiles.is_open(p, datetime(2026, 3, 30, 11, 0, tzinfo=UTC)), "13:00: lunch"
    assert profiles.next_opening(p, datetime(2026, 3, 30, 11, 0, tzinfo=UTC)) == datetime(
        2026, 3, 30, 14, 0, tzinfo=BERLIN
    )


def test_holidays_close_a_day_or_give_it_own_hours() -> None:
    p = _profile(WEEKDAY_HOURS, "2026-12-24 09:00-12:00\n2026-12-25\n2026-12-28")
    assert profiles.is_open(p, datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN))
    assert not profiles.is_open(p, datetime(2026, 12, 24, 15, 0, tzinfo=BERLIN))
    assert profiles.next_opening(p, datetime(2026, 12, 24, 15, 0, tzinfo=BERLIN)) == datetime(
        2026, 12, 29, 9, 0, tzinfo=BERLIN
    ), "25th closed, weekend, 28th closed"
    assert profiles.is_open(_profile({}), datetime(2026, 12, 25, 3, 0, tzinfo=BERLIN)), (
        "no hours at all: always open"
    )


def test_after_hours_text_names_the_next_opening_in_the_language() -> None:
    p = _profile(WEEKDAY_HOURS)
    friday_night = datetime(2026, 11, 27, 21, 0, tzinfo=BERLIN)
    assert "Montag, 30. November, 09:00" in after_hours_text(p, "de", friday_night)
    assert "Monday 30 November, 09:00" in after_hours_text(p, "en", friday_night)


def test_after_hours_text_follows_the_form_of_address() -> None:
    p = _profile(WEEKDAY_HOURS)
    friday_night = datetime(2026, 11, 27, 21, 0, tzinfo=BERLIN)
    du = after_hours_text(p, "de", friday_night, "du")
    assert du.startswith("Danke für deine Nachricht!") and "Ihre" not in du
    assert after_hours_text(p, "de", friday_night, "sie").startswith("Danke für Ihre Nachricht!")
    assert after_hours_text(p, "en", friday_night, "du").startswith("Thanks for your message!")


async def _admin_and_agent(runtime: Runtime) -> str:
    _, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        for email, role in (("chefin@laden.example", "admin"), ("kim@laden.example", "agent")):
            await accounts.add_user(session, channel.workspace_id, email, role, PASSWORD)
    return channel.workspace_id


async def test_admin_saves_the_profile_and_agents_may_not(runtime: Runtime) -> None:
    workspace_id = await _admin_and_agent(runtime)
    form = {
        "name": "Radhaus",
        "description": "Fahrräder & Werkstatt",
        "timezone": "Europe/Berlin",
        "holidays": "2026-12-24 09:00-12:00",
        "welcome_de": "Willkommen im Radhaus!",
        **{f"hours_{d}": t for d, t in WEEKDAY_HOURS.items()},
    }
    async with helpers.client_for(runtime) as client:
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get("/inbox")).text)
        assert (await client.get("/inbox/admin/profile")).status_code == 403
        refused = await client.post("/inbox/admin/profile", data={**form, "_csrf_token": token})
        assert refused.status_code == 403
    async with helpers.client_for(runtime) as client:
        await _login(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/profile")
        assert page.status_code == 200 and "Öffnungszeiten" in page.text and "Montag" in page.text
        token = _csrf(page.text)
        bad = await client.post(
            "/inbox/admin/profile", data={**form, "hours_fri": "18-9", "_csrf_token": token}
        )
        assert bad.status_code == 422 and "Freitag: " in bad.text and "18-9" in bad.text
        assert "ist kein Zeitraum wie 09:00-18:00" in bad.text
        async with runtime.sessions() as session:
            ws = await session.get_one(Workspace, workspace_id)
            assert "profile" not in (ws.settings or {}), "a refused form stores nothing"
        ok = await client.post("/inbox/admin/profile", data={**form, "_csrf_token": token})
        assert ok.status_code == 200 and "Gespeichert" in ok.text
        assert "Fahrräder &amp; Werkstatt" in ok.text
    async with runtime.sessions() as session:
        ws = await session.get_one(Workspace, workspace_id)
        stored = profiles.from_settings(ws.settings)
    assert stored.name == "Radhaus" and stored.welcome["de"] == "Willkommen im Radhaus!"
    assert stored.hours["mon"] == [(time(9), time(12, 30)), (time(14), time(18))]
    assert stored.holidays == {date(2026, 12, 24): [(time(9), time(12))]}


async def test_logo_upload_checks_type_and_size(runtime: Runtime) -> None:
    await _admin_and_agent(runtime)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    async with helpers.client_for(runtime) as client:
        await _login(client, "chefin@laden.example")
        token = _csrf((await client.get("/inbox/admin/profile")).text)

        async def upload(name: str, content: bytes, mime: str) -> int:
            answer = await client.post(
                "/inbox/admin/profile/logo",
                data={"_csrf_token": token},
                files={"logo": (name, content, mime)},
            )
            return answer.status_code

        assert await upload("logo.svg", b"<svg onload=alert(1)>", "image/svg+xml") == 415
        assert await upload("big.png", png + b"\0" * 600_000, "image/png") == 413
        assert (await client.get("/inbox/logo")).status_code == 404
        assert await upload("logo.png", png, "image/png") == 200
        served = await client.get("/inbox/logo")
        assert served.status_code == 200 and served.content == png
        assert served.headers["content-type"] == "image/png"
    async with helpers.client_for(runtime) as anonymous:
        assert (await anonymous.get("/inbox/logo")).status_code in (303, 401)


async def _set_profile(runtime: Runtime, workspace_id: str, p: profiles.Profile) -> None:
    async with runtime.sessions() as session, session.begin():
        ws = await session.get_one(Workspace, workspace_id)
        settings = {**(ws.settings or {}), "profile": profiles.to_json(p)}
        await session.execute(
            update(Workspace).where(Workspace.id == ws.id).values(settings=settings)
        )


async def _ledger_for(stack, n: int, timeout: float = 15.0) -> list:  # type: ignore[no-untyped-def,type-arg]
    for _ in range(int(timeout / 0.05)):
        if len(stack.sim.ledger) >= n:
            return list(stack.sim.ledger)
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} messages at the simulator, got {len(stack.sim.ledger)}")


async def test_after_hours_reply_once_then_quiet(runtime: Runtime) -> None:
    today = datetime.now(BERLIN).date()
    closed = "\n".join(str(today + timedelta(days=i)) for i in range(2))
    p = _profile(dict.fromkeys(profiles.WEEKDAYS, "09:00-18:00"), closed)
    async with running_stack(runtime) as stack:
        await _set_profile(runtime, stack.channel.workspace_id, p)
        await stack.customer_writes("Hallo, habt ihr noch offen?")
        first = await _ledger_for(stack, 1)
        assert "antworten ab" in first[0].payload["text"]["body"]
        assert "09:00" in first[0].payload["text"]["body"]
        await stack.customer_writes("Und morgen?")
        await asyncio.sleep(1.0)
        assert len(stack.sim.ledger) == 1, "one after-hours reply per 12 hours"


async def test_after_hours_reply_says_du_when_the_business_chose_du(runtime: Runtime) -> None:
    today = datetime.now(BERLIN).date()
    closed = "\n".join(str(today + timedelta(days=i)) for i in range(2))
    p = _profile(dict.fromkeys(profiles.WEEKDAYS, "09:00-18:00"), closed)
    async with running_stack(runtime) as stack:
        await _set_profile(runtime, stack.channel.workspace_id, p)
        async with runtime.sessions() as session, session.begin():
            await bot_store.save_voice(
                session, stack.channel.workspace_id, language="de", form="du"
            )
        await stack.customer_writes("Hallo, habt ihr noch offen?")
        body = (await _ledger_for(stack, 1))[0].payload["text"]["body"]
        assert body.startswith("Danke für deine Nachricht!") and "Ihre" not in body


async def test_welcome_once_while_open(runtime: Runtime) -> None:
    p = profiles.Profile(
        hours={day: [(time(0), None)] for day in profiles.WEEKDAYS},
        welcome={"de": "Willkommen im Radhaus!", "en": "Welcome to Radhaus!"},
    )
    async with running_stack(runtime) as stack:
        await _set_profile(runtime, stack.channel.workspace_id, p)
        await stack.customer_writes("Hello, do you sell tandems?")
        first = await _ledger_for(stack, 1)
        assert first[0].payload["text"]["body"] == "Welcome to Radhaus!"
        await stack.customer_writes("And cargo bikes?")
        await asyncio.sleep(1.0)
        assert len(stack.sim.ledger) == 1, "welcomed once per conversation"


async def test_privacy_policy_and_colour_are_checked_and_reach_the_notice(runtime: Runtime) -> None:
    workspace_id = await _admin_and_agent(runtime)
    async with helpers.client_for(runtime) as client:
        await _login(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/profile")
        assert "Datenschutzerklärung (URL)" in page.text and "Farbe des Web-Chats" in page.text
        token = _csrf(page.text)
        for field, value, says in (
            ("privacy_url", "javascript:alert(1)", "Die Datenschutzerklärung muss eine Webadresse"),
            ("privacy_url", "radhaus.example/datenschutz", "mit https:// oder http:// beginnt"),
            ("colour", "blau", "Die Farbe muss als #rrggbb angegeben werden"),
        ):
            bad = await client.post(
                "/inbox/admin/profile", data={field: value, "_csrf_token": token}
            )
            assert bad.status_code == 422 and says in bad.text, (field, value)
        ok = await client.post(
            "/inbox/admin/profile",
            data={
                "name": "Radhaus",
                "privacy_url": " https://radhaus.example/datenschutz ",
                "colour": "#0F766E",
                "_csrf_token": token,
            },
        )
        assert ok.status_code == 200 and "https://radhaus.example/datenschutz" in ok.text
    async with runtime.sessions() as session:
        ws = await session.get_one(Workspace, workspace_id)
    stored = profiles.from_settings(ws.settings)
    assert (stored.privacy_url, stored.colour) == ("https://radhaus.example/datenschutz", "#0f766e")
    for language, says in (("de", "Datenschutzerklärung: https://"), ("en", "policy: https://")):
        assert says + "radhaus.example/datenschutz." in consent.notice_for(ws, language).text
