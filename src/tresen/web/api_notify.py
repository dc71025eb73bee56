"""REST API v1: topics, subscriptions (double opt-in) and transactional notifications."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, delete, get, post, put
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import FromPath, HeaderParameter, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import links, topics, tracking
from tresen.db.tables import Contact, Message, Notification, Subscription, Topic, Workspace
from tresen.integrations import notifications as notify
from tresen.pipeline.recipients import resolve
from tresen.web.api import ERROR_RESPONSES, Id, _error, _runtime, authenticate_first, require
from tresen.web.errors import ApiError

Lang = Literal["de", "en"]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Keyword = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Variable = Annotated[str, msgspec.Meta(max_length=500)]
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

RESPONSES = {
    **ERROR_RESPONSES,
    409: _error("Conflicts with an earlier request (an Idempotency-Key reused with another body)"),
    429: _error("Too many confirmation messages to this address today"),
}


Description = Annotated[str, msgspec.Meta(max_length=300)]
# Not blank: a character that is whitespace neither to Python (str.strip) nor to JSON Schema (ECMA).
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


class Descriptions(msgspec.Struct, forbid_unknown_fields=True):
    """What a topic is about, per language (shown in the confirmation message)."""

    de: Description | None = None
    en: Description | None = None


class TopicIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new topic."""

    keyword: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9]{1,32}$")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NOT_BLANK)]
    descriptions: Descriptions | None = None


class TopicOut(msgspec.Struct):
    """A topic customers can subscribe to."""

    id: str
    keyword: str
    name: str
    descriptions: dict[str, str]
    created_at: datetime


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A subscription request: the contact gets a confirmation message and must confirm."""

    topic: Keyword
    contact_id: Id | None = None
    channel_id: Id | None = None
    to: Address | None = None
    language: Lang = "de"


class SubscriptionOut(msgspec.Struct):
    """A subscription and where its double opt-in stands."""

    id: str
    topic_id: str
    contact_id: str
    channel_id: str
    state: str
    source: str
    requested_at: datetime
    confirmation_expires_at: datetime | None
    confirmed_at: datetime | None
    withdrawn_at: datetime | None


class NotificationIn(msgspec.Struct, forbid_unknown_fields=True):
    """A transactional message: a built-in template with variables, or a transactional text."""

    contact_id: Id | None = None
    channel_id: Id | None = None
    to: Address | None = None
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    text: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    variables: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=40)], Variable], msgspec.Meta(max_length=20)
    ] = {}
    language: Lang = "de"


class NotificationOut(msgspec.Struct):
    """A notification and its delivery status."""

    id: str
    status: str
    message_id: str | None
    template: str | None
    category: str
    error_code: str | None
    error_reason: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


def _present(*names: str) -> Schema:
    """A schema requiring these properties to be present as strings."""
    return Schema(
        required=list(names),
        properties={n: Schema(type=OpenAPIType.STRING) for n in names},
    )


def _nullable(inner: Schema) -> Schema:
    return Schema(one_of=[inner, Schema(type=OpenAPIType.NULL)])


def refine_schemas(schemas: dict[str, Schema]) -> None:
    """Say in the OpenAPI document which field combinations and values the server accepts."""
    recipient = [_present("contact_id"), _present("channel_id", "to")]
    if "SubscriptionIn" in schemas:
        schemas["SubscriptionIn"].any_of = recipient
    notification = schemas.get("NotificationIn")
    if notification is None or notification.properties is None:
        return
    notification.all_of = [
        Schema(any_of=recipient),
        Schema(one_of=[_present("template"), _present("text", "category")]),
    ]
    props = dict(notification.properties)
    props["template"] = _nullable(Schema(type=OpenAPIType.STRING, enum=list(notify.TEMPLATES)))
    props["category"] = _nullable(Schema(type=OpenAPIType.STRING, enum=[notify.TRANSACTIONAL]))
    props["variables"] = Schema(
        type=OpenAPIType.OBJECT,
        max_properties=20,
        property_names=Schema(type=OpenAPIType.STRING, max_length=40),
        additional_properties=Schema(type=OpenAPIType.STRING, max_length=500),
    )
    notification.properties = props


def _topic_out(t: Topic) -> TopicOut:
    return TopicOut(t.id, t.keyword, t.name, dict(t.descriptions or {}), t.created_at)


def _subscription_out(s: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=s.id,
        topic_id=s.topic_id,
        contact_id=s.contact_id,
        channel_id=s.channel_id,
        state=s.state,
        source=s.source,
        requested_at=s.requested_at,
        confirmation_expires_at=s.token_expires_at if s.state == topics.PENDING else None,
        confirmed_at=s.confirmed_at,
        withdrawn_at=s.withdrawn_at,
    )


def _notification_out(n: Notification, m: Message | None) -> NotificationOut:
    return NotificationOut(
        id=n.id,
        status=notify.status_of(m),
        message_id=n.message_id,
        template=n.template,
        category=n.category,
        error_code=m.error_code if m else None,
        error_reason=m.error_reason if m else None,
        created_at=n.created_at,
        sent_at=m.sent_at if m else None,
        delivered_at=m.delivered_at if m else None,
        read_at=m.read_at if m else None,
        failed_at=m.failed_at if m else None,
    )


@get("/topics", responses=RESPONSES, summary="List topics")
async def list_topics(request: Request[Any, Any, Any]) -> list[TopicOut]:
    """Topics of the caller's workspace."""
    principal = await require(request, "subscriptions:manage")
    async with _runtime(request).sessions() as session:
        rows = await session.scalars(
            select(Topic)
            .where(Topic.workspace_id == principal.workspace_id)
            .order_by(Topic.keyword)
        )
        return [_topic_out(t) for t in rows]


