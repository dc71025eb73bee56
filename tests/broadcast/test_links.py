"""Link tracking: rewriting, the redirect, click counts, consent, erasure, export and retention."""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.examples import examples
from tests.helpers import client_for
from tresen.broadcast import links
from tresen.channels.manage import default_workspace
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import ConsentEvent, Contact, LinkClick, TrackedLink
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy import retention
from tresen.privacy.erasure import erase
from tresen.privacy.export import write_export
from tresen.runtime import Runtime
from tresen.settings import Settings

BASE = "http://testserver"
TOKEN = re.compile(re.escape(BASE) + r"/l/([A-Za-z0-9_-]{" + str(links.TOKEN_LENGTH) + "})")


async def _contact(runtime: Runtime, *, tracking: str | None = None) -> tuple[str, str]:
    """A workspace and a contact (with a link-tracking consent event when `tracking` says so)."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Laden")
        now = utcnow()
        contact = Contact(
            id=new_id(),
            workspace_id=ws.id,
            display_name="Kim",
            attributes={},
            consent_state="granted",
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        await session.flush()
        if tracking:
            await links.record_consent(session, contact, tracking, source="test")
        return ws.id, contact.id


async def _rewrite(runtime: Runtime, text: str, **kw: object) -> str:
    async with runtime.sessions() as session, session.begin():
        return await links.rewrite_links(session, text, **kw)  # type: ignore[arg-type]


async def test_per_person_clicks_only_with_consent(runtime: Runtime) -> None:
    ws, yes = await _contact(runtime, tracking="granted")
    _, no = await _contact(runtime)
    text = "Neu: https://shop.example/sale?x=1. Und https://shop.example/info!"
    sent = {
        c: await _rewrite(runtime, text, campaign_id="C1", contact_id=c, per_person=True)
        for c in (yes, no)
    }
    for out in sent.values():
        assert "shop.example" not in out
        assert out.endswith("!") and ". Und " in out
    tokens = {c: TOKEN.findall(out) for c, out in sent.items()}
    assert len(tokens[yes]) == len(tokens[no]) == 2
    assert set(tokens[yes]).isdisjoint(tokens[no])  # the consenting person has own links
    # Without consent the shared campaign links are used: the same for everyone without.
    assert tokens[no] == TOKEN.findall(
        await _rewrite(
            runtime, text, campaign_id="C1", contact_id=None, per_person=False, workspace_id=ws
        )
    )
    async with client_for(runtime) as client:
        for contact in (yes, no):
            for _ in range(2):
                r = await client.get(f"/l/{tokens[contact][0]}", follow_redirects=False)
                assert r.status_code == 302
                assert r.headers["location"] == "https://shop.example/sale?x=1"
    async with runtime.sessions() as session:
        rows = list(await session.scalars(select(LinkClick)))
        stats = await links.clicks_per_link(session, "C1")
    assert sorted((r.contact_id or "-") for r in rows) == sorted([yes, yes, "-", "-"])
    assert all(r.ip_address is None and r.user_agent is None for r in rows)
    assert stats == [
        links.LinkStats("https://shop.example/sale?x=1", 4, 1),
        links.LinkStats("https://shop.example/info", 0, 0),
    ]


async def test_withdrawn_consent_makes_later_clicks_anonymous(runtime: Runtime) -> None:
    _ws, contact = await _contact(runtime, tracking="granted")
    out = await _rewrite(
        runtime, "https://a.example/x", campaign_id="C2", contact_id=contact, per_person=True
    )
    [token] = TOKEN.findall(out)
    async with runtime.sessions() as session, session.begin():
        row = await session.get_one(Contact, contact)
        await links.record_consent(session, row, "withdrawn", source="test")
    async with runtime.sessions() as session, session.begin():
        found = await links.click(session, token)
    assert found is not None and found.counted and not found.per_person
    async with runtime.sessions() as session:
        assert await session.scalar(select(LinkClick.contact_id)) is None
        assert (await links.clicks_per_link(session, "C2"))[0].clicks == 1


async def test_redirect_unknown_head_and_previews(runtime: Runtime) -> None:
    ws, _ = await _contact(runtime)
    out = await _rewrite(
        runtime,
        "see https://a.example/p",
        campaign_id="C3",
        contact_id=None,
        per_person=False,
        workspace_id=ws,
    )
    [token] = TOKEN.findall(out)
    async with client_for(runtime) as client:
        unknown = await client.get("/l/doesnotexist", headers={"accept-language": "en"})
        assert unknown.status_code == 404 and "unknown" in unknown.text
        # A URL in the path is never followed: only stored tokens redirect.
        evil = await client.get("/l/https%3A%2F%2Fevil.example", follow_redirects=False)
        assert evil.status_code == 404 and "location" not in evil.headers
        head = await client.head(f"/l/{token}", follow_redirects=False)
        assert head.status_code == 302
        preview = await client.get(
            f"/l/{token}", headers={"user-agent": "WhatsApp/2.23.20.0"}, follow_redirects=False
        )
        assert preview.status_code == 302
        glued = await client.get(f"/l/{token}_", follow_redirects=False)  # "see <link>_"
        assert glued.headers["location"] == "https://a.example/p"
        assert (await client.get(f"/l/{token}x", follow_redirects=False)).status_code == 404
        real = await client.get(f"/l/{token}", follow_redirects=False)
        assert real.headers["location"] == "https://a.example/p"
        assert real.headers["cache-control"] == "no-store"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 2
        assert await session.scalar(select(TrackedLink.clicks)) == 2


async def test_client_data_only_with_the_setting(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(link_tracking_store_client=True)
    _ws, contact = await _contact(runtime, tracking="granted")
    out = await _rewrite(
        runtime, "https://a.example/", campaign_id="C4", contact_id=contact, per_person=True
    )
    async with client_for(runtime) as client:
        await client.get(f"/l/{TOKEN.findall(out)[0]}", headers={"user-agent": "Firefox/140"})
    async with runtime.sessions() as session:
        row = await session.scalar(select(LinkClick))
    assert row is not None and row.contact_id == contact and row.user_agent == "Firefox/140"


async def test_erasure_export_and_retention(runtime: Runtime, tmp_path: Path) -> None:
    ws, contact = await _contact(runtime, tracking="granted")
    out = await _rewrite(
        runtime, "https://a.example/e", campaign_id="C5", contact_id=contact, per_person=True
    )
    [token] = TOKEN.findall(out)
    for _ in range(3):
        async with runtime.sessions() as session, session.begin():
            await links.click(session, token, user_agent="Firefox")
    async with runtime.sessions() as session:
        await write_export(session, ws, contact, runtime.files, tmp_path / "x.zip")
    data = json.loads(zipfile.ZipFile(tmp_path / "x.zip").read("data.json"))
    assert [c["url"] for c in data["link_clicks"]] == ["https://a.example/e"] * 3
    assert data["tracked_links"][0]["campaign_id"] == "C5"
    assert "https://a.example/e" in zipfile.ZipFile(tmp_path / "x.zip").read("index.html").decode()

    async with runtime.sessions() as session:
        await erase(
            runtime.engine,
            session,
            secret_key="k",
            files=runtime.files,
            workspace_id=ws,
            contact_id=contact,
            actor_id=None,
            via="test",
        )
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 0
        link = await session.scalar(select(TrackedLink))
        assert link is not None and link.contact_id is None and link.clicks == 3
        assert (await links.clicks_per_link(session, "C5")) == [
            links.LinkStats("https://a.example/e", 3, 0)
        ]
    async with client_for(runtime) as client:  # the link in the person's phone still works
        assert (await client.get(f"/l/{token}", follow_redirects=False)).status_code == 302

    # Retention: the anonymous click made just now goes after the tracking_events period.
    later = utcnow() + timedelta(days=retention.DEFAULTS["tracking_events"] + 1)
    result = await retention.run(runtime.sessions, "k", runtime.files, now=later)
    assert result.workspaces[ws].link_clicks == 1
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 0
        assert await session.scalar(select(TrackedLink.clicks)) == 4


async def test_retention_unlinks_old_per_person_links(runtime: Runtime) -> None:
    _ws, contact = await _contact(runtime, tracking="granted")
    await _rewrite(
        runtime, "https://a.example/r", campaign_id="C6", contact_id=contact, per_person=True
    )
    now = utcnow()
    await retention.run(runtime.sessions, "k", runtime.files, now=now + timedelta(days=10))
    async with runtime.sessions() as session:
        assert await session.scalar(select(TrackedLink.contact_id)) == contact
    await retention.run(runtime.sessions, "k", runtime.files, now=now + timedelta(days=181))
    async with runtime.sessions() as session:
        assert await session.scalar(select(TrackedLink.contact_id)) is None
        events = await session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.purpose == links.PURPOSE)
        )
    assert events == 1  # the proof of consent is kept


async def test_non_ascii_urls_redirect_as_ascii(runtime: Runtime) -> None:
    ws, _ = await _contact(runtime)
    out = await _rewrite(
        runtime,
        "Zum Laden: https://bäcker.example/brötchen?s=süß",
        campaign_id=None,
        contact_id=None,
        per_person=False,
        workspace_id=ws,
    )
    async with client_for(runtime) as client:
        r = await client.get(f"/l/{TOKEN.findall(out)[0]}", follow_redirects=False)
    assert r.headers["location"] == "https://xn--bcker-gra.example/br%C3%B6tchen?s=s%C3%BC%C3%9F"


# -- properties --------------------------------------------------------------------------

_host = st.from_regex(r"\A[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,2}\.[a-z]{2,6}\Z")
_path = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="\x85"
    ),
    max_size=30,
)
_url = st.builds(
    lambda s, h, p: f"{s}://{h}/{p}", st.sampled_from(["http", "https", "HTTPS"]), _host, _path
)
_plain = st.text(max_size=40).filter(lambda t: "http" not in t.lower())
_text = st.lists(st.one_of(_url, _plain), max_size=6).map(" ".join)


@pytest.fixture
def loop_runtime(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, Runtime, str]]:
    """A SQLite runtime driven from synchronous hypothesis tests."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        secret_key="k",
        base_url=BASE,
    )
    with asyncio.Runner() as runner:
        rt = Runtime.create(settings)
        runner.run(upgrade_to_head(rt.engine))
        ws, _ = runner.run(_contact(rt))
        yield runner, rt, ws
        runner.run(rt.close())


