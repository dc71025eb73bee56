"""pywa drives the WhatsApp simulator: what a real Cloud API client sends, it accepts.

pywa has no setting for the Graph API's address; its documented hook is `session=`, an
httpx client of one's own. Ours carries a transport that sends graph.facebook.com requests to
the simulator (`tresen sim whatsapp` in production-like runs). Assertions are on the objects
pywa parsed from the answers and on the simulator's ledger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pywa_async import WhatsApp
from pywa_async.errors import WhatsAppError
from pywa_async.types import Button, Section, SectionList, SectionRow
from pywa_async.types.templates import (
    BodyText,
    ParamFormat,
    Template,
    TemplateCategory,
    TemplateLanguage,
    TemplateStatus,
)

from tresen.sim.whatsapp import WhatsAppSimConfig, WhatsAppSimulator, run_whatsapp_simulator

TOKEN = "lib-token"
CUSTOMER = "491701234567"
PDF = b"%PDF-1.4\n%lib\ntrailer<<>>\n%%EOF\n"


class ToSimulator(httpx.AsyncBaseTransport):
    """Sends Graph API requests to the simulator instead of graph.facebook.com."""

    def __init__(self, base_url: str) -> None:
        self._base = httpx.URL(base_url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "graph.facebook.com":
            request.url = request.url.copy_with(
                scheme=self._base.scheme, host=self._base.host, port=self._base.port
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
async def sim() -> AsyncIterator[WhatsAppSimulator]:
    """A business number with quick template review."""
    config = WhatsAppSimConfig(
        access_token=TOKEN, template_review_seconds=0.0, status_delays=(0.01, 0.02, 0.03), seed=9
    )
    async with run_whatsapp_simulator(config) as running:
        yield running


@pytest.fixture
async def wa(sim: WhatsAppSimulator) -> AsyncIterator[WhatsApp]:
    """pywa's client for the simulated number."""
    session = httpx.AsyncClient(transport=ToSimulator(sim.base_url or ""), timeout=10)
    async with session:
        yield WhatsApp(
            phone_id=sim.config.phone_number_id,
            token=TOKEN,
            api_version=sim.config.api_version.removeprefix("v"),
            waba_id=sim.config.waba_id,
            session=session,
        )


