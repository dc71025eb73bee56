"""Order status from the shop's HTTP API, shown only with a matching second factor."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import httpx

from tresen.bot.text import clean

log = logging.getLogger(__name__)

Missing = Literal["not_found", "unavailable"]


@dataclass(frozen=True)
class Order:
    """What the bot may tell a verified customer about an order."""

    number: str
    status: str
    tracking_url: str | None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def factor_matches(data: dict[str, object], factor: str) -> bool:
    """The customer's second factor (e-mail or postcode) is the order's."""
    factor = clean(factor)
    if "@" in factor:
        email = data.get("email")
        return isinstance(email, str) and _same(clean(email).casefold(), factor.casefold())
    postcode = data.get("postcode")
    return isinstance(postcode, str | int) and _same(
        clean(str(postcode)).replace(" ", ""), factor.replace(" ", "")
    )


async def lookup(
    http: httpx.AsyncClient,
    base_url: str,
    token: str,
    number: str | None,
    factor: str | None,
    timeout: float = 5.0,
) -> Order | Missing:
    """The order when number and second factor match; "not_found" for a missing order and for a
    wrong factor alike (so nobody learns whether a number exists); "unavailable" when the shop
    cannot be asked."""
    if not base_url:
        return "unavailable"
    if not number or not factor:
        return "not_found"
    url = f"{base_url.rstrip('/')}/orders/{quote(number, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = await http.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        log.warning("order look-up failed: %s", type(exc).__name__)
        return "unavailable"
    if response.status_code == 404:
        return "not_found"
    if response.status_code != 200:
        log.warning("order look-up: the shop answered %d", response.status_code)
        return "unavailable"
    try:
        data = response.json()
    except ValueError:
        return "unavailable"
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        log.warning("order look-up: the shop's answer has no status")
        return "unavailable"
    if not factor_matches(data, factor):
        return "not_found"
    tracking = data.get("tracking_url")
    tracking = tracking if isinstance(tracking, str) and tracking.startswith("https://") else None
    return Order(str(data.get("number") or number), clean(data["status"])[:60], tracking)
