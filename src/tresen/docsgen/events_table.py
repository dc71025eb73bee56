"""The event types and consumers for docs/events.md, from the code that defines them."""

from __future__ import annotations

import dataclasses

from tresen.domain.events import EVENT_TYPES, DomainEvent
from tresen.handlers.events import CONSUMERS


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _section(cls: type[DomainEvent]) -> str:
    lines = [f"### `{cls.TYPE}` (version {cls.VERSION})", "", _cell(cls.ABOUT), ""]
    lines += ["| field | meaning |", "|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name != "workspace_id":
            lines.append(f"| `{f.name}` | {_cell(str(f.metadata.get('doc', '')))} |")
    return "\n".join(lines)


def types_markdown() -> str:
    """One section per event type: when it is written, then its fields."""
    return "\n\n".join(_section(cls) for cls in EVENT_TYPES.values())


def consumers_markdown() -> str:
    """The consumers of `tresen.handlers.events.CONSUMERS`: name, types, what they do."""
    lines = ["| consumer | types | what it does |", "|---|---|---|"]
    for c in CONSUMERS:
        types = ", ".join(f"`{t}`" for t in sorted(c.types))
        lines.append(f"| `{c.name}` | {types} | {_cell(c.about)} |")
    return "\n".join(lines)
