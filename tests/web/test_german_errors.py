"""Every domain error a person can cause in the inbox reaches the German UI in German."""

from __future__ import annotations

import ast
import html
from datetime import timedelta
from pathlib import Path

import httpx
from litestar import Litestar, get
from sqlalchemy import update

from tests import helpers
from tests.inbox.test_contacts import Shop, _login, shop  # noqa: F401 (the fixture)
from tresen.db.tables import Conversation, Media, Message
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError, as_record
from tresen.inbox.labels import LabelError
from tresen.web import i18n
from tresen.web.errors import EXCEPTION_HANDLERS

SRC = Path(__file__).parents[2] / "src" / "tresen"
TRANSLATED = {
    "AccountError",
    "LabelError",
    "ContactRefused",
    "ProfileError",
    "TokenError",
    "TemplateError",
    "RetentionError",
    "OutboundRefused",
    "NoteRefused",
    "MediaRefused",
    "SegmentError",
    "CampaignError",
    "TopicError",
    "ConfigError",
}
TEMPLATE_ARGUMENT = {"ConfigError": 0}
"""Which positional argument holds the template (ConfigError takes no code)."""


def _shown(page: httpx.Response) -> str:
    return html.unescape(page.text)


def _refused_in_german(page: httpx.Response, german: str, english: str) -> None:
    text = _shown(page)
    assert page.status_code == 422, page.status_code
    assert german in text, f"{german!r} is not on the page"
    assert english not in text, f"the English {english!r} is on the German page"


async def test_each_domain_error_in_the_inbox_is_shown_in_german(shop: Shop) -> None:  # noqa: F811
    """Label, note, reply, merge, attribute, profile and file errors, as a German admin sees them."""
    await shop.user("chefin@laden.example", "admin")
    _, _, conv = await shop.contact("Jana Müller", shop.wa, "4915100000001", ["Hallo"])
    async with helpers.client_for(shop.runtime) as client:
        token = await _login(client, "chefin@laden.example")
        assert 'lang="de"' in (await client.get("/inbox")).text

        form = {"name": "VIP", "colour": "red", "_csrf_token": token}
        assert (await client.post("/inbox/labels", data=form)).status_code == 303
        _refused_in_german(
            await client.post("/inbox/labels", data=form),
            "Es gibt bereits ein Label namens 'VIP'",
            "there is already a label",
        )
        _refused_in_german(
            await client.post("/inbox/labels", data={**form, "name": "  "}),
            "Ein Label braucht einen Namen",
            "a label needs a name",
        )
        _refused_in_german(
            await client.post(f"/inbox/c/{conv}/note", data={"body": " ", "_csrf_token": token}),
            "Eine Notiz darf nicht leer sein",
            "a note must not be empty",
        )
        _refused_in_german(
            await client.post(
                f"/inbox/c/{conv}/reply", data={"body": "x" * 5000, "_csrf_token": token}
            ),
            "whatsapp erlaubt höchstens 4096 Zeichen; diese Nachricht hat 5000",
            "allows at most",
        )
        contact_id = await _contact_of(shop, conv)
        _refused_in_german(
            await client.post(
                f"/inbox/c/{conv}/merge", data={"other": contact_id, "_csrf_token": token}
            ),
            "Ein Kontakt kann nicht mit sich selbst zusammengeführt werden",
            "cannot be merged with itself",
        )
        _refused_in_german(
            await client.post(
                f"/inbox/c/{conv}/attributes",
                data={"key": "k" * 100, "value": "1", "_csrf_token": token},
            ),
            "Ein Merkmalsname hat höchstens",
            "an attribute name has at most",
        )
        profile = (await client.get("/inbox/admin/profile")).text
        _refused_in_german(
            await client.post(
                "/inbox/admin/profile",
                data={
                    "hours_mon": "18:00-09:00",
                    "timezone": "Europe/Berlin",
                    "_csrf_token": token,
                },
            ),
            "Montag: '18:00-09:00': Das Ende muss nach dem Beginn liegen",
            "closing must come after opening",
        )
        assert profile

        count = await client.get(
            "/inbox/admin/campaigns/count", params={"active_within_days": "bald"}
        )
        assert count.status_code == 200
        assert "active_within_days muss eine ganze Zahl von Tagen sein" in _shown(count)
        assert "must be a whole number" not in count.text

        channel_form = {
            "name": "Zweite Nummer",
            "phone_number_id": "keine-ziffern",
            "app_secret": "geheim",
            "verify_token": "wort",
            "access_token": "EAAG",
            "_csrf_token": token,
        }
        _refused_in_german(
            await client.post("/inbox/admin/channels/new/whatsapp", data=channel_form),
            "Einstellungen des WhatsApp-Kanals: phone_number_id muss aus Ziffern bestehen",
            "must be digits",
        )

        await _close_window(shop, conv)
        _refused_in_german(
            await client.post(
                f"/inbox/c/{conv}/reply", data={"body": "Hallo", "_csrf_token": token}
            ),
            "erlaubt freie Nachrichten nur innerhalb von 24 Stunden",
            "allows free messages only",
        )

        await _file_that_could_not_be_fetched(shop, conv)
        page = await client.get(f"/inbox/c/{conv}")
        assert page.status_code == 200
        assert "Datei nicht verfügbar: konnte nicht abgerufen werden" in _shown(page)
        assert "could not be fetched" not in _shown(page)


