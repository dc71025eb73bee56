"""Web chat under open event streams: what one visitor's message costs while others listen.

    python benchmarks/webchat_streams.py --streams 20 --messages 40

Opens STREAMS (+5) event streams of a visitor who waits silently (one client address, so
the per-client cap applies), then 10 other visitors write MESSAGES messages in turn. Prints ONE JSON
line: the median and p95 time of a message POST, how often the waiting streams re-read the
database because of those messages (0 when each stream wakes only for its own visitor), and
how many streams over the cap were refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tresen.app import create_app
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.migrate import upgrade_to_head
from tresen.runtime import Runtime
from tresen.settings import Settings
from tresen.sim.server import serve_asgi
from tresen.web import webchat

SHOP = "https://shop.example"
WRITERS = 10  # visitors who write (new conversations are limited per client address)


async def run(streams: int, messages: int) -> dict[str, Any]:
    """Measure in a scratch SQLite install; returns the figures."""
    loads = 0
    original = webchat._visible

    async def counting(rt: Runtime, channel_id: str, address: str) -> Any:
        nonlocal loads
        loads += 1
        return await original(rt, channel_id, address)

    webchat._visible = counting  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(data_dir=Path(scratch), secret_key="bench", base_url="http://bench")
        runtime = Runtime.create(settings)
        await upgrade_to_head(runtime.engine)
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "Bench")
            channel = await add_channel(
                session, ws.id, "webchat", "Chat", {"allowed_origins": [SHOP], "title": "B"}
            )
        app = create_app(settings, runtime=runtime, embedded_worker=False, migrate=False)
        async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as web:
            head = {"origin": SHOP}

            async def session_token() -> str:
                r = await web.post(f"/chat/{channel.id}/session", json={}, headers=head)
                return str(r.json()["token"])

            open_streams: list[asyncio.Task[None]] = []
            refused = 0
            listener = await session_token()  # one silent visitor, many tabs
            for _ in range(streams + 5):
                ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

                async def hold(ready: asyncio.Future[int] = ready) -> None:
                    with contextlib.suppress(httpx.HTTPError):
                        async with web.stream(
                            "GET",
                            f"/chat/{channel.id}/events",
                            headers={**head, "x-tresen-visitor": listener},
                        ) as r:
                            if r.status_code != 200:
                                ready.set_result(r.status_code)
                                return
                            async for _ in r.aiter_bytes():
                                if not ready.done():
                                    ready.set_result(200)  # running, so counted

                open_streams.append(asyncio.create_task(hold()))
                refused += await ready != 200
            await asyncio.sleep(0.5)
            loads_before = loads
            writers = [await session_token() for _ in range(WRITERS)]
            timings = []
            for i in range(messages):
                started = time.perf_counter()
                r = await web.post(
                    f"/chat/{channel.id}/messages",
                    json={"id": f"bench-{i:04d}", "text": "Hallo"},
                    headers={**head, "x-tresen-visitor": writers[i % WRITERS]},
                )
                timings.append((time.perf_counter() - started) * 1000)
                if r.status_code != 201:
                    print(f"message {i}: HTTP {r.status_code}; stopping", file=sys.stderr)
                    break
            await asyncio.sleep(0.5)
            for task in open_streams:
                task.cancel()
            await asyncio.gather(*open_streams, return_exceptions=True)
        await runtime.close()
    timings.sort()
    return {
        "bench": "webchat_streams",
        "open_streams": streams + 5 - refused,
        "refused_streams": refused,
        "messages": len(timings),
        "post_ms_median": round(statistics.median(timings), 1),
        "post_ms_p95": round(timings[int(len(timings) * 0.95) - 1], 1),
        "stream_rereads_caused": loads - loads_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=webchat.STREAMS_PER_CLIENT)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.streams, args.messages))))


if __name__ == "__main__":
    main()
