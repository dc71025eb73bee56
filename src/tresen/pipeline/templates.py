"""Message templates: submitted to the provider, synced with their review state, sent with values.

Only WhatsApp has templates today (`Capabilities.templates`); a channel that manages them offers
a `templates()` object with `list()` and `submit()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ConfigError
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, MessageTemplate
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind
from tresen.pipeline.outbound import OutboundContent, OutboundRefused

NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
CATEGORIES = ("utility", "marketing", "authentication")
_VARIABLE = re.compile(r"\{\{(\d+)\}\}")
MAX_VALUE = 1024


class TemplateError(DomainError):
    """A template request that cannot be done, saying why."""


@dataclass(frozen=True)
class Draft:
    """A template before submission."""

    name: str
    language: str
    category: str
    body: str


def check_draft(name: str, language: str, category: str, body: str) -> Draft:
    """A valid draft, or a TemplateError naming the field."""
    if not NAME.match(name):
        raise TemplateError(
            "template_name", "name: lowercase letters, digits and _ only (e.g. order_shipped)"
        )
    if not LANGUAGE.match(language):
        raise TemplateError("template_language", "language: a code such as de, en or en_US")
    if category not in CATEGORIES:
        raise TemplateError(
            "template_category",
            "category: one of {categories}",
            params={"categories": ", ".join(CATEGORIES)},
        )
    if not body.strip() or len(body) > 1024:
        raise TemplateError("template_body", "body: 1 to 1024 characters")
    return Draft(name, language, category, body)


def variables(body: str) -> int:
    """How many values the body needs ({{1}} … {{n}})."""
    numbers = {int(n) for n in _VARIABLE.findall(body)}
    return max(numbers, default=0)


def render(body: str, values: list[str]) -> str:
    """The body with its variables filled in."""
    return _VARIABLE.sub(lambda m: values[int(m.group(1)) - 1], body)


def content(template: MessageTemplate, values: list[str]) -> OutboundContent:
    """A template message with checked values (the rendered text kept for the timeline)."""
    if template.status != "approved":
        raise OutboundRefused(
            "template_not_approved",
            "template {name!r} ({language}) is {status}, not approved",
            params={
                "name": template.name,
                "language": template.language,
                "status": template.status,
            },
        )
    needed = variables(template.body)
    cleaned = [v.strip() for v in values]
    if len(cleaned) != needed:
        raise OutboundRefused(
            "template_parameters",
            "{name!r} needs {needed} values, got {count}",
            params={"name": template.name, "needed": needed, "count": len(cleaned)},
        )
    for n, value in enumerate(cleaned, start=1):
        if not value or len(value) > MAX_VALUE or "\n" in value or "\t" in value:
            raise OutboundRefused(
                "template_parameters",
                "value {n} must be 1 to {max} characters without line breaks or tabs",
                params={"n": n, "max": MAX_VALUE},
            )
    return OutboundContent(
        ContentKind.TEMPLATE,
        render(template.body, cleaned),
        {"name": template.name, "language": template.language, "parameters": cleaned},
    )


def _manager(channel: ChannelRow, http: Any) -> Any:
    if not channel_factory(channel.kind).capabilities.templates:
        raise TemplateError(
            "no_templates", "{kind} has no message templates", params={"kind": channel.kind}
        )
    adapter = channel_factory(channel.kind)(channel.config, http)
    if not hasattr(adapter, "templates"):
        raise TemplateError(
            "templates_unmanaged",
            "tresen cannot manage {kind} templates yet",
            params={"kind": channel.kind},
        )
    try:
        return adapter.templates()
    except ConfigError as exc:
        raise TemplateError(exc.code, exc.template, exc.status, params=exc.params) from exc


async def submit(
    session: AsyncSession, http: Any, channel: ChannelRow, draft: Draft
) -> MessageTemplate:
    """Submit a draft for review and record it as pending."""
    exists = await session.scalar(
        select(MessageTemplate.id).where(
            MessageTemplate.channel_id == channel.id,
            MessageTemplate.name == draft.name,
            MessageTemplate.language == draft.language,
        )
    )
    if exists:
        raise TemplateError(
            "template_exists",
            "{name!r} ({language}) exists already",
            409,
            params={"name": draft.name, "language": draft.language},
        )
    provider_id = await _manager(channel, http).submit(
        draft.name, draft.language, draft.category, draft.body
    )
    row = MessageTemplate(
        id=new_id(),
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        name=draft.name,
        language=draft.language,
        category=draft.category,
        body=draft.body,
        status="pending",
        provider_id=provider_id or None,
        updated_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def sync(session: AsyncSession, http: Any, channel: ChannelRow) -> list[MessageTemplate]:
    """Bring the channel's templates and their review states up to date with the provider."""
    remote = await _manager(channel, http).list()
    existing = {
        (t.name, t.language): t
        for t in await session.scalars(
            select(MessageTemplate).where(MessageTemplate.channel_id == channel.id)
        )
    }
    for item in remote:
        if not item["name"] or not item["language"]:
            continue
        row = existing.get((item["name"], item["language"]))
        if row is None:
            row = MessageTemplate(
                id=new_id(),
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                name=item["name"],
                language=item["language"],
            )
            session.add(row)
            existing[(row.name, row.language)] = row
        row.category = item["category"] or "utility"
        row.body = item["body"]
        row.status = item["status"] or "pending"
        row.rejected_reason = item.get("rejected_reason")
        row.provider_id = item["provider_id"] or row.provider_id
        row.updated_at = utcnow()
    await session.flush()
    return sorted(existing.values(), key=lambda t: (t.name, t.language))


async def approved(session: AsyncSession, channel_id: str) -> list[MessageTemplate]:
    """The channel's approved templates, by name."""
    return list(
        await session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.channel_id == channel_id, MessageTemplate.status == "approved")
            .order_by(MessageTemplate.name, MessageTemplate.language)
        )
    )