async def _contact_of(the_shop: Shop, conv: str) -> str:
    async with the_shop.runtime.sessions() as s:
        return (await s.get_one(Conversation, conv)).contact_id


async def _close_window(the_shop: Shop, conv: str) -> None:
    async with the_shop.runtime.sessions() as s, s.begin():
        await s.execute(
            update(Conversation)
            .where(Conversation.id == conv)
            .values(last_inbound_at=utcnow() - timedelta(days=3))
        )


async def _file_that_could_not_be_fetched(the_shop: Shop, conv: str) -> None:
    reason = as_record(DomainError("fetch_failed", "could not be fetched"))
    async with the_shop.runtime.sessions() as s, s.begin():
        message = await s.scalar(
            Message.__table__.select().where(Message.conversation_id == conv).limit(1)  # type: ignore[attr-defined]
        )
        s.add(
            Media(
                workspace_id=the_shop.ws,
                message_id=message,
                kind="image",
                state="unavailable",
                reason=reason,
            )
        )


def _templates_of_translated_errors() -> list[tuple[str, str]]:
    """(where, template) of every literal template these error classes are raised with."""
    found = []
    for path in SRC.rglob("*.py"):
        if "/sim/" in str(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = TEMPLATE_ARGUMENT.get(str(name), 1)
            if name not in TRANSLATED or len(node.args) <= position:
                continue
            template = _literal(node.args[position])
            if template is not None:
                found.append((f"{path.relative_to(SRC)}:{node.lineno}", template))
    return found


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        return left + right if left is not None and right is not None else None
    return None


def test_every_template_of_these_errors_has_a_german_translation() -> None:
    """A new refusal without a German text fails here, before a German user sees English."""
    german = i18n.catalog("de")
    templates = _templates_of_translated_errors()
    assert len(templates) > 60, "the scan found too few raises"
    missing = [f"{where}: {template!r}" for where, template in templates if template not in german]
    assert not missing, "add to messages.po:\n" + "\n".join(missing)


async def test_a_domain_error_that_reaches_the_handler_is_a_german_page_or_english_json() -> None:
    """The one handler: a browser gets a page in its language, an API client JSON in English."""

    @get("/inbox/refuse")
    async def refuse() -> None:
        raise LabelError(
            "label_exists", "there is already a label named {name!r}", 409, params={"name": "VIP"}
        )

    app = Litestar([refuse], exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        page = await client.get("/inbox/refuse", headers={"accept": "text/html"})
        assert page.status_code == 409
        assert "Es gibt bereits ein Label namens 'VIP'" in _shown(page)
        assert "Das hat nicht geklappt" in _shown(page) and "already" not in page.text
        api = await client.get("/inbox/refuse", headers={"accept": "application/json"})
        assert api.status_code == 409
        assert api.json()["error"] == {
            "code": "label_exists",
            "message": "there is already a label named 'VIP'",
        }
