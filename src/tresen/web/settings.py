"""Admin pages for the business profile: name, logo, description, hours, holidays, texts."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from babel.dates import format_date, format_datetime
from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from sqlalchemy import update

from tresen.db.tables import Workspace
from tresen.db.types import utcnow
from tresen.domain import profile as profiles
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.inbox import Form, _runtime, current_actor
from tresen.web.pages import render

MAX_LOGO_BYTES = 512 * 1024
LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": ("png", "image/png"), b"\xff\xd8\xff": ("jpg", "image/jpeg")}
"""Raster formats only (an SVG can carry scripts), recognised by their first bytes."""


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins change the business profile")
    return actor


async def _load(
    request: Request[Any, Any, Any], actor: Actor
) -> tuple[Workspace, profiles.Profile]:
    async with _runtime(request).sessions() as session:
        workspace = await session.get_one(Workspace, actor.user.workspace_id)
    return workspace, profiles.from_settings(workspace.settings, workspace.name)


def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    profile: profiles.Profile,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    saved: bool = False,
    status_code: int = 200,
) -> Response[str]:
    lang = i18n.current_language.get()
    now = utcnow()
    opening = profiles.next_opening(profile, now)
    values = form or {
        "name": profile.name,
        "description": profile.description,
        "timezone": profile.timezone,
        "privacy_url": profile.privacy_url,
        "colour": profile.colour,
        "holidays": "\n".join(
            f"{day.isoformat()} {profiles.format_intervals(iv)}".strip()
            for day, iv in sorted(profile.holidays.items())
        ),
        **{
            f"hours_{day}": profiles.format_intervals(profile.hours.get(day, []))
            for day in profiles.WEEKDAYS
        },
        **{f"welcome_{k}": profile.welcome.get(k, "") for k in profiles.LANGUAGES},
        **{f"after_hours_{k}": profile.after_hours.get(k, "") for k in profiles.LANGUAGES},
    }
    day_names = _day_names(lang)
    return render(
        request,
        "admin_profile.html",
        status_code=status_code,
        actor=actor,
        profile=profile,
        values=values,
        day_names=day_names,
        error=error,
        saved=saved,
        open_now=profiles.is_open(profile, now),
        next_opening=format_datetime(opening.astimezone(profile.zone), "full", locale=lang)
        if opening
        else None,
    )


@get("/inbox/admin/profile", include_in_schema=False)
async def profile_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The business profile form (admins only)."""
    actor = await _admin(request)
    _, profile = await _load(request, actor)
    return _page(request, actor, profile)


def _day_names(lang: str) -> dict[str, str]:
    """Weekday keys of the profile (mon, ...) as the language names them (Montag, ...)."""
    monday = date(2026, 1, 5)
    return {
        day: format_date(monday + timedelta(days=i), "EEEE", locale=lang)
        for i, day in enumerate(profiles.WEEKDAYS)
    }


@post("/inbox/admin/profile", include_in_schema=False, status_code=200)
async def profile_save(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """Save the profile; a bad field is named and nothing is saved."""
    actor = await _admin(request)
    _, current = await _load(request, actor)
    try:
        updated = profiles.from_form(data, current.logo)
    except profiles.ProfileError as exc:
        if "day" in exc.params:
            names = _day_names(i18n.current_language.get())
            exc.params["day"] = names.get(str(exc.params["day"]), str(exc.params["day"]))
        return _page(
            request, actor, current, form=data, error=i18n.error_text(exc), status_code=422
        )
    await _store(request, actor, updated)
    return _page(request, actor, updated, saved=True)


async def _store(request: Request[Any, Any, Any], actor: Actor, updated: profiles.Profile) -> None:
    async with _runtime(request).sessions() as session, session.begin():
        workspace = await session.get_one(Workspace, actor.user.workspace_id, with_for_update=True)
        settings = dict(workspace.settings or {})
        settings["profile"] = profiles.to_json(updated)
        await session.execute(
            update(Workspace).where(Workspace.id == workspace.id).values(settings=settings)
        )
        await record_by(session, actor, "settings.profile", "workspace", workspace.id)


def _logo_dir(request: Request[Any, Any, Any]) -> Path:
    return _runtime(request).settings.data_dir / "profile"


@post("/inbox/admin/profile/logo", include_in_schema=False, status_code=200)
async def logo_upload(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Response[str]:
    """Store a PNG or JPEG logo of at most 512 KB."""
    actor = await _admin(request)
    _, current = await _load(request, actor)
    upload = data.get("logo")
    if not isinstance(upload, UploadFile):
        return _page(request, actor, current, error=i18n.gettext("Choose a file."), status_code=422)
    content = await upload.read(MAX_LOGO_BYTES + 1)
    if len(content) > MAX_LOGO_BYTES:
        error = i18n.gettext("The logo may be at most 512 KB.")
        return _page(request, actor, current, error=error, status_code=413)
    kind = next((v for magic, v in LOGO_TYPES.items() if content.startswith(magic)), None)
    if kind is None:
        error = i18n.gettext("The logo must be a PNG or JPEG image.")
        return _page(request, actor, current, error=error, status_code=415)
    folder = _logo_dir(request)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"logo-{actor.user.workspace_id}.{kind[0]}"
    for old in folder.glob(f"logo-{actor.user.workspace_id}.*"):
        old.unlink(missing_ok=True)
    (folder / name).write_bytes(content)
    updated = dataclasses.replace(current, logo=name)
    await _store(request, actor, updated)
    return _page(request, actor, updated, saved=True)


@get("/inbox/logo", include_in_schema=False)
async def logo(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The business's logo, for signed-in people."""
    actor = await current_actor(request)
    _, current = await _load(request, actor)
    path = _logo_dir(request) / (current.logo or "")
    if not current.logo or not path.is_file():
        return Response(b"", status_code=404)
    media = "image/png" if path.suffix == ".png" else "image/jpeg"
    return Response(
        path.read_bytes(), media_type=media, headers={"cache-control": "private, max-age=300"}
    )


settings_router = Router(path="/", route_handlers=[profile_page, profile_save, logo_upload, logo])
