"""People in the browser: the team page (invite, roles, teams, routing) and my own account."""

from __future__ import annotations

import secrets
from email.message import EmailMessage
from typing import Any

import segno
from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response
from sqlalchemy.exc import IntegrityError

from tresen.bot import store as bot_store
from tresen.channels.email import EmailConfig
from tresen.channels.manage import list_channels
from tresen.db.tables import Invitation, User, Workspace
from tresen.inbox import accounts, invite_mail, people, routing
from tresen.inbox.accounts import AccountError, Role
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden, NotFound
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.inbox import Form, _runtime, current_actor, set_session_cookie
from tresen.web.pages import language_from, render

ROLES = [r.value for r in Role]
MODES = [m.value for m in routing.Mode]


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_USERS):
        raise Forbidden("only admins manage people")
    return actor


async def _team_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    error: str | None = None,
    shown_once: tuple[str, str, str] | None = None,
    mail_error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    """The team page; `shown_once` is (kind, who, secret): a new password or invitation link."""
    ws = actor.user.workspace_id
    async with _runtime(request).sessions() as session:
        users = await accounts.workspace_users(session, ws)
        invitations = await people.pending_invitations(session, ws)
        teams, members, rules = await people.teams_overview(session, ws)
        channels = await list_channels(session, ws)
        mail = await invite_mail.mail_channel(session, ws)
    return render(
        request,
        "admin_users.html",
        status_code=status_code,
        actor=actor,
        users=users,
        invitations=invitations,
        teams=teams,
        members=members,
        rules={r.channel_id: r for r in rules},
        channels=channels,
        names={u.id: u.display_name for u in users},
        roles=ROLES,
        modes=MODES,
        error=error,
        shown_once=shown_once,
        mail_from=invite_mail.config_of(mail).address if mail is not None else None,
        mail_error=mail_error,
        new_password=shown_once[1:] if shown_once and shown_once[0] == "password" else None,
    )


@get("/inbox/admin/users", include_in_schema=False)
async def team_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The people of this workspace, invitations, teams and routing (admins only)."""
    return await _team_page(request, await _admin(request))


async def _target(session: Any, actor: Actor, user_id: str) -> User:
    """A person of the actor's workspace; anyone else is not found (404), not refused."""
    try:
        return await accounts.workspace_user(session, actor.user.workspace_id, user_id[:40])
    except accounts.UnknownUser as exc:
        raise NotFound(user_id[:40]) from exc


