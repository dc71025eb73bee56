"""The agents' inbox in the browser: login, conversation list and view, replies, notes, live events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from babel.dates import format_timedelta
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import File, Redirect, Response, ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from markupsafe import Markup
from sqlalchemy import update

from tresen import metrics
from tresen.channels.sms import segments
from tresen.db.tables import User, Workspace
from tresen.domain import profile as profiles
from tresen.events import MESSAGE_NEW, NOTE_NEW, RESYNC, TYPING, Event
from tresen.inbox import accounts, canned, missed, routing, service, setup
from tresen.inbox.contacts import ContactRefused
from tresen.inbox.labels import labels_for, workspace_labels
from tresen.inbox.permissions import Action, Actor, actor_for, may, may_view, visible
from tresen.inbox.search import search
from tresen.inbox.signin_limits import SignInLimits, device_mark, known_device, soft_delay
from tresen.logs import WORKSPACE_ID
from tresen.media.sniff import MediaRefused
from tresen.pipeline.outbound import OutboundRefused
from tresen.privacy import audit
from tresen.privacy.erasure import ContactNotFound, erase
from tresen.privacy.export import export_to_file
from tresen.privacy.proof import CONTENT_SECURITY_POLICY, consent_proof
from tresen.privacy.records import FORMATS, as_html, build
from tresen.privacy.records import render as render_records
from tresen.privacy.restriction import set_restricted
from tresen.runtime import Runtime
from tresen.settings import ensure_secret_key
from tresen.web import i18n
from tresen.web.api import unlink_later
from tresen.web.audited import record_by
from tresen.web.clientip import client_ip
from tresen.web.errors import SignInRequired
from tresen.web.live import Keepalive, stopping, until_stopped
from tresen.web.pages import language_from, render

COOKIE = "tresen_session"
DEVICE_COOKIE = "tresen_device"
DEVICE_SECONDS = 400 * 24 * 3600
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def canned_files(request: Request[Any, Any, Any]) -> canned.Files:
    """Where canned replies' files live and how customers fetch them."""
    runtime = _runtime(request)
    settings = runtime.settings
    return canned.Files(
        runtime.files,
        settings.base_url,
        ensure_secret_key(settings).secret_key,
        settings.max_media_bytes,
    )


def _secure(request: Request[Any, Any, Any]) -> bool:
    return _runtime(request).settings.base_url.startswith("https://")


def set_session_cookie(
    response: Response[Any], request: Request[Any, Any, Any], token: str
) -> None:
    """Sign the browser in: the session cookie (HttpOnly, SameSite=Lax, Secure behind HTTPS)."""
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        path="/",
    )


async def current_actor(request: Request[Any, Any, Any]) -> Actor:
    """The signed-in person, with their language applied to this request."""
    token = request.cookies.get(COOKIE, "")
    async with _runtime(request).sessions() as session:
        user = await accounts.user_for_token(session, token)
        if user is None:
            raise SignInRequired()
        actor = await actor_for(session, user, _runtime(request).settings)
        workspace = await session.get(Workspace, user.workspace_id)
    WORKSPACE_ID.set(user.workspace_id)
    audit.ACTOR.set(user.id)
    audit.VIA.set("web")
    i18n.current_language.set(i18n.pick_language(user.language, None))
    if workspace is not None:
        i18n.current_zone.set(profiles.from_settings(workspace.settings).timezone)
    return actor


@get("/inbox/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The sign-in form."""
    language_from(request)
    response = render(request, "login.html")
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            "tresen_lang", request.query_params["lang"], samesite="lax", httponly=True
        )
    return response


