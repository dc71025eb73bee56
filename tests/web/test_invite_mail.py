"""Invitations by e-mail (issue 16): with an e-mail channel the link goes by mail through its
SMTP server, in the workspace's language and form of address; without one, the page shows the
link and says why; a mail server that fails leaves the link to copy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests import helpers
from tests.web.pagekit import HTML, PASSWORD, csrf, person, sign_in
from tresen.bot import store as bot_store
from tresen.channels.manage import add_channel
from tresen.db.tables import Workspace
from tresen.runtime import Runtime
from tresen.sim.email import SmtpServer, make_tls, run_smtp_server

pytest.importorskip("aiosmtpd")
pytest.importorskip("trustme")


async def _mailbox(runtime: Runtime, ws: str, smtp_port: int, ca_file: Path, password: str) -> None:
    async with runtime.sessions() as session, session.begin():
        await add_channel(
            session,
            ws,
            "email",
            "Post",
            {
                "address": "shop@example.com",
                "display_name": "Radladen",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_password": password,
                "imap_host": "127.0.0.1",
                "imap_password": "egal",
                "tls_ca_file": str(ca_file),
            },
        )


async def _invite(client: httpx.AsyncClient, email: str) -> httpx.Response:
    token = csrf((await client.get("/inbox/admin/users", headers=HTML)).text)
    return await client.post(
        "/inbox/admin/users/invite",
        data={"email": email, "role": "agent", "_csrf_token": token},
        headers=HTML,
    )


def _link(text: str) -> str:
    found = re.search(r"http://testserver/invite/[\w-]+", text)
    assert found, text
    return found.group(0).removeprefix("http://testserver")


async def _join(runtime: Runtime, path: str) -> int:
    async with helpers.client_for(runtime) as newcomer:
        page = await newcomer.get(path)
        if "_csrf_token" not in page.text:
            return page.status_code
        joined = await newcomer.post(
            path,
            data={
                "name": "Kim",
                "password": PASSWORD,
                "password_again": PASSWORD,
                "_csrf_token": csrf(page.text),
            },
        )
    return joined.status_code


async def test_an_invitation_goes_by_mail_in_the_workspaces_language_and_form(
    runtime: Runtime, tmp_path: Path
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    tls = make_tls(tmp_path)
    async with run_smtp_server(tls) as smtp:
        await _mailbox(runtime, ws, smtp.port, tls.ca_file, smtp.password)
        async with runtime.sessions() as session, session.begin():
            await bot_store.save_voice(session, ws, language="de", form="du")
        async with helpers.client_for(runtime) as boss:
            await sign_in(boss, "chefin@laden.example")
            page = await boss.get("/inbox/admin/users", headers=HTML)
            assert "shop@example.com" in page.text and "Einladung senden" in page.text
            sent = await _invite(boss, "kim@laden.example")
            assert sent.status_code == 200 and 'id="invitation-mailed"' in sent.text
            assert "/invite/" not in sent.text, "the link went to the person, not to the page"
            async with runtime.sessions() as session, session.begin():
                await session.execute(update(Workspace).values(settings={"language": "en"}))
            await _invite(boss, "lea@laden.example")
        mails = _mails(smtp)
    assert [m.recipients for m in smtp.ledger] == [["kim@laden.example"], ["lea@laden.example"]]
    german, english = mails
    assert german["Subject"] == "Einladung zu Testladen bei tresen"
    body = german.get_content()
    assert "lädt dich ein" in body and "legst du dein Passwort fest" in body
    assert "(Europe/Berlin)" in body
    assert english["Subject"] == "Invitation to Testladen on tresen"
    assert "invites you" in english.get_content()
    assert smtp.ledger[0].login == "shop@example.com"
    path = _link(body)
    assert await _join(runtime, path) == 303
    assert await _join(runtime, path) >= 400, "the link works once"


def _mails(smtp: SmtpServer) -> list[Any]:
    return [m.message for m in smtp.ledger]


async def test_without_a_mailbox_the_link_is_shown_and_the_page_says_why(
    runtime: Runtime,
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with helpers.client_for(runtime) as boss:
        await sign_in(boss, "chefin@laden.example")
        page = await boss.get("/inbox/admin/users", headers=HTML)
        assert "Kein E-Mail-Kanal ist verbunden" in page.text
        shown = await _invite(boss, "kim@laden.example")
    assert shown.status_code == 200 and "/invite/" in shown.text
    assert 'id="mail-error"' not in shown.text


async def test_a_failing_mail_server_leaves_the_link_to_copy(
    runtime: Runtime, tmp_path: Path
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    tls = make_tls(tmp_path)
    async with run_smtp_server(tls) as smtp:
        await _mailbox(runtime, ws, smtp.port, tls.ca_file, "falsches-passwort")
        async with helpers.client_for(runtime) as boss:
            await sign_in(boss, "chefin@laden.example")
            refused = await _invite(boss, "kim@laden.example")
    assert refused.status_code == 200 and 'id="mail-error"' in refused.text
    assert "Der Mailserver hat die Anmeldung abgelehnt" in refused.text
    assert "falsches-passwort" not in refused.text
    assert await _join(runtime, _link(refused.text)) == 303
    assert smtp.ledger == []
