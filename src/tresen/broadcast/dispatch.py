"""Dispatch: fix a campaign's audience, then send it in batches under the channel's rate limit.

One recipient row per (campaign, contact) is the only unit of work. A dispatcher (in every
worker process) claims a batch of rows with a lease, writes their outbound messages into the
conversations in the same transaction, sends them concurrently as fast as the channel's shared
token bucket allows, and records all outcomes of the batch in one transaction.

Crash safety: a claimed row whose worker dies keeps its message (state `sending`, our message
id as the provider's callback data). When its lease expires another worker claims it again and
sends only if the message still has no provider id; a status webhook that arrived meanwhile
attaches the provider id through the callback data (`pipeline.inbound`), so a message the
provider accepted is not sent twice. What remains: a message accepted by the provider whose
status webhook has not been stored by the time the lease expires is sent again (the provider
posts `sent` within about a second; the lease is TRESEN_JOB_LEASE_SECONDS, 30 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import campaigns as cmp
from tresen.broadcast import links as tracked
from tresen.broadcast import segments
from tresen.broadcast.audience import (
    CAP_DAYS,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    audience_query,
)
from tresen.broadcast.topics import CONFIRMED, OPTED_OUT
from tresen.channels.base import (
    AuthError,
    ChannelError,
    ChannelRef,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
)
from tresen.db import outbox
from tresen.db.tables import (
    Campaign,
    CampaignRecipient,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    MessageTemplate,
    PendingStatus,
    Subscription,
)
from tresen.db.types import UTCDateTime, utcnow
from tresen.db.upsert import rowcount
from tresen.domain.conversation import window_open
from tresen.domain.events import CampaignStateChanged, MessageStatusChanged
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, DeliveryState, Direction, SenderKind
from tresen.jobs import queue
from tresen.pipeline.inbound import (
    apply_kept_watermarks,
    apply_pending_statuses,
    conversation_for,
)
from tresen.pipeline.outbound import failure_values
from tresen.pipeline.templates import render as render_template
from tresen.runtime import LoadedChannel, Runtime

log = logging.getLogger(__name__)

OPEN_STATES = (PENDING, SENDING)
_UNSENT = (DeliveryState.QUEUED.value, DeliveryState.SENDING.value)
MAX_ATTEMPTS = 8
SKIP_REASONS = {
    OPTED_OUT: "the contact left the topic before this message went out",
    "consent": "the contact refused or restricted processing",
    "unreachable": "the contact blocked this channel",
    "frequency_cap": "the contact already got the most broadcasts a week allows",
    "window_closed": "the messaging window is closed and the campaign has no template",
    "template_not_approved": "the campaign's template is not approved (any more)",
    "contact_gone": "the contact or their address was deleted",
}
EXPAND_BATCH = 50_000
"""Subscribers turned into recipient rows per transaction when a campaign starts."""
RECHECK_SECONDS = 1.0
"""A batch that waited this long for the rate limit checks its contacts again before sending."""
BATCH_SECONDS = 0.5
"""A batch holds about this much sending time at the channel's rate."""
MAX_BATCH = 500
PIPELINES = 3
"""Batches in flight per channel and process: one claims while others send and record."""
MAX_IN_FLIGHT = 32
"""Requests on the wire per process: below the HTTP client's kept-alive connections (50), so
connections are reused, and nothing waits in its pool."""


@dataclass
class Item:
    """One message of a claimed batch, ready to go on the wire."""

    recipient_id: int
    contact_id: str
    identity_id: str
    message_id: str
    outbound: OutboundMessage
    attempts: int


@dataclass
class Outcome:
    """What the provider said about one item."""

    item: Item
    provider_message_id: str | None = None
    answered_at: datetime | None = None
    """When the provider accepted the message: its send time."""
    error: ChannelError | None = None
    skipped: str | None = None
    """Not sent: the reason found right before sending (e.g. the contact opted out)."""
    released: bool = False
    """Not sent because the worker is stopping: back to pending for the next worker."""


@dataclass
class Batch:
    """The rows one claim took: items to send, and the highest row id seen."""

    items: list[Item] = field(default_factory=list)
    last_id: int = 0
    claimed: int = 0
    topic_id: str | None = None


