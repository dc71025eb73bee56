"""The audit page for admins: who did what to which thing, newest first, and the chain's check."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get
from sqlalchemy import select

from tresen.db.tables import AuditEntry, User, Workspace
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.privacy import audit
from tresen.web import i18n
from tresen.web.inbox import _runtime, current_actor
from tresen.web.pages import render

PAGE = 100

ACTIONS = {
    "user.login": "Signed in",
    "user.login_failed": "Failed sign-in",
    "user.created": "Person added",
    "user.invited": "Person invited",
    "user.invitation_withdrawn": "Invitation withdrawn",
    "user.role_changed": "Role changed",
    "user.deactivated": "Person deactivated",
    "user.reactivated": "Person reactivated",
    "user.removed": "Person removed",
    "user.password_changed": "Own password changed",
    "user.totp_on": "Two-factor turned on",
    "user.password_reset": "Password reset",
    "user.totp_off": "Two-factor turned off",
    "token.create": "API token created",
    "token.revoke": "API token revoked",
    "channel.add": "Channel connected",
    "channel.change": "Channel changed",
    "channel.enable": "Channel turned on",
    "channel.disable": "Channel turned off",
    "channel.delete": "Channel deleted",
    "channel.tested": "Test message sent",
    "template.submitted": "Message template submitted",
    "settings.notifications_webhook": "Status webhook changed",
    "settings.notifications_webhook_off": "Status webhook removed",
    "settings.profile": "Business profile changed",
    "settings.retention": "Retention periods changed",
    "retention.run": "Retention periods applied",
    "conversation.viewed": "Conversation opened",
    "conversation.legal_hold": "Legal hold set",
    "conversation.legal_hold_released": "Legal hold released",
    "media.viewed": "Attachment opened",
    "contact.exported": "Contact's data exported",
    "contact.erased": "Contact erased",
    "contact.restricted": "Processing restricted",
    "contact.unrestricted": "Restriction lifted",
    "contact.merged": "Contacts merged",
    "contact.merge_undone": "Merge undone",
    "contact.consent_proof": "Proof of consent created",
    "contact.history_viewed": "Contact history opened",
    "subscribers.imported": "Subscribers imported",
    "bot.settings_changed": "Bot settings changed",
    "bot.texts_changed": "Bot texts changed",
    "bot.faq_added": "Bot answer added",
    "bot.faq_changed": "Bot answer changed",
    "bot.faq_deleted": "Bot answer deleted",
    "bot.faq_taught": "Customer question added to a bot answer",
    "campaign.schedule": "Campaign scheduled",
    "campaign.start": "Campaign started",
    "campaign.pause": "Campaign paused",
    "campaign.resume": "Campaign resumed",
    "campaign.cancel": "Campaign cancelled",
}
"""Readable names (English msgids, translated on the page); other actions show as they are."""

VIA = {"cli": "command line", "api": "API token", "system": "system", "web": "browser"}


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins see the audit log")
    return actor


@get("/inbox/admin/audit", include_in_schema=False)
async def audit_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The newest entries of this workspace's audit log (older ones with ?before=ID)."""
    actor = await _admin(request)
    workspace_id = actor.user.workspace_id
    raw_before = request.query_params.get("before", "")
    before = int(raw_before) if raw_before.isdigit() else None
    query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    async with _runtime(request).sessions() as session:
        entries = list(await session.scalars(query.order_by(AuditEntry.id.desc()).limit(PAGE)))
        names = dict(
            (
                await session.execute(
                    select(User.id, User.display_name).where(User.workspace_id == workspace_id)
                )
            ).all()
        )
        workspace = await session.get_one(Workspace, workspace_id)
        check = await audit.verify(session, workspace_id)
    rows = [
        {
            "id": e.id,
            "when": i18n.when(e.occurred_at, workspace.time_zone),
            "action": ACTIONS.get(e.action),
            "code": e.action,
            "actor": names.get(e.actor_id or ""),
            "via": VIA.get(str(e.details.get("via", "")), "") if e.actor_id is None else "",
            "token": e.actor_id if e.details.get("via") == "api" else None,
            "subject": f"{e.subject_type or ''} {e.subject_id or ''}".strip(),
        }
        for e in entries
    ]
    older = entries[-1].id if len(entries) == PAGE else None
    return render(request, "admin_audit.html", actor=actor, rows=rows, check=check, older=older)


audit_router = Router(path="/", route_handlers=[audit_page])
