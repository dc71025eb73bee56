"""The campaign wizard's first steps: audience with a live count, content with a preview per
channel kind; leaving the content saves the draft (campaign_schedule has the steps after)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import campaigns, segments
from tresen.db.tables import (
    Campaign,
    ChannelRow,
    MessageTemplate,
    Segment,
    Subscription,
    Topic,
    Workspace,
)
from tresen.domain.errors import DomainError
from tresen.inbox.permissions import Actor
from tresen.pipeline.templates import variables
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.broadcast import _filter_from
from tresen.web.campaign_form import (
    BASE,
    KINDS,
    WizardError,
    admin_actor,
    draft_of,
    form_from_draft,
    page_helpers,
)
from tresen.web.campaign_preview import previews, sample_contact, template_choice
from tresen.web.inbox import Form, _runtime
from tresen.web.pages import render

PARAMS = 9
MAX_TEXT = 4000
MAX_FIELD = 3 * MAX_TEXT
"""Longer fields are cut when read; a text over MAX_TEXT is refused (kept in the form)."""
FIELDS = (
    "name", "topic", "segment", "channels", "language", "labels", "attribute", "value",
    "active_within_days", "inactive_for_days", "save_as", "text", "template", "replaces", "subject_email",
    *(f"text_{k}" for k in KINDS), *(f"param{i}" for i in range(1, PARAMS + 1)),
)  # fmt: skip
STEPS = ("audience", "content")


def _form(data: dict[str, Any]) -> dict[str, str]:
    """The wizard's known fields, trimmed to a sane length."""
    return {k: str(data.get(k, ""))[:MAX_FIELD] for k in FIELDS if data.get(k) not in (None, "")}


async def _segment(session: AsyncSession, workspace_id: str, form: dict[str, str]) -> Any:
    if not form.get("segment"):
        return None
    row = await session.scalar(
        select(Segment).where(Segment.workspace_id == workspace_id, Segment.id == form["segment"])
    )
    if row is None:
        raise WizardError("segment", "this saved segment no longer exists")
    return row


async def _filter(session: AsyncSession, workspace_id: str, form: dict[str, str]) -> dict[str, Any]:
    """The audience filter: a saved segment's, narrowed by the fields, for the chosen topic."""
    topic = await session.scalar(
        select(Topic).where(Topic.workspace_id == workspace_id, Topic.keyword == form.get("topic"))
    )
    if topic is None:
        raise WizardError("topic", "choose a topic: broadcasts go to a topic's subscribers")
    fields = {k: v for k, v in _filter_from(form).items() if k != "topic"}
    seg = await _segment(session, workspace_id, form)
    saved = dict(seg.filter) if seg is not None else {}
    if saved.get("topic") not in (None, topic.id):
        raise WizardError("segment", "the segment is about another topic")
    return {**saved, **fields, "topic": topic.id}


async def _kinds(session: AsyncSession, flt: dict[str, Any], reach: segments.Reach) -> list[str]:
    """The channel kinds the campaign goes out on (the topic's when nobody matches yet)."""
    if reach.per_kind:
        return sorted(reach.per_kind, key=lambda k: KINDS.index(k) if k in KINDS else 99)
    kinds = await session.scalars(
        select(ChannelRow.kind)
        .join(Subscription, Subscription.channel_id == ChannelRow.id)
        .where(Subscription.topic_id == flt["topic"])
        .distinct()
    )
    return sorted(set(kinds), key=lambda k: KINDS.index(k) if k in KINDS else 99)


async def _templates(session: AsyncSession, workspace_id: str) -> list[MessageTemplate]:
    """The approved templates of the workspace's channels that have templates."""
    rows = await session.scalars(
        select(MessageTemplate)
        .join(ChannelRow, ChannelRow.id == MessageTemplate.channel_id)
        .where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.status == "approved")
        .order_by(MessageTemplate.name, MessageTemplate.language)
    )
    return [t for t in rows if t.body]


def _chosen(form: dict[str, str], templates: list[MessageTemplate]) -> MessageTemplate | None:
    choice = template_choice(form.get("template", ""))
    if choice is None:
        return None
    for row in templates:
        if (row.name, row.language) == choice:
            return row
    raise WizardError("template", "this template is not approved (any more); choose another")


def _content(form: dict[str, str], template: MessageTemplate | None) -> dict[str, Any]:
    """The campaign content: one text, per-kind texts, a template for WhatsApp outside the window."""
    parts: dict[str, Any] = {}
    for kind in KINDS:
        if form.get(f"text_{kind}", "").strip():
            parts[kind] = {"text": form[f"text_{kind}"]}
    if form.get("subject_email", "").strip():
        parts.setdefault("email", {})["subject"] = form["subject_email"].strip()
    if template is not None:
        n = variables(template.body)
        params = [form.get(f"param{i}", "").strip() for i in range(1, n + 1)]
        parts.setdefault("whatsapp", {})["template"] = {
            "name": template.name,
            "language": template.language,
            "parameters": params,
        }
    if any(len(value) > MAX_TEXT for value in form.values()):
        raise WizardError(
            "too_long", "a text has at most {max} characters", params={"max": MAX_TEXT}
        )
    content: dict[str, Any] = {"text": form.get("text", "")}
    if parts:
        content["channels"] = parts
    return content


