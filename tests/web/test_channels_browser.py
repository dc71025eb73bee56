"""The channels page in Chromium as an owner uses it: connect the WhatsApp simulator, check the
connection, send a test message to the own phone, see the last webhook, sync and create a
message template; TRESEN_SCREENSHOTS=1 saves the steps to docs/screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tresen.app import create_app
from tresen.channels.manage import default_workspace
from tresen.inbox import accounts, setup
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "inhaberin-passwort-42"
OWN_PHONE = "4915122223333"


async def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("TRESEN_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"channels-{name}.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_owner_connects_checks_tests_and_manages_templates(runtime: Runtime) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Radhaus Köln")
        await accounts.add_user(
            session, ws.id, "anna@radhaus.example", "admin", PASSWORD, display_name="Anna"
        )
        await setup.finish(session, ws.id)
    config = WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06), template_review_seconds=0.0)
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
    async with (
        serve_asgi(app) as base,
        run_whatsapp_simulator(config) as sim,
        playwright_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        owner = await (await browser.new_context(locale="de-DE")).new_page()
        await owner.goto(f"{base}/inbox/login")
        await owner.fill("input[name=email]", "anna@radhaus.example")
        await owner.fill("input[name=password]", PASSWORD)
        await owner.click("main button[type=submit]")
        await owner.wait_for_url(f"{base}/inbox")

        await owner.click("nav.main-nav >> text=Kanäle")
        await owner.click("ul.kind-list >> text=WhatsApp")
        await owner.fill("input[name=phone_number_id]", config.phone_number_id)
        await owner.fill("input[name=app_secret]", config.app_secret)
        await owner.fill("input[name=verify_token]", "radhaus-wort")
        await owner.fill("input[name=access_token]", config.access_token)
        await owner.fill("input[name=waba_id]", config.waba_id)
        await owner.click("details.advanced summary")
        await owner.fill("input[name=api_base]", sim.base_url)
        await owner.click("main form button[type=submit]:has-text('Verbinden')")
        await owner.locator("#webhook-url").wait_for()
        shown = (await owner.locator("#webhook-url").inner_text()).strip()
        sim.config.webhook_url = shown.replace(runtime.settings.base_url.rstrip("/"), base)
        assert "noch nicht aufgerufen" in await owner.locator("#last-webhook-result").inner_text()

        await owner.click("button:has-text('Jetzt prüfen')")
        result = owner.locator("#check-result")
        await result.wait_for()
        assert (
            await result.inner_text()
        ).strip() == "Funktioniert: angemeldet als tresen Simulator · +49 30 1234567."
        await _shot(owner, "1-checked")

        # The owner writes to the business from the own phone once (WhatsApp's window opens).
        await sim.customer_sends(OWN_PHONE, name="Anna", body="Hallo, hier ist Anna")
        await owner.reload()
        assert "angenommen" in await owner.locator("#last-webhook-result").inner_text()
        await owner.fill("input[name=address]", "+49 151 2222 3333")
        await owner.click("button:has-text('Testnachricht senden')")
        state = owner.locator("#test-result .test-state")
        await state.wait_for()
        for _ in range(100):
            if (await state.inner_text()).strip() in ("gesendet", "zugestellt", "gelesen"):
                break
            # The worker sends in the background; the owner looks again a moment later.
            await owner.wait_for_timeout(100)
            await owner.click("#test-result a")  # "Stand erneut anzeigen" while it is queued
            await state.wait_for()
        assert (await state.inner_text()).strip() in ("gesendet", "zugestellt", "gelesen")
        texts = [m["summary"] for m in sim.messages_for(OWN_PHONE)]
        assert "Testnachricht von tresen: Dieser Kanal funktioniert." in texts
        await _shot(owner, "2-test-message")

        await owner.click("a:has-text('Nachrichtenvorlagen')")
        await owner.click("button:has-text('Mit WhatsApp abgleichen')")
        await owner.locator("text=Die Vorlagen sind auf dem neuesten Stand.").wait_for()
        await owner.fill("input[name=name]", "Bestellung versandt")
        await owner.fill("textarea[name=body]", "Hallo {{1}}, Ihre Bestellung ist unterwegs.")
        await owner.click("button:has-text('Zur Prüfung einreichen')")
        assert await owner.eval_on_selector(
            "input[name=name]", "el => el.validity.patternMismatch"
        ), "the browser already says the name is not allowed"
        await owner.fill("input[name=name]", "bestellung_versandt")
        await owner.fill("input[name=language]", "Deutsch")
        await owner.click("button:has-text('Zur Prüfung einreichen')")
        error = owner.locator("#template-error")
        await error.wait_for()
        assert "Sprache" in await error.inner_text()
        await owner.fill("input[name=language]", "de")
        await owner.click("button:has-text('Zur Prüfung einreichen')")
        await owner.locator("text=Die Vorlage wurde zur Prüfung eingereicht.").wait_for()
        row = owner.locator("tr:has(code:text-is('bestellung_versandt')) .template-state")
        assert (await row.inner_text()).strip() == "wartend"
        await owner.click("button:has-text('Mit WhatsApp abgleichen')")
        await owner.locator("text=Die Vorlagen sind auf dem neuesten Stand.").wait_for()
        assert (await row.inner_text()).strip() == "genehmigt"
        await _shot(owner, "3-templates")

        await owner.click("nav.main-nav >> text=Kanäle")
        cell = owner.locator("td.last-webhook").first
        assert "angenommen" in await cell.inner_text()
        await _shot(owner, "4-list")
        await browser.close()
