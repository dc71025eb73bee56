"""WhatsApp message templates in the browser's pages: list, sync, create, errors in the page."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests import helpers
from tests.web.pagekit import HTML, csrf, person, sign_in
from tresen.channels.manage import add_channel
from tresen.db.tables import ChannelRow, MessageTemplate
from tresen.runtime import Runtime
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator


def _states(html: str) -> dict[str, str]:
    rows = re.findall(r"<code>(\w+)</code></td>.*?template-state\"><span[^>]*>([^<]+)<", html, re.S)
    return dict(rows)


async def test_templates_are_synced_created_and_refusals_shown(runtime: Runtime) -> None:
    config = WhatsAppSimConfig(template_review_seconds=0.0)
    async with run_whatsapp_simulator(config) as sim:
        ws, row = await helpers.seed_whatsapp(
            runtime, api_base=sim.base_url, waba_id=config.waba_id
        )
        await person(runtime, ws, "chefin@laden.example", "admin", language="en")
        await person(runtime, ws, "kim@laden.example", "agent")
        url = f"/inbox/admin/channels/{row.id}/templates"
        async with helpers.client_for(runtime) as client:
            await sign_in(client, "kim@laden.example")
            assert (await client.get(url, headers=HTML)).status_code == 403
        async with helpers.client_for(runtime) as client:
            await sign_in(client, "chefin@laden.example")
            page = await client.get(url)
            assert page.status_code == 200 and "No templates yet" in page.text
            token = csrf(page.text)
            bad = await client.post(
                url,
                data={
                    "name": "Bestellung Versandt",
                    "language": "de",
                    "category": "utility",
                    "body": "Hallo",
                    "_csrf_token": token,
                },
            )
            assert bad.status_code == 422 and "lowercase letters, digits and _ only" in bad.text
            assert 'value="Bestellung Versandt"' in bad.text, "the typed values stay"
            for name, body in (
                ("order_shipped", "Hallo {{1}}, Ihre Bestellung ist unterwegs."),
                ("broken", "{{1}}"),
            ):
                created = await client.post(
                    url,
                    data={
                        "name": name,
                        "language": "de",
                        "category": "utility",
                        "body": body,
                        "_csrf_token": token,
                    },
                )
                assert created.status_code == 303, created.text
            twice = await client.post(
                url,
                data={
                    "name": "order_shipped",
                    "language": "de",
                    "category": "utility",
                    "body": "nochmal",
                    "_csrf_token": token,
                },
            )
            assert twice.status_code == 422 and "exists already" in twice.text
            listed = await client.get(url)
            assert _states(listed.text) == {"broken": "pending", "order_shipped": "pending"}
            synced = await client.post(f"{url}/sync", data={"_csrf_token": token})
            assert synced.status_code == 303
            listed = await client.get(synced.headers["location"])
            assert "The templates are up to date." in listed.text
            assert _states(listed.text) == {"broken": "rejected", "order_shipped": "approved"}
            async with runtime.sessions() as session, session.begin():
                stored = await session.get_one(ChannelRow, row.id)
                stored.config = {**stored.config, "access_token": "falsch"}
            refused = await client.post(f"{url}/sync", data={"_csrf_token": token})
            assert refused.status_code == 422
            assert "The provider refused the access data" in refused.text
            async with runtime.sessions() as session, session.begin():
                stored = await session.get_one(ChannelRow, row.id)
                stored.config = {**stored.config, "waba_id": ""}
            no_account = await client.post(f"{url}/sync", data={"_csrf_token": token})
            assert no_account.status_code == 422
            assert "WhatsApp Business Account ID" in no_account.text
    async with runtime.sessions() as session:
        names = set(await session.scalars(select(MessageTemplate.name)))
    assert names == {"order_shipped", "broken"}


async def test_a_channel_without_templates_has_no_template_page(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with runtime.sessions() as session, session.begin():
        tg = await add_channel(
            session, ws, "telegram", "Bot", {"bot_token": "1:abc", "secret_token": "wort"}
        )
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        assert (await client.get(f"/inbox/admin/channels/{tg.id}/templates")).status_code == 404
        assert (await client.get("/inbox/admin/channels/nix/templates")).status_code == 404