def _cap(request: Request[Any, Any, Any]) -> int:
    """The weekly number of broadcasts a person gets at most (the live count leaves out the rest)."""
    return int(_runtime(request).settings.broadcast_weekly_cap)


async def _context(
    session: AsyncSession, workspace_id: str, form: dict[str, str], cap: int
) -> dict[str, Any]:
    """What the audience and content steps show: counts, kinds, templates, previews."""
    flt = await _filter(session, workspace_id, form)
    try:
        reach = await segments.reach(session, workspace_id, flt, frequency_cap=cap)
    except segments.SegmentError as exc:
        raise WizardError(exc.code, exc.template, params=exc.params) from None
    kinds = await _kinds(session, flt, reach)
    templates = await _templates(session, workspace_id)
    template = _chosen(form, templates)
    sample = await sample_contact(session, workspace_id, flt)
    return {
        "reach": reach,
        "kinds": kinds,
        "templates": templates,
        "chosen": template,
        "template_params": variables(template.body) if template is not None else 0,
        "sample": sample,
        "previews": previews(_content(form, template), kinds, sample.values, template),
        "business": (await session.get_one(Workspace, workspace_id)).name,
    }


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    step: str,
    form: dict[str, str],
    error: str | None = None,
) -> Response[str]:
    workspace_id = actor.user.workspace_id
    extra: dict[str, Any] = {}
    async with _runtime(request).sessions() as session:
        topics = list(
            await session.scalars(
                select(Topic).where(Topic.workspace_id == workspace_id).order_by(Topic.name)
            )
        )
        saved = list(
            await session.scalars(
                select(Segment).where(Segment.workspace_id == workspace_id).order_by(Segment.name)
            )
        )
        if form.get("topic"):
            try:
                extra = await _context(session, workspace_id, form, _cap(request))
            except DomainError as exc:
                error = error or i18n.error_text(exc)
    return render(
        request,
        "campaign_wizard.html",
        status_code=422 if error else 200,
        actor=actor,
        step=step,
        steps=STEPS,
        form=form,
        topics=topics,
        saved=saved,
        error=error,
        hidden={k: v for k, v in form.items() if not _shown(k, step)},
        **extra,
        **page_helpers(),
    )


def _shown(field: str, step: str) -> bool:
    """Whether a field is an input of this step (the others travel as hidden fields)."""
    if field == "replaces":
        return False
    content = field in ("text", "template") or field.startswith(("text_", "param", "subject_"))
    return content if step == "content" else not content


@get(BASE, include_in_schema=False)
async def wizard_start(request: Request[Any, Any, Any]) -> Response[str]:
    """Step 1: who gets the broadcast (a topic's subscribers, narrowed by a segment)."""
    actor = await admin_actor(request)
    form = _form({k: str(v) for k, v in request.query_params.items()})
    if form.get("replaces"):
        form = await _draft_form(request, actor, form["replaces"])
    return await _page(request, actor, "audience", form)


async def _draft_form(
    request: Request[Any, Any, Any], actor: Actor, draft_id: str
) -> dict[str, str]:
    """The fields of a draft of this workspace (it is replaced when the wizard saves again)."""
    row = await draft_of(request, actor, draft_id)
    if row.state != campaigns.DRAFT:
        raise WizardError("state", "only a draft can be changed", 409)
    async with _runtime(request).sessions() as session:
        topic = await session.get_one(Topic, row.topic_id)
        seg = await session.get(Segment, row.segment_id) if row.segment_id else None
    return form_from_draft(row, topic.keyword, seg.filter if seg is not None else None)


