"""The channels page: add, edit, disable and delete channels with a guided form per kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response

from tresen.channels.base import ChannelError, ConfigError
from tresen.channels.manage import (
    add_channel,
    delete_channel,
    last_inbound,
    list_channels,
    update_channel,
    webhook_url,
    workspace_channel,
)
from tresen.channels.registry import (
    CHANNEL_CLASSES,
    channel_factory,
    kinds_where,
    receives_webhooks,
)
from tresen.db.tables import ChannelRow
from tresen.domain.errors import DomainError
from tresen.inbox import setup
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.web import channel_checks, i18n
from tresen.web.audited import record_by
from tresen.web.errors import not_found_page
from tresen.web.inbox import Form, _runtime, current_actor
from tresen.web.pages import render

SECRET_PARTS = ("secret", "token", "password")
"""A field whose name holds one of these is write-only: the page shows only set or not set."""
ADVANCED = {
    "api_base",
    "api_version",
    "messages_per_second",
    "tls_ca_file",
    "tls_insecure",
    "allow_plain",
    "max_message_bytes",
    "max_upload_bytes",
    "allowed_upload_types",
    "status_callback_url",
    "allow_private_media",
}
"""Fields most businesses never touch: folded away under "Advanced"."""
NO_WEBHOOK = set(kinds_where(lambda f: not receives_webhooks(f)))
"""Kinds that fetch or serve their messages themselves: no provider calls a webhook URL."""

FIELD_LABELS = {
    "phone_number_id": "Phone number ID",
    "app_secret": "App secret",
    "verify_token": "Verify token (a word you choose and enter at the provider as well)",
    "access_token": "Access token",
    "waba_id": "WhatsApp Business Account ID",
    "display_phone_number": "Phone number customers see (with country code)",
    "page_id": "Page ID",
    "page_access_token": "Page access token",
    "page_username": "Page user name",
    "bot_token": "Bot token (from BotFather)",
    "secret_token": "Secret for the webhook (a word you choose)",
    "bot_username": "Bot user name",
    "account_sid": "Account SID",
    "auth_token": "Auth token",
    "from_number": "Sender number",
    "messaging_service_sid": "Messaging service SID",
    "address": "E-mail address",
    "smtp_host": "SMTP server (outgoing mail)",
    "imap_host": "IMAP server (incoming mail)",
    "display_name": "Sender name",
    "smtp_port": "SMTP port",
    "smtp_starttls": "SMTP with STARTTLS",
    "smtp_username": "SMTP user name",
    "smtp_password": "SMTP password",
    "imap_port": "IMAP port",
    "imap_tls": "IMAP with TLS",
    "imap_username": "IMAP user name",
    "imap_password": "IMAP password",
    "imap_folder": "IMAP folder",
    "allowed_origins": "Web sites that may embed the chat (comma-separated)",
    "title": "Title of the chat window",
    "privacy_notice": "Privacy notice in the chat",
    "privacy_link": "Link to the privacy policy",
    "opening_hours_note": "Note on opening hours",
    "page_url": "Page with the chat",
    "jid": "XMPP address (JID)",
    "password": "Password",
    "host": "Server",
    "port": "Port",
    "direct_tls": "Direct TLS",
    "api_base": "API address",
    "api_version": "API version",
    "messages_per_second": "Messages per second at most",
    "tls_ca_file": "CA file for TLS",
    "tls_insecure": "Do not check the TLS certificate",
    "allow_plain": "Allow plain-text login",
    "max_message_bytes": "Largest message in bytes",
    "max_upload_bytes": "Largest upload in bytes",
    "allowed_upload_types": "Allowed upload types",
    "status_callback_url": "Status callback URL",
    "allow_private_media": "Allow files from private addresses",
}
GUIDES = {
    "whatsapp": "In the Meta developer console open your app, then WhatsApp › API Setup: copy the phone number ID and a permanent access token; the app secret is under App settings › Basic. Enter the webhook URL shown after saving and your verify token under WhatsApp › Configuration.",
    "messenger": "In the Meta developer console: the page ID and a page access token under Messenger › Settings, the app secret under App settings › Basic. After saving, enter the webhook URL and your verify token there.",
    "instagram": "In the Meta developer console: the ID of the Facebook page linked to the Instagram account, a page access token and the app secret. After saving, enter the webhook URL and your verify token there.",
    "telegram": "Write /newbot to @BotFather in Telegram and copy the token it answers with. tresen tells Telegram the webhook URL itself when you save.",
    "sms": "In the Twilio console: the account SID and auth token on the dashboard, and the sender number. After saving, enter the webhook URL at the number under “A message comes in”.",
    "email": "The mailbox customers write to: the servers, ports and login of your mail provider (often the same user name and password for SMTP and IMAP). tresen fetches new mail itself.",
    "webchat": "The chat for your web site. After saving, copy the snippet shown into your pages; list the web sites allowed to embed it.",
    "xmpp": "An XMPP account for the business (e.g. on your own server): its address and password. tresen signs in and stays connected itself.",
}
"""What to copy from the provider's console, and where (docs/channels/<kind>.md has more)."""


