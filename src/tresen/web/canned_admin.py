"""Canned replies in the browser: everyone keeps personal ones; admins and supervisors manage
the workspace's and the teams'. A file can go with each; the page shows how often each was used."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath
from litestar.response import Redirect, Response

from tresen.inbox import canned
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.media.sniff import MediaRefused
from tresen.web import i18n
from tresen.web.inbox import Form, _runtime, canned_files, current_actor
from tresen.web.media import UPLOAD_HARD_LIMIT
from tresen.web.pages import render

PAGE = "/inbox/admin/canned"


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        rows = await canned.replies(session, actor)
        teams = await canned.teams(session, actor.user.workspace_id)
    shared = may(actor, Action.MANAGE_CANNED)
    return render(
        request,
        "admin_canned.html",
        status_code=status_code,
        actor=actor,
        rows=rows,
        teams=teams,
        team_names={t.id: t.name for t in teams},
        scopes=canned.SCOPES if shared else ("personal",),
        manageable={r.id for r in rows if canned.may_manage(actor, r.scope, r.owner_id)},
        languages=canned.LANGUAGES,
        variables=canned.VARIABLES,
        error=error,
        posted=posted or {},
    )


@get(PAGE, include_in_schema=False)
async def canned_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The canned replies this person sees, with shortcut, text, file and usage."""
    return await _page(request, await current_actor(request))


def _draft(data: dict[str, str]) -> canned.Draft:
    return canned.Draft(
        shortcut=str(data.get("shortcut", ""))[:60],
        title=str(data.get("title", ""))[:300],
        body=str(data.get("body", ""))[: canned.MAX_BODY + 1],
        scope=str(data.get("scope", "workspace"))[:12],
        team_id=str(data.get("team_id", ""))[:40] or None,
        texts={
            lang: str(data.get(f"text_{lang}", ""))[: canned.MAX_BODY + 1]
            for lang in canned.LANGUAGES
        },
    )


async def _save(
    request: Request[Any, Any, Any], data: dict[str, str], reply_id: str | None
) -> Response[Any]:
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await canned.save(session, actor, _draft(data), reply_id)
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    except canned.CannedError as exc:
        return await _page(request, actor, error=i18n.error_text(exc), posted=data, status_code=422)
    return Redirect(PAGE, status_code=303)


@post(PAGE, include_in_schema=False, status_code=303)
async def create(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A new canned reply."""
    return await _save(request, data, None)


@post(f"{PAGE}/{{reply_id:str}}", include_in_schema=False, status_code=303)
async def change(
    request: Request[Any, Any, Any], reply_id: FromPath[str], data: Form
) -> Response[Any]:
    """Change a canned reply."""
    return await _save(request, data, reply_id[:40])


@post(
    f"{PAGE}/{{reply_id:str}}/file",
    include_in_schema=False,
    status_code=303,
    request_max_body_size=UPLOAD_HARD_LIMIT,
)
async def attach(request: Request[Any, Any, Any], reply_id: FromPath[str]) -> Response[Any]:
    """Store the file sent with a canned reply (checked like every upload)."""
    actor = await current_actor(request)
    form = await request.form()
    upload = form.get("file")
    files = canned_files(request)
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise MediaRefused("no_file", "Choose a file to send.")
        content = await upload.read(files.max_bytes + 1)
        async with _runtime(request).sessions() as session, session.begin():
            await canned.attach(
                session, actor, reply_id[:40], files, content, upload.content_type, upload.filename
            )
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    except (canned.CannedError, MediaRefused) as exc:
        status = 413 if isinstance(exc, MediaRefused) and exc.code == "too_large" else 422
        return await _page(request, actor, error=i18n.error_text(exc), status_code=status)
    return Redirect(PAGE, status_code=303)


@post(f"{PAGE}/{{reply_id:str}}/file/delete", include_in_schema=False, status_code=303)
async def detach(request: Request[Any, Any, Any], reply_id: FromPath[str]) -> Response[Any]:
    """Remove the file of a canned reply."""
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await canned.detach(session, actor, reply_id[:40], canned_files(request))
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    except canned.CannedError as exc:
        return await _page(request, actor, error=i18n.error_text(exc), status_code=404)
    return Redirect(PAGE, status_code=303)


@post(f"{PAGE}/{{reply_id:str}}/delete", include_in_schema=False, status_code=303)
async def remove(request: Request[Any, Any, Any], reply_id: FromPath[str]) -> Response[Any]:
    """Delete a canned reply."""
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await canned.delete(session, actor, reply_id[:40], canned_files(request))
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    except canned.CannedError as exc:
        return await _page(request, actor, error=i18n.error_text(exc), status_code=404)
    return Redirect(PAGE, status_code=303)


canned_router = Router(
    path="/", route_handlers=[canned_page, create, change, attach, detach, remove]
)
