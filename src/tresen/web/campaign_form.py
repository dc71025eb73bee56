"""What every step of the campaign wizard shares: paths, names, the admin check, the draft, and
a draft turned back into the wizard's fields to change it without typing again."""

from __future__ import annotations

from typing import Any

from litestar import Request

from tresen.channels.registry import channel_factory
from tresen.db.tables import Campaign
from tresen.domain.errors import DomainError
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden, NotFound
from tresen.web.inbox import _runtime, current_actor

BASE = "/inbox/admin/campaigns/wizard"
KINDS = ("whatsapp", "sms", "telegram", "email", "messenger", "instagram", "webchat", "xmpp")
ADDRESS_HINTS = {
    "whatsapp": "4915112345678",
    "sms": "+4915112345678",
    "telegram": "123456789",
    "email": "ich@example.com",
}


def kind_name(kind: str) -> str:
    """A channel kind as people call it ("WhatsApp")."""
    try:
        return channel_factory(kind).display_name
    except KeyError:
        return kind


def page_helpers() -> dict[str, Any]:
    """What the wizard's templates call: channel kind names, address examples."""
    return {"kind_name": kind_name, "address_hint": lambda kind: ADDRESS_HINTS.get(kind, "")}


class WizardError(DomainError):
    """A wizard step that cannot go on, in plain words."""


async def admin_actor(request: Request[Any, Any, Any]) -> Actor:
    """The signed-in admin (only admins create and send campaigns)."""
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins create and send campaigns")
    return actor


async def draft_of(request: Request[Any, Any, Any], actor: Actor, campaign_id: str) -> Campaign:
    """A campaign of the actor's workspace, or NotFound."""
    async with _runtime(request).sessions() as session:
        row = await session.get(Campaign, campaign_id[:40])
    if row is None or row.workspace_id != actor.user.workspace_id:
        raise NotFound("no such campaign")
    return row


def form_from_draft(
    campaign: Campaign, topic_keyword: str, segment_filter: dict[str, Any] | None
) -> dict[str, str]:
    """The wizard fields that make this draft again (the segment's own parts left to it)."""
    form: dict[str, str] = {"name": campaign.name, "topic": topic_keyword, "replaces": campaign.id}
    saved = dict(segment_filter or {})
    if campaign.segment_id:
        form["segment"] = campaign.segment_id
    own = {k: v for k, v in (campaign.filter or {}).items() if k != "topic" and saved.get(k) != v}
    for key in ("channels", "labels"):
        if own.get(key):
            form[key] = ", ".join(str(v) for v in own[key])
    for key in ("language", "active_within_days", "inactive_for_days"):
        if own.get(key) not in (None, ""):
            form[key] = str(own[key])
    for name, value in (own.get("attributes") or {}).items():
        form["attribute"], form["value"] = str(name), str(value)
        break
    content = campaign.content or {}
    form["text"] = str(content.get("text") or "")
    for kind, part in (content.get("channels") or {}).items():
        if part.get("text"):
            form[f"text_{kind}"] = str(part["text"])
        if kind == "email" and part.get("subject"):
            form["subject_email"] = str(part["subject"])
        template = part.get("template")
        if kind == "whatsapp" and isinstance(template, dict):
            form["template"] = f"{template.get('name')}:{template.get('language')}"
            for i, value in enumerate(template.get("parameters") or [], start=1):
                form[f"param{i}"] = str(value)
    return {k: v for k, v in form.items() if v}
