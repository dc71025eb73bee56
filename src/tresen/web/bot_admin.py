"""Admin pages of the bot: the FAQ (list, add, edit, delete) and the learning loop."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response

from tresen.bot import stats, store
from tresen.bot.flowtexts import FlowText, flow_texts
from tresen.bot.persona import address_forms
from tresen.db.tables import BotConfig, BotFaq
from tresen.inbox import service
from tresen.inbox.permissions import Action, Actor, may
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.i18n import gettext
from tresen.web.inbox import Form, current_actor
from tresen.web.pages import render

LANGUAGES = ("de", "en")
_ANSWER_FIELD = re.compile(r"^answer_([a-z]{2})$")


def _runtime(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.runtime


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise service.Forbidden("only admins edit the bot")
    return actor


def _form_entry(data: dict[str, str]) -> tuple[str, list[str], dict[str, str]]:
    questions = [line.strip() for line in str(data.get("questions", "")).splitlines()]
    answers = {
        m.group(1): str(value)
        for name, value in data.items()
        if (m := _ANSWER_FIELD.match(name)) is not None
    }
    return str(data.get("key", ""))[:100], [q for q in questions if q], answers


def _languages(row: BotFaq | None) -> list[str]:
    extra = sorted(set((row.content.get("answers") or {}) if row else ()) - set(LANGUAGES))
    return [*LANGUAGES, *extra]


async def _overview(
    request: Request[Any, Any, Any],
    actor: Actor,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[str]:
    workspace_id = actor.user.workspace_id
    async with _runtime(request).sessions() as session:
        rows = await store.entries(session, workspace_id)
        config = await session.get(BotConfig, workspace_id)
        days = await stats.per_day(session, workspace_id)
        unanswered = await stats.unanswered(session, workspace_id)
    return render(
        request,
        "admin_bot.html",
        status_code=status_code,
        actor=actor,
        rows=rows,
        days=days,
        unanswered=unanswered,
        languages=list(LANGUAGES),
        error=error,
        form=form or {},
        persona=(config.persona if config else None) or {},
        enabled=config.enabled if config else True,
        terms=((config.blacklist if config else None) or {}).get("terms", []),
        imported=request.query_params.get("import"),
        imported_count=request.query_params.get("n", ""),
    )


@get("/inbox/admin/bot", include_in_schema=False)
async def bot_overview(request: Request[Any, Any, Any]) -> Response[str]:
    """The FAQ entries, a form for a new one, and what the bot did per day."""
    return await _overview(request, await _admin(request))


async def _audit(
    request: Request[Any, Any, Any],
    actor: Actor,
    action: str,
    subject: str,
    subject_type: str = "bot_faq",
) -> None:
    async with _runtime(request).sessions() as session, session.begin():
        await record_by(session, actor, action, subject_type, subject)


@post("/inbox/admin/bot/faq", include_in_schema=False, status_code=303)
async def faq_add(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Add an entry; the bot knows it with the next message."""
    actor = await _admin(request)
    key, questions, answers = _form_entry(data)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            row = await store.save_entry(
                session, actor.user.workspace_id, None, key, questions, answers
            )
            row_id = row.id
    except ValueError as exc:
        return await _overview(
            request, actor, error=i18n.error_text(exc), form=dict(data), status_code=422
        )
    await _audit(request, actor, "bot.faq_added", row_id)
    return Redirect("/inbox/admin/bot", status_code=303)


async def _edit_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    entry_id: str,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        try:
            row = await store.entry(session, actor.user.workspace_id, entry_id)
        except LookupError as exc:
            raise service.NotFound(entry_id) from exc
    return render(
        request,
        "admin_bot_entry.html",
        status_code=status_code,
        actor=actor,
        row=row,
        languages=_languages(row),
        error=error,
        form=form,
    )


@get("/inbox/admin/bot/faq/{entry_id:str}", include_in_schema=False)
async def faq_edit(request: Request[Any, Any, Any], entry_id: FromPath[str]) -> Response[str]:
    """One entry: its id, phrasings and answers per language."""
    return await _edit_page(request, await _admin(request), entry_id)


@post("/inbox/admin/bot/faq/{entry_id:str}", include_in_schema=False, status_code=303)
async def faq_save(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: Form
) -> Response[Any]:
    """Save an edited entry."""
    actor = await _admin(request)
    key, questions, answers = _form_entry(data)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await store.save_entry(
                session, actor.user.workspace_id, entry_id, key, questions, answers
            )
    except LookupError as exc:
        raise service.NotFound(entry_id) from exc
    except ValueError as exc:
        return await _edit_page(
            request, actor, entry_id, error=i18n.error_text(exc), form=dict(data), status_code=422
        )
    await _audit(request, actor, "bot.faq_changed", entry_id)
    return Redirect("/inbox/admin/bot", status_code=303)


