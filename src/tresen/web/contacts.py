"""Contacts in the inbox and the API: merge and undo, the all-channels timeline, attributes, labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Response

from tresen.db.tables import ContactMerge
from tresen.events import CONVERSATION_UPDATED, Event
from tresen.inbox import contacts, labels, service
from tresen.inbox.permissions import Action, Actor, may
from tresen.runtime import Runtime
from tresen.web import i18n
from tresen.web.api import ERROR_RESPONSES, require
from tresen.web.audited import record_by
from tresen.web.errors import ApiError
from tresen.web.inbox import Form, current_actor
from tresen.web.pages import render

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def _field(data: dict[str, str], name: str, limit: int = 1000) -> str:
    return str(data.get(name, ""))[:limit]


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    conversation_id: str,
    *,
    all_channels: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    """The conversation page (or its fragment for htmx), optionally with every channel's history."""
    htmx = bool(request.headers.get("hx-request"))
    async with _runtime(request).sessions() as session:
        current = await service.conversation_view(session, actor, conversation_id)
        if all_channels:
            current.timeline = await contacts.contact_timeline(
                session, actor, current.conversation.contact_id
            )
            current.all_channels = True
        rows = [] if htmx else await service.conversation_list(session, actor, "all")
    context: dict[str, Any] = {
        "actor": actor,
        "current": current,
        "view": "all",
        "error": error,
        "status_code": status_code,
    }
    if htmx:
        return render(request, "_conversation.html", **context)
    return render(request, "inbox.html", rows=rows, **context)


async def _changed(request: Request[Any, Any, Any], actor: Actor, *conversation_ids: str) -> None:
    for conversation_id in dict.fromkeys(conversation_ids):
        await _runtime(request).events.publish(
            Event(actor.user.workspace_id, CONVERSATION_UPDATED, conversation_id, {})
        )


# ---------------------------------------------------------------- one timeline


@get("/inbox/c/{conversation_id:str}/all-channels", include_in_schema=False)
async def all_channels(
    request: Request[Any, Any, Any], conversation_id: FromPath[str]
) -> Response[str]:
    """The conversation with the contact's whole history on every channel, in time order."""
    actor = await current_actor(request)
    page = await _page(request, actor, conversation_id, all_channels=True)
    async with _runtime(request).sessions() as session, session.begin():
        conv = await service.load_conversation(session, actor, conversation_id)
        await record_by(session, actor, "contact.history_viewed", "contact", conv.contact_id)
    return page


# ---------------------------------------------------------------- merge and undo


@get("/inbox/c/{conversation_id:str}/merge", include_in_schema=False)
async def merge_page(
    request: Request[Any, Any, Any],
    conversation_id: FromPath[str],
    q: FromQuery[str] = "",
    other: FromQuery[str | None] = None,
) -> Response[str]:
    """Find the contact to merge into this conversation's contact, then confirm."""
    actor = await current_actor(request)
    return await _merge_page(request, actor, conversation_id, q, other)


async def _merge_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    conversation_id: str,
    q: str,
    other: str | None,
    error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    found: list[contacts.Candidate] = []
    picked = None
    async with _runtime(request).sessions() as session:
        conv = await service.load_conversation(session, actor, conversation_id)
        if not await contacts.may_see_contact(session, actor, conv.contact_id):
            raise service.Forbidden("you may not see all conversations of this contact")
        me = await contacts.candidate(session, actor, conv.contact_id)
        try:
            if other:
                if other == conv.contact_id:
                    raise contacts.ContactRefused(
                        "merge_self", "a contact cannot be merged with itself"
                    )
                picked = await contacts.candidate(session, actor, other[:64])
            elif q.strip():
                found = await contacts.merge_candidates(session, actor, conv.contact_id, q)
        except (contacts.ContactRefused, ValueError) as exc:
            error, status_code = i18n.error_text(exc), 422
        except service.NotFound:
            error, status_code = i18n.gettext("no such contact"), 404
    return render(
        request,
        "contact_merge.html",
        status_code=status_code,
        actor=actor,
        conversation_id=conversation_id,
        me=me,
        query=q,
        found=found,
        picked=picked,
        error=error,
    )