async def test_text_buttons_and_lists(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    await sim.customer_sends(CUSTOMER, body="Hallo")
    text = await wa.send_message(CUSTOMER, "Guten Tag! Wie kann ich helfen?")
    assert text.id.startswith("wamid.") and text.chat.id == CUSTOMER
    assert text.from_phone_id == sim.config.phone_number_id
    buttons = await wa.send_message(
        CUSTOMER, "Passt der Termin?", buttons=[Button("Ja", "yes"), Button("Nein", "no")]
    )
    menu = SectionList(
        "Weine",
        sections=[Section("Rot", rows=[SectionRow("Spätburgunder", "pinot", "Baden")])],
    )
    listed = await wa.send_message(CUSTOMER, "Was darf es sein?", buttons=menu)
    ledger = {e.wamid: e for e in sim.ledger}
    assert ledger[text.id].payload["text"]["body"] == "Guten Tag! Wie kann ich helfen?"
    action = ledger[buttons.id].payload["interactive"]["action"]
    assert [b["reply"]["id"] for b in action["buttons"]] == ["yes", "no"]
    rows = ledger[listed.id].payload["interactive"]["action"]["sections"][0]["rows"]
    assert rows == [{"id": "pinot", "title": "Spätburgunder", "description": "Baden"}]
    with pytest.raises(WhatsAppError) as too_many:
        await wa.send_message(CUSTOMER, "?", buttons=[Button(str(n), str(n)) for n in range(4)])
    assert too_many.value.code == 131009


async def test_read_receipts_and_typing_indicators(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    wamid = await sim.customer_sends(CUSTOMER, body="Ist mein Paket unterwegs?")
    read = await wa.mark_message_as_read(wamid)
    typing = await wa.indicate_typing(wamid)
    assert read.success and typing.success
    assert [(r["message_id"], r["typing"]) for r in sim.read_receipts] == [
        (wamid, False),
        (wamid, True),
    ]
    with pytest.raises(WhatsAppError) as unknown:
        await wa.mark_message_as_read("wamid.unknown")
    assert unknown.value.code == 100
    assert sim.ledger == []  # receipts are not messages


async def test_media_upload_send_download_delete(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    await sim.customer_sends(CUSTOMER, body="Rechnung bitte")
    document = await wa.send_document(
        CUSTOMER, PDF, filename="rechnung.pdf", mime_type="application/pdf", caption="Ihre Rechnung"
    )
    sent = next(e for e in sim.ledger if e.wamid == document.id)
    media_id = sent.payload["document"]["id"]
    assert sim.uploads[-1]["content"] == PDF and sim.uploads[-1]["id"] == media_id
    assert sent.payload["document"]["filename"] == "rechnung.pdf"
    linked = await wa.send_image(CUSTOMER, "https://shop.example/wein.jpg", caption="Neu")
    assert next(e for e in sim.ledger if e.wamid == linked.id).payload["image"]["link"] == (
        "https://shop.example/wein.jpg"
    )

    uploaded = await wa.upload_media(b"\x89PNG\r\n\x1a\n", mime_type="image/png", filename="a.png")
    url = await wa.get_media_url(uploaded.id)
    assert url.mime_type == "image/png" and url.file_size == 8
    assert await wa.get_media_bytes(url.url) == b"\x89PNG\r\n\x1a\n"
    assert (await wa.delete_media(uploaded.id)).success
    with pytest.raises(WhatsAppError):
        await wa.get_media_url(uploaded.id)

    photo = await sim.customer_sends(CUSTOMER, type="image", body="Etikett", media=b"\xff\xd8\xff")
    customer_image = next(m for m in sim.inbound if m["id"] == photo)["image"]
    customer_url = await wa.get_media_url(customer_image["id"])
    assert await wa.get_media_bytes(customer_url.url) == b"\xff\xd8\xff"


async def test_reactions_locations_and_window(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    wamid = await sim.customer_sends(CUSTOMER, body="Danke!")
    reacted = await wa.send_reaction(CUSTOMER, "\U0001f44d", wamid)
    removed = await wa.remove_reaction(CUSTOMER, wamid)
    where = await wa.send_location(CUSTOMER, 52.52, 13.40, name="Laden", address="Berlin")
    payloads = {e.wamid: e.payload for e in sim.ledger}
    assert payloads[reacted.id]["reaction"] == {"message_id": wamid, "emoji": "\U0001f44d"}
    assert payloads[removed.id]["reaction"]["emoji"] == ""
    assert payloads[where.id]["location"]["name"] == "Laden"
    sim.close_window(CUSTOMER)
    with pytest.raises(WhatsAppError) as outside:
        await wa.send_message(CUSTOMER, "Noch da?")
    assert outside.value.code == 131047


async def test_templates_created_listed_and_sent(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    template = Template(
        name="order_update",
        category=TemplateCategory.UTILITY,
        language=TemplateLanguage.GERMAN,
        parameter_format=ParamFormat.POSITIONAL,
        components=[BodyText("Ihre Bestellung {{1}} ist unterwegs.", "4711")],
    )
    created = await wa.create_template(template)
    assert created.status == TemplateStatus.PENDING
    listed = await wa.get_templates()
    assert [(t.name, t.status, t.language) for t in listed] == [
        ("order_update", TemplateStatus.APPROVED, TemplateLanguage.GERMAN)
    ]
    assert listed.total_count == 1
    sent = await wa.send_template(
        CUSTOMER,
        name="order_update",
        language=TemplateLanguage.GERMAN,
        params=[BodyText.params("4712")],
    )
    entry = next(e for e in sim.ledger if e.wamid == sent.id)
    assert entry.type == "template"
    assert entry.payload["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "4712"}
    ]


async def test_business_number_and_refusals(sim: WhatsAppSimulator, wa: WhatsApp) -> None:
    number = await wa.get_business_phone_number()
    assert number.id == sim.config.phone_number_id
    assert number.display_phone_number == sim.config.display_phone_number
    session = httpx.AsyncClient(transport=ToSimulator(sim.base_url or ""), timeout=10)
    async with session:
        wrong = WhatsApp(
            phone_id=sim.config.phone_number_id,
            token="wrong-token",
            api_version=sim.config.api_version.removeprefix("v"),
            session=session,
        )
        with pytest.raises(WhatsAppError) as denied:
            await wrong.send_message(CUSTOMER, "x")
    assert denied.value.code == 190
