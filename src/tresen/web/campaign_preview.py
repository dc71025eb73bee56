"""What a campaign looks like on the customer's phone or in their mailbox, per channel kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import campaigns, segments
from tresen.channels.sms import segments as sms_segments
from tresen.db.tables import Contact, MessageTemplate
from tresen.pipeline.templates import render as render_template
from tresen.pipeline.templates import variables

SAMPLE = {"first_name": "Alex", "last_name": "Beispiel", "name": "Alex Beispiel"}
"""The values shown when nobody matches yet."""


@dataclass(frozen=True)
class Preview:
    """One channel kind's message as its customer sees it."""

    kind: str
    text: str
    template_text: str | None = None
    sms_encoding: str | None = None
    sms_segments: int = 0
    characters: int = 0
    subject: str | None = None


@dataclass(frozen=True)
class Sample:
    """The contact whose values fill the variables of the preview."""

    name: str
    values: dict[str, str]
    real: bool


async def sample_contact(session: AsyncSession, workspace_id: str, flt: dict[str, Any]) -> Sample:
    """The first contact the filter matches, or a made-up one."""
    try:
        resolved = await segments.resolve(session, workspace_id, segments.parse_filter(flt))
    except segments.SegmentError:
        resolved = None
    if resolved is not None:
        ids = segments.matching_contacts(workspace_id, resolved).order_by(Contact.id).limit(1)
        row = await session.scalar(select(Contact).where(Contact.id.in_(ids.scalar_subquery())))
        if row is not None:
            values = campaigns.contact_variables(row.display_name, row.attributes)
            return Sample(row.display_name or values["name"], values, True)
    return Sample(SAMPLE["name"], dict(SAMPLE), False)


def template_choice(value: str) -> tuple[str, str] | None:
    """("news_update", "de") from the select's "news_update:de"; None for no template."""
    name, _, language = value.partition(":")
    return (name, language) if name and language else None


def previews(
    content: dict[str, Any],
    kinds: list[str],
    values: dict[str, str],
    template: MessageTemplate | None,
) -> list[Preview]:
    """Each kind's message with the sample's values filled in (SMS: parts and encoding)."""
    out: list[Preview] = []
    for kind in kinds:
        part = campaigns.content_for(content, kind)
        text = campaigns.fill_variables(part.body, values)
        template_text = None
        if template is not None and part.template is not None:
            params = [campaigns.fill_variables(p, values) for p in part.template["parameters"]]
            params += [""] * (variables(template.body) - len(params))
            template_text = render_template(template.body, params)
        if kind == "sms":
            info = sms_segments(text)
            out.append(Preview(kind, text, None, info.encoding, info.segments, info.characters))
        elif kind == "email":
            subject = campaigns.personal_payload(part.payload, values).get("subject")
            out.append(Preview(kind, text, subject=subject))
        else:
            out.append(Preview(kind, text, template_text))
    return out
