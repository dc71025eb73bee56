"""The bot's memory of one conversation (a JSON dict): loading it, pausing a flow, what a new
flow may take over, and what must be forgotten."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tresen.bot.flows import FlowSpec

# Kept from turn to turn when present; everything else is rebuilt by each turn.
KEPT = ("product", "products", "found", "order_failures", "order", "mood", "last")


def load(state: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """The stored state as this turn works on it (states of older versions load too)."""
    new: dict[str, Any] = {
        "misses": int(state.get("misses", 0) or 0),
        "matched": list(state.get("matched") or []),
        "slots": dict(state.get("slots") or {}),
        "flow": dict(state["flow"]) if isinstance(state.get("flow"), dict) else None,
        "paused": dict(state["paused"]) if isinstance(state.get("paused"), dict) else None,
        "language": lang,
    }
    for key in KEPT:
        if state.get(key):
            new[key] = state[key]
    if new.get("product") and "last" not in new:
        new["last"] = "product"
    return new


def pause(state: dict[str, Any], now: float) -> None:
    """The running flow waits; the bot offers it again once nothing else runs."""
    flow = state.get("flow")
    if isinstance(flow, dict) and flow.get("status") == "asking":
        state["paused"] = {**flow, "status": "paused", "offered": False, "updated_at": now}
        state["flow"] = None


def carried(state: Mapping[str, Any], spec: FlowSpec) -> dict[str, Any]:
    """What a new flow may take from earlier in the conversation: facts about the customer
    (an order number, the body height), never an earlier search's criteria."""
    slots = state.get("slots") or {}
    return {
        s.name: slots[s.name]
        for s in spec.slots
        if s.type in ("order_number", "height") and s.name in slots
    }


def forget_factor(state: dict[str, Any], spec: FlowSpec) -> None:
    """Drop the second factor of an order look-up from the stored state."""
    names = [s.name for s in spec.slots if s.type in ("verification", "postcode", "email")]
    flow = state.get("flow")
    for name in names:
        state.get("slots", {}).pop(name, None)
        if isinstance(flow, dict):
            flow.get("slots", {}).pop(name, None)
