"""Every page in Chromium, in German and in English: axe-core finds no serious or critical
violation, the console stays clean (nothing blocked by the CSP), and no page shows words of the
other language; TRESEN_SCREENSHOTS=1 saves each page to docs/screenshots."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.pipeline.stack import running_stack
from tests.web.pagekit import PASSWORD
from tresen.db.tables import Conversation
from tresen.inbox import accounts
from tresen.runtime import Runtime

axe_api = pytest.importorskip("axe_playwright_python.async_playwright")
playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PAGES = {
    "inbox": "/inbox",
    "conversation": "/inbox/c/{conversation}",
    "search": "/inbox/search?q=Rad",
    "labels": "/inbox/labels",
    "campaigns": "/inbox/admin/campaigns",
    "topics": "/inbox/admin/topics",
    "bot": "/inbox/admin/bot",
    "bot-texts": "/inbox/admin/bot/texts",
    "channels": "/inbox/admin/channels",
    "channel": "/inbox/admin/channels/{channel}",
    "channel-new-telegram": "/inbox/admin/channels/new/telegram",
    "channel-templates": "/inbox/admin/channels/{channel}/templates",
    "notifications": "/inbox/admin/notifications",
    "team": "/inbox/admin/users",
    "canned": "/inbox/admin/canned",
    "tokens": "/inbox/admin/tokens",
    "profile": "/inbox/admin/profile",
    "privacy": "/inbox/admin/privacy",
    "audit": "/inbox/admin/audit",
    "account": "/inbox/account",
    "api-docs": "/api/v1/docs",
    "not-found": "/inbox/gibt-es-nicht",
}
PHONE = {"inbox", "conversation", "team", "channel"}
"""Pages also looked at on a 390 px wide phone."""
ENGLISH = re.compile(
    r"\b(Save|Delete|Cancel|Sign out|Search|Send|Settings|Create|Add|Edit|Remove|Please|"
    r"Channel|Password|Upload|Download|Broadcast|Topic|Enabled|Disabled|None|Yes|No|"
    r"the|and|with|your|you|not|this)\b"
)
GERMAN = re.compile(
    r"\b(Speichern|Löschen|Abbrechen|Abmelden|Suche|Senden|Einstellungen|Anlegen|Bearbeiten|"
    r"Entfernen|Bitte|Kanal|Kanäle|Passwort|Rundsendung|Thema|Themen|keine|nicht|und|der|die|"
    r"das|mit|Ihre|Sie|für)\b"
)
CONTENT = ".timeline, .preview, .name, .conv-head h2, .identities, textarea, code, pre, [lang], option, input"
"""What customers, the business or the law wrote (its own language), not the UI's words."""


async def _ui_text(page) -> str:  # type: ignore[no-untyped-def]
    return str(
        await page.evaluate(
            """(content) => {
                const clone = document.body.cloneNode(true);
                clone.querySelectorAll(content).forEach((el) => el.remove());
                return clone.innerText;
            }""",
            CONTENT,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("language", ["de", "en"])
async def test_every_page_is_accessible_clean_and_in_one_language(
    runtime: Runtime, language: str
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    async with running_stack(runtime) as stack:
        ws = stack.channel.workspace_id
        async with runtime.sessions() as session, session.begin():
            await accounts.add_user(
                session,
                ws,
                "chefin@laden.example",
                "admin",
                PASSWORD,
                language=language,
                display_name="Anna Chefin",
            )
        await stack.customer_writes("Hallo, ist das Rad noch da?")
        async with runtime.sessions() as session:
            conversation = await session.scalar(select(Conversation.id))
        values = {"conversation": conversation, "channel": stack.channel.id}
        axe = axe_api.Axe()
        problems: list[str] = []
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = await browser.new_context(
                viewport={"width": 1280, "height": 860},
                locale="de-DE" if language == "de" else "en-GB",
            )
            page = await context.new_page()
            console: list[str] = []
            page.on(
                "console",
                lambda m: console.append(m.text) if m.type in ("error", "warning") else None,
            )
            await page.goto(f"{stack.base_url}/inbox/login")
            await page.fill("input[name=email]", "chefin@laden.example")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("main button[type=submit]")
            await page.wait_for_url(f"{stack.base_url}/inbox")
            for name, path in PAGES.items():
                console.clear()
                response = await page.goto(stack.base_url + path.format(**values))
                assert response is not None
                expected = 404 if name == "not-found" else 200
                if response.status != expected:
                    problems.append(f"{name}: HTTP {response.status}")
                await page.wait_for_load_state("networkidle")
                results = await axe.run(page)
                for v in results.response["violations"]:
                    if v["impact"] in ("serious", "critical"):
                        targets = [n["target"] for n in v["nodes"]][:3]
                        problems.append(f"{name}: axe {v['id']} ({v['impact']}) at {targets}")
                noise = [c for c in console if "404" not in c or name != "not-found"]
                problems += [f"{name}: console {c}" for c in noise]
                wrong = (ENGLISH if language == "de" else GERMAN).findall(await _ui_text(page))
                if wrong:
                    problems.append(f"{name}: words of the other language {sorted(set(wrong))}")
                if os.environ.get("TRESEN_SCREENSHOTS"):
                    SCREENSHOTS.mkdir(exist_ok=True)
                    await page.screenshot(
                        path=str(SCREENSHOTS / f"page-{name}-{language}.png"), full_page=False
                    )
                    if name in PHONE:
                        await page.set_viewport_size({"width": 390, "height": 844})
                        await page.screenshot(
                            path=str(SCREENSHOTS / f"phone-{name}-{language}.png"), full_page=False
                        )
                        await page.set_viewport_size({"width": 1280, "height": 860})
            await browser.close()
        assert not problems, "\n".join(problems)