@post("/inbox/login", include_in_schema=False, status_code=200)
async def login_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Check the credentials; on success a fresh session (never reuse one from before the login)."""
    language_from(request)
    email = str(data.get("email", ""))[:320]
    password = str(data.get("password", ""))[:1024]
    runtime = _runtime(request)
    limits = _signin_limits(request)
    client = client_ip(request)
    secret = runtime.settings.secret_key
    known = known_device(secret, email, request.cookies.get(DEVICE_COOKIE))
    if await limits.admit(client) is not None:
        return _refused(request, email, 429)
    if not known and await limits.blocked(email, client):
        await asyncio.sleep(0.5)
        return _refused(request, email, 401)
    async with runtime.sessions() as session:
        failures = await accounts.failures_in_a_row(session, email)
    if not known:
        await asyncio.sleep(soft_delay(failures))
    async with runtime.sessions() as session, session.begin():
        signed_in = await accounts.login(
            session, email, password, code=str(data.get("code", ""))[:32]
        )
    if signed_in is None:
        await limits.failed(email, client)
        await asyncio.sleep(0.5)  # slows down guessing on top of the limits
        return _refused(request, email, 401)
    old = request.cookies.get(COOKIE)
    if old:
        async with _runtime(request).sessions() as session, session.begin():
            await accounts.logout(session, old)
    response: Response[Any] = Redirect("/inbox", status_code=303)
    response.set_cookie("tresen_lang", signed_in.user.language, samesite="lax", httponly=True)
    set_session_cookie(response, request, signed_in.token)
    response.set_cookie(
        DEVICE_COOKIE,
        device_mark(secret, email),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=DEVICE_SECONDS,
        path="/inbox/login",
    )
    return response


def _refused(request: Request[Any, Any, Any], email: str, status: int) -> Response[Any]:
    """The login form again, with the one message that never says why."""
    return render(
        request,
        "login.html",
        status_code=status,
        email=email,
        error=i18n.gettext("E-mail or password is wrong, or the account is locked for a while."),
    )


def _signin_limits(request: Request[Any, Any, Any]) -> SignInLimits:
    found = getattr(request.app.state, "signin_limits", None)
    if found is None:
        found = SignInLimits(_runtime(request).limiters)
        request.app.state.signin_limits = found
    return found


@post("/inbox/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    """End this session."""
    token = request.cookies.get(COOKIE)
    if token:
        async with _runtime(request).sessions() as session, session.begin():
            await accounts.logout(session, token)
    response = Redirect("/inbox/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@get("/inbox/search", include_in_schema=False)
async def search_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str] = "",
    status: FromQuery[str | None] = None,
    channel_id: FromQuery[str | None] = None,
    label: FromQuery[str | None] = None,
) -> Response[str]:
    """Full-text search over the messages and contacts the person may see."""

    actor = await current_actor(request)
    error = None
    search_note = None
    rows: list[service.ListRow] = []
    search_labels: list[Any] = []
    try:
        async with _runtime(request).sessions() as session:
            page = await search(
                session,
                actor.user.workspace_id,
                q,
                status=status or None,
                channel_id=channel_id or None,
                label=label or None,
                visible=visible(actor),
                withholding=actor.withholding,
            )
            if not page.bodies_searched and page.query.strip():
                search_note = i18n.gettext(
                    "Message texts are encrypted at rest and cannot be searched."
                )
            labelled = await labels_for(session, [h.id for h in page.conversations])
            search_labels = await workspace_labels(session, actor.user.workspace_id)
        rows = [
            service.ListRow(
                h.id,
                h.contact_name,
                h.address,
                h.channel_kind,
                h.last_message_at,
                None,
                h.snippet.text,
                tuple(labelled.get(h.id, ())),
            )
            for h in page.conversations
        ]
    except ValueError as exc:
        error = i18n.error_text(exc)
    return render(
        request,
        "inbox.html",
        actor=actor,
        rows=rows,
        view="all",
        current=None,
        query=q,
        error=error,
        search_note=search_note,
        search_labels=search_labels,
        label=label,
    )


async def _privacy_admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_PRIVACY):
        raise service.Forbidden("only admins export or erase a contact's data")
    return actor


@post("/inbox/contacts/{contact_id:str}/export", include_in_schema=False, status_code=200)
async def contact_export(request: Request[Any, Any, Any], contact_id: FromPath[str]) -> Any:
    """Download everything stored about a contact as a ZIP (admins; audited)."""

    actor = await _privacy_admin(request)
    runtime = _runtime(request)
    try:
        path = await export_to_file(
            runtime.sessions,
            workspace_id=actor.user.workspace_id,
            contact_id=contact_id,
            data_dir=runtime.settings.data_dir,
            files=runtime.files,
            actor_id=actor.user.id,
            via="inbox",
            language=i18n.current_language.get(),
        )
    except ContactNotFound as exc:
        raise service.NotFound(contact_id) from exc
    return File(
        path,
        filename=f"contact-{contact_id}.zip",
        media_type="application/zip",
        background=unlink_later(path),
    )


@post("/inbox/contacts/{contact_id:str}/erase", include_in_schema=False, status_code=303)
async def contact_erase(
    request: Request[Any, Any, Any], contact_id: FromPath[str], data: Form
) -> Response[Any]:
    """Erase a contact everywhere after the admin confirmed it (admins; audited)."""

    actor = await _privacy_admin(request)
    if data.get("confirm") != "yes":
        return Response(
            i18n.gettext("Tick the box to confirm the erasure; nothing was erased."),
            status_code=422,
            media_type="text/plain; charset=utf-8",
        )
    runtime = _runtime(request)
    try:
        async with runtime.sessions() as session:
            await erase(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                files=runtime.files,
                events=runtime.events,
                workspace_id=actor.user.workspace_id,
                contact_id=contact_id,
                actor_id=actor.user.id,
                via="inbox",
            )
    except ContactNotFound as exc:
        raise service.NotFound(contact_id) from exc
    await runtime.events.publish(Event(actor.user.workspace_id, RESYNC, "", {}))
    return Redirect("/inbox", status_code=303)


@post("/inbox/contacts/{contact_id:str}/restrict", include_in_schema=False, status_code=303)
async def contact_restrict(
    request: Request[Any, Any, Any], contact_id: FromPath[str], data: Form
) -> Redirect:
    """Restrict processing of a contact (Art. 18) or lift it (admins; audited)."""

    actor = await _privacy_admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await set_restricted(
                session,
                actor.user.workspace_id,
                contact_id,
                data.get("restricted") == "1",
                actor_id=actor.user.id,
                via="inbox",
            )
    except ContactNotFound as exc:
        raise service.NotFound(contact_id) from exc
    await _runtime(request).events.publish(Event(actor.user.workspace_id, RESYNC, "", {}))
    back = str(data.get("c", ""))[:26]
    return Redirect(f"/inbox/c/{back}" if back.isalnum() else "/inbox", status_code=303)


@get("/inbox/contacts/{contact_id:str}/consent-proof", include_in_schema=False)
async def contact_consent_proof(
    request: Request[Any, Any, Any], contact_id: FromPath[str]
) -> Response[str]:
    """A printable proof of consent for one contact (admins; audited)."""

    actor = await _privacy_admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            page = await consent_proof(
                session,
                actor.user.workspace_id,
                contact_id,
                language=i18n.current_language.get(),
                actor_id=actor.user.id,
                via="inbox",
            )
    except ContactNotFound as exc:
        raise service.NotFound(contact_id) from exc
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": CONTENT_SECURITY_POLICY, "cache-control": "no-store"},
    )


@get("/inbox/admin/privacy", include_in_schema=False)
async def admin_privacy(
    request: Request[Any, Any, Any], format: FromQuery[str | None] = None
) -> Response[Any]:
    """Records of processing (Art. 30) from the configuration: the page, or a download."""

    actor = await _privacy_admin(request)
    language = i18n.current_language.get()
    async with _runtime(request).sessions() as session:
        records = await build(
            session, actor.user.workspace_id, _runtime(request).settings, language
        )
    if format is None:
        fragment = Markup(as_html(records, language, fragment=True))
        return render(request, "admin_privacy.html", actor=actor, records_html=fragment)
    if format not in FORMATS:
        return Response(
            f"format must be one of {', '.join(FORMATS)}",
            status_code=400,
            media_type="text/plain; charset=utf-8",
        )
    media = {"md": "text/markdown", "html": "text/html", "json": "application/json"}[format]
    return Response(
        render_records(records, format, language),
        media_type=f"{media}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="records-of-processing.{format}"'},
    )


def _view(value: str | None) -> str:
    return value if value in service.VIEWS else "all"


@get("/inbox", include_in_schema=False)
async def inbox(
    request: Request[Any, Any, Any], view: FromQuery[str | None] = None
) -> Response[str]:
    """The inbox with no conversation open."""
    actor = await current_actor(request)
    rendered_at = missed.stamp()
    async with _runtime(request).sessions() as session:
        rows = await service.conversation_list(session, actor, _view(view))
        setup_pending = may(actor, Action.MANAGE_SETTINGS) and await setup.unfinished(
            session, actor.user.workspace_id
        )
    return render(
        request,
        "inbox.html",
        actor=actor,
        rows=rows,
        view=_view(view),
        current=None,
        setup_pending=setup_pending,
        rendered_at=rendered_at,
    )


@get("/inbox/list", include_in_schema=False)
async def inbox_list(
    request: Request[Any, Any, Any],
    view: FromQuery[str | None] = None,
    c: FromQuery[str | None] = None,
) -> Response[str]:
    """The conversation list alone (refreshed live)."""
    actor = await current_actor(request)
    async with _runtime(request).sessions() as session:
        rows = await service.conversation_list(session, actor, _view(view))
    current = type("Current", (), {"conversation": type("C", (), {"id": c})()})() if c else None
    return render(request, "_list.html", actor=actor, rows=rows, view=_view(view), current=current)


async def _audit(
    request: Request[Any, Any, Any], actor: Actor, action: str, subject_type: str, subject_id: str
) -> None:
    async with _runtime(request).sessions() as session, session.begin():
        await record_by(session, actor, action, subject_type, subject_id)


async def _conversation_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    conversation_id: str,
    view: str,
    error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    rendered_at = missed.stamp()
    async with _runtime(request).sessions() as session:
        current = await service.conversation_view(session, actor, conversation_id)
        rows = (
            await service.conversation_list(session, actor, view)
            if not request.headers.get("hx-request")
            else []
        )
    if request.headers.get("hx-request"):
        return render(
            request,
            "_conversation.html",
            actor=actor,
            current=current,
            view=view,
            error=error,
            status_code=status_code,
        )
    return render(
        request,
        "inbox.html",
        actor=actor,
        rows=rows,
        view=view,
        current=current,
        error=error,
        status_code=status_code,
        rendered_at=rendered_at,
    )


@get("/inbox/c/{conversation_id:str}", include_in_schema=False)
async def conversation(
    request: Request[Any, Any, Any],
    conversation_id: FromPath[str],
    view: FromQuery[str | None] = None,
) -> Response[str]:
    """One conversation next to the list (who looked at it goes into the audit log)."""
    actor = await current_actor(request)
    page = await _conversation_page(request, actor, conversation_id, _view(view))
    await _audit(request, actor, "conversation.viewed", "conversation", conversation_id)
    return page


async def _changed(
    request: Request[Any, Any, Any], actor: Actor, conversation_id: str, kind: str
) -> Redirect:
    """Tell every open inbox of the workspace (after the commit), then show the conversation."""
    await _runtime(request).events.publish(
        Event(actor.user.workspace_id, kind, conversation_id, {})
    )
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/c/{conversation_id:str}/reply", include_in_schema=False, status_code=303)
async def reply(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Send a reply (or a canned reply by its /shortcut)."""
    actor = await current_actor(request)
    body = str(data.get("body", ""))
    identity_id = str(data.get("identity_id", ""))[:64] or None
    try:
        async with _runtime(request).sessions() as session, session.begin():
            sent = await service.reply(
                session, actor, conversation_id, body, identity_id, canned_files(request)
            )
    except (OutboundRefused, ContactRefused, canned.CannedError, MediaRefused) as refused:
        return await _conversation_page(
            request, actor, conversation_id, "all", error=i18n.error_text(refused), status_code=422
        )
    _runtime(request).jobs_ready.set()
    return await _changed(request, actor, sent.conversation_id, MESSAGE_NEW)