@post("/inbox/admin/bot/faq/{entry_id:str}/delete", include_in_schema=False, status_code=303)
async def faq_delete(request: Request[Any, Any, Any], entry_id: FromPath[str]) -> Redirect:
    """Remove an entry."""
    actor = await _admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await store.delete_entry(session, actor.user.workspace_id, entry_id)
    except LookupError as exc:
        raise service.NotFound(entry_id) from exc
    await _audit(request, actor, "bot.faq_deleted", entry_id)
    return Redirect("/inbox/admin/bot", status_code=303)


@post("/inbox/admin/bot/teach/{turn_id:int}", include_in_schema=False, status_code=303)
async def teach(
    request: Request[Any, Any, Any], turn_id: FromPath[int], data: Form
) -> Response[Any]:
    """Turn an unanswered question into a phrasing of an entry (or the start of a new one)."""
    actor = await _admin(request)
    workspace_id = actor.user.workspace_id
    target = str(data.get("entry_id", ""))
    error: str | None = None
    async with _runtime(request).sessions() as session, session.begin():
        try:
            text = await stats.turn_text(session, workspace_id, turn_id)
        except LookupError as exc:
            raise service.NotFound(str(turn_id)) from exc
        if target:
            try:
                await store.add_phrasing(session, workspace_id, target, text)
            except LookupError as exc:
                raise service.NotFound(target) from exc
            except ValueError as exc:
                error = i18n.error_text(exc)
    if not target:
        return await _overview(request, actor, form={"questions": text})
    if error:
        return await _overview(request, actor, error=error, status_code=422)
    await _audit(request, actor, "bot.faq_taught", target)
    return Redirect("/inbox/admin/bot", status_code=303)