@post("/topics", responses=RESPONSES, status_code=201, summary="Create a topic")
async def create_topic(request: Request[Any, Any, Any], data: JSONBody[TopicIn]) -> TopicOut:
    """A new topic; its keyword (a-z, 0-9) is what customers write after START or STOP."""
    principal = await require(request, "subscriptions:manage")
    async with _runtime(request).sessions() as session, session.begin():
        topic = await topics.create_topic(
            session,
            principal.workspace_id,
            data.keyword,
            data.name,
            {
                k: v
                for k, v in msgspec.structs.asdict(data.descriptions or Descriptions()).items()
                if v
            },
        )
    return _topic_out(topic)


async def _topic(session: AsyncSession, workspace_id: str, key: str) -> Topic:
    topic = await topics.find_topic(session, workspace_id, key)
    if topic is None:
        raise ApiError("not_found", "no topic with this keyword or id", 404)
    return topic


@post(
    "/subscriptions",
    responses=RESPONSES,
    status_code=202,
    summary="Ask a contact to subscribe to a topic (double opt-in)",
)
async def request_subscription(
    request: Request[Any, Any, Any], data: JSONBody[SubscriptionIn]
) -> SubscriptionOut:
    """Send the confirmation message; the subscription counts only after the contact confirms."""
    principal = await require(request, "subscriptions:manage")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        topic = await _topic(session, principal.workspace_id, data.topic)
        recipient = await resolve(
            session,
            principal.workspace_id,
            contact_id=data.contact_id,
            channel_id=data.channel_id,
            address=data.to,
        )
        sub, _sent = await topics.request_subscription(
            session,
            runtime.settings,
            workspace=await session.get_one(Workspace, principal.workspace_id),
            topic=topic,
            contact=recipient.contact,
            conversation=recipient.conversation,
            channel=recipient.channel,
            source="api",
            language=data.language,
        )
    runtime.jobs_ready.set()
    return _subscription_out(sub)


async def _subscription(session: AsyncSession, workspace_id: str, sub_id: str) -> Subscription:
    sub = await session.scalar(
        select(Subscription).where(
            Subscription.id == sub_id, Subscription.workspace_id == workspace_id
        )
    )
    if sub is None:
        raise ApiError("not_found", "no subscription with this id", 404)
    return sub


@get("/subscriptions/{subscription_id:str}", responses=RESPONSES, summary="Read a subscription")
async def read_subscription(
    request: Request[Any, Any, Any], subscription_id: FromPath[str]
) -> SubscriptionOut:
    """One subscription and its state (pending, confirmed, withdrawn)."""
    principal = await require(request, "subscriptions:manage")
    async with _runtime(request).sessions() as session:
        return _subscription_out(
            await _subscription(session, principal.workspace_id, subscription_id)
        )


@delete(
    "/subscriptions/{subscription_id:str}",
    responses=RESPONSES,
    status_code=200,
    summary="Withdraw a subscription (recorded as the contact's withdrawal)",
)
async def withdraw_subscription(
    request: Request[Any, Any, Any], subscription_id: FromPath[str]
) -> SubscriptionOut:
    """End a subscription; topic messages still queued for it are not sent."""
    principal = await require(request, "subscriptions:manage")
    async with _runtime(request).sessions() as session, session.begin():
        sub = await _subscription(session, principal.workspace_id, subscription_id)
        contact = await session.get_one(Contact, sub.contact_id)
        topic = await session.get_one(Topic, sub.topic_id)
        await topics.withdraw(session, contact, sub.channel_id, topic, "api", sub.language)
        await session.refresh(sub)
        return _subscription_out(sub)