@post("/inbox/admin/users/invite", include_in_schema=False, status_code=200)
async def invite(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """A single-use invitation link, valid for seven days (shown once)."""
    actor = await _admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            invitation, token = await people.invite(
                session,
                actor.user.workspace_id,
                str(data.get("email", ""))[:320],
                str(data.get("role", "agent")),
                created_by=actor.user.id,
            )
            await record_by(session, actor, "user.invited", "invitation", invitation.id)
    except AccountError as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    link = f"{_runtime(request).settings.base_url.rstrip('/')}/invite/{token}"
    async with _runtime(request).sessions() as session:
        mail = await _invitation_mail(session, actor, invitation, link)
    if mail is None:
        return await _team_page(request, actor, shown_once=("invitation", invitation.email, link))
    try:
        await invite_mail.send(*mail)
    except invite_mail.MailFailed as exc:
        return await _team_page(
            request,
            actor,
            shown_once=("invitation", invitation.email, link),
            mail_error=i18n.said(str(exc)),
        )
    return await _team_page(request, actor, shown_once=("mailed", invitation.email, ""))


async def _invitation_mail(
    session: Any, actor: Actor, invitation: Invitation, link: str
) -> tuple[EmailConfig, EmailMessage] | None:
    """The invitation mail in the workspace's language and form; None without an e-mail channel."""
    channel = await invite_mail.mail_channel(session, actor.user.workspace_id)
    if channel is None:
        return None
    workspace = await session.get_one(Workspace, actor.user.workspace_id)
    config = invite_mail.config_of(channel)
    voice = await bot_store.config_for(session, workspace.id)
    mail = invite_mail.compose(
        config,
        to=invitation.email,
        link=link,
        business=workspace.name,
        inviter=actor.user.display_name,
        expires_at=invitation.expires_at,
        time_zone=workspace.time_zone or "Europe/Berlin",
        language=str((workspace.settings or {}).get("language") or voice.language or "de"),
        form=bot_store.current_form(voice),
    )
    return config, mail


@post("/inbox/admin/users/create", include_in_schema=False, status_code=200)
async def create_person(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """Create a person with a one-time password (shown once)."""
    actor = await _admin(request)
    password = secrets.token_urlsafe(12)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            user = await accounts.add_user(
                session,
                actor.user.workspace_id,
                str(data.get("email", ""))[:320],
                str(data.get("role", "agent")),
                password,
                display_name=str(data.get("name", ""))[:200] or None,
                language=str(data.get("language", "de")),
            )
            await record_by(session, actor, "user.created", "user", user.id)
    except AccountError as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    return await _team_page(request, actor, shown_once=("password", user.email, password))


@post(
    "/inbox/admin/invitations/{invitation_id:str}/withdraw",
    include_in_schema=False,
    status_code=303,
)
async def withdraw(request: Request[Any, Any, Any], invitation_id: FromPath[str]) -> Redirect:
    """Make an invitation link useless."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session, session.begin():
        await people.withdraw(session, actor.user.workspace_id, invitation_id[:40])
        await record_by(
            session, actor, "user.invitation_withdrawn", "invitation", invitation_id[:40]
        )
    return Redirect("/inbox/admin/users", status_code=303)


@post("/inbox/admin/users/{user_id:str}/role", include_in_schema=False, status_code=303)
async def change_role(
    request: Request[Any, Any, Any], user_id: FromPath[str], data: Form
) -> Response[Any]:
    """Change a person's role and their limit of open conversations."""
    actor = await _admin(request)
    limit = str(data.get("max_open", "")).strip()
    try:
        if limit and not (limit.isdigit() and int(limit) <= 1000):
            raise AccountError("limit", "The limit is a whole number from 0 to 1000, or empty.")
        async with _runtime(request).sessions() as session, session.begin():
            target = await _target(session, actor, user_id)
            await people.set_role(session, target, str(data.get("role", "")))
            await routing.set_limit(session, target.id, int(limit) if limit else None)
            await record_by(session, actor, "user.role_changed", "user", target.id)
    except (AccountError, ValueError) as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    return Redirect("/inbox/admin/users", status_code=303)


@post("/inbox/admin/users/{user_id:str}/{action:str}", include_in_schema=False, status_code=303)
async def person_action(
    request: Request[Any, Any, Any], user_id: FromPath[str], action: FromPath[str]
) -> Response[Any]:
    """Deactivate, reactivate or remove a person, reset their password or their two-factor."""
    actor = await _admin(request)
    if action not in ("deactivate", "reactivate", "remove", "reset", "totp-off"):
        raise Forbidden("no such action")
    password = secrets.token_urlsafe(12)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            target = await _target(session, actor, user_id)
            email = target.email
            if action == "deactivate":
                await people.deactivate(session, target, actor_id=actor.user.id)
            elif action == "reactivate":
                await people.reactivate(session, target)
            elif action == "remove":
                await people.remove(session, target, actor_id=actor.user.id)
            elif action == "reset":
                await accounts.set_password(session, target.id, password)
            else:
                await accounts.disable_totp(session, target.id)
            event = {"reset": "user.password_reset", "totp-off": "user.totp_off"}
            await record_by(session, actor, event.get(action, f"user.{action}d"), "user", target.id)
    except AccountError as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    if action == "reset":
        return await _team_page(request, actor, shown_once=("password", email, password))
    return Redirect("/inbox/admin/users", status_code=303)


@post("/inbox/admin/teams", include_in_schema=False, status_code=303)
async def create_team(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A new team."""
    actor = await _admin(request)
    name = str(data.get("name", "")).strip()[:100]
    if not name:
        return await _team_page(
            request, actor, error=i18n.gettext("A team needs a name."), status_code=422
        )
    try:
        async with _runtime(request).sessions() as session, session.begin():
            team = await routing.add_team(session, actor.user.workspace_id, name)
            await record_by(session, actor, "team.created", "team", team.id)
    except IntegrityError:
        return await _team_page(
            request,
            actor,
            error=i18n.gettext("A team with this name exists already."),
            status_code=422,
        )
    return Redirect("/inbox/admin/users", status_code=303)


@post("/inbox/admin/teams/{team_id:str}/members", include_in_schema=False, status_code=303)
async def team_members(
    request: Request[Any, Any, Any], team_id: FromPath[str], data: Form
) -> Response[Any]:
    """Add a person to a team, or take them out (remove=1)."""
    actor = await _admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            target = await _target(session, actor, str(data.get("user_id", "")))
            if data.get("remove") == "1":
                await people.leave_team(session, actor.user.workspace_id, team_id[:40], target.id)
            else:
                teams, _, _ = await people.teams_overview(session, actor.user.workspace_id)
                if team_id not in {t.id for t in teams}:
                    raise AccountError("no_such_team", "no such team in this workspace", 404)
                await routing.add_member(session, team_id, target.id)
            await record_by(session, actor, "team.members_changed", "team", team_id[:40])
    except AccountError as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    return Redirect("/inbox/admin/users#teams", status_code=303)


@post("/inbox/admin/routing", include_in_schema=False, status_code=303)
async def routing_rule(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Send a channel's new conversations to a team (or stop routing it: no team)."""
    actor = await _admin(request)
    channel_id = str(data.get("channel_id", ""))[:40]
    team_id = str(data.get("team_id", ""))[:40]
    try:
        async with _runtime(request).sessions() as session, session.begin():
            channels = {c.id for c in await list_channels(session, actor.user.workspace_id)}
            if channel_id not in channels:
                raise AccountError("no_such_channel", "no such channel in this workspace", 404)
            if team_id:
                teams, _, _ = await people.teams_overview(session, actor.user.workspace_id)
                if team_id not in {t.id for t in teams}:
                    raise AccountError("no_such_team", "no such team in this workspace", 404)
                await routing.set_rule(
                    session,
                    actor.user.workspace_id,
                    channel_id,
                    team_id,
                    str(data.get("mode", "round_robin")),
                )
            else:
                await routing.remove_rule(session, channel_id)
            await record_by(session, actor, "routing.changed", "channel", channel_id)
    except (AccountError, ValueError) as exc:
        return await _team_page(request, actor, error=i18n.error_text(exc), status_code=422)
    return Redirect("/inbox/admin/users#routing", status_code=303)


# --- joining with an invitation -----------------------------------------------------------------


@get("/invite/{token:str}", include_in_schema=False)
async def invitation_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """The form that turns an invitation into an account."""
    language_from(request)
    async with _runtime(request).sessions() as session:
        found = await people.open_invitation(session, token)
    return render(
        request,
        "invite.html",
        status_code=200 if found else 410,
        invitation=found,
        token=token[:200],
        error=None,
    )


@post("/invite/{token:str}", include_in_schema=False, status_code=303)
async def invitation_accept(
    request: Request[Any, Any, Any], token: FromPath[str], data: Form
) -> Response[Any]:
    """Create the account, use the link up and sign the person in."""
    language_from(request)
    password = str(data.get("password", ""))[:1024]
    language = str(data.get("language", i18n.current_language.get()))
    error = None
    if password != str(data.get("password_again", ""))[:1024]:
        error = i18n.gettext("The two passwords differ.")
    else:
        try:
            async with _runtime(request).sessions() as session, session.begin():
                user = await people.accept(
                    session,
                    token,
                    display_name=str(data.get("name", ""))[:200],
                    password=password,
                    language=language if language in i18n.LANGUAGES else "de",
                )
        except AccountError as exc:
            error = i18n.error_text(exc)
    if error is not None:
        async with _runtime(request).sessions() as session:
            found = await people.open_invitation(session, token)
        return render(
            request,
            "invite.html",
            status_code=422,
            invitation=found,
            token=token[:200],
            error=error,
        )
    async with _runtime(request).sessions() as session, session.begin():
        signed_in = await accounts.login(session, user.email, password)
    response: Response[Any] = Redirect("/inbox", status_code=303)
    if signed_in is not None:
        set_session_cookie(response, request, signed_in.token)
        response.set_cookie("tresen_lang", signed_in.user.language, samesite="lax", httponly=True)
    return response


# --- my account: password and two-factor sign-in ------------------------------------------------


def _account(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    error: str | None = None,
    notice: str | None = None,
    enrol: tuple[str, str, str] | None = None,
    codes: list[str] | None = None,
    status_code: int = 200,
) -> Response[str]:
    """My account; `enrol` is (secret, signature, QR as data URI) while two-factor is set up."""
    return render(
        request,
        "account.html",
        status_code=status_code,
        actor=actor,
        error=error,
        notice=notice,
        enrol=enrol,
        codes=codes,
        codes_left=len((actor.user.recovery_codes or {}).get("hashes") or []),
    )


@get("/inbox/account", include_in_schema=False)
async def account_page(request: Request[Any, Any, Any]) -> Response[str]:
    """My account: name, password, two-factor sign-in."""
    return _account(request, await current_actor(request))


@post("/inbox/account/password", include_in_schema=False, status_code=200)
async def account_password(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Change my password; my other sessions end, this one goes on with a fresh cookie."""
    actor = await current_actor(request)
    new = str(data.get("new", ""))[:1024]
    if new != str(data.get("new_again", ""))[:1024]:
        return _account(
            request, actor, error=i18n.gettext("The two passwords differ."), status_code=422
        )
    try:
        async with _runtime(request).sessions() as session, session.begin():
            me = await session.get_one(User, actor.user.id)
            await people.change_password(session, me, str(data.get("current", ""))[:1024], new)
            await record_by(session, actor, "user.password_changed", "user", me.id)
            signed_in = await accounts.login(session, me.email, new)
    except AccountError as exc:
        return _account(request, actor, error=i18n.error_text(exc), status_code=422)
    response = _account(request, actor, notice=i18n.gettext("Your password was changed."))
    if signed_in is not None:
        set_session_cookie(response, request, signed_in.token)
    return response


def _enrolment(request: Request[Any, Any, Any], actor: Actor, secret: str) -> tuple[str, str, str]:
    key = _runtime(request).settings.secret_key
    uri = people.totp_uri(secret, actor.user.email, "tresen")
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return secret, people.sign_secret(key, actor.user.id, secret), qr


@post("/inbox/account/totp", include_in_schema=False, status_code=200)
async def totp_start(request: Request[Any, Any, Any]) -> Response[str]:
    """Show a new secret as QR code; it is stored only once a code proves the app has it."""
    actor = await current_actor(request)
    return _account(request, actor, enrol=_enrolment(request, actor, people.new_totp_secret()))


@post("/inbox/account/totp/confirm", include_in_schema=False, status_code=200)
async def totp_confirm(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """Turn two-factor on with the first code; show the recovery codes once."""
    actor = await current_actor(request)
    secret = str(data.get("secret", ""))[:64]
    signature = people.sign_secret(_runtime(request).settings.secret_key, actor.user.id, secret)
    if not secrets.compare_digest(signature, str(data.get("signature", ""))[:128]):
        return _account(
            request, actor, error=i18n.gettext("Start the set-up again."), status_code=422
        )
    try:
        async with _runtime(request).sessions() as session, session.begin():
            me = await session.get_one(User, actor.user.id)
            codes = await people.enable_totp(session, me, secret, str(data.get("code", ""))[:12])
            await record_by(session, actor, "user.totp_on", "user", me.id)
    except AccountError as exc:
        return _account(
            request,
            actor,
            error=i18n.error_text(exc),
            enrol=_enrolment(request, actor, secret),
            status_code=422,
        )
    return _account(request, await current_actor(request), codes=codes)


@post("/inbox/account/totp/off", include_in_schema=False, status_code=200)
async def totp_off(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """Turn my two-factor sign-in off (with my password)."""
    actor = await current_actor(request)
    if not accounts.password_matches(actor.user, str(data.get("current", ""))[:1024]):
        return _account(
            request, actor, error=i18n.gettext("The current password is wrong."), status_code=422
        )
    async with _runtime(request).sessions() as session, session.begin():
        await accounts.disable_totp(session, actor.user.id)
        await record_by(session, actor, "user.totp_off", "user", actor.user.id)
    return _account(
        request, await current_actor(request), notice=i18n.gettext("Two-factor sign-in is off.")
    )


people_router = Router(
    path="/",
    route_handlers=[
        team_page,
        invite,
        create_person,
        withdraw,
        change_role,
        person_action,
        create_team,
        team_members,
        routing_rule,
        invitation_page,
        invitation_accept,
        account_page,
        account_password,
        totp_start,
        totp_confirm,
        totp_off,
    ],
)