@post("/inbox/admin/bot/settings", include_in_schema=False, status_code=303)
async def bot_settings(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """The bot on or off, its name, du or Sie, emoji, and the blacklist."""
    actor = await _admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await store.save_settings(
                session,
                actor.user.workspace_id,
                enabled=data.get("enabled") == "1",
                name=str(data.get("name", ""))[:100],
                form=str(data.get("form", "")),
                emoji=data.get("emoji") == "1",
                blacklist=str(data.get("blacklist", ""))[:25_000].splitlines(),
            )
    except ValueError as exc:
        return await _overview(request, actor, error=i18n.error_text(exc), status_code=422)
    await _audit(
        request, actor, "bot.settings_changed", actor.user.workspace_id, subject_type="workspace"
    )
    return Redirect("/inbox/admin/bot", status_code=303)


TEXT_LABELS = {
    "greeting": "Greeting",
    "thanks": "Thanks or OK from the customer",
    "fallback": "Didn't understand (variants, one per line)",
    "dont_know": "No details on a follow-up question",
    "handover": "Hand-over",
    "handover_sorry": "Hand-over after a complaint or annoyance",
    "handover_callback": "Hand-over for a call back",
    "handover_media": "Hand-over of a photo, voice message or file",
    "handover_long": "Hand-over of a very long message",
    "blacklisted": "Question about another provider",
    "answer_only_in": "Note under an answer that exists only in the knowledge base's language",
    "product_in_stock": "Product in stock in the size asked",
    "product_size_sold_out": "Product sold out in the size asked",
    "product_size_not_offered": "Product not made in the size asked",
    "product_info": "Product: price and sizes",
    "product_info_no_sizes": "Product without sizes: price",
    "product_sold_out": "Product sold out",
    "product_price": "Product: price",
    "product_colour_in_stock": "Product in stock in the colour asked",
    "product_colour_sold_out": "Product sold out in the colour asked",
    "product_colour_not_offered": "Product not made in the colour asked",
    "product_colour_unknown": "Product without colour details",
    "finder_results": "Product finder: results",
    "finder_none": "Product finder: nothing found",
    "order_status": "Order status",
    "order_status_tracking": "Order status with tracking link",
    "order_not_found": "Order not found (or wrong postcode/e-mail)",
    "order_unavailable": "Shop not reachable",
    "status_processing": "Order state: processing",
    "status_shipped": "Order state: shipped",
    "status_delivered": "Order state: delivered",
    "status_cancelled": "Order state: cancelled",
    "status_returned": "Order state: returned",
    "invalid": "Form: answer not understood",
    "invalid_shoe_size": "Form: not a shoe size",
    "invalid_size": "Form: not a size",
    "invalid_amount": "Form: not an amount",
    "invalid_height": "Form: not a body height",
    "invalid_color": "Form: not a colour",
    "invalid_order_number": "Form: not an order number",
    "invalid_postcode": "Form: not a postcode",
    "invalid_email": "Form: not an e-mail address",
    "invalid_verification": "Form: neither postcode nor e-mail address",
    "invalid_choice": "Form: none of the options",
    "numbered_hint": "Form: reply with the number",
    "way_out_choice": "Form: way out after two wrong answers (with options)",
    "way_out_free": "Form: way out after two wrong answers",
    "cancelled": "Form cancelled",
    "expired": "Form started over after a long pause",
    "resume_offer": "Offer to go back to an interrupted form",
    "resume_declined": "Not going back to the interrupted form",
    "flow_title": "Name of a form without a title of its own",
    "any_value": "Word for “any” in answers",
    "button_any": "Button: any",
    "button_cancel": "Button: cancel",
    "button_person": "Button: talk to a person",
    "button_resume": "Button: carry on",
    "button_no_resume": "Button: do not carry on",
}
FLOW_FIELD_LABELS = {
    "title": "Name (for “shall we carry on with …?”)",
    "done": "Text when done",
    "ask": "Question",
    "error": "Hint after a wrong answer",
}


def _other_form(
    form: str, config: BotConfig | None, rows: list[BotFaq], flows: list[FlowText]
) -> list[str]:
    """Where a German text uses the other form of address than the bot (texts, flows, answers)."""
    other = "du" if form == "sie" else "sie"
    found = [
        gettext(TEXT_LABELS.get(key, key))
        for key in store.TEXT_KEYS
        if other in address_forms(store.persona_text(config, "de", key))
    ]
    found += [
        f"{t.flow}{' / ' + t.slot if t.slot else ''}: {gettext(FLOW_FIELD_LABELS[t.field])}"
        for t in flows
        if other in address_forms(t.values.get("de", ""))
    ]
    found += [
        r.key
        for r in rows
        if other in address_forms(str((r.content.get("answers") or {}).get("de", "")))
    ]
    return found


async def _texts_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    error: str | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[str]:
    workspace_id = actor.user.workspace_id
    async with _runtime(request).sessions() as session:
        config = await session.get(BotConfig, workspace_id)
        rows = await store.entries(session, workspace_id)
    form = store.current_form(config)
    fields = [
        {
            "key": key,
            "label": TEXT_LABELS.get(key, key),
            "values": {
                lang: (posted or {}).get(f"{lang}__{key}", store.persona_text(config, lang, key))
                for lang in LANGUAGES
            },
        }
        for key in store.TEXT_KEYS
    ]
    flows = flow_texts(((config.flows if config else None) or {}).get("flows", []), form, LANGUAGES)
    flow_fields = [
        {
            "key": t.key,
            "flow": t.flow,
            "slot": t.slot,
            "label": FLOW_FIELD_LABELS[t.field],
            "values": {
                lang: (posted or {}).get(f"{lang}__{t.key}", t.values.get(lang, ""))
                for lang in LANGUAGES
            },
        }
        for t in flows
    ]
    return render(
        request,
        "admin_bot_texts.html",
        status_code=status_code,
        actor=actor,
        fields=fields,
        flow_fields=flow_fields,
        languages=list(LANGUAGES),
        form=form,
        other_form=_other_form(form, config, rows, flows),
        error=error,
    )


@get("/inbox/admin/bot/texts", include_in_schema=False)
async def bot_texts(request: Request[Any, Any, Any]) -> Response[str]:
    """Every text the bot says, per language, for the current form of address."""
    return await _texts_page(request, await _admin(request))


@post("/inbox/admin/bot/texts", include_in_schema=False, status_code=303)
async def bot_texts_save(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save the bot's texts; an empty text or the default goes back to the default."""
    actor = await _admin(request)
    texts: dict[str, dict[str, str]] = {}
    flows: dict[str, dict[str, str]] = {}
    for name, value in data.items():
        lang, _, key = str(name).partition("__")
        if lang in LANGUAGES and key in store.TEXT_KEYS:
            texts.setdefault(lang, {})[key] = str(value)[:5000]
        elif lang in LANGUAGES and key.startswith("flow|"):
            flows.setdefault(lang, {})[key] = str(value)[:5000]
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await store.save_texts(session, actor.user.workspace_id, texts)
            await store.save_flow_texts(session, actor.user.workspace_id, flows)
    except ValueError as exc:
        return await _texts_page(request, actor, i18n.error_text(exc), dict(data), status_code=422)
    await _audit(
        request, actor, "bot.texts_changed", actor.user.workspace_id, subject_type="workspace"
    )
    return Redirect("/inbox/admin/bot/texts", status_code=303)


bot_admin_router = Router(
    path="/",
    route_handlers=[
        bot_overview,
        bot_settings,
        bot_texts,
        bot_texts_save,
        faq_add,
        faq_edit,
        faq_save,
        faq_delete,
        teach,
    ],
)