@post("/inbox/c/{conversation_id:str}/merge", include_in_schema=False, status_code=303)
async def merge_submit(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Merge the picked contact into this conversation's contact."""
    actor = await current_actor(request)
    other = _field(data, "other", 64)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            conv = await service.load_conversation(session, actor, conversation_id)
            record = await contacts.merge(
                session, actor.user.workspace_id, conv.contact_id, other, actor=actor
            )
            moved = list(record.conversation_ids.get("ids", []))
    except contacts.ContactRefused as exc:
        return await _merge_page(
            request, actor, conversation_id, "", None, error=i18n.error_text(exc), status_code=422
        )
    except service.NotFound:
        return await _merge_page(
            request, actor, conversation_id, "", None, error="no such contact", status_code=404
        )
    await _changed(request, actor, conversation_id, *moved)
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/contact-merges/{merge_id:str}/undo", include_in_schema=False, status_code=303)
async def undo_submit(
    request: Request[Any, Any, Any], merge_id: FromPath[str], data: Form
) -> Response[Any]:
    """Undo a merge; back to the conversation it was started from."""
    actor = await current_actor(request)
    back = _field(data, "c", 64)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            record = await contacts.undo_merge(
                session, actor.user.workspace_id, merge_id, actor=actor
            )
            moved = list(record.conversation_ids.get("ids", []))
    except contacts.ContactRefused as exc:
        if not back:
            raise ApiError("undo_refused", str(exc), 422) from exc
        return await _page(request, actor, back, error=i18n.error_text(exc), status_code=422)
    await _changed(request, actor, *([back] if back else []), *moved)
    return Redirect(f"/inbox/c/{back}" if back else "/inbox", status_code=303)


# ---------------------------------------------------------------- attributes and labels


@post("/inbox/c/{conversation_id:str}/attributes", include_in_schema=False, status_code=303)
async def set_attribute(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Set a custom attribute of the contact (an empty value removes it)."""
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await contacts.set_attribute(
                session,
                actor,
                conversation_id,
                _field(data, "key", 200),
                _field(data, "value", 2000),
            )
    except contacts.ContactRefused as exc:
        return await _page(
            request, actor, conversation_id, error=i18n.error_text(exc), status_code=422
        )
    await _changed(request, actor, conversation_id)
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/c/{conversation_id:str}/label", include_in_schema=False, status_code=303)
async def add_label(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Put a workspace label on the conversation."""
    actor = await current_actor(request)
    async with _runtime(request).sessions() as session, session.begin():
        await labels.add_label(session, actor, conversation_id, _field(data, "label_id", 64))
    await _changed(request, actor, conversation_id)
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/c/{conversation_id:str}/unlabel", include_in_schema=False, status_code=303)
async def remove_label(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Take a label off the conversation."""
    actor = await current_actor(request)
    async with _runtime(request).sessions() as session, session.begin():
        await labels.remove_label(session, actor, conversation_id, _field(data, "label_id", 64))
    await _changed(request, actor, conversation_id)
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


async def _label_manager(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_LABELS):
        raise service.Forbidden("only admins and supervisors manage labels")
    return actor


async def _labels_page(
    request: Request[Any, Any, Any], actor: Actor, error: str | None = None, status_code: int = 200
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        rows = await labels.workspace_labels(session, actor.user.workspace_id)
    return render(
        request,
        "labels.html",
        status_code=status_code,
        actor=actor,
        labels=rows,
        palette=labels.PALETTE,
        error=error,
    )


@get("/inbox/labels", include_in_schema=False)
async def labels_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The workspace's labels (admins and supervisors)."""
    return await _labels_page(request, await _label_manager(request))


@post("/inbox/labels", include_in_schema=False, status_code=303)
async def create_label(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A new label."""
    actor = await _label_manager(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await labels.create_label(
                session, actor, _field(data, "name", 200), _field(data, "colour", 20)
            )
    except labels.LabelError as exc:
        return await _labels_page(request, actor, error=i18n.error_text(exc), status_code=422)
    return Redirect("/inbox/labels", status_code=303)


@post("/inbox/labels/{label_id:str}/delete", include_in_schema=False, status_code=303)
async def delete_label(request: Request[Any, Any, Any], label_id: FromPath[str]) -> Redirect:
    """Delete a label (it disappears from every conversation)."""
    actor = await _label_manager(request)
    async with _runtime(request).sessions() as session, session.begin():
        await labels.delete_label(session, actor, label_id)
    return Redirect("/inbox/labels", status_code=303)


# ---------------------------------------------------------------- REST API


class MergeRequest(msgspec.Struct):
    """Which contact to merge into the one in the path."""

    other: Id


class MergeOut(msgspec.Struct):
    """A merge: what moved from `source_id` into `target_id`, and whether it was undone."""

    id: str
    target_id: str
    source_id: str
    identity_ids: list[str]
    conversation_ids: list[str]
    attribute_keys_filled: list[str]
    consent_state: str
    created_at: datetime
    undone_at: datetime | None


def _merge_out(m: ContactMerge) -> MergeOut:
    return MergeOut(
        id=m.id,
        target_id=m.target_id,
        source_id=m.source_id,
        identity_ids=list(m.identity_ids.get("ids", [])),
        conversation_ids=list(m.conversation_ids.get("ids", [])),
        attribute_keys_filled=sorted(m.filled_keys or {}),
        consent_state=m.consent_state,
        created_at=m.created_at,
        undone_at=m.undone_at,
    )


@post(
    "/contacts/{contact_id:str}/merge",
    responses=ERROR_RESPONSES,
    status_code=200,
    summary="Merge another contact into this one (its identities and conversations move here)",
)
async def api_merge(
    request: Request[Any, Any, Any], contact_id: FromPath[str], data: JSONBody[MergeRequest]
) -> MergeOut:
    """Merge `other` into the contact in the path; undo it with the returned merge id."""
    principal = await require(request, "contacts:write")
    try:
        async with _runtime(request).sessions() as session, session.begin():
            record = await contacts.merge(
                session,
                principal.workspace_id,
                contact_id,
                data.other,
                token_id=principal.token_id,
            )
            out = _merge_out(record)
    except contacts.ContactRefused as exc:
        raise ApiError("merge_refused", str(exc), 422) from exc
    except service.NotFound as exc:
        raise ApiError("not_found", "no contact with this id", 404) from exc
    return out


@post(
    "/contact-merges/{merge_id:str}/undo",
    responses=ERROR_RESPONSES,
    status_code=200,
    summary="Undo a contact merge (the merged-away contact is restored as it was)",
)
async def api_undo(request: Request[Any, Any, Any], merge_id: FromPath[str]) -> MergeOut:
    """Undo a merge, unless something since makes that impossible (422 says what)."""
    principal = await require(request, "contacts:write")
    try:
        async with _runtime(request).sessions() as session, session.begin():
            record = await contacts.undo_merge(
                session, principal.workspace_id, merge_id, token_id=principal.token_id
            )
            out = _merge_out(record)
    except contacts.ContactRefused as exc:
        raise ApiError("undo_refused", str(exc), 422) from exc
    except service.NotFound as exc:
        raise ApiError("not_found", "no contact merge with this id", 404) from exc
    return out


contacts_router = Router(
    path="/",
    route_handlers=[
        all_channels,
        merge_page,
        merge_submit,
        undo_submit,
        set_attribute,
        add_label,
        remove_label,
        labels_page,
        create_label,
        delete_label,
        Router(
            path="/api/v1",
            route_handlers=[api_merge, api_undo],
            security=[{"BearerToken": []}],
        ),
    ],
)