def _insert(session: AsyncSession, table: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def expand(
    session: AsyncSession,
    campaign: Campaign,
    now: datetime,
    after: str | None = None,
    size: int | None = None,
) -> str | None:
    """Add the recipient rows of the next `size` subscribers (by contact id) after `after`.

    Returns the last contact id of this batch, or None when it was the last one. A batch run
    twice adds nothing twice: the row per (campaign, contact) is unique.
    """
    sub = Subscription
    last: str | None = None
    if size is not None:
        bounds = select(sub.contact_id).where(sub.topic_id == campaign.topic_id)
        if after is not None:
            bounds = bounds.where(sub.contact_id > after)
        last = await session.scalar(bounds.order_by(sub.contact_id).offset(size - 1).limit(1))
    chosen = audience_query(campaign, now, after, last)
    table = CampaignRecipient.__table__
    stmt = (
        _insert(session, table)
        .from_select(
            ["campaign_id", "contact_id", "channel_id", "identity_id", "state", "attempts"],
            chosen,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)
    return last


async def audience_size(session: AsyncSession, campaign_id: str) -> int:
    """The recipient rows of a campaign."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign_id)
        )
        or 0
    )


def _rate(loaded: LoadedChannel) -> float:
    rate = getattr(loaded.adapter, "messages_per_second", None)
    return float(rate) if rate else loaded.adapter.capabilities.messages_per_second


@dataclass
class _Row:
    recipient_id: int
    contact_id: str
    identity_id: str
    message_id: str | None
    attempts: int
    display_name: str | None
    attributes: dict[str, Any] | None
    consent_state: str | None
    merged_into_id: str | None
    address: str | None
    unreachable: bool | None
    subscribed: str | None
    conversation_id: str | None
    last_inbound_at: datetime | None
    message_state: str | None
    provider_message_id: str | None
    message_kind: str | None
    message_body: str | None
    message_payload: dict[str, Any] | None


class Dispatcher:
    """Runs every campaign that is due, in this process, next to any number of others."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 1.0,
        pipelines: int = PIPELINES,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        expand_batch: int = EXPAND_BATCH,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.pipelines = pipelines
        self.max_batch = max_batch
        self.expand_batch = expand_batch
        self.lease = timedelta(seconds=runtime.settings.job_lease_seconds)
        self._wire = asyncio.Semaphore(max_in_flight)
        self._holding: set[int] = set()
        """Rows this process claimed and has not recorded: never taken over by itself."""
        self._expired_due: dict[tuple[str, str], datetime] = {}
        """When a lane next looks for rows whose lease ran out (a worker died holding them)."""

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Start due campaigns and send running ones until `stopping` is set."""
        while not stopping.is_set():
            try:
                busy = await self.tick(stopping)
            except Exception:
                log.exception("campaign dispatch failed; trying again shortly")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.poll_seconds)

    async def tick(self, stopping: asyncio.Event | None = None) -> bool:
        """One round: start what is due, send what can be sent now; whether anything was sent."""
        stopping = stopping or asyncio.Event()
        await self.start_due()
        async with self.runtime.sessions() as session:
            running = list(
                (
                    await session.execute(
                        select(Campaign.id, Campaign.channel_ids).where(
                            Campaign.state == cmp.RUNNING
                        )
                    )
                ).all()
            )
        if not running:
            return False
        results = await asyncio.gather(
            *(self.run_campaign(cid, ids, stopping) for cid, ids in running)
        )
        return any(results)

    async def start_due(self) -> None:
        """Scheduled campaigns whose time has come start; starting ones get their audience."""
        now = self.clock()
        async with self.runtime.sessions() as session:
            due = (
                await session.execute(
                    select(Campaign.id, Campaign.state).where(
                        or_(
                            Campaign.state == cmp.STARTING,
                            and_(Campaign.state == cmp.SCHEDULED, Campaign.scheduled_at <= now),
                        )
                    )
                )
            ).all()
        for campaign_id, state in due:
            if state == cmp.SCHEDULED:
                async with self.runtime.sessions() as session, session.begin():
                    started = await session.execute(
                        update(Campaign)
                        .where(Campaign.id == campaign_id, Campaign.state == cmp.SCHEDULED)
                        .values(state=cmp.STARTING, updated_at=now)
                        .returning(Campaign.workspace_id)
                    )
                    for (workspace_id,) in started.all():
                        outbox.record(
                            session, CampaignStateChanged(workspace_id, campaign_id, cmp.STARTING)
                        )
            await self.expand_one(campaign_id)

    async def expand_one(self, campaign_id: str) -> bool:
        """Fix one starting campaign's audience in batches, then set it running.

        One process at a time holds the expansion (a lease on the campaign row); each batch is
        its own transaction and moves a cursor, so a process that dies mid-way leaves the rest
        to whoever takes the lease over. A pause or cancel stops it between batches.
        """
        began = time.monotonic()
        now = self.clock()
        async with self.runtime.sessions() as session, session.begin():
            claimed = await session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.state == cmp.STARTING,
                    or_(Campaign.expand_lease_until.is_(None), Campaign.expand_lease_until < now),
                )
                .values(
                    expand_lease_until=now + self.lease,
                    started_at=func.coalesce(Campaign.started_at, now),
                    updated_at=now,
                )
            )
            if not rowcount(claimed):
                return False
        while True:
            now = self.clock()
            async with self.runtime.sessions() as session, session.begin():
                campaign = await session.get_one(Campaign, campaign_id)
                if campaign.state != cmp.STARTING:
                    campaign.expand_lease_until = None
                    return False
                last = await expand(
                    session, campaign, now, campaign.expanded_through, self.expand_batch
                )
                if last is not None:
                    campaign.expanded_through = last
                    campaign.expand_lease_until = now + self.lease
                    continue
                audience = await audience_size(session, campaign_id)
                moved = await session.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.state == cmp.STARTING)
                    .values(
                        state=cmp.RUNNING,
                        audience=audience,
                        expand_seconds=round(time.monotonic() - began, 3),
                        expanded_through=None,
                        expand_lease_until=None,
                        updated_at=now,
                    )
                )
                if not rowcount(moved):
                    return False
                outbox.record(
                    session, CampaignStateChanged(campaign.workspace_id, campaign_id, cmp.RUNNING)
                )
            log.info("campaign %s: audience of %d fixed", campaign_id, audience)
            return True

    async def run_campaign(
        self, campaign_id: str, channel_ids: dict[str, Any], stopping: asyncio.Event
    ) -> bool:
        """Send one campaign on all its channels until nothing is claimable; whether any was."""
        ids = list((channel_ids or {}).get("ids") or [])
        lanes = [
            self._pipeline(campaign_id, channel_id, stopping)
            for channel_id in ids
            for _ in range(self.pipelines)
        ]
        claimed = sum(await asyncio.gather(*lanes))
        await self._finish_if_done(campaign_id)
        return claimed > 0

    async def _pipeline(self, campaign_id: str, channel_id: str, stopping: asyncio.Event) -> int:
        loaded = await self.runtime.bulk_channel(channel_id)
        if loaded is None or not loaded.enabled:
            return 0
        rate = _rate(loaded)
        bucket = self.runtime.limiters.bucket(channel_id, rate)
        size = max(1, min(self.max_batch, int(rate * BATCH_SECONDS)))
        after, total = 0, 0
        while not stopping.is_set():
            batch = await self.claim(campaign_id, channel_id, loaded, after, size)
            if batch is None:
                break
            if not batch.claimed:
                if after == 0:
                    break
                after = 0
                continue
            after = batch.last_id
            total += batch.claimed
            if batch.items:
                held = [i.recipient_id for i in batch.items]
                self._holding.update(held)
                beat = asyncio.create_task(self._heartbeat(held))
                try:
                    outcomes = await self._send(
                        loaded, bucket, batch.items, batch.topic_id, stopping
                    )
                    await self._record_with_retries(channel_id, outcomes, bucket)
                    if loaded.adapter.capabilities.receipt_watermarks:
                        await self.apply_kept_watermarks(outcomes)
                finally:
                    beat.cancel()
                    self._holding.difference_update(held)
        return total

    async def _heartbeat(self, recipient_ids: list[int]) -> None:
        """Keep the lease of a batch on the wire, so no other worker takes it over meanwhile."""
        r = CampaignRecipient
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.runtime.sessions() as session, session.begin():
                    await session.execute(
                        update(r)
                        .where(r.id.in_(recipient_ids), r.state == SENDING)
                        .values(lease_until=self.clock() + self.lease)
                    )
            except Exception:
                log.exception("extending a campaign batch's lease failed")

    # -- claim -----------------------------------------------------------------------------

    async def claim(
        self,
        campaign_id: str,
        channel_id: str,
        loaded: LoadedChannel,
        after: int,
        size: int,
    ) -> Batch | None:
        """Lease a batch of due rows and write their messages; None when the campaign must wait."""
        now = self.clock()
        r = CampaignRecipient
        async with self.runtime.sessions() as session, session.begin():
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.state != cmp.RUNNING:
                return None
            if cmp.quiet_until(now, campaign.time_zone, campaign.quiet_hours) is not None:
                return None
            pg = session.get_bind().dialect.name == "postgresql"
            expired = (
                select(r.id)
                .where(
                    r.campaign_id == campaign_id,
                    r.state == SENDING,
                    r.channel_id == channel_id,
                    r.lease_until < now,
                )
                .order_by(r.id)
                .limit(size)
            )
            due = (
                select(r.id)
                .where(
                    r.campaign_id == campaign_id,
                    r.state == PENDING,
                    r.channel_id == channel_id,
                    r.id > after,
                    or_(r.next_at.is_(None), r.next_at <= now),
                )
                .order_by(r.id)
                .limit(size)
            )
            if self._holding:
                # A slow batch of this very process outlived its lease: it is still on the wire.
                expired = expired.where(r.id.not_in(list(self._holding)))
            if pg:
                expired = expired.with_for_update(skip_locked=True)
                due = due.with_for_update(skip_locked=True)
            # Every row passes through "sending", so this scan grows with the campaign (on
            # PostgreSQL it walks the dead index entries sent rows left): look a few times a lease.
            lane = (campaign_id, channel_id)
            ids: list[int] = []
            if after == 0 or now >= self._expired_due.get(lane, now):
                self._expired_due[lane] = now + self.lease / 3
                ids = list(await session.scalars(expired))
            ids += (
                list(await session.scalars(due.limit(size - len(ids)))) if len(ids) < size else []
            )
            if not ids:
                return Batch()
            await session.execute(
                update(r)
                .where(r.id.in_(ids))
                .values(state=SENDING, lease_until=now + self.lease, attempts=r.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            rows = await self._details(session, campaign, ids)
            batch = Batch(last_id=max(ids), claimed=len(ids), topic_id=campaign.topic_id)
            batch.items = await self._prepare(session, campaign, loaded, rows, now)
        return batch

    async def _details(
        self, session: AsyncSession, campaign: Campaign, ids: list[int]
    ) -> list[_Row]:
        r = CampaignRecipient
        stmt = (
            select(
                r.id,
                r.contact_id,
                r.identity_id,
                r.message_id,
                r.attempts,
                Contact.display_name,
                Contact.attributes,
                Contact.consent_state,
                Contact.merged_into_id,
                ContactIdentity.address,
                ContactIdentity.unreachable,
                Subscription.state,
                Conversation.id,
                Conversation.last_inbound_at,
                Message.state,
                Message.provider_message_id,
                Message.content_kind,
                Message.body,
                Message.payload,
            )
            .select_from(r)
            .outerjoin(Contact, Contact.id == r.contact_id)
            .outerjoin(ContactIdentity, ContactIdentity.id == r.identity_id)
            .outerjoin(
                Subscription,
                and_(
                    Subscription.topic_id == campaign.topic_id,
                    Subscription.contact_id == r.contact_id,
                ),
            )
            .outerjoin(
                Conversation,
                and_(
                    Conversation.channel_id == r.channel_id,
                    Conversation.identity_id == r.identity_id,
                ),
            )
            .outerjoin(Message, Message.id == r.message_id)
            .where(r.id.in_(ids))
            .order_by(r.id)
        )
        return [_Row(*row) for row in (await session.execute(stmt)).all()]

    async def _capped(
        self, session: AsyncSession, campaign: Campaign, contact_ids: list[str], now: datetime
    ) -> set[str]:
        if campaign.frequency_cap <= 0 or not contact_ids:
            return set()
        r = CampaignRecipient
        rows = await session.scalars(
            select(r.contact_id)
            .where(
                r.contact_id.in_(contact_ids),
                r.state == SENT,
                r.sent_at >= now - timedelta(days=CAP_DAYS),
                r.campaign_id != campaign.id,
            )
            .group_by(r.contact_id)
            .having(func.count() >= campaign.frequency_cap)
        )
        return set(rows)

    async def _prepare(
        self,
        session: AsyncSession,
        campaign: Campaign,
        loaded: LoadedChannel,
        rows: list[_Row],
        now: datetime,
    ) -> list[Item]:
        """Decide each row (skip, already sent, send) and write the new messages in one go."""
        caps = loaded.adapter.capabilities
        part = cmp.content_for(campaign.content or {}, loaded.ref.kind)
        template = await self._template(session, loaded.ref.id, part)
        capped = await self._capped(session, campaign, [row.contact_id for row in rows], now)
        skips: dict[str, list[int]] = {}
        dropped: dict[str, list[str]] = {}
        done_sent: list[int] = []
        items: list[Item] = []
        new_messages: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        fresh: list[tuple[_Row, dict[str, Any]]] = []
        texts: list[tuple[str, dict[str, Any]]] = []
        for row in rows:
            reason = self._skip_reason(row, capped)
            if reason is None and row.message_id is not None:
                if row.provider_message_id or row.message_state not in (None, *_UNSENT):
                    # The provider has it (a status webhook told us while this row was leased).
                    done_sent.append(row.recipient_id)
                    continue
                items.append(
                    self._item(row, row.message_id, row.message_kind, row.message_body,
                               row.message_payload, row.address or "")
                )  # fmt: skip
                continue
            if reason is None:
                free = window_open(row.last_inbound_at, caps.window, now)
                use_template = part.template is not None and (not free or not part.body.strip())
                if not use_template and not free:
                    reason = "window_closed"
                elif use_template and template is None:
                    reason = "template_not_approved"
            if reason is not None:
                skips.setdefault(reason, []).append(row.recipient_id)
                if row.message_id is not None:
                    dropped.setdefault(reason, []).append(row.message_id)
                continue
            conversation_id = row.conversation_id or await conversation_for(
                session,
                ChannelRef(loaded.ref.id, campaign.workspace_id, loaded.ref.kind),
                row.identity_id,
                row.contact_id,
            )
            values = cmp.contact_variables(row.display_name, row.attributes)
            if use_template:
                assert template is not None and part.template is not None
                params = [
                    cmp.fill_variables(p, values) for p in part.template.get("parameters") or []
                ]
                kind = ContentKind.TEMPLATE
                body = render_template(template.body, params)
                payload: dict[str, Any] = {
                    "name": template.name,
                    "language": template.language,
                    "parameters": params,
                }
            else:
                kind = part.kind
                body = cmp.fill_variables(part.body, values)  # links are rewritten below, in bulk
                payload = cmp.personal_payload(part.payload, values)
            payload["campaign"] = campaign.id
            message_id = new_id()
            message: dict[str, Any] = {
                "id": message_id,
                "workspace_id": campaign.workspace_id,
                "conversation_id": conversation_id,
                "channel_id": loaded.ref.id,
                "direction": Direction.OUTBOUND.value,
                "sender_kind": SenderKind.SYSTEM.value,
                "content_kind": kind.value,
                "body": body,
                "payload": payload,
                "state": DeliveryState.SENDING.value,
                "created_at": now,
                "send_attempts": row.attempts,
                "topic_id": campaign.topic_id,
            }
            new_messages.append(message)
            links.append({"b_id": row.recipient_id, "b_message": message_id})
            fresh.append((row, message))
            if not use_template:
                texts.append((row.contact_id, message))
        await _track_links(session, campaign, texts)
        for row, message in fresh:
            items.append(
                self._item(row, message["id"], message["content_kind"], message["body"],
                           message["payload"], row.address or "")
            )  # fmt: skip
        if new_messages:
            await session.execute(insert(Message), new_messages)
            t = cast(Table, CampaignRecipient.__table__)
            await session.execute(
                update(t)
                .where(t.c.id == bindparam("b_id"))
                .values(message_id=bindparam("b_message")),
                links,
            )
        r = CampaignRecipient
        for reason, ids in skips.items():
            await session.execute(
                update(r)
                .where(r.id.in_(ids))
                .values(state=SKIPPED, error_code=reason, done_at=now, lease_until=None)
            )
        for reason, message_ids in dropped.items():
            # Written in an earlier claim, never accepted by the provider: it is not sent now.
            await session.execute(
                update(Message)
                .where(
                    Message.id.in_(message_ids),
                    Message.state.in_(_UNSENT),
                    Message.provider_message_id.is_(None),
                )
                .values(
                    state=DeliveryState.FAILED.value,
                    error_code=reason,
                    error_reason="not sent: " + SKIP_REASONS.get(reason, reason),
                    failed_at=now,
                )
            )
        if done_sent:
            await session.execute(
                update(r)
                .where(r.id.in_(done_sent))
                .values(state=SENT, sent_at=now, done_at=now, lease_until=None)
            )
        return items

    @staticmethod
    def _skip_reason(row: _Row, capped: set[str]) -> str | None:
        if row.consent_state is None or row.address is None:
            return "contact_gone"
        if row.subscribed != CONFIRMED:
            return OPTED_OUT
        if row.consent_state in segments.BLOCKED_CONSENT or row.merged_into_id is not None:
            return "consent"
        if row.unreachable:
            return "unreachable"
        if row.contact_id in capped and row.message_id is None:
            return "frequency_cap"
        return None

    @staticmethod
    def _item(
        row: _Row,
        message_id: str,
        kind: str | None,
        body: str | None,
        payload: dict[str, Any] | None,
        address: str,
    ) -> Item:
        return Item(
            recipient_id=row.recipient_id,
            contact_id=row.contact_id,
            identity_id=row.identity_id,
            message_id=message_id,
            outbound=OutboundMessage(
                to=address,
                content_kind=ContentKind(kind or ContentKind.TEXT.value),
                body=body,
                payload=payload or {},
                client_reference=message_id,
                sender_kind=SenderKind.SYSTEM.value,
                last_inbound_at=row.last_inbound_at,
            ),
            attempts=row.attempts,
        )

    @staticmethod
    async def _template(
        session: AsyncSession, channel_id: str, part: cmp.ChannelContent
    ) -> MessageTemplate | None:
        if part.template is None:
            return None
        stmt = select(MessageTemplate).where(
            MessageTemplate.channel_id == channel_id,
            MessageTemplate.name == part.template.get("name"),
            MessageTemplate.status == "approved",
        )
        if part.template.get("language"):
            stmt = stmt.where(MessageTemplate.language == part.template["language"])
        return (await session.scalars(stmt.limit(1))).first()

    # -- send ------------------------------------------------------------------------------

    async def _send(
        self,
        loaded: LoadedChannel,
        bucket: Any,
        items: list[Item],
        topic_id: str | None,
        stopping: asyncio.Event | None = None,
    ) -> list[Outcome]:
        """Send at the bucket's pace; after a wait, skip whoever opted out meanwhile; once the
        worker is stopping, hand back what is not on the wire yet."""
        tasks: list[asyncio.Task[Outcome]] = []
        skipped: list[Outcome] = []
        waiting = list(items)
        checked = time.monotonic()
        while waiting:
            n = await _take_unless(bucket, len(waiting), stopping)
            if n == 0:
                skipped += [Outcome(i, released=True) for i in waiting]
                break
            if time.monotonic() - checked >= RECHECK_SECONDS:
                gone = await self._left_meanwhile(topic_id, waiting)
                checked = time.monotonic()
                skipped += [
                    Outcome(i, skipped=gone[i.contact_id]) for i in waiting if i.contact_id in gone
                ]
                waiting = [i for i in waiting if i.contact_id not in gone]
            for item in waiting[:n]:
                tasks.append(asyncio.create_task(self._send_one(loaded, item)))
            waiting = waiting[n:]
        return list(await asyncio.gather(*tasks)) + skipped

    async def _left_meanwhile(self, topic_id: str | None, items: list[Item]) -> dict[str, str]:
        """Contacts of `items` that may no longer get this campaign, with the reason."""
        contact_ids = list({item.contact_id for item in items})
        async with self.runtime.sessions() as session:
            rows = (
                await session.execute(
                    select(Contact.id, Contact.consent_state, Subscription.state)
                    .select_from(Contact)
                    .outerjoin(
                        Subscription,
                        and_(
                            Subscription.contact_id == Contact.id,
                            Subscription.topic_id == topic_id,
                        ),
                    )
                    .where(Contact.id.in_(contact_ids))
                )
            ).all()
        gone = {contact_id: "contact_gone" for contact_id in contact_ids}
        for contact_id, consent_state, subscribed in rows:
            if topic_id is not None and subscribed != CONFIRMED:
                gone[contact_id] = OPTED_OUT
            elif consent_state in segments.BLOCKED_CONSENT:
                gone[contact_id] = "consent"
            else:
                del gone[contact_id]
        return gone

    async def _send_one(self, loaded: LoadedChannel, item: Item) -> Outcome:
        try:
            async with self._wire:
                result = await loaded.adapter.send(item.outbound)
        except ChannelError as error:
            return Outcome(item, error=error)
        except Exception as exc:  # an adapter bug must not lose the batch's other outcomes
            log.exception("send of campaign message %s failed unexpectedly", item.message_id)
            return Outcome(item, error=TransientError(f"{type(exc).__name__}"))
        return Outcome(
            item, provider_message_id=result.provider_message_id, answered_at=self.clock()
        )

    # -- record ----------------------------------------------------------------------------

    async def _record_with_retries(
        self, channel_id: str, outcomes: list[Outcome], bucket: Any
    ) -> None:
        """Record a sent batch; a lost record would mean sending again after the lease."""
        for attempt in range(1, 6):
            try:
                await self.record(channel_id, outcomes, bucket if attempt == 1 else None)
                return
            except Exception:
                if attempt == 5:
                    raise
                log.exception("recording a campaign batch failed (attempt %d); retrying", attempt)
                await asyncio.sleep(0.2 * attempt)

    async def record(self, channel_id: str, outcomes: list[Outcome], bucket: Any = None) -> None:
        """Write the outcomes of one batch in one transaction."""
        now = self.clock()
        r = CampaignRecipient
        m = cast(Table, Message.__table__)
        skipped = [o for o in outcomes if o.skipped]
        released = [o for o in outcomes if o.released]
        sent = [o for o in outcomes if o.provider_message_id]
        limited = [o for o in outcomes if isinstance(o.error, RateLimited)]
        permanent = [o for o in outcomes if isinstance(o.error, PermanentError)]
        retry = [
            o
            for o in outcomes
            if o.error is not None and not isinstance(o.error, RateLimited | PermanentError)
        ]
        if limited and bucket is not None:
            bucket.pause(max((o.error.retry_after or 1.0) for o in limited if o.error))
        async with self.runtime.sessions() as session, session.begin():
            if sent:
                await session.execute(
                    update(m)
                    .where(m.c.id == bindparam("b_id"))
                    .values(
                        provider_message_id=func.coalesce(
                            m.c.provider_message_id, bindparam("b_pmid")
                        ),
                        state=case(
                            (
                                or_(*(m.c.state == unsent for unsent in _UNSENT)),
                                DeliveryState.SENT.value,
                            ),
                            else_=m.c.state,
                        ),
                        sent_at=func.coalesce(m.c.sent_at, bindparam("b_now", type_=UTCDateTime())),
                        send_attempts=bindparam("b_attempts"),
                    ),
                    [
                        {
                            "b_id": o.item.message_id,
                            "b_pmid": o.provider_message_id,
                            "b_now": o.answered_at or now,
                            "b_attempts": o.item.attempts,
                        }
                        for o in sent
                    ],
                )
                await session.execute(
                    update(r)
                    .where(r.id.in_([o.item.recipient_id for o in sent]))
                    .values(state=SENT, sent_at=now, done_at=now, lease_until=None, error_code=None)
                )
                await self._early_statuses(session, channel_id, sent)
            for outcome in skipped:
                await self._skip(session, outcome, now)
            if released:
                await self._again(session, released, now, count=False)
            if limited:
                delay = max((o.error.retry_after or 1.0) for o in limited if o.error)
                await self._again(session, limited, now + timedelta(seconds=delay), count=False)
            for outcome in permanent:
                await self._fail(session, outcome, now, DeliveryState.FAILED)
            for outcome in retry:
                if outcome.item.attempts >= MAX_ATTEMPTS:
                    await self._fail(session, outcome, now, DeliveryState.DEAD)
                else:
                    base = 2.0 if isinstance(outcome.error, AuthError) else 1.0
                    delay = queue.backoff_seconds(outcome.item.attempts, base=base)
                    await self._again(session, [outcome], now + timedelta(seconds=delay))

    async def _again(
        self, session: AsyncSession, outcomes: list[Outcome], at: datetime, *, count: bool = True
    ) -> None:
        r = CampaignRecipient
        values: dict[str, Any] = {"state": PENDING, "next_at": at, "lease_until": None}
        if not count:
            values["attempts"] = r.attempts - 1
        await session.execute(
            update(r).where(r.id.in_([o.item.recipient_id for o in outcomes])).values(**values)
        )
        await session.execute(
            update(Message)
            .where(
                Message.id.in_([o.item.message_id for o in outcomes]),
                Message.state == DeliveryState.SENDING.value,
                Message.provider_message_id.is_(None),
            )
            .values(state=DeliveryState.QUEUED.value)
        )

    @staticmethod
    async def _skip(session: AsyncSession, outcome: Outcome, now: datetime) -> None:
        reason = outcome.skipped or OPTED_OUT
        await session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id == outcome.item.recipient_id)
            .values(state=SKIPPED, error_code=reason, done_at=now, lease_until=None)
        )
        await session.execute(
            update(Message)
            .where(
                Message.id == outcome.item.message_id,
                Message.state.in_(_UNSENT),
                Message.provider_message_id.is_(None),
            )
            .values(
                state=DeliveryState.FAILED.value,
                error_code=reason,
                error_reason="not sent: " + SKIP_REASONS.get(reason, reason),
                failed_at=now,
            )
        )

    async def _fail(
        self, session: AsyncSession, outcome: Outcome, now: datetime, state: DeliveryState
    ) -> None:
        error = outcome.error
        assert error is not None
        values = failure_values(error, state)
        await session.execute(
            update(Message)
            .where(Message.id == outcome.item.message_id, Message.state.in_(_UNSENT))
            .values(**values)
        )
        await session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id == outcome.item.recipient_id)
            .values(
                state=FAILED,
                error_code=(error.code or error.kind)[:32],
                done_at=now,
                lease_until=None,
            )
        )
        if error.unreachable:
            await session.execute(
                update(ContactIdentity)
                .where(ContactIdentity.id == outcome.item.identity_id)
                .values(unreachable=True)
            )

    async def apply_kept_watermarks(self, outcomes: list[Outcome]) -> None:
        """Move recorded messages on by receipts that came before the record (Messenger's "read
        up to"): one transaction per message, so no two conversation locks are ever held at once
        (webhooks take them in arrival order). The batch is recorded already; a failure here
        leaves a message "sent", it loses nothing."""
        for outcome in outcomes:
            if not outcome.provider_message_id:
                continue
            try:
                async with self.runtime.sessions() as session, session.begin():
                    stored = (
                        await session.execute(
                            select(Message.workspace_id, Message.conversation_id).where(
                                Message.id == outcome.item.message_id
                            )
                        )
                    ).first()
                    if stored is None:
                        continue
                    workspace_id, conversation_id = stored
                    state = await apply_kept_watermarks(
                        session, conversation_id, outcome.item.message_id
                    )
                    if state is not None:
                        outbox.record(
                            session,
                            MessageStatusChanged(
                                workspace_id, conversation_id, state.value, outcome.item.message_id
                            ),
                        )
            except SQLAlchemyError as exc:
                log.warning(
                    "campaign message %s: kept receipts not applied (%s)",
                    outcome.item.message_id,
                    type(exc).__name__,
                )

    @staticmethod
    async def _early_statuses(session: AsyncSession, channel_id: str, sent: list[Outcome]) -> None:
        """Apply statuses that were kept pending because they came before this record."""
        ids = [o.provider_message_id for o in sent if o.provider_message_id]
        early = set(
            await session.scalars(
                select(PendingStatus.provider_message_id)
                .where(
                    PendingStatus.channel_id == channel_id,
                    PendingStatus.provider_message_id.in_(ids),
                )
                .distinct()
            )
        )
        for provider_id in early:
            await apply_pending_statuses(session, channel_id, provider_id)

    async def _finish_if_done(self, campaign_id: str) -> None:
        r = CampaignRecipient
        now = self.clock()
        async with self.runtime.sessions() as session, session.begin():
            remaining = await session.scalar(
                select(r.id).where(r.campaign_id == campaign_id, r.state.in_(OPEN_STATES)).limit(1)
            )
            if remaining is None:
                finished = await session.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.state == cmp.RUNNING)
                    .values(state=cmp.DONE, finished_at=now, updated_at=now)
                    .returning(Campaign.workspace_id)
                )
                for (workspace_id,) in finished.all():
                    outbox.record(
                        session, CampaignStateChanged(workspace_id, campaign_id, cmp.DONE)
                    )

    async def drain(self, campaign_id: str, *, timeout: float = 60.0) -> str:
        """Tick until the campaign is done, cancelled or paused (tests and the bench)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.tick()
            async with self.runtime.sessions() as session:
                state = await session.scalar(
                    select(Campaign.state).where(Campaign.id == campaign_id)
                )
            if state in (cmp.DONE, cmp.CANCELLED, cmp.PAUSED, None):
                return str(state)
            await asyncio.sleep(0.05)
        raise TimeoutError(f"campaign {campaign_id} did not finish within {timeout} s")


async def _take_unless(bucket: Any, wanted: int, stopping: asyncio.Event | None) -> int:
    """Slots from the bucket, or 0 once `stopping` is set (nothing is taken then)."""
    if stopping is None:
        return int(await bucket.take(wanted))
    if stopping.is_set():
        return 0
    take = asyncio.ensure_future(bucket.take(wanted))
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait((take, stop), return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if take.done():
        return int(take.result())
    take.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await take
    return 0


async def dispatch_poller(runtime: Any, stopping: asyncio.Event) -> None:
    """The worker's campaign loop (a poller of `jobs.worker.Worker`)."""
    await Dispatcher(runtime).run(stopping)


async def _track_links(
    session: AsyncSession, campaign: Campaign, texts: list[tuple[str, dict[str, Any]]]
) -> None:
    """Rewrite the URLs of new campaign texts to counting redirects: one query set per batch.

    A recipient gets links of their own only with link-tracking consent; everyone else shares
    the campaign's anonymous link per URL.
    """
    if not any(tracked.find_urls(message["body"] or "") for _, message in texts):
        return
    prefix = tracked.redirect_base(tracked.session_base_url(session))
    uris = {
        id(message): tracked.trackable_uris(message["body"] or "", prefix) for _, message in texts
    }
    if not any(uris.values()):
        return
    consenting = await tracked.tracking_granted(session, [contact_id for contact_id, _ in texts])
    person = {
        id(message): contact_id if contact_id in consenting else None
        for contact_id, message in texts
    }
    wanted = [(person[key], uri) for key, found in uris.items() for uri in found]
    tokens = await tracked.link_tokens(session, campaign.workspace_id, campaign.id, wanted)
    for _, message in texts:
        if uris[id(message)]:
            message["body"] = tracked.substitute(
                message["body"], prefix, tokens, person[id(message)]
            )
