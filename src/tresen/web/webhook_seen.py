"""The last webhook call per channel: time and result, one row update per channel.

A busy channel gets many calls a second; only a change of result, or a call a minute after the
last write, is written, so the ingest path stays as fast as it was.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from tresen.db.tables import ChannelRow
from tresen.db.types import utcnow
from tresen.runtime import Runtime

ACCEPTED = "accepted"
REFUSED = "refused"
"""The signature (or the secret) did not match."""
MALFORMED = "malformed"
"""Authentic, but the body is not what the provider sends."""
WRITE_EVERY = 60.0
"""Seconds between writes while the result stays the same."""

logger = logging.getLogger(__name__)
_written: dict[str, tuple[str, float]] = {}


def _due(channel_id: str, result: str, now: float) -> bool:
    last = _written.get(channel_id)
    return last is None or last[0] != result or now - last[1] >= WRITE_EVERY


async def note(runtime: Runtime, channel_id: str, result: str) -> None:
    """Record a webhook call's result when it is news; a failed write never fails the call."""
    now = time.monotonic()
    if not _due(channel_id, result, now):
        return
    if len(_written) > 10_000:
        _written.clear()
    _written[channel_id] = (result, now)
    try:
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(ChannelRow)
                .where(ChannelRow.id == channel_id)
                .values(last_webhook_at=utcnow(), last_webhook_result=result)
                .execution_options(synchronize_session=False)
            )
    except SQLAlchemyError:
        _written.pop(channel_id, None)
        logger.warning("the last webhook of a channel could not be recorded", exc_info=True)
