"""Live streams end when the process stops, and send keepalives while nothing happens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
KEEPALIVE_SECONDS = 15.0
"""Below the idle timeouts of common proxies (nginx 60 s, many load balancers 60 s)."""


class Keepalive:
    """Yielded by `until_stopped` when nothing happened for a while."""


KEEPALIVE = Keepalive()


@contextlib.contextmanager
def stop_event_on_sigterm() -> Iterator[asyncio.Event]:
    """An event set when SIGTERM or SIGINT arrives; the server's own handling goes on as before
    (its handlers are called after ours, and put back at the end)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        before = signal.getsignal(sig)

        def handler(signum: int, frame: Any, before: Any = before) -> None:
            loop.call_soon_threadsafe(stop.set)
            if callable(before):
                before(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. a test's server): no signals here
            continue
        previous[sig] = before
    try:
        yield stop
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


async def until_stopped(
    source: AsyncIterable[T], stop: asyncio.Event, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[T | Keepalive]:
    """The items of `source` until `stop` is set, with KEEPALIVE after each quiet `keepalive`."""
    items = aiter(source)
    stopped = asyncio.ensure_future(stop.wait())
    following: asyncio.Future[T] | None = None
    try:
        while not stop.is_set():
            if following is None:
                following = asyncio.ensure_future(anext(items))
            watched: set[asyncio.Future[Any]] = {following, stopped}
            done, _ = await asyncio.wait(
                watched, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED
            )
            if following in done:
                try:
                    item = following.result()
                except StopAsyncIteration:
                    return
                following = None
                yield item
            elif not done:
                yield KEEPALIVE
    finally:
        stopped.cancel()
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following


def stopping(request: Any) -> asyncio.Event:
    """The app's stop event (set at SIGTERM); a never-set one when the app has none."""
    event = getattr(request.app.state, "stopping", None)
    if event is None:
        event = asyncio.Event()
        request.app.state.stopping = event
    return event
