"""The one layout: navigation per role, HTML error pages, no inline styles, the workspace zone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import update

from tests import helpers
from tests.web.pagekit import HTML, nav_links, person, sign_in
from tresen.db.tables import Workspace
from tresen.runtime import Runtime
from tresen.web.layout import PAGES

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "tresen" / "web" / "templates"
ADMIN_ONLY = {
    "/inbox/admin/topics",
    "/inbox/admin/bot",
    "/inbox/admin/channels",
    "/inbox/admin/tokens",
    "/inbox/admin/notifications",
    "/inbox/admin/users",
    "/inbox/admin/profile",
    "/inbox/admin/privacy",
    "/inbox/admin/audit",
}
SUPERVISOR = {"/inbox/labels", "/inbox/admin/campaigns"}
EVERYONE = {"/inbox", "/inbox/account", "/inbox/admin/canned"}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("agent", EVERYONE),
        ("supervisor", EVERYONE | SUPERVISOR),
        ("admin", EVERYONE | SUPERVISOR | ADMIN_ONLY),
    ],
)
async def test_every_role_sees_exactly_the_pages_it_may_open(
    runtime: Runtime, role: str, expected: set[str]
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, f"{role}@laden.example", role)
    async with helpers.client_for(runtime) as client:
        await sign_in(client, f"{role}@laden.example")
        links = nav_links((await client.get("/inbox")).text)
        assert set(links) == expected
        assert {href for href, _, _ in PAGES} >= expected
        for href in {href for href, _, _ in PAGES}:
            page = await client.get(href, headers=HTML)
            assert page.status_code == (200 if href in expected else 403), (role, href)
            if href in expected:
                assert nav_links(page.text) == links, f"{href} shows another navigation"
                assert 'action="/inbox/logout"' in page.text and 'name="language"' in page.text


async def test_browser_pages_get_html_errors_and_the_api_keeps_json(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "kim@laden.example")
        missing = await client.get("/inbox/nirgendwo", headers=HTML)
        forbidden = await client.get("/inbox/admin/users", headers=HTML)
        no_conversation = await client.get("/inbox/c/01nichtda", headers=HTML)
        api = await client.get("/api/v1/conversations/01nichtda", headers=HTML)
        plain = await client.get("/inbox/admin/users")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "Seite nicht gefunden" in missing.text
    assert forbidden.status_code == 403 and "Nicht erlaubt" in forbidden.text
    assert no_conversation.status_code == 404 and "<html" in no_conversation.text
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthenticated"
    assert plain.status_code == 403 and plain.json()["error"]["code"] == "forbidden"


def test_no_template_has_inline_styles_or_scripts() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"\sstyle=|<style|<script>|\son[a-z]+=", text), template.name


async def test_times_are_shown_in_the_workspace_zone(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Workspace)
            .where(Workspace.id == ws)
            .values(settings={"profile": {"timezone": "America/New_York"}})
        )
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        page = await client.get("/api/v1/docs")
        docs = page.text
        campaigns = await client.get("/inbox/admin/campaigns")
    assert "<style" not in docs and "/static/inbox.css" in docs
    assert campaigns.status_code == 200 and "UTC" not in campaigns.text
