"""The notification webhook in the browser: URL, statuses, a write-only secret, a test delivery."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from litestar import Request, Router, get, post
from litestar.response import Redirect, Response

from tresen.db.tables import Workspace
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.integrations import notifications as notify
from tresen.net.guard import UrlRefused
from tresen.web import channel_checks, i18n
from tresen.web.audited import record_by
from tresen.web.inbox import _runtime, current_actor
from tresen.web.pages import render

EVENT_LABELS = {
    "queued": "queued (accepted by tresen)",
    "sent": "sent (handed to the provider)",
    "delivered": "delivered to the customer's device",
    "read": "read by the customer",
    "failed": "failed",
}
"""What each status event means, in words (English msgids)."""


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins manage the notification webhook")
    return actor


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    error: str | None = None,
    secret_once: str | None = None,
    test: channel_checks.Outcome | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        workspace = await session.get_one(Workspace, actor.user.workspace_id)
        hook = notify.webhook_config(workspace)
        events = notify.webhook_events(workspace)
    return render(
        request,
        "admin_notifications.html",
        status_code=status_code,
        actor=actor,
        url=(posted or {}).get("url", hook[0] if hook else ""),
        configured=hook is not None,
        events=(posted or {}).get("events", events),
        labels=EVENT_LABELS,
        error=error,
        secret_once=secret_once,
        test=test,
        notice=request.query_params.get("notice"),
    )


@get("/inbox/admin/notifications", include_in_schema=False)
async def notifications_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Where the shop gets signed status events of its notifications (the secret never shown)."""
    return await _page(request, await _admin(request))


def _checked(url: str, events: list[str], secret: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
        raise ValueError(i18n.gettext("Enter an http(s) address of at most 500 characters."))
    if not events or set(events) - set(notify.EVENTS):
        raise ValueError(i18n.gettext("Tick at least one status."))
    if secret and not notify.MIN_SECRET <= len(secret) <= 200:
        raise ValueError(
            i18n.gettext("The secret needs {min} to 200 characters.").format(min=notify.MIN_SECRET)
        )


@post("/inbox/admin/notifications", include_in_schema=False, status_code=200)
async def save_notifications(request: Request[Any, Any, Any]) -> Response[Any]:
    """Save URL and statuses; a generated secret is shown once, a typed one never."""
    actor = await _admin(request)
    form = await request.form()
    url = str(form.get("url", ""))[:600].strip()
    events = [str(e)[:20] for e in form.getall("event")] if "event" in form else []
    secret = str(form.get("secret", ""))[:300].strip()
    try:
        _checked(url, events, secret)
        async with _runtime(request).sessions() as session, session.begin():
            shown = await notify.configure_webhook(
                session,
                actor.user.workspace_id,
                url,
                events,
                secret=secret or None,
                new_secret=form.get("new_secret") == "1",
            )
            await record_by(
                session,
                actor,
                "settings.notifications_webhook",
                "workspace",
                actor.user.workspace_id,
            )
    except ValueError as exc:
        return await _page(
            request,
            actor,
            error=str(exc),
            posted={"url": url, "events": frozenset(events)},
            status_code=422,
        )
    if shown is None:
        return Redirect("/inbox/admin/notifications?notice=saved", status_code=303)
    return await _page(request, actor, secret_once=shown)


@post("/inbox/admin/notifications/test", include_in_schema=False, status_code=200)
async def test_notifications(request: Request[Any, Any, Any]) -> Response[str]:
    """Post a signed test event to the saved URL now and say what the shop answered."""
    actor = await _admin(request)
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        workspace = await session.get_one(Workspace, actor.user.workspace_id)
        hook = notify.webhook_config(workspace)
    if hook is None:
        return await _page(
            request,
            actor,
            error=i18n.gettext("Save a webhook address first."),
            status_code=422,
        )
    try:
        status = await notify.send_test_event(runtime.http, *hook)
    except (UrlRefused, httpx.HTTPError, OSError) as exc:
        outcome = channel_checks.Outcome(False, channel_checks.failure_text(exc))
    else:
        ok = 200 <= status < 300
        text = (
            i18n.gettext("The shop answered HTTP {status}: the test event arrived.")
            if ok
            else i18n.gettext("The shop answered HTTP {status}: it did not take the event.")
        )
        outcome = channel_checks.Outcome(ok, text.format(status=status))
    return await _page(request, actor, test=outcome)


@post("/inbox/admin/notifications/off", include_in_schema=False, status_code=303)
async def remove_notifications(request: Request[Any, Any, Any]) -> Redirect:
    """Stop sending status events (URL and secret are forgotten)."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session, session.begin():
        await notify.set_webhook(session, actor.user.workspace_id, None)
        await record_by(
            session,
            actor,
            "settings.notifications_webhook_off",
            "workspace",
            actor.user.workspace_id,
        )
    return Redirect("/inbox/admin/notifications?notice=removed", status_code=303)


notify_admin_router = Router(
    path="/",
    route_handlers=[
        notifications_page,
        save_notifications,
        test_notifications,
        remove_notifications,
    ],
)
