"""Take the README's screenshots of admin pages from a running `tresen demo` (Debian Chromium).

Usage: python scripts/screenshots.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PAGES = {
    "admin-topics-de.png": "/inbox/admin/topics",
    "admin-privacy-de.png": "/inbox/admin/privacy",
    "admin-campaigns-de.png": "/inbox/admin/campaigns",
}


async def main(base: str, email: str, password: str) -> None:
    """Log in as the admin and save one full-page screenshot per page."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = await browser.new_page(locale="de-DE", viewport={"width": 1200, "height": 800})
        await page.goto(f"{base}/inbox/login")
        await page.fill("input[name=email]", email)
        await page.fill("input[name=password]", password)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/inbox**")
        OUT.mkdir(exist_ok=True)
        for name, path in PAGES.items():
            await page.goto(f"{base}{path}")
            await page.screenshot(path=str(OUT / name), full_page=False)
            print(OUT / name)
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
