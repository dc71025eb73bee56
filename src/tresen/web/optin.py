"""The confirmation link of a subscription: GET shows what is confirmed, POST confirms (once)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Response

from tresen.broadcast import topics, tracking
from tresen.db.tables import Contact, Workspace
from tresen.web.pages import render

TEXTS = {
    "de": {
        "ask": "Möchten Sie Nachrichten zum Thema „{topic}“ von {business} erhalten?",
        "button": "Ja, anmelden",
        "confirmed": "Danke! Sie sind für „{topic}“ angemeldet. Abmelden jederzeit mit STOP {keyword}.",
        "used": "Dieser Link wurde bereits verwendet oder die Anmeldung wurde zurückgezogen.",
        "expired": "Dieser Link ist abgelaufen. Schreiben Sie START {keyword}, um es erneut zu versuchen.",
        "unknown": "Dieser Link ist ungültig.",
    },
    "en": {
        "ask": "Would you like to receive messages about “{topic}” from {business}?",
        "button": "Yes, subscribe",
        "confirmed": "Thank you! You are subscribed to “{topic}”. Unsubscribe at any time with STOP {keyword}.",
        "used": "This link has already been used, or the subscription was withdrawn.",
        "expired": "This link has expired. Write START {keyword} to try again.",
        "unknown": "This link is not valid.",
    },
}
STATUS = {"confirmed": 200, "used": 410, "expired": 410, "unknown": 404}


async def _page(request: Request[Any, Any, Any], token: str, *, apply: bool) -> Response[str]:
    runtime = request.app.state.runtime
    user_agent = (request.headers.get("user-agent") or "")[:400] or None
    wants_tracking = apply and (await request.form()).get("link_tracking") == "yes"
    async with runtime.sessions() as session, session.begin():
        outcome, sub, topic = await topics.confirm_by_token(
            session, token, apply=apply, user_agent=user_agent
        )
        workspace = await session.get(Workspace, sub.workspace_id) if sub is not None else None
        language = sub.language if sub is not None and sub.language in TEXTS else "de"
        label = tracking.form_label(workspace, language) if workspace is not None else ""
        if wants_tracking and outcome == "confirmed" and sub is not None:
            # The address was just proven by the single-use link: the box counts as that person's.
            await tracking.set_consent(
                session,
                await session.get_one(Contact, sub.contact_id),
                True,
                source="web form /s/confirm",
                text=label,
                language=language,
                channel_id=sub.channel_id,
                user_agent=user_agent,
            )
    if apply and outcome == "confirmed":
        runtime.jobs_ready.set()
    fill = {
        "topic": topic.name if topic else "",
        "keyword": topic.keyword.upper() if topic else "",
        "business": workspace.name if workspace else "",
    }
    key = "ask" if outcome == "confirmed" and not apply else outcome
    return render(
        request,
        "optin.html",
        status_code=STATUS[outcome],
        text=TEXTS[language][key].format(**fill),
        button=TEXTS[language]["button"] if key == "ask" else None,
        tracking_label=label if key == "ask" else None,
        page_lang=language,
        action=f"/s/confirm/{token}",
    )


@get("/confirm/{token:str}", include_in_schema=False)
async def show_confirmation(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """What the link confirms; link previews and scanners fetch this, so it changes nothing."""
    return await _page(request, token, apply=False)


@post("/confirm/{token:str}", include_in_schema=False, status_code=200)
async def confirm(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """Confirm the subscription; the token works once and expires."""
    return await _page(request, token, apply=True)


optin_router = Router(path="/s", route_handlers=[show_confirmation, confirm])