@dataclass(frozen=True)
class Field:
    """One input of a kind's form."""

    name: str
    label: str
    kind: str  # text, number, checkbox, secret
    required: bool
    advanced: bool
    value: str
    is_set: bool


def _is_secret(name: str) -> bool:
    return any(part in name for part in SECRET_PARTS)


def _input_kind(name: str, field_type: Any) -> str:
    if _is_secret(name):
        return "secret"
    if isinstance(field_type, msgspec.inspect.BoolType):
        return "checkbox"
    if isinstance(field_type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return "number"
    return "text"


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def form_fields(kind: str, config: dict[str, Any] | None = None) -> list[Field]:
    """The inputs of a kind's form, required first, with the stored values (never secrets)."""
    info = msgspec.inspect.type_info(channel_factory(kind).config_type)
    fields = []
    for f in info.fields:  # type: ignore[attr-defined]
        input_kind = _input_kind(f.name, f.type)
        stored = (config or {}).get(f.name)
        fields.append(
            Field(
                name=f.name,
                label=FIELD_LABELS.get(f.name, f.name),
                kind=input_kind,
                required=f.required,
                advanced=f.name in ADVANCED,
                value="" if input_kind == "secret" else _shown(stored),
                is_set=bool(stored),
            )
        )
    return sorted(fields, key=lambda x: (x.advanced, not x.required))


def changes_from(kind: str, data: dict[str, str], *, editing: bool) -> dict[str, Any]:
    """The configuration fields a posted form sets; an empty secret keeps the stored one."""
    changes: dict[str, Any] = {}
    for f in form_fields(kind):
        raw = str(data.get(f.name, ""))[:4000].strip()
        if f.kind == "checkbox":
            changes[f.name] = raw == "1"
        elif raw:
            changes[f.name] = raw
        elif f.kind == "secret" and editing:
            continue
        elif not f.required and editing:
            changes[f.name] = None
    if editing:
        return {k: v for k, v in changes.items() if v is not None}
    missing = [
        i18n.gettext(f.label) for f in form_fields(kind) if f.required and f.name not in changes
    ]
    if missing:
        raise ValueError(i18n.gettext("Please fill in: {fields}").format(fields=", ".join(missing)))
    return changes


def _typed(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        typed = msgspec.convert(config, channel_factory(kind).config_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from exc
    return dict(msgspec.to_builtins(typed))


def kinds() -> list[tuple[str, str]]:
    """Every channel kind with the name people use for it."""
    return [(kind, channel_factory(kind).display_name) for kind in CHANNEL_CLASSES]


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins manage channels")
    return actor


@get("/inbox/admin/channels", include_in_schema=False)
async def channels_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Every channel of the workspace with its webhook URL and last inbound message."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session:
        rows = await list_channels(session, actor.user.workspace_id)
        last = await last_inbound(session, actor.user.workspace_id)
    base = _runtime(request).settings.base_url
    return render(
        request,
        "admin_channels.html",
        actor=actor,
        rows=rows,
        last=last,
        urls={r.id: webhook_url(base, r) for r in rows},
        names=dict(kinds()),
        no_webhook=NO_WEBHOOK,
        kinds=kinds(),
        notice=request.query_params.get("notice"),
    )


@get("/setup/channel", include_in_schema=False)
async def first_channel(request: Request[Any, Any, Any]) -> Response[str]:
    """Setup step 3: connect the first channel (or leave it for later)."""
    actor = await _admin(request)
    return render(request, "setup_channel.html", actor=actor, step=3, kinds=kinds())


def _kind(kind: str) -> str:
    if kind not in CHANNEL_CLASSES:
        raise ConfigError(f"unknown channel kind {kind!r}")
    return kind


def _form_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    kind: str,
    *,
    row: ChannelRow | None = None,
    posted: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response[str]:
    fields = form_fields(kind, row.config if row else None)
    if posted:
        fields = [
            f if f.kind == "secret" else Field(**{**f.__dict__, "value": posted.get(f.name, "")})
            for f in fields
        ]
    base = _runtime(request).settings.base_url
    return render(
        request,
        "admin_channel.html",
        status_code=status_code,
        actor=actor,
        kind=kind,
        kind_name=channel_factory(kind).display_name,
        guide=GUIDES.get(kind, ""),
        row=row,
        name=(posted or {}).get("name")
        or (row.name if row else channel_factory(kind).display_name),
        fields=fields,
        error=error,
        setup_mode=request.query_params.get("setup") == "1" or (posted or {}).get("setup") == "1",
        url=webhook_url(base, row) if row else None,
        has_webhook=kind not in NO_WEBHOOK,
        widget=channel_factory(kind).widget,
        notice=request.query_params.get("notice"),
        address_hint=channel_checks.ADDRESS_HINTS.get(kind),
        templates=channel_factory(kind).capabilities.template_catalog,
        **extra,
    )


@get("/inbox/admin/channels/new/{kind:str}", include_in_schema=False)
async def new_channel_page(request: Request[Any, Any, Any], kind: FromPath[str]) -> Response[str]:
    """The guided form of one kind."""
    actor = await _admin(request)
    return _form_page(request, actor, _kind(kind))


@post("/inbox/admin/channels/new/{kind:str}", include_in_schema=False, status_code=303)
async def create_channel(
    request: Request[Any, Any, Any], kind: FromPath[str], data: Form
) -> Response[Any]:
    """Add a channel; a missing or wrong field is named and nothing is stored."""
    actor = await _admin(request)
    kind = _kind(kind)
    runtime = _runtime(request)
    try:
        config = _typed(kind, changes_from(kind, data, editing=False))
        async with runtime.sessions() as session, session.begin():
            row = await add_channel(
                session, actor.user.workspace_id, kind, str(data.get("name", ""))[:200], config
            )
            row.config = await channel_factory(kind).on_connect(
                dict(row.config),
                webhook_url(runtime.settings.base_url, row),
                runtime.http,
                register=True,
            )
            await record_by(session, actor, "channel.add", "channel", row.id)
            if data.get("setup") == "1":
                await setup.finish(session, actor.user.workspace_id)
    except (ConfigError, ValueError, ChannelError, httpx.HTTPError) as exc:
        message = i18n.error_text(exc) or type(exc).__name__
        return _form_page(request, actor, kind, posted=data, error=message, status_code=422)
    return Redirect(f"/inbox/admin/channels/{row.id}?notice=added", status_code=303)


@get("/inbox/admin/channels/{channel_id:str}", include_in_schema=False)
async def channel_page(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[str]:
    """One channel: its webhook URL, its settings (secrets only as set or not set)."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session:
        row = await _row(session, actor, channel_id)
        return await _channel_view(request, session, actor, row)


async def _channel_view(
    request: Request[Any, Any, Any],
    session: Any,
    actor: Actor,
    row: ChannelRow,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response[str]:
    """The channel page with its test message (?test=) and the addresses to test with."""
    test_id = request.query_params.get("test")
    sent = await channel_checks.test_message(session, row, test_id) if test_id else None
    return _form_page(
        request,
        actor,
        row.kind,
        row=row,
        status_code=status_code,
        test_sent=sent,
        identities=await channel_checks.recent_identities(session, row.id),
        **extra,
    )


@post("/inbox/admin/channels/{channel_id:str}/check", include_in_schema=False, status_code=200)
async def check_channel(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[str]:
    """Sign in at the provider with the stored settings and say how it went."""
    actor = await _admin(request)
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        row = await _row(session, actor, channel_id)
        outcome = await channel_checks.run_check(row, runtime.http)
        return await _channel_view(request, session, actor, row, check=outcome)


@post("/inbox/admin/channels/{channel_id:str}/test", include_in_schema=False, status_code=303)
async def send_test(
    request: Request[Any, Any, Any], channel_id: FromPath[str], data: Form
) -> Response[Any]:
    """Send a test message to the admin's own address through the normal send path."""
    actor = await _admin(request)
    runtime = _runtime(request)
    address = str(data.get("address") or data.get("known") or "")[:320].strip()
    text = i18n.gettext("Test message from tresen: this channel works.")
    try:
        if not address:
            raise ValueError(i18n.gettext("Please enter your own address or pick one."))
        async with runtime.sessions() as session, session.begin():
            row = await _row(session, actor, channel_id)
            if not row.enabled:
                raise ValueError(i18n.gettext("This channel is disabled: enable it first."))
            message = await channel_checks.queue_test(
                session, row, address, text, runtime.settings.max_send_attempts
            )
            await record_by(session, actor, "channel.tested", "channel", row.id)
    except (DomainError, ValueError) as exc:
        refusal = channel_checks.refusal_text(exc) if isinstance(exc, DomainError) else str(exc)
        async with runtime.sessions() as session:
            row = await _row(session, actor, channel_id)
            return await _channel_view(
                request,
                session,
                actor,
                row,
                status_code=422,
                test_refused=refusal,
                test_address=address,
            )
    runtime.jobs_ready.set()
    return Redirect(f"/inbox/admin/channels/{row.id}?test={message.id}#test", status_code=303)


async def _row(session: Any, actor: Actor, channel_id: str) -> ChannelRow:
    try:
        return await workspace_channel(session, actor.user.workspace_id, channel_id[:40])
    except ConfigError as exc:
        raise NotFoundPage() from exc


class NotFoundPage(Exception):
    """No such channel in this workspace."""


@post("/inbox/admin/channels/{channel_id:str}", include_in_schema=False, status_code=303)
async def save_channel(
    request: Request[Any, Any, Any], channel_id: FromPath[str], data: Form
) -> Response[Any]:
    """Save changed settings; empty secret fields keep the stored secret."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session:
        row = await _row(session, actor, channel_id)
    try:
        changes = changes_from(row.kind, data, editing=True)
        async with _runtime(request).sessions() as session, session.begin():
            row = await _row(session, actor, channel_id)
            typed = _typed(row.kind, {**(row.config or {}), **changes})
            await update_channel(session, row, str(data.get("name", ""))[:200], typed)
            await record_by(session, actor, "channel.change", "channel", row.id)
    except (ConfigError, ValueError) as exc:
        message = i18n.error_text(exc)
        return _form_page(
            request, actor, row.kind, row=row, posted=data, error=message, status_code=422
        )
    return Redirect(f"/inbox/admin/channels/{row.id}?notice=saved", status_code=303)


@post("/inbox/admin/channels/{channel_id:str}/enabled", include_in_schema=False, status_code=303)
async def toggle_channel(
    request: Request[Any, Any, Any], channel_id: FromPath[str], data: Form
) -> Redirect:
    """Disable a channel (nothing is sent or received through it) or enable it again."""
    actor = await _admin(request)
    enabled = data.get("enabled") == "1"
    async with _runtime(request).sessions() as session, session.begin():
        row = await _row(session, actor, channel_id)
        row.enabled = enabled
        await record_by(
            session, actor, "channel.enable" if enabled else "channel.disable", "channel", row.id
        )
    return Redirect("/inbox/admin/channels", status_code=303)


@post("/inbox/admin/channels/{channel_id:str}/delete", include_in_schema=False, status_code=303)
async def remove_channel(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[Any]:
    """Delete an unused channel; one with conversations is refused with the reason."""
    actor = await _admin(request)
    try:
        async with _runtime(request).sessions() as session, session.begin():
            row = await _row(session, actor, channel_id)
            await delete_channel(session, row)
            await record_by(session, actor, "channel.delete", "channel", channel_id)
    except ConfigError:
        return Redirect("/inbox/admin/channels?notice=in_use", status_code=303)
    return Redirect("/inbox/admin/channels?notice=deleted", status_code=303)


channels_router = Router(
    path="/",
    route_handlers=[
        channels_page,
        first_channel,
        new_channel_page,
        create_channel,
        channel_page,
        check_channel,
        send_test,
        save_channel,
        toggle_channel,
        remove_channel,
    ],
    exception_handlers={NotFoundPage: not_found_page, ConfigError: not_found_page},
)
