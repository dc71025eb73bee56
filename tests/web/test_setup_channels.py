"""First run and the channels page over HTTP: setup on an empty install, guided channel forms."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from tests import helpers
from tests.bot.kbdata import KB_YAML
from tests.web.pagekit import HTML, PASSWORD, csrf, person, sign_in
from tresen.bot import store as bot_store
from tresen.db.tables import (
    AuditEntry,
    BotFaq,
    BotProduct,
    CannedReply,
    ChannelRow,
    Topic,
    User,
    Workspace,
)
from tresen.runtime import Runtime
from tresen.web import audit_admin

OWNER = {
    "business": "Radhaus Köln",
    "name": "Anna Schmidt",
    "email": "anna@radhaus.example",
    "password": PASSWORD,
    "password_again": PASSWORD,
    "language": "de",
}


async def _users(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_an_empty_install_is_set_up_in_the_browser(runtime: Runtime) -> None:
    async with helpers.client_for(runtime) as client:
        root = await client.get("/")
        assert root.status_code == 303 and root.headers["location"] == "/setup"
        page = await client.get("/setup")
        token = csrf(page.text)
        differ = await client.post(
            "/setup", data={**OWNER, "password_again": "etwas-anderes!", "_csrf_token": token}
        )
        assert differ.status_code == 422 and "unterscheiden" in differ.text
        short = await client.post(
            "/setup",
            data={**OWNER, "password": "kurz", "password_again": "kurz", "_csrf_token": token},
        )
        assert short.status_code == 422 and await _users(runtime) == 0
        created = await client.post("/setup", data={**OWNER, "_csrf_token": token})
        assert created.status_code == 303 and created.headers["location"] == "/setup/business"
        business = await client.get("/setup/business")
        assert business.status_code == 200 and "Radhaus Köln" in business.text
        token = csrf(business.text)
        basics = {
            "name": "Radhaus Köln",
            "timezone": "Europe/Vienna",
            "language": "de",
            "form": "du",
            "hours_mon": "09:00-18:00",
            "_csrf_token": token,
        }
        bad = await client.post("/setup/business", data={**basics, "timezone": "Mars/Olymp"})
        assert bad.status_code == 422 and "Mars/Olymp" in bad.text
        no_url = await client.post("/setup/business", data={**basics, "privacy_url": "datenschutz"})
        assert no_url.status_code == 422
        saved = await client.post(
            "/setup/business", data={**basics, "privacy_url": "https://radhaus.example/datenschutz"}
        )
        assert saved.status_code == 303 and saved.headers["location"] == "/setup/channel"
        inbox = await client.get("/inbox")
        assert "/setup/channel" in inbox.text, "the inbox points to the missing channel"
    async with helpers.client_for(runtime) as stranger:
        again = await stranger.get("/setup")
        assert again.status_code == 303, "a set-up install never offers the owner form again"
        token = csrf((await stranger.get("/inbox/login")).text)
        late = await stranger.post(
            "/setup", data={**OWNER, "email": "eve@example.org", "_csrf_token": token}
        )
        assert late.status_code == 303 and late.headers["location"] == "/inbox/login"
    assert await _users(runtime) == 1
    async with runtime.sessions() as session:
        workspace = await session.scalar(select(Workspace))
        assert workspace is not None
        assert workspace.name == "Radhaus Köln" and workspace.time_zone == "Europe/Vienna"
        assert workspace.settings["profile"]["hours"]["mon"] == "09:00-18:00"
        assert workspace.settings["profile"]["privacy_url"] == "https://radhaus.example/datenschutz"
        config = await bot_store.config_for(session, workspace.id)
        assert bot_store.current_form(config) == "du"


async def test_channels_are_added_edited_disabled_and_deleted(runtime: Runtime) -> None:
    ws, used = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "kim@laden.example")
        assert (await client.get("/inbox/admin/channels", headers=HTML)).status_code == 403
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        form = await client.get("/inbox/admin/channels/new/whatsapp")
        assert form.status_code == 200 and "Phone number ID" not in form.text
        token = csrf(form.text)
        missing = await client.post(
            "/inbox/admin/channels/new/whatsapp",
            data={"name": "Zweite Nummer", "phone_number_id": "2000", "_csrf_token": token},
        )
        assert missing.status_code == 422 and "Bitte ausfüllen: App-Geheimnis" in missing.text
        created = await client.post(
            "/inbox/admin/channels/new/whatsapp",
            data={
                "name": "Zweite Nummer",
                "phone_number_id": "2000",
                "app_secret": "geheimes-app-secret",
                "verify_token": "mein-wort",
                "access_token": "EAAG-token",
                "_csrf_token": token,
            },
        )
        assert created.status_code == 303
        page = await client.get(created.headers["location"])
        channel_id = created.headers["location"].split("/")[-1].split("?")[0]
        assert f"/webhooks/whatsapp/{channel_id}" in page.text
        assert "geheimes-app-secret" not in page.text and "EAAG-token" not in page.text
        assert "leer lassen" in page.text, "a stored secret shows as set"
        edited = await client.post(
            f"/inbox/admin/channels/{channel_id}",
            data={"name": "Laden-Handy", "phone_number_id": "2001", "_csrf_token": token},
        )
        assert edited.status_code == 303
        off = await client.post(
            f"/inbox/admin/channels/{channel_id}/enabled",
            data={"enabled": "0", "_csrf_token": token},
        )
        assert off.status_code == 303
        async with runtime.sessions() as session:
            row = await session.get_one(ChannelRow, channel_id)
            assert row.name == "Laden-Handy" and row.config["phone_number_id"] == "2001"
            assert row.config["app_secret"] == "geheimes-app-secret", "an empty secret is kept"
            assert row.enabled is False
        async with helpers.client_for(runtime) as other:
            body = helpers.dumps(
                helpers.wa_envelope(messages=[helpers.wa_text("wamid.1", "4915100000001", "Hallo")])
            )
            await other.post(
                f"/webhooks/whatsapp/{used.id}", content=body, headers=helpers.wa_sign(body)
            )
        refused = await client.post(
            f"/inbox/admin/channels/{used.id}/delete", data={"_csrf_token": token}
        )
        assert refused.headers["location"].endswith("notice=in_use")
        deleted = await client.post(
            f"/inbox/admin/channels/{channel_id}/delete", data={"_csrf_token": token}
        )
        assert deleted.headers["location"].endswith("notice=deleted")
        gone = await client.get(f"/inbox/admin/channels/{channel_id}", headers=HTML)
        assert gone.status_code == 404
    async with runtime.sessions() as session:
        ids = set(await session.scalars(select(ChannelRow.id)))
        actions = set(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.subject_type == "channel")
            )
        )
    assert ids == {used.id}
    assert {"channel.add", "channel.change", "channel.disable", "channel.delete"} <= actions
    assert actions <= set(audit_admin.ACTIONS), "every channel action has a name on the audit page"


async def test_api_tokens_are_created_shown_once_listed_and_revoked(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/tokens")
        token = csrf(page.text)
        none = await client.post(
            "/inbox/admin/tokens", data={"name": "Shop", "expires_in": "90", "_csrf_token": token}
        )
        assert none.status_code == 422 and "mindestens eine" in none.text
        made = await client.post(
            "/inbox/admin/tokens",
            data={
                "name": "Shop",
                "scope": ["messages:send", "conversations:read"],
                "expires_in": "30",
                "_csrf_token": token,
            },
        )
        value = made.text.split('<span id="once"><code>')[1].split("</code>")[0]
        assert value.startswith("tresen_")
        listed = await client.get("/inbox/admin/tokens")
        assert value not in listed.text and "messages:send" in listed.text
        api = await client.get(
            "/api/v1/conversations", headers={"authorization": f"Bearer {value}"}
        )
        assert api.status_code == 200
        token_id = listed.text.split('action="/inbox/admin/tokens/')[1].split("/revoke")[0]
        revoked = await client.post(
            f"/inbox/admin/tokens/{token_id}/revoke", data={"_csrf_token": token}
        )
        assert revoked.status_code == 303
        refused = await client.get(
            "/api/v1/conversations", headers={"authorization": f"Bearer {value}"}
        )
        assert refused.status_code == 401


async def test_topics_are_created_in_the_browser(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    await person(runtime, ws, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as agent:
        await sign_in(agent, "kim@laden.example")
        token = csrf((await agent.get("/inbox")).text)
        refused = await agent.post(
            "/inbox/admin/topics",
            data={"keyword": "ticker", "name": "Ticker", "_csrf_token": token},
        )
        assert refused.status_code == 403
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        token = csrf((await client.get("/inbox/admin/topics")).text)
        form = {"name": "Live-Ticker", "description_de": "Tore live", "_csrf_token": token}
        bad = await client.post("/inbox/admin/topics", data={**form, "keyword": "tor!"})
        assert bad.status_code == 422 and "Stichwort hat 1 bis 32" in bad.text
        made = await client.post("/inbox/admin/topics", data={**form, "keyword": "Ticker"})
        assert made.status_code == 303 and made.headers["location"].endswith("#topic-ticker")
        twice = await client.post("/inbox/admin/topics", data={**form, "keyword": "ticker"})
        assert twice.status_code == 422 and "gibt es schon" in twice.text
        page = await client.get("/inbox/admin/topics")
        assert "START ticker" in page.text
    async with runtime.sessions() as session:
        topics = list(await session.scalars(select(Topic)))
    assert [(t.keyword, t.descriptions) for t in topics] == [("ticker", {"de": "Tore live"})]


async def test_canned_replies_are_managed_in_the_browser(
    runtime: Runtime,
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "kim@laden.example", "agent")
    await person(runtime, ws, "sina@laden.example", "supervisor")
    async with helpers.client_for(runtime) as agent:
        await sign_in(agent, "kim@laden.example")
        token = csrf((await agent.get("/inbox/admin/canned", headers=HTML)).text)
        shared = await agent.post(
            "/inbox/admin/canned",
            data={"shortcut": "x", "title": "X", "body": "Hallo", "_csrf_token": token},
            headers=HTML,
        )
        assert shared.status_code == 403, "agents keep personal canned replies only"
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "sina@laden.example")
        token = csrf((await client.get("/inbox/admin/canned")).text)
        form = {"shortcut": "/Zeiten", "title": "Öffnungszeiten", "_csrf_token": token}
        bad = await client.post(
            "/inbox/admin/canned", data={**form, "body": "Hallo {vorname}, wir haben offen."}
        )
        assert bad.status_code == 422 and "Unbekannter Platzhalter {vorname}" in bad.text
        made = await client.post(
            "/inbox/admin/canned", data={**form, "body": "Hallo {first_name}, Mo–Fr 9–18 Uhr."}
        )
        assert made.status_code == 303
        twice = await client.post("/inbox/admin/canned", data={**form, "body": "x"})
        assert twice.status_code == 422 and "/zeiten gibt es schon" in twice.text
        page = await client.get("/inbox/admin/canned")
        assert "/zeiten" in page.text and "Mo–Fr 9–18 Uhr" in page.text
    async with runtime.sessions() as session:
        stored = list(await session.scalars(select(CannedReply)))
    assert [(c.shortcut, c.body) for c in stored] == [
        ("zeiten", "Hallo {first_name}, Mo–Fr 9–18 Uhr.")
    ]


async def test_faq_and_catalog_uploads_are_checked_like_the_cli(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    broken = KB_YAML.replace('      de: "Der Versand kostet', '      xx1: "Der Versand kostet')
    catalog = "sku,name,price,sizes\nRH-1,Stadtrad Linus,499.00,50;56\nRH-2,Helm,59.90,M\n"
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        token = csrf((await client.get("/inbox/admin/bot")).text)

        async def upload(kind: str, name: str, text: str) -> Any:
            return await client.post(
                "/inbox/admin/bot/import",
                data={"kind": kind, "_csrf_token": token},
                files={"file": (name, text.encode(), "text/plain")},
            )

        good = await upload("faq", "faq.yaml", KB_YAML)
        assert good.status_code == 303 and "import=faq&n=5" in good.headers["location"]
        bad = await upload("faq", "kaputt.yaml", broken)
        assert bad.status_code == 422
        assert (
            "Es wurde nichts importiert" in bad.text and "answer language &#39;xx1&#39;" in bad.text
        )
        products = await upload("products", "katalog.csv", catalog)
        assert "import=products&n=2" in products.headers["location"]
        no_header = await upload("products", "ohne.csv", "a,b\n1,2\n")
        assert no_header.status_code == 422 and "sku" in no_header.text
    async with runtime.sessions() as session:
        keys = list(await session.scalars(select(BotFaq.key).order_by(BotFaq.position)))
        skus = sorted(await session.scalars(select(BotProduct.sku)))
    assert keys == ["oeffnungszeiten", "versand", "rueckgabe", "schuhe", "zahlung"]
    assert skus == ["RH-1", "RH-2"]


async def test_two_browsers_racing_the_first_run_make_one_owner_and_one_workspace(
    runtime: Runtime,
) -> None:
    async with (
        helpers.client_for(runtime) as first,
        helpers.client_for(runtime) as second,
        helpers.client_for(runtime) as third,
    ):
        browsers = (first, second, third)
        tokens = [csrf((await b.get("/setup")).text) for b in browsers]
        answers = await asyncio.gather(
            *(
                b.post(
                    "/setup", data={**OWNER, "email": f"owner{i}@radhaus.example", "_csrf_token": t}
                )
                for i, (b, t) in enumerate(zip(browsers, tokens, strict=True))
            )
        )
    places = sorted(a.headers.get("location", str(a.status_code)) for a in answers)
    assert places == ["/inbox/login", "/inbox/login", "/setup/business"], places
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
        assert await session.scalar(select(func.count()).select_from(Workspace)) == 1
