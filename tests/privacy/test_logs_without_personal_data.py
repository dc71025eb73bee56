"""A whole conversation flow leaves no phone number, e-mail address or message text in the logs."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.pipeline.stack import running_stack
from tresen.inbox import accounts
from tresen.runtime import Runtime

PHONE = "4917612398765"
TEXT = "Meine Bestellung KANARIENVOGEL-7731 ist nicht angekommen"
REPLY = "Wir prüfen KANARIENVOGEL-7731 sofort"
EMAIL = "agentin.kanarie@laden.example"
PASSWORD = "sehr-geheimes-passwort-9"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_personal_data_in_logs(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_stack(runtime) as stack:
        async with runtime.sessions() as session, session.begin():
            await accounts.add_user(session, stack.channel.workspace_id, EMAIL, "agent", PASSWORD)
        conv = await stack.customer_writes(TEXT, wa_id=PHONE)
        sent = await stack.reply(conv, {"kind": "text", "body": REPLY})
        await stack.wait_states([sent.json()["id"]], {"read"})

        async with httpx.AsyncClient(base_url=stack.base_url) as browser:
            page = await browser.get("/inbox/login")
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            await browser.post(
                "/inbox/login",
                data={"email": EMAIL, "password": "falsch-falsch-1", "_csrf_token": csrf},
            )
            await browser.post(
                "/inbox/login", data={"email": EMAIL, "password": PASSWORD, "_csrf_token": csrf}
            )
            await browser.get(f"/inbox/c/{conv}")
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the flow logged nothing at all: the test would prove nothing"
    for secret in (PHONE, "KANARIENVOGEL", EMAIL, PASSWORD, stack.channel.config["access_token"]):
        assert secret not in logged, f"{secret!r} reached the logs"
