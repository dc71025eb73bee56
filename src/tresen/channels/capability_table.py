"""The capability table of all channel kinds as Markdown (docs/channels/README.md embeds it)."""

from __future__ import annotations

from datetime import timedelta

from tresen.channels.base import Capabilities
from tresen.channels.registry import CHANNEL_CLASSES, channel_factory

BEGIN, END = "<!-- capabilities:begin -->", "<!-- capabilities:end -->"


def _window(value: timedelta | None) -> str:
    if value is None:
        return "none"
    hours = int(value / timedelta(hours=1))
    return f"{hours // 24} days" if hours % 24 == 0 and hours > 24 else f"{hours} h"


def _row(kind: str, caps: Capabilities) -> list[str]:
    agent = _window(caps.human_agent_window) if caps.human_agent_window else "-"
    buttons = (
        f"up to {caps.max_buttons} (titles ≤ {caps.max_button_title})"
        if caps.interactive
        else "numbered options"
    )
    return [
        kind,
        _window(caps.window),
        agent,
        "yes" if caps.templates else "no",
        buttons,
        "yes" if caps.media else "no",
        f"{caps.max_text_length:,}",
        f"{caps.messages_per_second:g}/s",
        ", ".join(sorted(caps.opt_out_keywords)),
    ]


def markdown() -> str:
    """One table row per channel kind, from the channels' own capability data."""
    header = [
        "channel",
        "window",
        "agent window",
        "templates",
        "buttons",
        "media",
        "max text",
        "rate",
        "opt-out words",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind in CHANNEL_CLASSES:
        lines.append("| " + " | ".join(_row(kind, channel_factory(kind).capabilities)) + " |")
    return "\n".join(lines)
