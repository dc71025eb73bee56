"""The slower work after a message is stored: consent first, then auto-replies and routing."""

from __future__ import annotations

from sqlalchemy import select

from tresen.db.tables import Message
from tresen.events import CONVERSATION_UPDATED, Event
from tresen.inbox import autoreply, routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline import options
from tresen.pipeline.inbound import PROCESS_JOB
from tresen.privacy import consent
from tresen.runtime import Runtime


async def process_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Handle one new inbound message; messages it queues are sent by the send jobs."""
    message_id = str(job.payload.get("message_id", ""))
    async with runtime.sessions() as session, session.begin():
        await options.resolve_numbered_reply(session, message_id)
        outcome = (
            await consent.process(session, message_id)
            if runtime.settings.consent_first
            else "granted"
        )
        if outcome == "granted":
            body = await session.scalar(select(Message.body).where(Message.id == message_id))
            await autoreply.run(session, message_id, consent.message_language(body))
        routed = await routing.route_for_message(session, message_id)
        await queue.finish(session, job.id, worker_id)
    runtime.jobs_ready.set()
    if routed is not None and job.workspace_id:
        await runtime.events.publish(Event(job.workspace_id, CONVERSATION_UPDATED, routed))


HANDLERS = {PROCESS_JOB: process_job}
