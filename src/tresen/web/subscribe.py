"""The public subscribe form of a topic: an address in, a double opt-in message out.

E-mail and SMS addresses are entered here (the business may write to them first, and only
the confirmation message goes out); messenger channels are offered as click-to-chat links.
The answer never says whether the address was known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import clicktochat, topics
from tresen.broadcast.importer import normalise_address
from tresen.channels.registry import channel_factory, kinds_where
from tresen.db.tables import ChannelRow, Topic, Workspace
from tresen.jobs.ratelimit import RateLimiters, Window
from tresen.pipeline.outbound import OutboundRefused
from tresen.pipeline.recipients import RecipientError, resolve
from tresen.privacy.consent import notice_for
from tresen.settings import Settings
from tresen.web.pages import render

MAX_ADDRESS = 320
SOURCE = "web form /s/subscribe"
TEXTS: dict[str, dict[str, Any]] = {
    "de": {
        "title": "„{topic}“ abonnieren",
        "intro": "Nachrichten von {business} zum Thema „{topic}“. Sie bekommen zuerst eine "
        "Nachricht zum Bestätigen; ohne Bestätigung erhalten Sie nichts. Abmelden jederzeit "
        "mit STOP {keyword}.",
        "channel": "Wie möchten Sie die Nachrichten bekommen?",
        "address": {"email": "Ihre E-Mail-Adresse", "sms": "Ihre Handynummer"},
        "submit": "Anmelden",
        "chat": "Oder direkt im Chat:",
        "sent": "Fast geschafft: Wir haben eine Nachricht an {address} geschickt. Bitte "
        "bestätigen Sie dort Ihre Anmeldung.",
        "bad_address": {
            "email": "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
            "sms": "Bitte geben Sie eine gültige Handynummer mit Ländervorwahl ein, "
            "z. B. +49 151 12345678.",
        },
        "bad_channel": "Bitte wählen Sie einen Weg aus der Liste.",
        "too_many": "Zu viele Anmeldungen von hier. Bitte versuchen Sie es später noch einmal.",
        "unknown": "Dieses Thema gibt es nicht (mehr).",
        "none": "Für dieses Thema ist gerade keine Anmeldung per Formular möglich.",
        "other": "English",
    },
    "en": {
        "title": "Subscribe to “{topic}”",
        "intro": "Messages from {business} about “{topic}”. You first get a message to "
        "confirm; without confirming you receive nothing. Unsubscribe at any time with "
        "STOP {keyword}.",
        "channel": "How would you like to get the messages?",
        "address": {"email": "Your e-mail address", "sms": "Your mobile number"},
        "submit": "Subscribe",
        "chat": "Or right in the chat:",
        "sent": "Almost done: we sent a message to {address}. Please confirm your "
        "subscription there.",
        "bad_address": {
            "email": "Please enter a valid e-mail address.",
            "sms": "Please enter a valid mobile number with country code, e.g. +49 151 12345678.",
        },
        "bad_channel": "Please pick a way from the list.",
        "too_many": "Too many subscriptions from here. Please try again later.",
        "unknown": "This topic does not exist (any more).",
        "none": "This topic cannot be subscribed to by form right now.",
        "other": "Deutsch",
    },
}


@dataclass(frozen=True)
class _Form:
    topic: Topic
    workspace: Workspace
    channels: list[ChannelRow]
    chat_links: list[clicktochat.ChatLink]


def _language(request: Request[Any, Any, Any], given: object = None) -> str:
    wanted = given or request.query_params.get("lang")
    if wanted in TEXTS:
        return str(wanted)
    accept = (request.headers.get("accept-language") or "").lower()
    return "en" if accept.startswith("en") else "de"


async def _load(session: AsyncSession, topic_id: str, base_url: str) -> _Form | None:
    topic = await session.get(Topic, topic_id) if len(topic_id) <= 26 else None
    if topic is None:
        return None
    workspace = await session.get_one(Workspace, topic.workspace_id)
    channels = list(
        await session.scalars(
            select(ChannelRow)
            .where(
                ChannelRow.workspace_id == topic.workspace_id,
                ChannelRow.enabled.is_(True),
                ChannelRow.kind.in_(kinds_where(lambda factory: factory.write_first)),
            )
            .order_by(ChannelRow.created_at, ChannelRow.id)
        )
    )
    links = await clicktochat.links_for_topic(session, topic.workspace_id, topic, base_url)
    # Kinds the business may write to first are offered by the form above, not as a chat link.
    chat_links = [link for link in links if link.url and not channel_factory(link.kind).write_first]
    return _Form(topic, workspace, channels, chat_links)


def _page(
    request: Request[Any, Any, Any],
    form: _Form | None,
    language: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    done: str | None = None,
    values: dict[str, str] | None = None,
) -> Response[str]:
    texts = TEXTS[language]
    if form is None:
        return render(
            request,
            "subscribe.html",
            status_code=404,
            page_lang=language,
            texts=texts,
            title=texts["unknown"],
            form=None,
        )
    fill = {
        "topic": form.topic.name,
        "business": form.workspace.name,
        "keyword": form.topic.keyword.upper(),
    }
    notice = notice_for(form.workspace, language)
    return render(
        request,
        "subscribe.html",
        status_code=status_code,
        page_lang=language,
        texts=texts,
        title=texts["title"].format(**fill),
        intro=texts["intro"].format(**fill),
        description=(form.topic.descriptions or {}).get(language),
        notice=notice.text,
        form=form,
        kind_labels=clicktochat.kind_names(),
        error=error,
        done=done,
        values=values or {},
        other_lang="en" if language == "de" else "de",
        action=f"/s/subscribe/{form.topic.id}",
    )


@get("/subscribe/{topic_id:str}", include_in_schema=False)
async def show_form(request: Request[Any, Any, Any], topic_id: FromPath[str]) -> Response[str]:
    """The form (and the topic's click-to-chat links), in German or English."""
    runtime = request.app.state.runtime
    async with runtime.sessions() as session:
        form = await _load(session, topic_id, runtime.settings.base_url)
    return _page(request, form, _language(request))


def _limits(request: Request[Any, Any, Any]) -> Window:
    """Ten requests per client address and hour, across all web processes with Redis."""
    limiters: RateLimiters = request.app.state.runtime.limiters
    return limiters.window("subscribe-form", 10, 3600.0)


@post("/subscribe/{topic_id:str}", include_in_schema=False, status_code=200)
async def submit_form(request: Request[Any, Any, Any], topic_id: FromPath[str]) -> Response[str]:
    """Start the double opt-in for the address entered; the same answer for known and new ones."""
    runtime = request.app.state.runtime
    data = await request.form()
    language = _language(request, data.get("language"))
    texts = TEXTS[language]
    values = {k: str(data.get(k) or "")[:MAX_ADDRESS] for k in ("channel", "address")}
    async with runtime.sessions() as session, session.begin():
        form = await _load(session, topic_id, runtime.settings.base_url)
        if form is None:
            return _page(request, None, language)
        channel = next((c for c in form.channels if c.id == values["channel"]), None)
        if channel is None:
            return _page(
                request, form, language, status_code=422, error=texts["bad_channel"], values=values
            )
        try:
            address = normalise_address(channel.kind, values["address"].strip())
        except ValueError:
            error = texts["bad_address"][channel.kind]
            return _page(request, form, language, status_code=422, error=error, values=values)
        client = request.client.host if request.client else "?"
        if await _limits(request).check(f"{form.topic.workspace_id}:{client}") is not None:
            return _page(
                request, form, language, status_code=429, error=texts["too_many"], values=values
            )
        try:
            async with session.begin_nested():  # a refusal leaves no half-made contact behind
                await _request(session, runtime.settings, form, channel, address, language)
        except (RecipientError, topics.TopicError, OutboundRefused):
            # Refused, over the daily limit or already subscribed: said alike, so the form
            # does not tell a stranger whether an address is known.
            pass
    runtime.jobs_ready.set()
    return _page(request, form, language, done=texts["sent"].format(address=address))


async def _request(
    session: AsyncSession,
    settings: Settings,
    form: _Form,
    channel: ChannelRow,
    address: str,
    language: str,
) -> None:
    recipient = await resolve(
        session,
        form.topic.workspace_id,
        contact_id=None,
        channel_id=channel.id,
        address=address,
        create=True,
    )
    await topics.request_subscription(
        session,
        settings,
        workspace=form.workspace,
        topic=form.topic,
        contact=recipient.contact,
        conversation=recipient.conversation,
        channel=channel,
        source=SOURCE,
        language=language,
    )


subscribe_router = Router(path="/s", route_handlers=[show_form, submit_form])
