"""First run in the browser: the owner's account, the business basics, the first channel."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.response import Redirect, Response

from tresen.bot import store as bot_store
from tresen.db.tables import Workspace
from tresen.domain import profile as profiles
from tresen.inbox import accounts, setup
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.web import i18n
from tresen.web.inbox import Form, _runtime, current_actor, set_session_cookie
from tresen.web.pages import language_from, render

ZONES = (
    "Europe/Berlin",
    "Europe/Vienna",
    "Europe/Zurich",
    "Europe/Amsterdam",
    "Europe/Brussels",
    "Europe/Luxembourg",
    "Europe/Paris",
    "Europe/London",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Warsaw",
    "Europe/Prague",
    "America/New_York",
    "UTC",
)
"""Offered first in the time-zone field; any IANA name is accepted."""


@get("/", include_in_schema=False)
async def root(request: Request[Any, Any, Any]) -> Redirect:
    """An empty install leads to the setup, every other one to the inbox."""
    async with _runtime(request).sessions() as session:
        empty = await setup.needs_owner(session)
    return Redirect("/setup" if empty else "/inbox", status_code=303)


@get("/setup", include_in_schema=False)
async def owner_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Step 1: the owner's account (only while nobody can sign in)."""
    language_from(request)
    async with _runtime(request).sessions() as session:
        empty = await setup.needs_owner(session)
    if not empty:
        return Redirect("/setup/business", status_code=303)
    return render(request, "setup_owner.html", step=1, values={}, error=None)


@post("/setup", include_in_schema=False, status_code=303)
async def owner_create(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Create the owner, sign them in and go on to the business basics."""
    language_from(request)
    values = {k: str(data.get(k, ""))[:1024] for k in ("business", "email", "name", "language")}
    password = str(data.get("password", ""))[:1024]
    language = values["language"] if values["language"] in i18n.LANGUAGES else "de"
    error = None
    if password != str(data.get("password_again", ""))[:1024]:
        error = i18n.gettext("The two passwords differ.")
    else:
        try:
            async with _runtime(request).sessions() as session, session.begin():
                await setup.create_owner(
                    session,
                    business=values["business"],
                    email=values["email"],
                    display_name=values["name"],
                    password=password,
                    language=language,
                )
        except setup.SetupClosed:
            return Redirect("/inbox/login", status_code=303)
        except accounts.AccountError as exc:
            error = i18n.error_text(exc)
    if error is not None:
        return render(
            request, "setup_owner.html", step=1, values=values, error=error, status_code=422
        )
    async with _runtime(request).sessions() as session, session.begin():
        signed_in = await accounts.login(session, values["email"], password)
    response: Response[Any] = Redirect("/setup/business", status_code=303)
    if signed_in is not None:
        set_session_cookie(response, request, signed_in.token)
        response.set_cookie("tresen_lang", language, samesite="lax", httponly=True)
    return response


async def _owner(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins set the business up")
    return actor


async def _basics_values(request: Request[Any, Any, Any], actor: Actor) -> dict[str, str]:
    async with _runtime(request).sessions() as session:
        workspace = await session.get_one(Workspace, actor.user.workspace_id)
        config = await bot_store.config_for(session, actor.user.workspace_id)
        language = str((workspace.settings or {}).get("language") or config.language or "de")
        form = bot_store.current_form(config)
        profile = profiles.from_settings(workspace.settings, workspace.name)
    return {
        "name": profile.name,
        "timezone": profile.timezone,
        "privacy_url": profile.privacy_url,
        "language": language,
        "form": form,
        **{
            f"hours_{day}": profiles.format_intervals(profile.hours.get(day, []))
            for day in profiles.WEEKDAYS
        },
    }


@get("/setup/business", include_in_schema=False)
async def business_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Step 2: name, time zone, language, du or Sie, opening hours."""
    actor = await _owner(request)
    values = await _basics_values(request, actor)
    return render(
        request, "setup_business.html", actor=actor, step=2, values=values, error=None, zones=ZONES
    )


@post("/setup/business", include_in_schema=False, status_code=303)
async def business_save(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save the basics; a bad field is named and nothing is saved."""
    actor = await _owner(request)
    form = {k: str(v)[:1024] for k, v in data.items()}
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await setup.save_basics(session, actor.user.workspace_id, form, actor_id=actor.user.id)
            await bot_store.save_voice(
                session,
                actor.user.workspace_id,
                language=form.get("language", "de"),
                form=form.get("form", ""),
            )
    except ValueError as exc:
        return render(
            request,
            "setup_business.html",
            actor=actor,
            step=2,
            values=form,
            error=i18n.error_text(exc),
            zones=ZONES,
            status_code=422,
        )
    return Redirect("/setup/channel", status_code=303)


@post("/setup/done", include_in_schema=False, status_code=303)
async def setup_done(request: Request[Any, Any, Any]) -> Redirect:
    """The first-run steps are behind us: the inbox stops pointing to them."""
    actor = await _owner(request)
    async with _runtime(request).sessions() as session, session.begin():
        await setup.finish(session, actor.user.workspace_id)
    return Redirect("/inbox", status_code=303)


setup_router = Router(
    path="/",
    route_handlers=[
        root,
        owner_page,
        owner_create,
        business_page,
        business_save,
        setup_done,
    ],
)