class LinkTrackingIn(msgspec.Struct, forbid_unknown_fields=True):
    """A contact's yes to per-person link tracking, given on the shop's own form."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=NOT_BLANK)]
    source_url: (
        Annotated[
            str, msgspec.Meta(max_length=300, pattern=r"^https?://[^\s\x1c-\x1f\x85\ufeff]+$")
        ]
        | None
    ) = None
    language: Lang = "de"


class LinkTrackingOut(msgspec.Struct):
    """Whether clicks of this contact are counted per person."""

    contact_id: str
    granted: bool
    changed: bool


async def _contact(session: AsyncSession, workspace_id: str, contact_id: str) -> Contact:
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    if contact is None:
        raise ApiError("not_found", "no contact with this id", 404)
    return contact


@get(
    "/contacts/{contact_id:str}/link-tracking",
    responses=RESPONSES,
    summary="Read whether a contact agreed to per-person link tracking",
)
async def read_link_tracking(
    request: Request[Any, Any, Any], contact_id: FromPath[str]
) -> LinkTrackingOut:
    """The latest link-tracking consent event decides; no event means anonymous counting."""
    principal = await require(request, "subscriptions:manage")
    async with _runtime(request).sessions() as session:
        contact = await _contact(session, principal.workspace_id, contact_id)
        latest = await links.latest_action(session, contact.id)
    return LinkTrackingOut(contact_id, latest == "granted", False)


async def _set_link_tracking(
    request: Request[Any, Any, Any], contact_id: str, data: LinkTrackingIn | None
) -> LinkTrackingOut:
    principal = await require(request, "subscriptions:manage")
    source = f"api token {principal.token_id}"
    if data is not None and data.source_url:
        source += f", web form {data.source_url}"
    async with _runtime(request).sessions() as session, session.begin():
        contact = await _contact(session, principal.workspace_id, contact_id)
        if data is not None and contact.restricted_at is not None:
            raise ApiError(
                "contact_restricted",
                "processing of this contact's data is restricted",
                409,
            )
        changed = await tracking.set_consent(
            session,
            contact,
            data is not None,
            source=source,
            text=data.text if data is not None else None,
            language=data.language if data is not None else None,
        )
    return LinkTrackingOut(contact_id, data is not None, changed)


@put(
    "/contacts/{contact_id:str}/link-tracking",
    responses=RESPONSES,
    summary="Record a contact's consent to per-person link tracking",
)
async def grant_link_tracking(
    request: Request[Any, Any, Any], contact_id: FromPath[str], data: JSONBody[LinkTrackingIn]
) -> LinkTrackingOut:
    """Appends a consent event with the hash of the text the person agreed to (unless granted)."""
    return await _set_link_tracking(request, contact_id, data)


@delete(
    "/contacts/{contact_id:str}/link-tracking",
    responses=RESPONSES,
    status_code=200,
    summary="Record the withdrawal of a contact's consent to per-person link tracking",
)
async def withdraw_link_tracking(
    request: Request[Any, Any, Any], contact_id: FromPath[str]
) -> LinkTrackingOut:
    """Appends a withdrawal event (unless not granted); clicks are counted anonymously again."""
    return await _set_link_tracking(request, contact_id, None)


@post(
    "/notifications",
    responses=RESPONSES,
    status_code=202,
    summary="Send a transactional notification (idempotent by the Idempotency-Key header)",
)
async def send_notification(
    request: Request[Any, Any, Any],
    data: JSONBody[NotificationIn],
    idempotency_key: Annotated[
        str,
        HeaderParameter(
            name="Idempotency-Key", min_length=1, max_length=200, pattern=IDEMPOTENCY_KEY.pattern
        ),
    ],
) -> NotificationOut:
    """Queue an order confirmation, shipping update, reminder or other transactional text once."""
    principal = await require(request, "notifications:send")
    key = idempotency_key
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            "idempotency_key_required",
            "send an Idempotency-Key header of 1 to 200 visible ASCII characters",
            400,
        )
    runtime = _runtime(request)
    req = notify.NotificationRequest(
        contact_id=data.contact_id,
        channel_id=data.channel_id,
        to=data.to,
        template=data.template,
        text=data.text,
        category=data.category,
        variables=dict(data.variables),
        language=data.language,
    )
    body_hash = notify.request_hash(msgspec.to_builtins(data))
    async with runtime.sessions() as session, session.begin():
        row, message, created = await notify.submit(
            session,
            principal.workspace_id,
            principal.token_id,
            key,
            body_hash,
            req,
            max_attempts=runtime.settings.max_send_attempts,
        )
    if created:
        runtime.jobs_ready.set()
    return _notification_out(row, message)


@get(
    "/notifications/{notification_id:str}",
    responses=RESPONSES,
    summary="Read a notification's delivery status",
)
async def read_notification(
    request: Request[Any, Any, Any], notification_id: FromPath[str]
) -> NotificationOut:
    """accepted, queued, sent, delivered, read or failed (with the provider's reason)."""
    principal = await require(request, "notifications:send")
    async with _runtime(request).sessions() as session:
        row = await session.scalar(
            select(Notification).where(
                Notification.id == notification_id,
                Notification.workspace_id == principal.workspace_id,
            )
        )
        if row is None:
            raise ApiError("not_found", "no notification with this id", 404)
        message = await session.get(Message, row.message_id) if row.message_id else None
        return _notification_out(row, message)


STRICT_BODIES = (TopicIn, SubscriptionIn, NotificationIn, Descriptions, LinkTrackingIn)

notify_router = Router(
    path="/api/v1",
    route_handlers=[
        list_topics,
        create_topic,
        request_subscription,
        read_subscription,
        withdraw_subscription,
        read_link_tracking,
        grant_link_tracking,
        withdraw_link_tracking,
        send_notification,
        read_notification,
    ],
    security=[{"BearerToken": []}],
    before_request=authenticate_first,
)
