"""The slower work after a message is stored: opt-out, consent, subscriptions, then routing."""

from __future__ import annotations

from tresen.broadcast import topics
from tresen.events import CONVERSATION_UPDATED, Event
from tresen.inbox import routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.inbound import PROCESS_JOB
from tresen.privacy import consent
from tresen.runtime import Runtime


async def process_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Handle one new inbound message; messages it queues are sent by the send jobs."""
    async with runtime.sessions() as session, session.begin():
        message_id = str(job.payload.get("message_id", ""))
        if not await topics.handle_before_consent(session, message_id):
            outcome = "granted"
            if runtime.settings.consent_first:
                outcome = await consent.process(session, message_id)
            if outcome not in ("answered", "gone"):
                await topics.handle_inbound(
                    session, runtime.settings, message_id, consent_ok=outcome == "granted"
                )
        routed = await routing.route_for_message(session, str(job.payload.get("message_id", "")))
        await queue.finish(session, job.id, worker_id)
    runtime.jobs_ready.set()
    if routed is not None and job.workspace_id:
        await runtime.events.publish(Event(job.workspace_id, CONVERSATION_UPDATED, routed))


HANDLERS = {PROCESS_JOB: process_job}
