"""A fake shop's order API (HTTP), for the demo and the tests of the bot's order status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from litestar import Litestar, Request, get
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from tresen.sim.server import serve_asgi

DEMO_TOKEN = "sim-shop-token"
DEFAULT_PORT = 9010
"""Where `tresen sim shop` listens and `tresen demo` runs the fake shop."""
DEMO_ORDERS: tuple[dict[str, Any], ...] = (
    {
        "number": "RH-100234",
        "status": "shipped",
        "email": "jana@example.com",
        "postcode": "70173",
        "tracking_url": "https://tracking.example/dhl/00340434161094012345",
        "carrier": "DHL",
    },
    {
        "number": "RH-100235",
        "status": "processing",
        "email": "max@example.com",
        "postcode": "10115",
        "tracking_url": None,
        "carrier": None,
    },
    {
        "number": "RH-100236",
        "status": "delivered",
        "email": "lea@example.com",
        "postcode": "80331",
        "tracking_url": "https://tracking.example/dpd/01234567890123",
        "carrier": "DPD",
    },
)


@dataclass
class ShopSimulator:
    """Orders by number; every request needs the Bearer token; the log of numbers asked for."""

    token: str = DEMO_TOKEN
    orders: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {o["number"]: dict(o) for o in DEMO_ORDERS}
    )
    delay_seconds: float = 0.0
    fail_with: int | None = None  # answer every request with this HTTP status
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def app(self) -> Litestar:
        """The shop's HTTP API: GET /orders/{number} (404 when there is none)."""

        @get("/orders/{number:str}")
        async def order(request: Request[Any, Any, Any], number: FromPath[str]) -> dict[str, Any]:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                raise HTTPException(status_code=401, detail="bad token")
            self.requests.append(number)
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if self.fail_with is not None:
                raise HTTPException(status_code=self.fail_with, detail="simulated failure")
            found = self.orders.get(number.upper())
            if found is None:
                raise HTTPException(status_code=404, detail="no such order")
            return found

        @get("/healthz")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        return Litestar([order, health], debug=False)


@asynccontextmanager
async def run_shop_simulator(
    sim: ShopSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ShopSimulator]:
    """Serve the fake shop over HTTP while the context is open."""
    sim = sim or ShopSimulator()
    async with serve_asgi(sim.app(), host, port) as base_url:
        sim.base_url = base_url
        yield sim


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim shop` on the given Typer app."""

    @sim_app.command("shop")
    def sim_shop(
        port: Annotated[int, typer.Option(min=1, max=65535)] = DEFAULT_PORT,
        host: str = "127.0.0.1",
        token: Annotated[str, typer.Option(help="The Bearer token the shop expects.")] = DEMO_TOKEN,
    ) -> None:
        """Run the fake shop's order API (demo orders RH-100234..RH-100236)."""

        async def run() -> None:
            async with run_shop_simulator(ShopSimulator(token=token), host, port) as sim:
                typer.echo(f"shop simulator on {sim.base_url}")
                typer.echo(f"  TRESEN_SHOP_URL={sim.base_url} TRESEN_SHOP_TOKEN={token}")
                for o in DEMO_ORDERS:
                    typer.echo(f"  order {o['number']}: postcode {o['postcode']}, {o['email']}")
                await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
