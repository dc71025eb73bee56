"""Message templates: review states from the provider, offered when the window is closed, sent with values."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tests.pipeline.stack import running_stack
from tresen.cli import app
from tresen.db.tables import Conversation, Message
from tresen.db.types import utcnow
from tresen.inbox import accounts
from tresen.pipeline import templates
from tresen.runtime import Runtime
from tresen.sim.whatsapp import WhatsAppSimConfig, run_whatsapp_simulator
from tresen.sim.whatsapp_templates import TemplateError, TemplateStore

SHIPPED = "Hallo {{1}}, Ihre Bestellung {{2}} ist unterwegs. Danke!"


def test_the_simulated_account_reviews_like_meta() -> None:
    store = TemplateStore(review_seconds=0)
    body = {"type": "BODY", "text": SHIPPED}
    store.submit({"name": "shipped", "language": "de", "category": "UTILITY", "components": [body]})
    store.submit(
        {
            "name": "starts_with_value",
            "language": "de",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "{{1}} ist da"}],
        }
    )
    listed = {t["name"]: t for t in store.listing()["data"]}
    assert listed["shipped"]["status"] == "APPROVED"
    assert listed["starts_with_value"]["status"] == "REJECTED"
    assert listed["starts_with_value"]["rejected_reason"] == "INVALID_FORMAT"
    with pytest.raises(TemplateError, match="already exists"):
        store.submit(
            {"name": "shipped", "language": "de", "category": "UTILITY", "components": [body]}
        )
    with pytest.raises(TemplateError, match="lowercase"):
        store.submit(
            {"name": "Shipped!", "language": "de", "category": "UTILITY", "components": [body]}
        )
    with pytest.raises(TemplateError, match="does not exist"):
        store.check_send("starts_with_value", "de")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("Order Shipped", "de", "utility", "x"), "name"),
        (("shipped", "deutsch", "utility", "x"), "language"),
        (("shipped", "de", "spam", "x"), "category"),
        (("shipped", "de", "utility", " "), "body"),
    ],
)
def test_bad_drafts_are_named(args: tuple[str, str, str, str], says: str) -> None:
    with pytest.raises(templates.TemplateError, match=f"^{says}"):
        templates.check_draft(*args)


async def test_submit_sync_offer_and_send_in_a_closed_window(runtime: Runtime) -> None:
    async with running_stack(runtime, WhatsAppSimConfig(template_review_seconds=0.2)) as stack:
        async with runtime.sessions() as session, session.begin():
            for name, body in (("shipped", SHIPPED), ("bad_start", "{{1}} ist da")):
                draft = templates.check_draft(name, "de", "utility", body)
                row = await templates.submit(session, runtime.http, stack.channel, draft)
                assert row.status == "pending"
        await asyncio.sleep(0.3)
        async with runtime.sessions() as session, session.begin():
            synced = {t.name: t for t in await templates.sync(session, runtime.http, stack.channel)}
        assert synced["shipped"].status == "approved"
        assert (synced["bad_start"].status, synced["bad_start"].rejected_reason) == (
            "rejected",
            "INVALID_FORMAT",
        )

        conv = await stack.customer_writes("Wo bleibt mein Paket?")
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conv)
                .values(last_inbound_at=utcnow() - timedelta(days=2))
            )
            await accounts.add_user(
                session, stack.channel.workspace_id, "kim@laden.example", "agent", PASSWORD
            )
            shipped_id = synced["shipped"].id
            rejected_id = synced["bad_start"].id

        async with helpers.client_for(runtime) as client:
            await _login(client, "kim@laden.example")
            page = (await client.get(f"/inbox/c/{conv}")).text
            assert "shipped" in page and "bad_start" not in page, "only approved ones are offered"
            assert 'name="value_2"' in page
            token = _csrf(page)
            short = await client.post(
                f"/inbox/c/{conv}/template",
                data={"_csrf_token": token, "template_id": shipped_id, "value_1": "Jana"},
            )
            assert short.status_code == 422 and "braucht 2 Werte, erhalten: 1" in short.text
            unapproved = await client.post(
                f"/inbox/c/{conv}/template",
                data={"_csrf_token": token, "template_id": rejected_id, "value_1": "Jana"},
            )
            assert unapproved.status_code == 422 and "nicht freigegeben" in unapproved.text
            free_text = await client.post(
                f"/inbox/c/{conv}/reply", data={"_csrf_token": token, "body": "Hallo?"}
            )
            assert free_text.status_code == 422, "free text stays refused in a closed window"
            sent = await client.post(
                f"/inbox/c/{conv}/template",
                data={
                    "_csrf_token": token,
                    "template_id": shipped_id,
                    "value_1": "Jana",
                    "value_2": "A-1042",
                },
            )
            assert sent.status_code == 303
        for _ in range(200):
            if stack.sim.ledger:
                break
            await asyncio.sleep(0.05)
        [entry] = stack.sim.ledger
        assert entry.type == "template"
        template = entry.payload["template"]
        assert template["name"] == "shipped" and template["language"]["code"] == "de"
        params = template["components"][0]["parameters"]
        assert [p["text"] for p in params] == ["Jana", "A-1042"]
        async with runtime.sessions() as session:
            body = await session.scalar(
                select(Message.body).where(Message.content_kind == "template")
            )
        assert body == "Hallo Jana, Ihre Bestellung A-1042 ist unterwegs. Danke!"


async def test_template_commands(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]

    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESEN_OUTBOUND_ALLOW_HOSTS", "127.0.0.1")  # the simulator
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    runner = CliRunner()
    config = WhatsAppSimConfig(template_review_seconds=0.1)
    async with run_whatsapp_simulator(config) as sim:
        args = [
            "channel", "add", "whatsapp", "--name", "Laden", "--no-set-webhook",
            "--phone-number-id", config.phone_number_id, "--app-secret", config.app_secret,
            "--verify-token", "v", "--access-token", config.access_token,
            "--api-base", sim.base_url, "--waba-id", config.waba_id,
        ]  # fmt: skip

        def invoke(*argv: str):  # type: ignore[no-untyped-def]
            return runner.invoke(app, list(argv))

        added = await asyncio.to_thread(invoke, *args)
        assert added.exit_code == 0, added.output
        channel_id = re.search(r"channel id:\s+(\S+)", added.output).group(1)  # type: ignore[union-attr]
        submitted = await asyncio.to_thread(
            invoke, "template", "add", channel_id, "--name", "shipped", "--body", SHIPPED
        )
        assert submitted.exit_code == 0, submitted.output
        assert submitted.output.strip() == "shipped (de): pending"
        again = await asyncio.to_thread(
            invoke, "template", "add", channel_id, "--name", "shipped", "--body", SHIPPED
        )
        assert again.exit_code == 2 and "exists already" in again.output
        await asyncio.sleep(0.2)
        synced = await asyncio.to_thread(invoke, "template", "sync", channel_id)
        assert synced.exit_code == 0 and "\tapproved\t" in synced.output
        listed = await asyncio.to_thread(invoke, "template", "list", channel_id)
        assert listed.output.startswith("shipped\tde\tutility\tapproved\t")
        nothing = await asyncio.to_thread(invoke, "template", "sync", "nope")
        assert nothing.exit_code == 2 and "no channel 'nope'" in nothing.output