@post(BASE, include_in_schema=False, status_code=200)
async def wizard_step(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Go to another step; leaving the audience checks it (and saves the segment if named);
    leaving the content creates the draft."""
    actor = await admin_actor(request)
    form = _form(data)
    go = str(data.get("go", "audience"))
    workspace_id = actor.user.workspace_id
    if go == "audience":
        return await _page(request, actor, "audience", form)
    if go == "content":
        try:
            await _check_audience(request, workspace_id, form)
        except DomainError as exc:
            return await _page(request, actor, "audience", form, i18n.error_text(exc))
        form.pop("save_as", None)
        return await _page(request, actor, "content", form)
    try:
        campaign_id = await _create(request, actor, form)
    except DomainError as exc:
        return await _page(request, actor, "content", form, i18n.error_text(exc))
    return Redirect(f"{BASE}/{campaign_id}/send", status_code=303)


async def _check_audience(
    request: Request[Any, Any, Any], workspace_id: str, form: dict[str, str]
) -> None:
    name = form.get("name", "").strip()
    if not name or len(name) > 200:
        raise WizardError("name", "a campaign needs a name of 1 to 200 characters")
    async with _runtime(request).sessions() as session, session.begin():
        flt = await _filter(session, workspace_id, form)
        await segments.reach(session, workspace_id, flt)
        if form.get("save_as", "").strip():
            row = await segments.save_segment(session, workspace_id, form["save_as"], flt)
            form["segment"] = row.id


async def _create(request: Request[Any, Any, Any], actor: Actor, form: dict[str, str]) -> str:
    """The draft campaign from the wizard's fields (nothing is stored when it is refused)."""
    workspace_id = actor.user.workspace_id
    async with _runtime(request).sessions() as session, session.begin():
        flt = await _filter(session, workspace_id, form)
        template = _chosen(form, await _templates(session, workspace_id))
        content = _content(form, template)
        if template is not None and not all(
            content["channels"]["whatsapp"]["template"]["parameters"]
        ):
            raise WizardError("template_parameters", "fill in every value of the template")
        flt.pop("topic")
        if form.get("replaces"):
            old = await session.get(Campaign, form["replaces"])
            if old is None or old.workspace_id != workspace_id or old.state != campaigns.DRAFT:
                raise WizardError("state", "only a draft can be changed", 409)
            await session.delete(old)
        row = await campaigns.create_campaign(
            session,
            workspace_id,
            name=form.get("name", ""),
            topic=form.get("topic", ""),
            content=content,
            segment=form.get("segment") or None,
            filter=flt,
            time_zone=i18n.current_zone.get(),
            frequency_cap=_runtime(request).settings.broadcast_weekly_cap,
            created_by=actor.user.id,
        )
        kinds = await session.scalars(
            select(ChannelRow.kind).where(ChannelRow.id.in_(row.channel_ids["ids"]))
        )
        if (
            "email" in set(kinds)
            and "subject" not in campaigns.content_for(content, "email").payload
        ):
            raise WizardError("subject", "give the e-mail a subject")
        await record_by(session, actor, "campaign.created", "campaign", row.id)
        return row.id


@get(f"{BASE}/reach", include_in_schema=False)
async def wizard_reach(request: Request[Any, Any, Any]) -> Response[str]:
    """The live count of the audience step, with who is left out and why (a fragment)."""
    actor = await admin_actor(request)
    form = _form({k: str(v) for k, v in request.query_params.items()})
    try:
        async with _runtime(request).sessions() as session:
            flt = await _filter(session, actor.user.workspace_id, form)
            reach = await segments.reach(
                session, actor.user.workspace_id, flt, frequency_cap=_cap(request)
            )
    except DomainError as exc:
        return render(
            request,
            "_campaign_reach.html",
            error=i18n.error_text(exc),
            reach=None,
            **page_helpers(),
        )
    return render(request, "_campaign_reach.html", error=None, reach=reach, **page_helpers())


@get(f"{BASE}/preview", include_in_schema=False)
async def wizard_preview(request: Request[Any, Any, Any]) -> Response[str]:
    """The preview of the content step as the text is typed (a fragment)."""
    actor = await admin_actor(request)
    form = _form({k: str(v) for k, v in request.query_params.items()})
    try:
        async with _runtime(request).sessions() as session:
            extra = await _context(session, actor.user.workspace_id, form, _cap(request))
    except DomainError as exc:
        return render(
            request, "_campaign_preview.html", error=i18n.error_text(exc), **page_helpers()
        )
    return render(
        request, "_campaign_preview.html", error=None, form=form, **extra, **page_helpers()
    )


@get(f"{BASE}/template-fields", include_in_schema=False)
async def wizard_template_fields(request: Request[Any, Any, Any]) -> Response[str]:
    """The chosen template's text and one field per value, as soon as it is chosen (a fragment
    for scripts; without JavaScript the "Show the values" button renders the step again)."""
    actor = await admin_actor(request)
    form = _form({k: str(v) for k, v in request.query_params.items()})
    async with _runtime(request).sessions() as session:
        templates = await _templates(session, actor.user.workspace_id)
    try:
        template = _chosen(form, templates)
    except DomainError as exc:
        template, error = None, i18n.error_text(exc)
    else:
        error = None
    return render(
        request,
        "_campaign_template_fields.html",
        fetched=True,
        error=error,
        form=form,
        templates=templates,
        chosen=template,
        template_params=variables(template.body) if template is not None else 0,
    )


WIZARD = [
    wizard_start,
    wizard_step,
    wizard_reach,
    wizard_preview,
    wizard_template_fields,
]