@hsettings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.one_of(st.text(max_size=200), _text))
def test_rewrite_round_trips_every_url(
    loop_runtime: tuple[asyncio.Runner, Runtime, str], text: str
) -> None:
    runner, rt, ws = loop_runtime

    async def check() -> None:
        out = await _rewrite(
            rt, text, campaign_id="H", contact_id=None, per_person=False, workspace_id=ws
        )
        spans = links.find_urls(text)
        if not spans:
            assert out == text  # nothing that is not a URL is touched
            return
        # Putting each redirect's target back gives the original text.
        back, pos = [], 0
        for m in TOKEN.finditer(out):
            async with rt.sessions() as session, session.begin():
                found = await links.click(session, m.group(1), count=False)
            assert found is not None
            back.append(out[pos : m.start()])
            back.append(found.url)
            pos = m.end()
        back.append(out[pos:])
        expected = "".join(
            [text[: spans[0][0]]]
            + [
                (links.to_uri(text[s:e]) or text[s:e])
                + text[e : (spans[i + 1][0] if i + 1 < len(spans) else len(text))]
                for i, (s, e) in enumerate(spans)
            ]
        )
        assert "".join(back) == expected
        if text.isascii():
            assert "".join(back) == text

    runner.run(check())


@given(st.text(max_size=300))
def test_find_urls_never_fails_and_finds_only_urls(text: str) -> None:
    for start, end in links.find_urls(text):
        url = text[start:end]
        assert url.lower().startswith(("http://", "https://")) and links.is_trackable(url)
