"""A fake OpenAI-compatible chat-completions server that tests steer (faithful, hallucinating,
slow, echoing the customer's injection)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, post
from litestar.exceptions import HTTPException

from tresen.sim.server import serve_asgi

MODES = ("faithful", "hallucinate_price", "invent_link", "slow", "echo_customer", "error")


@dataclass
class FakeLLM:
    """Answers /v1/chat/completions according to `mode`; keeps the requests it got."""

    mode: str = "faithful"
    api_key: str = "sim-llm-key"
    delay_seconds: float = 5.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def reply(self, body: dict[str, Any]) -> str:
        """The text the model 'writes' for this request."""
        user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "{}")
        try:
            data = json.loads(user)
        except ValueError:
            data = {"ANSWER": user}
        answer = str(data.get("ANSWER", ""))
        if self.mode == "hallucinate_price":
            return re.sub(r"\d+,\d\d €", "19,99 €", answer, count=1) + " Heute nur 9,99 €!"
        if self.mode == "invent_link":
            return answer + " Mehr unter https://evil.example/deal"
        if self.mode == "echo_customer":
            return str(data.get("CUSTOMER_MESSAGE", ""))
        return f"Sehr gern! {answer}"

    def app(self) -> Litestar:
        """The HTTP API (`/v1/chat/completions`)."""

        @post("/v1/chat/completions", status_code=200)
        async def completions(request: Request[Any, Any, Any]) -> dict[str, Any]:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                raise HTTPException(status_code=401, detail="bad key")
            body = await request.json()
            self.requests.append(body)
            if self.mode == "slow":
                await asyncio.sleep(self.delay_seconds)
            if self.mode == "error":
                raise HTTPException(status_code=500, detail="simulated failure")
            return {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply(body)},
                        "finish_reason": "stop",
                    }
                ],
            }

        return Litestar([completions], debug=False)


@asynccontextmanager
async def run_fake_llm(
    fake: FakeLLM | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FakeLLM]:
    """Serve the fake model over HTTP; its base URL ends in /v1 like real servers'."""
    fake = fake or FakeLLM()
    async with serve_asgi(fake.app(), host, port) as base:
        fake.base_url = base + "/v1"
        yield fake
