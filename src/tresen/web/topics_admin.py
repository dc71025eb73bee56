"""Admin page of the topics: click-to-chat links, QR codes and snippets; the subscriber import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from tresen.broadcast import clicktochat, importer, topics
from tresen.db.tables import Topic
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.inbox import Form, _runtime, current_actor
from tresen.web.pages import render

# Room for the multipart envelope around a file of the largest size the importer reads.
UPLOAD_LIMIT = importer.MAX_BYTES + 1024 * 1024
TOO_LARGE = "file_too_large"


@dataclass(frozen=True)
class LinkView:
    """One topic × channel cell of the page."""

    link: clicktochat.ChatLink
    qr: str | None
    snippet: str | None


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins manage topics")
    return actor


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    report: importer.ImportReport | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    runtime = _runtime(request)
    language = i18n.current_language.get()
    views: list[tuple[Topic, list[LinkView]]] = []
    async with runtime.sessions() as session:
        found = await clicktochat.all_topic_links(
            session, actor.user.workspace_id, runtime.settings.base_url
        )
    for topic, chat_links in found:
        views.append(
            (
                topic,
                [
                    LinkView(
                        link,
                        clicktochat.qr_data_uri(link.url) if link.url else None,
                        clicktochat.share_snippet(link, topic, language) if link.url else None,
                    )
                    for link in chat_links
                ],
            )
        )
    return render(
        request,
        "admin_topics.html",
        status_code=status_code,
        actor=actor,
        views=views,
        kind_names=clicktochat.kind_names(),
        base_url=runtime.settings.base_url,
        report=report,
        problems=[(p.line, p.text(i18n.gettext)) for p in report.problems] if report else [],
        error=error,
    )


def _too_large() -> str:
    return importer.render(TOO_LARGE, {"mb": importer.MAX_BYTES // (1024 * 1024)}, i18n.gettext)


@get("/inbox/admin/topics", include_in_schema=False)
async def topics_page(request: Request[Any, Any, Any], error: FromQuery[str] = "") -> Response[str]:
    """Per topic and channel: the link, its QR code and a snippet for the website."""
    actor = await _admin(request)
    if error == TOO_LARGE:  # an upload refused before it reached the import
        return await _page(request, actor, error=_too_large(), status_code=413)
    return await _page(request, actor)


@get("/inbox/admin/topics/{topic_id:str}/qr/{channel_id:str}/{fmt:str}", include_in_schema=False)
async def qr_download(
    request: Request[Any, Any, Any],
    topic_id: FromPath[str],
    channel_id: FromPath[str],
    fmt: FromPath[str],
) -> Response[bytes]:
    """The QR code of one link as an SVG or PNG file to download (for print)."""
    actor = await _admin(request)
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        topic = await topics.find_topic(session, actor.user.workspace_id, topic_id)
        found = (
            await clicktochat.links_for_topic(
                session, actor.user.workspace_id, topic, runtime.settings.base_url
            )
            if topic is not None
            else []
        )
    link = next((x for x in found if x.channel_id == channel_id and x.url), None)
    if topic is None or link is None or link.url is None or fmt not in ("svg", "png"):
        return Response(b"", status_code=404)
    body = clicktochat.qr_svg(link.url).encode() if fmt == "svg" else clicktochat.qr_png(link.url)
    name = f"{topic.keyword}-{link.kind}.{fmt}"
    return Response(
        body,
        media_type="image/svg+xml" if fmt == "svg" else "image/png",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def _upload_too_large(_: Request[Any, Any, Any], __: RequestEntityTooLarge) -> Response[Any]:
    return Redirect(f"/inbox/admin/topics?error={TOO_LARGE}", status_code=303)


@post(
    "/inbox/admin/topics/import",
    include_in_schema=False,
    status_code=200,
    request_max_body_size=UPLOAD_LIMIT,
    exception_handlers={RequestEntityTooLarge: _upload_too_large},
)
async def import_upload(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Response[str]:
    """Import subscribers from an uploaded CSV (a dry run unless the box is ticked)."""
    actor = await _admin(request)
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        return await _page(request, actor, error=i18n.gettext("Choose a file."), status_code=422)
    content = await upload.read(importer.MAX_BYTES + 1)
    runtime = _runtime(request)
    report: importer.ImportReport | None = None
    try:
        async with runtime.sessions() as session, session.begin():
            topic = await topics.find_topic(
                session, actor.user.workspace_id, str(data.get("topic", ""))
            )
            if topic is not None:
                report = await importer.import_subscribers(
                    session,
                    secret_key=runtime.settings.suppression_keys,
                    workspace_id=actor.user.workspace_id,
                    topic=topic,
                    data=content,
                    dry_run=data.get("apply") != "1",
                    skip_invalid=data.get("skip_invalid") == "1",
                    actor_id=actor.user.id,
                )
    except importer.ImportFileError as exc:
        status = 413 if exc.code == TOO_LARGE else 422
        return await _page(request, actor, error=exc.text(i18n.gettext), status_code=status)
    if report is None:
        return await _page(request, actor, error=i18n.gettext("Choose a topic."), status_code=422)
    return await _page(request, actor, report=report)


@post("/inbox/admin/topics", include_in_schema=False, status_code=303)
async def create_topic(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A new topic with its keyword and descriptions; a bad field is named, nothing is stored."""
    actor = await _admin(request)
    descriptions = {
        lang: str(data.get(f"description_{lang}", "")).strip()[:2000]
        for lang in ("de", "en")
        if str(data.get(f"description_{lang}", "")).strip()
    }
    try:
        async with _runtime(request).sessions() as session, session.begin():
            topic = await topics.create_topic(
                session,
                actor.user.workspace_id,
                str(data.get("keyword", ""))[:64],
                str(data.get("name", ""))[:300],
                descriptions,
            )
            await record_by(session, actor, "topic.created", "topic", topic.id)
    except topics.TopicError as exc:
        return await _page(request, actor, error=i18n.error_text(exc), status_code=422)
    return Redirect(f"/inbox/admin/topics#topic-{topic.keyword}", status_code=303)


topics_admin_router = Router(
    path="/", route_handlers=[topics_page, qr_download, import_upload, create_topic]
)
