"""The inbox with the keyboard alone: skip link, open a conversation, answer (issue 16 point 8)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.pipeline.stack import running_stack
from tests.web.pagekit import PASSWORD
from tresen.db.tables import Message
from tresen.inbox import accounts
from tresen.runtime import Runtime

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


async def _tab_to(page, test: str, most: int = 60) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until the focused element passes `test` (a JS expression on `el`)."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            f"(() => {{ const el = document.activeElement; return !!({test}); }})()"
        ):
            return
    raise AssertionError(f"Tab never reached an element with {test}")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_agent_answers_with_the_keyboard_alone(runtime: Runtime) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    async with running_stack(runtime) as stack:
        async with runtime.sessions() as session, session.begin():
            await accounts.add_user(
                session, stack.channel.workspace_id, "kim@laden.example", "agent", PASSWORD
            )
        await stack.customer_writes("Habt ihr Helme in L?")
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            await page.goto(f"{stack.base_url}/inbox/login")
            await _tab_to(page, "el.name === 'email'")
            await page.keyboard.type("kim@laden.example")
            await _tab_to(page, "el.name === 'password'")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{stack.base_url}/inbox")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.classList.contains('skip')"), (
                "the first Tab reaches the skip link"
            )
            await _tab_to(page, "el.closest('#list > ul') && el.tagName === 'A'")
            await page.keyboard.press("Enter")
            await page.locator(".timeline >> text=Habt ihr Helme in L?").wait_for()
            await _tab_to(page, "el.id === 'reply-body'")
            await page.keyboard.type("Ja, Größe L ist da.")
            await _tab_to(page, "el.closest('form.reply') && el.type === 'submit'")
            outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", "the focused button shows its focus"
            await page.keyboard.press("Enter")
            for _ in range(60):
                async with runtime.sessions() as session:
                    if await session.scalar(
                        select(Message.id).where(Message.body == "Ja, Größe L ist da.")
                    ):
                        break
                await asyncio.sleep(0.25)
            else:
                raise AssertionError("the reply typed with the keyboard was never stored")
            await browser.close()