@post("/inbox/c/{conversation_id:str}/segments", include_in_schema=False, status_code=200)
async def sms_segments(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[str]:
    """How the reply being typed will travel as SMS: encoding and number of parts."""

    await current_actor(request)
    info = segments(str(data.get("body", ""))[:5000])
    text = i18n.ngettext("{n} part", "{n} parts", info.segments).format(n=info.segments)
    return Response(
        f"{text} · {info.encoding} · {info.characters}", media_type="text/plain; charset=utf-8"
    )


@post("/inbox/c/{conversation_id:str}/template", include_in_schema=False, status_code=303)
async def send_template(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Send an approved template with the values the agent filled in."""
    actor = await current_actor(request)
    numbered = [k for k in data if k.startswith("value_") and k[6:].isdigit() and len(k) < 9]
    values = [data[k] for k in sorted(numbered, key=lambda k: int(k[6:]))]
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await service.send_template(
                session, actor, conversation_id, str(data.get("template_id", "")), values
            )
    except OutboundRefused as refused:
        return await _conversation_page(
            request, actor, conversation_id, "all", error=i18n.error_text(refused), status_code=422
        )
    _runtime(request).jobs_ready.set()
    return await _changed(request, actor, conversation_id, MESSAGE_NEW)


@post("/inbox/c/{conversation_id:str}/note", include_in_schema=False, status_code=303)
async def note(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Add a private note."""
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await service.add_note(session, actor, conversation_id, str(data.get("body", "")))
    except ValueError as exc:
        return await _conversation_page(
            request, actor, conversation_id, "all", error=i18n.error_text(exc), status_code=422
        )
    return await _changed(request, actor, conversation_id, NOTE_NEW)


@post("/inbox/c/{conversation_id:str}/typing", include_in_schema=False, status_code=204)
async def typing(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> None:
    """Tell the customer's web chat that an agent is (or stopped) typing."""
    actor = await current_actor(request)
    async with _runtime(request).sessions() as session:
        conv = await service.load_conversation(session, actor, conversation_id)
    if not may(actor, Action.REPLY, conv):
        raise service.Forbidden("you may not reply in this conversation")
    await _runtime(request).events.publish(
        Event(
            actor.user.workspace_id, TYPING, conversation_id, {"typing": data.get("typing") == "1"}
        )
    )


@post("/inbox/c/{conversation_id:str}/take", include_in_schema=False, status_code=303)
async def take(request: Request[Any, Any, Any], conversation_id: FromPath[str]) -> Redirect:
    """Assign the conversation to me."""
    actor = await current_actor(request)
    async with _runtime(request).sessions() as session, session.begin():
        await service.take(session, actor, conversation_id)
    # Other inboxes learn of it from the `live` event consumer (conversation.assigned).
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/c/{conversation_id:str}/status", include_in_schema=False, status_code=303)
async def status(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: Form
) -> Response[Any]:
    """Change the conversation's status."""
    actor = await current_actor(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            await service.set_status(session, actor, conversation_id, str(data.get("status", "")))
    except ValueError as exc:
        return await _conversation_page(
            request, actor, conversation_id, "all", error=i18n.error_text(exc), status_code=422
        )
    # The status change and what routing gave the freed slot reach other inboxes through the
    # `live` event consumer (conversation.status_changed, conversation.assigned).
    return Redirect(f"/inbox/c/{conversation_id}", status_code=303)


@post("/inbox/me", include_in_schema=False, status_code=303)
async def me(request: Request[Any, Any, Any], data: Form) -> Redirect:
    """Change my availability and language."""

    actor = await current_actor(request)
    values: dict[str, str] = {}
    if data.get("availability") in ("available", "away", "offline"):
        values["availability"] = data["availability"]
    if data.get("language") in i18n.LANGUAGES:
        values["language"] = data["language"]
    if values:
        async with _runtime(request).sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == actor.user.id).values(**values))
            if values.get("availability", actor.user.availability) != actor.user.availability:
                # What this returns to the queue or hands me reaches live inboxes through
                # the `live` event consumer (conversation.assigned).
                await routing.on_availability_change(session, actor.user, values["availability"])
    _runtime(request).jobs_ready.set()
    response = Redirect(_own_page(request), status_code=303)
    if "language" in values:
        response.set_cookie("tresen_lang", values["language"], samesite="lax", httponly=True)
    return response


def _own_page(request: Request[Any, Any, Any]) -> str:
    """The page the form came from when it is one of ours (path only); else the inbox."""
    referer = urlsplit(request.headers.get("referer", ""))
    base = urlsplit(_runtime(request).settings.base_url)
    own_host = referer.netloc in ("", base.netloc, request.headers.get("host", ""))
    path = referer.path
    if own_host and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path + (f"?{referer.query}" if referer.query else "")
    return "/inbox"


@get("/inbox/queue", include_in_schema=False)
async def waiting_queue(request: Request[Any, Any, Any]) -> Response[str]:
    """Who is waiting for an agent, longest first, with how long (a fragment for the list)."""

    actor = await current_actor(request)
    async with _runtime(request).sessions() as session:
        waiting = await routing.queue(session, actor.user.workspace_id, where=visible(actor))
    lang = i18n.current_language.get()
    rows = [(w, format_timedelta(w.wait, threshold=1, locale=lang)) for w in waiting]
    return render(request, "_queue.html", actor=actor, waiting=rows)


@get("/inbox/events", include_in_schema=False)
async def events(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """Live updates for this person's workspace (which conversation changed; never its content)."""
    actor = await current_actor(request)
    runtime = _runtime(request)

    shown: set[str] = set()

    async def allowed(conversation_id: str) -> bool:
        """Visible now, or shown before (one last event lets the page drop it)."""
        if actor.role == accounts.Role.ADMIN:
            return True
        async with runtime.sessions() as session:
            if await may_view(session, actor, conversation_id):
                shown.add(conversation_id)
                return True
        if conversation_id in shown:
            shown.discard(conversation_id)
            return True
        return False

    # A page's first connection names when it was rendered: what changed in between is replayed.
    last_seen = missed.parse_stamp(
        request.headers.get("last-event-id") or request.query_params.get("since")
    )

    async def replay() -> AsyncIterator[ServerSentEventMessage]:
        """What changed while this page was disconnected (the browser sends Last-Event-ID)."""
        if last_seen is None:
            return
        async with runtime.sessions() as session:
            changed = await missed.changed_since(session, actor.user.workspace_id, last_seen)
        if changed is None:
            yield ServerSentEventMessage(event="conversation", data="")
            yield ServerSentEventMessage(event="resync", data="")
            return
        for conversation_id in changed:
            if await allowed(conversation_id):
                yield ServerSentEventMessage(event="conversation", data=conversation_id)
                yield ServerSentEventMessage(event=f"conv-{conversation_id}", data="replay")

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        metrics.SSE_CONNECTIONS.inc()
        try:
            async with runtime.events.subscribe(actor.user.workspace_id) as received:
                # Subscribed first: nothing falls between the ready stamp and the live stream.
                yield ServerSentEventMessage(event="ready", data="", id=missed.stamp())
                async for message in replay():
                    yield message
                async for event in until_stopped(received, stopping(request)):
                    if isinstance(event, Keepalive):
                        yield ServerSentEventMessage(comment="keepalive")
                        continue
                    if event.kind == TYPING:
                        continue
                    if event.kind == RESYNC or not event.conversation_id:
                        # Events may have been lost: let the page reload what it shows.
                        yield ServerSentEventMessage(event="conversation", data="")
                        yield ServerSentEventMessage(event="resync", data="", id=missed.stamp())
                        continue
                    if not await allowed(event.conversation_id):
                        continue
                    yield ServerSentEventMessage(event="conversation", data=event.conversation_id)
                    yield ServerSentEventMessage(
                        event=f"conv-{event.conversation_id}", data=event.kind, id=missed.stamp()
                    )
        finally:
            metrics.SSE_CONNECTIONS.dec()

    return ServerSentEvent(stream())


inbox_router = Router(
    path="/",
    route_handlers=[
        sms_segments,
        search_page,
        contact_export,
        contact_erase,
        contact_restrict,
        contact_consent_proof,
        admin_privacy,
        login_page,
        login_submit,
        logout,
        inbox,
        inbox_list,
        conversation,
        reply,
        send_template,
        note,
        take,
        typing,
        status,
        me,
        waiting_queue,
        events,
    ],
)
